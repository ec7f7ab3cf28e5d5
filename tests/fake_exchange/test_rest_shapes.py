"""REST bodies over the wire compared with the real exchange's recorded bodies."""

from __future__ import annotations

import json
import re

import httpx

DECIMAL_8 = re.compile(r"^-?\d+\.\d{8}$")


def _types(row):
    return [type(x).__name__ for x in row]


def test_spot_klines_match_recorded_shape(client: httpx.Client, real_data, now_ms) -> None:
    recorded = json.loads((real_data / "spot/rest_responses/nautilus_http_spot_market_klines.json").read_text())
    r = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
    assert r.status_code == 200
    rows = r.json()
    assert len(rows) == 5
    for row in rows:
        assert _types(row) == _types(recorded[0])
        for i in (1, 2, 3, 4, 5, 7, 9, 10):
            assert DECIMAL_8.match(row[i]), row[i]
        assert row[6] == row[0] + 59_999
        assert row[11] == "0"
    # the last kline contains the server's now: still open
    assert rows[-1][0] <= now_ms <= rows[-1][6]


def test_spot_agg_trades_match_recorded_keys(client: httpx.Client, real_data, now_ms) -> None:
    recorded = json.loads((real_data / "spot/rest_responses/nautilus_http_spot_market_agg_trades.json").read_text())
    rows = client.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT", "limit": 10}).json()
    assert len(rows) == 10
    for row in rows:
        assert list(row) == list(recorded[0])
        assert {k: type(v) for k, v in row.items()} == {k: type(v) for k, v in recorded[0].items()}
        assert row["T"] <= now_ms
    ids = [r["a"] for r in rows]
    assert ids == list(range(ids[0], ids[0] + 10))
    firsts = [r["f"] for r in rows]
    lasts = [r["l"] for r in rows]
    assert all(f2 == l1 + 1 for l1, f2 in zip(lasts, firsts[1:], strict=False))


def test_futures_agg_trades_have_no_best_match(client: httpx.Client) -> None:
    rows = client.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "limit": 3}).json()
    assert [list(r) for r in rows] == [["a", "p", "q", "f", "l", "T", "m"]] * 3


def test_funding_rate_shape_and_cadence(client: httpx.Client, real_data) -> None:
    rows = client.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "limit": 5}).json()
    assert [list(r) for r in rows] == [["symbol", "fundingTime", "fundingRate", "markPrice"]] * 5
    times = [r["fundingTime"] for r in rows]
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {8 * 3_600_000}
    eth = client.get("/fapi/v1/fundingRate", params={"symbol": "ETHUSDT", "limit": 5}).json()
    times = [r["fundingTime"] for r in eth]
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {4 * 3_600_000}
    assert all(DECIMAL_8.match(r["fundingRate"]) and DECIMAL_8.match(r["markPrice"]) for r in rows)


def test_funding_mark_price_equals_mark_kline_close(client: httpx.Client) -> None:
    row = client.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "limit": 1}).json()[0]
    kl = client.get("/fapi/v1/markPriceKlines", params={
        "symbol": "BTCUSDT", "interval": "1m", "startTime": row["fundingTime"] - 60_000, "limit": 1}).json()
    assert kl[0][0] == row["fundingTime"] - 60_000
    assert kl[0][4] == row["markPrice"]


def test_exchange_info_shapes(client: httpx.Client, real_data) -> None:
    spot_real = json.loads((real_data / "exchange_info/spot_exchangeInfo_2021-12-17_body.json").read_text())
    um_real = json.loads((real_data / "exchange_info/usdm_exchangeInfo_2024-10-20.json").read_text())
    spot = client.get("/api/v3/exchangeInfo").json()
    assert list(spot) == list(spot_real)
    assert list(spot["symbols"][0]) == list(spot_real["symbols"][0])
    assert spot["rateLimits"][0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                     "intervalNum": 1, "limit": 6000}
    um = client.get("/fapi/v1/exchangeInfo").json()
    assert list(um) == list(um_real)
    assert set(um["symbols"][0]) <= set(um_real["symbols"][0])
    assert um["rateLimits"][0]["limit"] == 2400
    statuses = {s["symbol"]: s["status"] for s in spot["symbols"]}
    assert statuses["XMRUSDT"] == "BREAK" and statuses["BTCUSDT"] == "TRADING"
    cm = client.get("/dapi/v1/exchangeInfo").json()
    assert {s["symbol"] for s in cm["symbols"]} == {"BTCUSD_PERP", "ETHUSD_PERP"}


def test_time_and_ping(client: httpx.Client, now_ms) -> None:
    assert client.get("/api/v3/ping").json() == {}
    assert client.get("/fapi/v1/time").json() == {"serverTime": now_ms}
    r = client.get("/dapi/v1/time")
    assert r.headers["x-mbx-used-weight-1m"].isdigit()


def test_futures_number_formats(client: httpx.Client) -> None:
    um = client.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1h", "limit": 2}).json()
    assert re.match(r"^\d+\.\d{2}$", um[0][1]) and re.match(r"^\d+\.\d{3}$", um[0][5])
    cm = client.get("/dapi/v1/klines", params={"symbol": "BTCUSD_PERP", "interval": "1h", "limit": 2}).json()
    assert re.match(r"^\d+$", cm[0][5]) and DECIMAL_8.match(cm[0][7])
