"""The exchange layer's I/O rules: the weight ledger's `flock` never stalls the event loop
(a real lock held by another process), and `RequestStats` is the one tally of requests,
weight, 429s and 418s, for the REST client and the archive fetcher alike."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kline_lake
from kline_lake.archive.fetch import FetchPolicy, fetch_archive_file
from kline_lake.core.markets import SPOT
from kline_lake.exchange.client import Session
from kline_lake.exchange.rate_limiter import RateLimiter, RateWindow, usable_limit
from kline_lake.exchange.request_stats import RequestStats
from kline_lake.exchange.retry import RetryPolicy, VirtualClock
from kline_lake.exchange.weight_ledger import ledger_for

# Another process takes the ledger file's lock and keeps it until its stdin is closed
# (or a timeout, so a loop blocked in `flock` cannot deadlock the test: it fails).
HOLDER = r"""
import fcntl, os, select, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
select.select([sys.stdin], [], [], float(sys.argv[2]))
"""
# 10 s into a 60 s window that ends 10 s later: no reservation spills into the next one
START_S = 1_000_010.0
WINDOW_INDEX = int(START_S // 60)
LEDGER_KEY = "REQUEST_WEIGHT:None:60"


@contextmanager
def lock_held_by_another_process(path: Path, timeout_s: float = 5.0) -> Iterator[subprocess.Popen]:
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(timeout_s)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        if proc.stdin is not None and not proc.stdin.closed:
            proc.stdin.close()
        proc.wait(timeout=10)


def _limiter(tmp_path: Path, clock: VirtualClock) -> RateLimiter:
    return RateLimiter([RateWindow("REQUEST_WEIGHT", 1000, 60.0)], clock=clock,
                       ledger=ledger_for("http://h:1", "/api/v3", tmp_path))


def _ledger_state(limiter: RateLimiter) -> dict:
    assert limiter.ledger is not None
    return json.loads(limiter.ledger.path.read_text())


# ------------------------------------------------------------ ledger off the loop
def test_a_reservation_waiting_on_another_process_lock_does_not_block_the_loop(tmp_path) -> None:
    limiter = _limiter(tmp_path, VirtualClock(start_s=START_S))

    async def scenario(holder: subprocess.Popen) -> tuple[int, bool]:
        acquiring = asyncio.create_task(limiter.acquire(7))
        ticks = 0
        while ticks < 20 and not acquiring.done():
            await asyncio.sleep(0.01)  # the loop keeps running other tasks meanwhile
            ticks += 1
        still_waiting = not acquiring.done()
        holder.stdin.close()  # the other process lets go of the file
        await asyncio.wait_for(acquiring, 10)
        return ticks, still_waiting

    with lock_held_by_another_process(limiter.ledger.path) as holder:
        ticks, still_waiting = asyncio.run(scenario(holder))
    assert ticks == 20 and still_waiting
    # the reservation went through the real file once the lock was free
    assert _ledger_state(limiter) == {LEDGER_KEY: {str(WINDOW_INDEX): 7}}


def test_a_429_that_arrives_during_the_ledger_wait_holds_the_request_back(tmp_path) -> None:
    clock = VirtualClock(start_s=START_S)
    limiter = _limiter(tmp_path, clock)

    async def scenario(holder: subprocess.Popen) -> float:
        acquiring = asyncio.create_task(limiter.acquire(7))
        await asyncio.sleep(0.05)
        assert not acquiring.done()  # waiting for the file
        limiter.on_429(30.0)  # another task's answer: nothing may go for 30 s
        holder.stdin.close()
        await asyncio.wait_for(acquiring, 10)
        return clock.time()

    with lock_held_by_another_process(limiter.ledger.path) as holder:
        sent_s = asyncio.run(scenario(holder))
    assert sent_s >= START_S + 30.0
    # the first charge (made before the 429 was known) stays: other processes only see
    # more weight used, never less
    assert _ledger_state(limiter) == {LEDGER_KEY: {str(WINDOW_INDEX): 7, str(WINDOW_INDEX + 1): 7}}


def test_cancelling_a_waiting_reservation_frees_the_limiter(tmp_path) -> None:
    limiter = _limiter(tmp_path, VirtualClock(start_s=START_S))

    async def scenario(holder: subprocess.Popen) -> None:
        first = asyncio.create_task(limiter.acquire(7))
        await asyncio.sleep(0.05)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        holder.stdin.close()
        limiter.release(await asyncio.wait_for(limiter.acquire(5), 10))

    with lock_held_by_another_process(limiter.ledger.path) as holder:
        asyncio.run(scenario(holder))
    # the cancelled one's charge was still written (conservative), then the second's
    assert _ledger_state(limiter) == {LEDGER_KEY: {str(WINDOW_INDEX): 12}}
    limiter.ledger.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weights=st.lists(st.integers(1, 20), min_size=1, max_size=60),
    tasks_per_limiter=st.integers(1, 6),
    limit=st.integers(40, 200),
    latencies=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=4),
)
def test_limiters_sharing_a_real_ledger_never_exceed_one_budget(weights, tasks_per_limiter,
                                                                limit, latencies) -> None:
    """Two processes' limiters (one real ledger file, reached from worker threads while
    virtual time moves on): the weight sent in any window stays within one budget."""
    window_s = 5.0

    async def scenario(directory: Path) -> list[tuple[float, int]]:
        clock = VirtualClock(start_s=7000.3)
        limiters = [RateLimiter([RateWindow("REQUEST_WEIGHT", limit, window_s)], clock=clock,
                                ledger=ledger_for("http://h:1", "/api/v3", directory))
                    for _ in range(2)]
        queue = list(enumerate(weights + weights))
        sent: list[tuple[float, int]] = []

        async def worker(limiter: RateLimiter) -> None:
            while queue:
                i, weight = queue.pop(0)
                ticket = await limiter.acquire(weight)
                sent.append((clock.time(), weight))
                await clock.sleep(latencies[i % len(latencies)])
                limiter.release(ticket)

        await asyncio.gather(*(worker(lim) for lim in limiters for _ in range(tasks_per_limiter)))
        for limiter in limiters:
            limiter.ledger.close()
        return sent

    with tempfile.TemporaryDirectory() as tmp:
        sent = asyncio.run(scenario(Path(tmp)))
    per_window: dict[int, int] = defaultdict(int)
    for t, w in sent:
        per_window[int(t // window_s)] += w
    assert len(sent) == 2 * len(weights)
    assert max(per_window.values()) <= usable_limit(limit, 0.05, 2)


# ---------------------------------------------------------------- RequestStats
def test_request_stats_counts_by_hand() -> None:
    stats = RequestStats()
    for weight in (2, 2, 5):
        stats.record_sent(weight)
    stats.record_sent()  # an archive GET: no weight
    for status in (200, 429, 418, 429, 500, 404):
        stats.record_answer(status)
    stats.record_retry()
    stats.record_received(1000)
    stats.record_received(24)
    assert stats == RequestStats(requests=4, weight=9, retries=1, rate_limited_429=2,
                                 banned_418=1, bytes_received=1024)
    with pytest.raises(ValueError):
        stats.record_sent(-1)


def test_rest_client_counts_a_short_ban_once_as_418() -> None:
    answers = [httpx.Response(418, headers={"Retry-After": "2"}, json={"code": -1003, "msg": "banned"}),
               httpx.Response(200, json={"serverTime": 1})]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[len(seen) - 1]

    async def scenario() -> tuple[RequestStats, float]:
        clock = VirtualClock(start_s=2000.0)
        async with Session(transport=httpx.MockTransport(handler), clock=clock,
                           retry=RetryPolicy(max_attempts=2), share_budget=False) as session:
            client = session.client(SPOT, "http://fake.test")
            await client.get("time", weight=1, expect=dict)
            return client.stats, clock.time()

    stats, done_s = asyncio.run(scenario())
    body_bytes = sum(len(r.content) for r in answers)
    assert stats == RequestStats(requests=2, weight=2, retries=0, rate_limited_429=0,
                                 banned_418=1, bytes_received=body_bytes)
    assert done_s >= 2002.0  # the ban was waited out before the second try


def _zip_of(name: str, csv: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, csv)
    return buf.getvalue()


def test_archive_fetch_reports_into_request_stats() -> None:
    csv = b"1577836800000,7195.24,7196.25,7183.14,7186.68,51.642812,1577836859999,0,0,0,0,0\n"
    zip_bytes = _zip_of("BTCUSDT-1m-2020-01-01.csv", csv)
    checksum = f"{hashlib.sha256(zip_bytes).hexdigest()}  BTCUSDT-1m-2020-01-01.zip\n".encode()
    url = "http://archive.test/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip"
    # the CHECKSUM is rate limited once, the zip fails once with a 503
    answers = {url + ".CHECKSUM": [httpx.Response(429), httpx.Response(200, content=checksum)],
               url: [httpx.Response(503), httpx.Response(200, content=zip_bytes)]}

    def handler(request: httpx.Request) -> httpx.Response:
        return answers[str(request.url)].pop(0)

    async def scenario() -> tuple[RequestStats, list[float]]:
        stats, sleeps = RequestStats(), []

        async def sleep(s: float) -> None:
            sleeps.append(s)

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            got = await fetch_archive_file(client, url, FetchPolicy(), sleep=sleep, stats=stats)
        assert got.csv_bytes == csv
        return stats, sleeps

    stats, sleeps = asyncio.run(scenario())
    assert stats == RequestStats(requests=4, weight=0, retries=2, rate_limited_429=1,
                                 banned_418=0, bytes_received=len(checksum) + len(zip_bytes))
    # the exchange retry module's full-jitter schedule: first retry within [0, base]
    assert len(sleeps) == 2 and all(0.0 <= s <= FetchPolicy().backoff_base_s for s in sleeps)


def test_only_request_stats_increments_request_counters() -> None:
    """One owner: no other module of the package adds to these counters (the fake
    exchange, the tests' oracle, keeps its own)."""
    package = Path(kline_lake.__file__).parent
    owner = package / "exchange" / "request_stats.py"
    pattern = re.compile(r"(\.(requests|rate_limited_429|banned_418|bytes_received)|stats\.weight)\s*[+-]=")
    offenders = [f"{path.relative_to(package)}:{n}"
                 for path in sorted(package.rglob("*.py"))
                 if path != owner and "fake_exchange" not in path.parts
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
    assert pattern.search(owner.read_text())  # the pattern does find the owner's counting
