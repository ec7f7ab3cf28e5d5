"""One fake exchange, four venues: Binance.US under `/us/api/v3` is its own venue, never
spot's `/api/v3` (its symbols, exchangeInfo, weights, budget and counters)."""

from __future__ import annotations

import httpx

from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange import universe as uni


def test_us_and_spot_answer_apart(client: httpx.Client, fx: FakeExchange) -> None:
    before = fx.stats()
    spot = client.get("/api/v3/exchangeInfo").json()
    us = client.get("/us/api/v3/exchangeInfo").json()
    assert spot["rateLimits"][0]["limit"] == 6000 and us["rateLimits"][0]["limit"] == 1200
    assert [s["symbol"] for s in us["symbols"]] == [s.symbol for s in uni.symbols("us")] == ["BTCUSDT", "ETHUSDT"]
    assert len(spot["symbols"]) > len(us["symbols"])
    assert us["permissions"] == ["SPOT"] and "permissions" not in spot
    after = fx.stats()
    assert after["spot"]["weight"] - before["spot"]["weight"] == 20  # spot exchangeInfo
    assert after["us"]["weight"] - before["us"]["weight"] == 10  # Binance.US exchangeInfo


def test_us_symbol_subset_and_own_rows(client: httpx.Client) -> None:
    """XMRUSDT exists on spot only; ETHUSDT's first Binance.US kline is its 2019-09-23
    launch while spot has traded it since 2017."""
    params = {"symbol": "XMRUSDT", "interval": "1d", "limit": 1}
    assert client.get("/api/v3/klines", params=params).status_code == 200
    assert client.get("/us/api/v3/klines", params=params).json()["code"] == -1121
    params = {"symbol": "ETHUSDT", "interval": "1d", "startTime": uni.utc_ms("2019-01-01 00:00"), "limit": 1}
    first_us = client.get("/us/api/v3/klines", params=params).json()[0][0]
    first_spot = client.get("/api/v3/klines", params=params).json()[0][0]
    assert first_us == uni.listing_ms("us", "ETHUSDT") == uni.utc_ms("2019-09-23 00:00")
    assert first_spot == uni.utc_ms("2019-01-01 00:00")


def test_us_has_no_1s_klines(client: httpx.Client) -> None:
    """Binance.US removed 1s klines (its changelog, 2023-09-06); spot keeps them."""
    params = {"symbol": "BTCUSDT", "interval": "1s", "limit": 1}
    assert client.get("/api/v3/klines", params=params).status_code == 200
    answer = client.get("/us/api/v3/klines", params=params)
    assert answer.status_code == 400 and answer.json()["code"] == -1120


def test_budgets_are_per_venue() -> None:
    """Spending Binance.US's budget leaves spot's untouched, and the other way round."""
    with FakeExchange(weight_limit=20) as fx, httpx.Client(base_url=fx.base_url) as c:
        assert c.get("/us/api/v3/exchangeInfo").status_code == 200  # 10
        assert c.get("/us/api/v3/exchangeInfo").status_code == 200  # 20
        assert c.get("/us/api/v3/time").status_code == 429
        assert c.get("/api/v3/exchangeInfo").status_code == 200  # spot: 20 of its own 20
        assert fx.stats()["us"]["429"] == 1 and fx.stats()["spot"]["429"] == 0


def test_venues_restrict_what_is_served() -> None:
    with FakeExchange(venues=("spot",)) as fx, httpx.Client(base_url=fx.base_url) as c:
        assert c.get("/api/v3/time").status_code == 200
        for path in ("/us/api/v3/exchangeInfo", "/fapi/v1/time", "/dapi/v1/time"):
            answer = c.get(path)
            assert answer.status_code == 404 and answer.json()["code"] == -5000, path
        assert fx.stats()["us"]["requests"] == 0
