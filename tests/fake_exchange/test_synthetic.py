"""The synthetic path: resample consistency, determinism, gaps, listing, the open kline."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.synthetic import combine, decompose, fix_total
from kline_lake.fake_exchange.universe import delisted_ms, gaps, get_symbol, listing_ms, utc_ms


def _kl(c: httpx.Client, prefix: str, symbol: str, interval: str, **params) -> list:
    r = c.get(f"{prefix}/klines", params={"symbol": symbol, "interval": interval, **params})
    assert r.status_code == 200, r.text
    return r.json()


def _resample(rows: list) -> list:
    return [
        rows[0][1],
        max(rows, key=lambda r: float(r[2]))[2],
        min(rows, key=lambda r: float(r[3]))[3],
        rows[-1][4],
        sum(int(r[5].replace(".", "")) for r in rows),
        sum(int(r[7].replace(".", "")) for r in rows),
        sum(r[8] for r in rows),
        sum(int(r[9].replace(".", "")) for r in rows),
        sum(int(r[10].replace(".", "")) for r in rows),
    ]


def _key(row: list) -> list:
    return [row[1], row[2], row[3], row[4], int(row[5].replace(".", "")), int(row[7].replace(".", "")),
            row[8], int(row[9].replace(".", "")), int(row[10].replace(".", ""))]


@pytest.mark.parametrize(("prefix", "symbol"), [("/api/v3", "BTCUSDT"), ("/fapi/v1", "ETHUSDT"),
                                                ("/dapi/v1", "BTCUSD_PERP")])
def test_hour_equals_resampled_minutes(client: httpx.Client, prefix: str, symbol: str) -> None:
    t0 = utc_ms("2022-03-04 05:00")
    hours = _kl(client, prefix, symbol, "1h", startTime=t0, limit=3)
    minutes = _kl(client, prefix, symbol, "1m", startTime=t0, limit=180)
    for i, h in enumerate(hours):
        assert _key(h) == _resample(minutes[60 * i: 60 * (i + 1)])


def test_minute_equals_resampled_seconds_and_day_equals_hours(client: httpx.Client) -> None:
    t0 = utc_ms("2024-12-31 23:00")
    m = _kl(client, "/api/v3", "ETHUSDT", "1m", startTime=t0, limit=1)
    s = _kl(client, "/api/v3", "ETHUSDT", "1s", startTime=t0, limit=60)
    assert _key(m[0]) == _resample(s)
    d = _kl(client, "/api/v3", "BTCUSDT", "1d", startTime=utc_ms("2023-05-01 00:00"), limit=1)
    h = _kl(client, "/api/v3", "BTCUSDT", "1h", startTime=utc_ms("2023-05-01 00:00"), limit=24)
    assert _key(d[0]) == _resample(h)
    w = _kl(client, "/api/v3", "BTCUSDT", "1w", startTime=utc_ms("2023-05-01 00:00"), limit=1)
    days = _kl(client, "/api/v3", "BTCUSDT", "1d", startTime=w[0][0], limit=7)
    assert _key(w[0]) == _resample(days)


def test_gap_has_no_klines_and_partial_hour_aggregates(client: httpx.Client) -> None:
    g0, g1 = gaps("spot", "BTCUSDT")[3]
    rows = _kl(client, "/api/v3", "BTCUSDT", "1m", startTime=g0 - 120_000, limit=4)
    assert [r[0] for r in rows] == [g0 - 120_000, g0 - 60_000, g1, g1 + 60_000]
    day0 = g0 - g0 % 86_400_000
    day = _kl(client, "/api/v3", "BTCUSDT", "1d", startTime=day0, limit=1)[0]
    hours = _kl(client, "/api/v3", "BTCUSDT", "1h", startTime=day0, endTime=day0 + 86_399_999)
    assert len(hours) == 24 - (g1 - g0) // 3_600_000
    assert _key(day) == _resample(hours)
    trades = client.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT", "startTime": g0 - 2000, "limit": 4}).json()
    assert trades[1]["T"] < g0 and trades[2]["T"] >= g1
    assert trades[2]["a"] == trades[1]["a"] + 1 and trades[2]["f"] == trades[1]["l"] + 1


def test_listing_and_delisting(client: httpx.Client) -> None:
    lst = listing_ms("spot", "NEWUSDT")
    first = _kl(client, "/api/v3", "NEWUSDT", "1d", limit=1000)[0]
    assert first[0] == lst - lst % 86_400_000
    hours = _kl(client, "/api/v3", "NEWUSDT", "1h", startTime=first[0], limit=24)
    assert hours[0][0] == lst and _key(first) == _resample([h for h in hours if h[0] < first[0] + 86_400_000])
    end = delisted_ms("spot", "XMRUSDT")
    last = _kl(client, "/api/v3", "XMRUSDT", "1m", limit=2)
    assert last[-1][0] == end - 60_000
    assert client.get("/api/v3/aggTrades", params={"symbol": "XMRUSDT", "limit": 1}).json()[0]["T"] < end


def test_agg_trades_sum_to_kline(client: httpx.Client) -> None:
    t0 = utc_ms("2023-02-02 10:17")
    kl = _kl(client, "/fapi/v1", "BTCUSDT", "1m", startTime=t0, limit=1)[0]
    trades = client.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "startTime": t0,
                                                      "endTime": t0 + 59_999, "limit": 1000}).json()
    assert len(trades) == 60
    assert sum(int(t["q"].replace(".", "")) for t in trades) == int(kl[5].replace(".", ""))
    assert sum(t["l"] - t["f"] + 1 for t in trades) == kl[8]
    assert trades[-1]["p"] == kl[4]
    again = client.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": trades[10]["a"], "limit": 5}).json()
    assert again == trades[10:15]


def test_open_last_kline_grows_with_the_clock() -> None:
    clock = {"now": utc_ms("2024-06-01 10:30") + 5_000}
    with FakeExchange(seed=1, now_ms=lambda: clock["now"]) as fx, httpx.Client(base_url=fx.base_url) as c:
        a = _kl(c, "/fapi/v1", "BTCUSDT", "1h", limit=1)[0]
        clock["now"] += 600_000
        b = _kl(c, "/fapi/v1", "BTCUSDT", "1h", limit=1)[0]
        assert a[0] == b[0] == utc_ms("2024-06-01 10:00")
        assert a[6] == b[6] == a[0] + 3_599_999
        assert float(b[5]) > float(a[5]) and b[8] > a[8] and a[1] == b[1]
        minutes = _kl(c, "/fapi/v1", "BTCUSDT", "1m", startTime=a[0], limit=60)
        assert len(minutes) == 41 and minutes[-1][0] == utc_ms("2024-06-01 10:40")
        assert _key(b) == _resample(minutes)


def test_determinism_same_seed_same_bytes() -> None:
    params = {"symbol": "ETHUSDT", "interval": "5m", "startTime": utc_ms("2021-01-01 00:00"), "limit": 1000}
    bodies = []
    for seed in (7, 7, 8):
        with FakeExchange(seed=seed, now_ms=utc_ms("2025-01-01 00:00")) as fx:
            bodies.append(httpx.get(f"{fx.base_url}/api/v3/klines", params=params).content)
    assert bodies[0] == bodies[1] and bodies[0] != bodies[2]


def test_prices_realistic_and_fast(client: httpx.Client) -> None:
    t = time.perf_counter()
    rows = _kl(client, "/api/v3", "BTCUSDT", "1m", startTime=utc_ms("2019-06-01 00:00"), limit=1000)
    assert time.perf_counter() - t < 0.5
    closes = np.array([float(r[4]) for r in rows])
    assert closes.min() > 10_000 and closes.max() < 200_000
    days = _kl(client, "/api/v3", "BTCUSDT", "1d", limit=1000)
    assert len(days) == 1000
    assert all(float(r[3]) <= min(float(r[1]), float(r[4])) and float(r[2]) >= max(float(r[1]), float(r[4]))
               for r in days)


def test_fix_total_and_decompose_pure() -> None:
    parts = np.array([[5, 5, 5], [0, 0, 0]])
    out = fix_total(parts, np.array([20, 2]), 0, np.array([[10, 10, 10], [1, 1, 1]]))
    assert out.sum(axis=1).tolist() == [20, 2] and out.max() <= 10
    pieces = decompose(86_400 - 61, 2 * 86_400 + 3_600 + 2)
    assert pieces[0] == ("second", 86_400 - 61, 1) and ("day", 1, 1) in pieces and pieces[-1] == ("second", 2 * 86_400 + 3_600, 2)
    assert combine({"o": np.array([1, 2]), "h": np.array([3, 4]), "l": np.array([0, 1]), "c": np.array([2, 3]),
                    **{f: np.array([1, 1]) for f in ("v", "t", "tb", "q", "tq")}})["h"] == 4
    assert get_symbol("um", "ETHUSDT").funding_hours == 4
