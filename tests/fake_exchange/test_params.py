"""Parameter rules and real error bodies."""

from __future__ import annotations

import httpx
import pytest

from kline_lake.fake_exchange.universe import listing_ms, utc_ms


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/api/v3/klines", {"symbol": "NOPE", "interval": "1m"}, -1121),
        ("/api/v3/klines", {"interval": "1m"}, -1102),
        ("/api/v3/klines", {"symbol": "BTCUSDT"}, -1102),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "2m"}, -1120),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1s"}, -1120),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "abc"}, -1100),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "2", "endTime": "1"}, -1128),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "1501"}, -1130),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, -1130),
        ("/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "startTime": "0", "endTime": "3600000"}, -1127),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "fromId": "5", "startTime": "0"}, -1128),
        ("/dapi/v1/klines", {"symbol": "BTCUSD_PERP", "interval": "1d", "startTime": "0",
                             "endTime": str(201 * 86_400_000)}, -1127),
    ],
)
def test_errors(client: httpx.Client, path, params, code) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400
    body = r.json()
    assert list(body) == ["code", "msg"] and body["code"] == code


def test_spot_limit_is_capped(client: httpx.Client) -> None:
    rows = client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 5000}).json()
    assert len(rows) == 1000


def test_start_end_semantics(client: httpx.Client) -> None:
    t0 = utc_ms("2021-10-22 12:00")
    rows = client.get("/api/v3/klines", params={
        "symbol": "BTCUSDT", "interval": "1m", "startTime": t0 + 1, "endTime": t0 + 10 * 60_000}).json()
    assert [r[0] for r in rows] == [t0 + i * 60_000 for i in range(1, 11)]
    rows = client.get("/api/v3/klines", params={
        "symbol": "BTCUSDT", "interval": "1m", "endTime": t0, "limit": 3}).json()
    assert [r[0] for r in rows] == [t0 - 120_000, t0 - 60_000, t0]


def test_before_listing_starts_at_listing(client: httpx.Client) -> None:
    rows = client.get("/fapi/v1/klines", params={
        "symbol": "BTCUSDT", "interval": "1h", "startTime": 0, "limit": 2}).json()
    assert rows[0][0] == listing_ms("um", "BTCUSDT")


def test_unknown_path_404(client: httpx.Client) -> None:
    assert client.get("/api/v3/nothing").status_code == 404
    assert client.get("/api/v3/fundingRate").status_code == 404
