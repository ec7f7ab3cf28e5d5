"""Weight accounting: pure window arithmetic (Hypothesis) and 429 -> 418 over the wire."""

from __future__ import annotations

import math

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.ratelimit import WeightLimiter, header_suffix, rate_limit_entry


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 50),
    window=st.integers(1, 120),
    steps=st.lists(st.tuples(st.floats(0, 30), st.integers(1, 20)), max_size=60),
)
def test_window_accounting_matches_model(limit, window, steps) -> None:
    """Without ever triggering a ban, allowed weight per window never exceeds the limit,
    and a request is refused exactly when it would exceed it."""
    clock = FakeClock(10_000.0)
    lim = WeightLimiter(limit, window, ban_base_s=1e9, ban_max_s=1e9, clock=clock)
    used: dict[int, int] = {}
    for dt, weight in steps:
        clock.t += dt
        w = math.floor(clock.t / window)
        before = used.get(w, 0)
        d = lim.charge("ip", weight)
        if d.status == 418:  # a request inside a 429 back-off: the model stops here
            return
        if before + weight <= limit:
            assert d.status == 200 and d.used == before + weight
            used[w] = before + weight
        else:
            assert d.status == 429 and d.used == before
            assert 1 <= d.retry_after_s <= math.ceil((w + 1) * window - clock.t) + 1
            clock.t = (w + 1) * window  # obey Retry-After exactly
        assert max(used.values(), default=0) <= limit


def test_ban_escalation_pure() -> None:
    clock = FakeClock(600.0)
    lim = WeightLimiter(10, 60, ban_base_s=120, ban_max_s=1000, clock=clock)
    assert lim.charge("a", 10).status == 200
    d = lim.charge("a", 1)
    assert (d.status, d.retry_after_s) == (429, 60)
    assert lim.charge("b", 1).status == 200  # other clients are independent
    bans = []
    for _ in range(5):
        d = lim.charge("a", 1)  # during back-off: banned
        assert d.status == 418
        bans.append(d.retry_after_s)
        clock.t += 1
        assert lim.charge("a", 1).status == 418  # still banned, not lengthened
        clock.t += d.retry_after_s  # ban over
        clock.t = math.ceil(clock.t / 60) * 60 + 1  # start of the next window
        assert lim.charge("a", 10).status == 200
        assert lim.charge("a", 1).status == 429
    assert bans == [120, 240, 480, 960, 1000]


def test_header_names() -> None:
    assert header_suffix(60) == "1M" and header_suffix(10) == "10S" and header_suffix(120) == "2M"
    assert rate_limit_entry(100, 10) == {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND",
                                         "intervalNum": 10, "limit": 100}


def test_429_then_418_over_the_wire() -> None:
    with FakeExchange(seed=3, minute_seconds=2, weight_limit=10) as fx, httpx.Client(base_url=fx.base_url) as c:
        info = c.get("/api/v3/exchangeInfo")  # spot exchangeInfo weighs 20 > 10: 429 at once
        assert info.status_code == 429
        assert int(info.headers["retry-after"]) in (1, 2)
        r = c.get("/api/v3/ping")
        assert r.status_code == 418 and int(r.headers["retry-after"]) == 4  # 2 "minutes" of 2 s
        assert r.json()["code"] == -1003
        r2 = c.get("/fapi/v1/ping")  # futures budget is separate
        assert r2.status_code == 200
        assert r2.headers["x-mbx-used-weight-2s"] == "1" and r2.headers["x-mbx-used-weight-1m"] == "1"
        stats = fx.stats()
        assert stats["spot"] == {"requests": 2, "weight": 0, "429": 1, "418": 1, "bytes": stats["spot"]["bytes"]}
        assert stats["um"]["requests"] == 1 and stats["um"]["weight"] == 1


def test_weights_per_endpoint(fx: FakeExchange) -> None:
    cases = [
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}, "spot", 2),
        ("/api/v3/aggTrades", {"symbol": "BTCUSDT", "limit": 5}, "spot", 4),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 99}, "um", 1),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 499}, "um", 2),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1000}, "um", 5),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 1500}, "um", 10),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m"}, "um", 5),
        ("/fapi/v1/markPriceKlines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 100}, "um", 2),
        ("/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "limit": 5}, "um", 20),
        ("/dapi/v1/klines", {"symbol": "BTCUSD_PERP", "interval": "1m", "limit": 1200}, "cm", 10),
        ("/api/v3/exchangeInfo", {}, "spot", 20),
        ("/fapi/v1/exchangeInfo", {}, "um", 1),
        ("/fapi/v1/fundingRate", {"symbol": "BTCUSDT"}, "um", 0),
    ]
    with httpx.Client(base_url=fx.base_url) as c:
        for path, params, market, weight in cases:
            before = fx.stats()[market]["weight"]
            r = c.get(path, params=params)
            assert r.status_code == 200, (path, r.text)
            assert fx.stats()[market]["weight"] - before == weight, path


def test_short_window_advertised_honestly() -> None:
    with FakeExchange(minute_seconds=10) as fx, httpx.Client(base_url=fx.base_url) as c:
        info = c.get("/fapi/v1/exchangeInfo")
        assert info.json()["rateLimits"][0] == {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND",
                                                "intervalNum": 10, "limit": 2400}
        assert info.headers["x-mbx-used-weight-10s"] == "1"


def test_funding_pool_500_per_5_minutes() -> None:
    """USD-M fundingRate: weight-free, but 500 requests per 5 (scaled) minutes."""
    with FakeExchange(minute_seconds=2) as fx, httpx.Client(base_url=fx.base_url) as c:
        ok = 0
        for _ in range(1100):
            r = c.get("/fapi/v1/fundingInfo")  # shares the pool with fundingRate
            if r.status_code == 429:
                assert 1 <= int(r.headers["retry-after"]) <= 10
                break
            assert r.status_code == 200
            ok += 1
        else:
            raise AssertionError("the funding pool never answered 429")
        assert ok >= 500
        assert fx.stats()["um"]["weight"] == 0 and fx.stats()["um"]["429"] == 1
        assert c.get("/fapi/v1/fundingRate", params={"symbol": "BTCUSDT"}).status_code == 418
        # the pool is separate from the weight budget: klines still pass
        assert c.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 1}).status_code == 200
