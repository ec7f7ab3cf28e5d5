"""The weight limiter (property test on virtual time) and the client's error mapping
(httpx.MockTransport: real httpx, fake server)."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kline_lake.core.markets import SPOT, UM
from kline_lake.errors import BannedError, BinanceAPIError, TransientError
from kline_lake.exchange.client import Session
from kline_lake.exchange.exchange_info import apply_rate_limits
from kline_lake.exchange.rate_limiter import (
    RateLimiter,
    RateWindow,
    interval_seconds,
    parse_rate_limits,
    usable_limit,
    used_weight_from_headers,
)
from kline_lake.exchange.retry import RetryPolicy, VirtualClock

BASE = "http://fake.test"


# ----------------------------------------------------------------- parsing
def test_interval_and_header_parsing() -> None:
    assert interval_seconds("SECOND", 10) == 10
    assert interval_seconds("MINUTE", 1) == 60
    assert interval_seconds("HOUR", 2) == 7200
    assert interval_seconds("DAY", 1) == 86400
    with pytest.raises(ValueError):
        interval_seconds("WEEK", 1)
    headers = {"X-MBX-USED-WEIGHT-1M": "42", "x-mbx-used-weight-10s": "7", "Content-Type": "x"}
    assert used_weight_from_headers(headers) == {60.0: 42, 10.0: 7}


def test_parse_real_rate_limits(real_data) -> None:
    with open(real_data / "exchange_info/spot_exchangeInfo_2021-12-17_body.json") as fh:
        info = json.load(fh)
    windows = parse_rate_limits(info["rateLimits"])
    assert RateWindow("REQUEST_WEIGHT", 1200, 60.0) in windows
    assert RateWindow("RAW_REQUESTS", 6100, 300.0, counts="requests") in windows
    assert all(w.name != "ORDERS" for w in windows)


# --------------------------------------------------------------- limiter
async def _simulate(weights: list[int], concurrency: int, limit: int, window_s: float,
                    latencies: list[float]) -> tuple[list[tuple[float, int]], RateLimiter]:
    clock = VirtualClock(start_s=1_000_000.3)
    limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", limit, window_s)], clock=clock)
    sent: list[tuple[float, int]] = []
    queue = list(enumerate(weights))

    async def worker() -> None:
        while queue:
            i, weight = queue.pop(0)
            ticket = await limiter.acquire(weight)
            sent.append((clock.time(), weight))
            await clock.sleep(latencies[i % len(latencies)])
            limiter.release(ticket)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent, limiter


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weights=st.lists(st.integers(1, 20), min_size=1, max_size=120),
    concurrency=st.integers(1, 16),
    limit=st.integers(40, 400),
    window_s=st.sampled_from([1.0, 2.0, 5.0, 60.0]),
    latencies=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=5),
)
def test_weight_per_window_never_exceeds_budget_minus_margin(weights, concurrency, limit,
                                                             window_s, latencies) -> None:
    sent, limiter = asyncio.run(_simulate(weights, concurrency, limit, window_s, latencies))
    assert len(sent) == len(weights)
    per_window: dict[int, int] = defaultdict(int)
    for t, w in sent:
        per_window[int(t // window_s)] += w
    usable = limiter.usable()
    assert usable == usable_limit(limit, 0.05, 2) < limit
    assert max(per_window.values()) <= usable


def test_limiter_follows_server_header_for_foreign_weight() -> None:
    async def scenario() -> list[float]:
        clock = VirtualClock(start_s=1000.0)
        limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", 100, 10.0)], clock=clock)
        t = await limiter.acquire(10)
        # another process of this IP already spent 80 in this window
        limiter.observe_headers({"X-MBX-USED-WEIGHT-10S": "90"})
        limiter.release(t)
        times = []
        for _ in range(2):
            await limiter.acquire(10)
            times.append(clock.time())
        return times

    times = asyncio.run(scenario())
    assert times[0] >= 1010.0  # 90 + 10 > 95 usable: waited for the next window
    assert times[1] == times[0]


def test_limiter_paces_a_window_instead_of_bursting_it() -> None:
    async def scenario() -> list[float]:
        clock = VirtualClock(start_s=100.0)  # a window start
        limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", 100, 10.0)], clock=clock)
        times = []
        for _ in range(95):
            limiter.release(await limiter.acquire(1))
            times.append(clock.time() - 100.0)
        return times

    times = asyncio.run(scenario())
    assert sum(t == 0.0 for t in times) == 23  # 25 % of 95 usable at once
    assert times[-1] <= 8.0 + 1e-3  # all of it released by 80 % of the window
    assert times == sorted(times)


def test_limiter_waits_retry_after_and_bans() -> None:
    async def scenario() -> float:
        clock = VirtualClock(start_s=1000.0)
        limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", 100, 60.0)], clock=clock,
                              max_ban_wait_s=30)
        limiter.on_429(7)
        assert limiter.blocked_for_s() > 6.9
        await limiter.acquire(1)
        sent_at = clock.time()
        with pytest.raises(BannedError):
            limiter.on_418(3600)
        return sent_at

    # back-off (7 s), then the window [960, 1020) was marked full: next window
    assert asyncio.run(scenario()) >= 1020.0


def test_a_429_does_not_also_wait_out_the_raw_requests_window() -> None:
    # issue 12 item 11: exchangeInfo also lists RAW_REQUESTS per 5 minutes; a 429 (or a
    # short ban) is over when its Retry-After and the weight window are, not when the
    # 5-minute request window ends (up to 300 s of silent waiting).
    async def scenario() -> float:
        clock = VirtualClock(start_s=1010.0)  # weight window [960, 1020); raw [900, 1200)
        limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", 100, 60.0),
                               RateWindow("RAW_REQUESTS", 6100, 300.0, counts="requests")],
                              clock=clock, max_ban_wait_s=150)
        limiter.on_418(20)
        await limiter.acquire(1)
        return clock.time()

    sent_at = asyncio.run(scenario())
    assert 1030.0 <= sent_at < 1031.0, sent_at


def test_funding_pool_counts_requests_only_for_tagged_calls() -> None:
    async def scenario() -> tuple[float, float]:
        clock = VirtualClock(start_s=0.0)
        limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", 1000, 60.0),
                               RateWindow("FUNDING", 10, 300.0, counts="requests", pool="funding")],
                              clock=clock)
        for _ in range(8):  # usable = 10 - 2, paced over the window
            limiter.release(await limiter.acquire(0, pools=("funding",)))
        before = clock.time()
        limiter.release(await limiter.acquire(5))  # untagged: not held back by the pool
        assert clock.time() == before
        await limiter.acquire(0, pools=("funding",))
        return before, clock.time()

    eighth, ninth = asyncio.run(scenario())
    assert eighth < 300.0 <= ninth


# ---------------------------------------------------------------- client
def _run_client(handler, *, market=SPOT, retry=None, coro=None):
    async def scenario():
        clock = VirtualClock(start_s=2000.0)
        transport = httpx.MockTransport(handler)
        async with Session(transport=transport, clock=clock,
                           retry=retry or RetryPolicy(max_attempts=4)) as session:
            client = session.client(market, BASE)
            return await coro(client, clock)
    return asyncio.run(scenario())


def test_client_retries_5xx_and_bad_bodies_then_succeeds() -> None:
    answers = [httpx.Response(502, text="bad gateway"), httpx.Response(200, content=b"[[1,2"),
               httpx.Response(200, json={"not": "a list"}), httpx.Response(200, json=[[1]])]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    async def call(client, clock):
        return await client.get("klines", {"symbol": "BTCUSDT", "limit": 1000}, expect=list), client

    data, client = _run_client(handler, coro=call)
    assert data == [[1]]
    assert len(seen) == 4 and client.stats.retries == 3
    assert client.stats.weight == 8  # spot klines: weight 2 per attempt
    assert seen[0].url.path == "/api/v3/klines" and seen[0].url.params["limit"] == "1000"


def test_client_maps_binance_4xx_without_retry() -> None:
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(400, json={"code": -1121, "msg": "Invalid symbol."})

    async def call(client, clock):
        await client.get("klines", {"symbol": "NOPE"})

    with pytest.raises(BinanceAPIError) as err:
        _run_client(handler, coro=call)
    assert err.value.code == -1121 and "Invalid symbol." in str(err.value)
    assert len(seen) == 1


def test_client_gives_up_on_persistent_transport_failures() -> None:
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) % 2:
            raise httpx.ReadTimeout("slow", request=request)
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    async def call(client, clock):
        await client.get("time", weight=1)

    with pytest.raises(TransientError, match="gave up after 4 attempts"):
        _run_client(handler, coro=call)
    assert len(calls) == 4


def test_client_429_blocks_everyone_for_retry_after() -> None:
    log: list[tuple[float, str]] = []
    clock_box = {}

    def handler(request):
        now = clock_box["clock"].time()
        log.append((now, request.url.params.get("symbol")))
        if len(log) == 1:
            return httpx.Response(429, headers={"Retry-After": "5"}, json={"code": -1003, "msg": "Too many"})
        return httpx.Response(200, json=[], headers={"X-MBX-USED-WEIGHT-1M": "3"})

    async def call(client, clock):
        clock_box["clock"] = clock
        await asyncio.gather(client.get("klines", {"symbol": "A"}), client.get("klines", {"symbol": "B"}))
        return client

    client = _run_client(handler, coro=call)
    assert client.stats.rate_limited_429 == 1 and client.stats.banned_418 == 0
    first = log[0][0]
    assert all(t >= first + 5 for t, _ in log[1:] if _ == "A")
    assert len(log) == 3


def test_client_418_long_ban_raises() -> None:
    def handler(request):
        return httpx.Response(418, headers={"Retry-After": "86400"}, json={"code": -1003, "msg": "banned"})

    async def call(client, clock):
        await client.get("time", weight=1)

    with pytest.raises(BannedError, match="86400"):
        _run_client(handler, coro=call)


def test_exchange_info_windows_drive_the_limiter() -> None:
    info = {"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND",
                            "intervalNum": 2, "limit": 200}]}

    async def call(client, clock):
        apply_rate_limits(client, info)
        return client.limiter.windows

    windows = _run_client(lambda r: httpx.Response(200, json={}), market=UM, coro=call)
    assert windows[0] == RateWindow("REQUEST_WEIGHT", 200, 2.0)
    assert windows[1].pool == "funding" and windows[1].limit == 500


def test_shared_ledger_splits_one_budget_between_processes(tmp_path) -> None:
    from kline_lake.exchange.weight_ledger import ledger_for

    a = ledger_for("http://127.0.0.1:9", "/fapi/v1", tmp_path)
    b = ledger_for("http://127.0.0.1:9", "/fapi/v1", tmp_path)  # another process, same file
    entry = ("REQUEST_WEIGHT:None:60", 7, 20, 57)
    assert a.reserve([entry]) is None and b.reserve([entry]) is None
    assert a.reserve([entry]) == 0  # 60 > 57: refused, nothing added
    assert b.reserve([("REQUEST_WEIGHT:None:60", 7, 17, 57)]) is None
    assert a.reserve([("REQUEST_WEIGHT:None:60", 8, 20, 57)]) is None  # next window: fresh
    other = ledger_for("http://127.0.0.1:10", "/fapi/v1", tmp_path)
    assert other.path != a.path


def test_two_limiters_sharing_a_ledger_never_exceed_together(tmp_path) -> None:
    from kline_lake.exchange.weight_ledger import ledger_for

    async def scenario() -> list[tuple[float, int]]:
        clock = VirtualClock(start_s=5000.0)
        sent: list[tuple[float, int]] = []
        limiters = [RateLimiter([RateWindow("REQUEST_WEIGHT", 100, 10.0)], clock=clock,
                                ledger=ledger_for("http://h:1", "/api/v3", tmp_path))
                    for _ in range(2)]

        async def run(limiter: RateLimiter) -> None:
            for _ in range(60):
                ticket = await limiter.acquire(3)
                sent.append((clock.time(), 3))
                await clock.sleep(0.3)  # answers arrive late: headers cannot help here
                limiter.release(ticket)

        await asyncio.gather(*(run(lim) for lim in limiters))
        return sent

    sent = asyncio.run(scenario())
    per_window: dict[int, int] = defaultdict(int)
    for t, w in sent:
        per_window[int(t // 10.0)] += w
    assert len(sent) == 120 and max(per_window.values()) <= usable_limit(100, 0.05, 2)


def test_request_dearer_than_margin_goes_alone_and_impossible_one_is_refused() -> None:
    from kline_lake.errors import KlineLakeError

    async def scenario() -> list[float]:
        clock = VirtualClock(start_s=300.0)
        limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", 21, 10.0)], clock=clock)  # usable 19
        times = []
        for _ in range(3):
            limiter.release(await limiter.acquire(20))
            times.append(clock.time())
        with pytest.raises(KlineLakeError, match="can never fit"):
            await limiter.acquire(22)
        return times

    times = asyncio.run(scenario())
    assert [int(t // 10) for t in times] == [30, 31, 32]  # one per window
