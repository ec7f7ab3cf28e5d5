"""The follower behind `kline-lake follow`: catch up, subscribe, commit, backfill holes.

1. One follower per series: a lock file per series next to the writer's lock
   (`<series lock>.follow`), held for the follower's life; a second follower is refused.
2. Catch up: the normal download path (`run_download`, source `auto`) from where each
   series' coverage ends (with no coverage: from its first stored row, or, in an empty
   series, the server's now), to now.
3. Streams: combined streams split across connections within the per-connection limit
   (`streams.split_streams`), one thread per connection.
4. Every `flush_s`: closed klines received so far are committed (`LakeWriter.commit`)
   in one atomic batch per series, and coverage is extended only over what is contiguous
   with what the lake already covers. Duplicates and out-of-order messages change
   nothing (rows are keyed by open time; coverage grows only over a contiguous run).
5. A hole (a kline missing before later ones for `hole_grace_s`), a reconnect (after a
   drop, the 24 h cut, or silence past `silence_s`) mark the series for backfill: the
   hole is downloaded over REST by the same download path (its client follows the
   exchange's weight headers) before coverage is extended over stream rows again.
   Reconnects wait with exponential backoff and jitter (`kline_lake.exchange.retry`).
6. Stop (`stop` event: SIGINT/SIGTERM in the CLI, or `duration_s`): flush and return.
   After a SIGKILL at most the unflushed batch is lost; the next start's catch-up
   downloads it (coverage never claims it).
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from kline_lake.core.intervals import INTERVAL_MS, floor_open_ms
from kline_lake.core.markets import Market
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us, us_to_ms_ceil
from kline_lake.download.orchestrate import run_download
from kline_lake.download.progress import RunTotals
from kline_lake.download.request import DownloadRequest
from kline_lake.download.rest_rows import parse_rest_klines
from kline_lake.errors import InputError, KlineLakeError, LakeError, StreamError
from kline_lake.exchange import exchange_info as xinfo
from kline_lake.exchange.client import Session
from kline_lake.exchange.retry import RetryPolicy, backoff_delay_s
from kline_lake.lake import layout
from kline_lake.lake.lock import FileLock
from kline_lake.lake.scan import scan_series
from kline_lake.lake.writer import LakeWriter
from kline_lake.live import streams
from kline_lake.live.streams import ClosedKline, Connector

FOLLOW_DATASETS = ("klines",)
COMMIT_WORKERS = 8
RECONNECT_POLICY = RetryPolicy(max_attempts=1_000_000, base_delay_s=0.2, max_delay_s=30.0, jitter=0.5)


@dataclass(frozen=True)
class FollowRequest:
    """A validated follow request (see `kline_lake.cli.follow_cmd`)."""

    market: Market
    interval: str
    symbols: tuple[str, ...]
    lake: Path
    base_url: str  # the market's REST root
    ws_url: str  # the market's streams root
    duration_s: float | None = None
    flush_s: float = 5.0
    silence_s: float = 30.0
    hole_grace_s: float = 2.0
    max_streams_per_connection: int | None = None
    dataset: str = "klines"
    start_ms: int | None = None  # None: where each series' coverage ends (see _catch_up)
    check_symbols: bool = True  # refuse symbols the market does not list (exchangeInfo)


@dataclass
class SeriesState:
    """What the follower knows of one series."""

    key: SeriesKey
    symbol: str
    covered_ms: int  # coverage is complete up to here (exclusive)
    buffer: dict[int, tuple] = field(default_factory=dict)  # closed, not yet committed
    uncovered: set[int] = field(default_factory=set)  # committed beyond a hole
    hole_since: float | None = None
    needs_backfill: bool = False
    last_closed_ms: int | None = None
    received: int = 0
    reconnects: int = 0


@dataclass
class FollowTotals:
    messages: int = 0
    closed_klines: int = 0
    committed_rows: int = 0
    commits: int = 0
    reconnects: int = 0
    backfills: int = 0
    downloads: list[RunTotals] = field(default_factory=list)  # catch-up and backfills
    lags_s: list[float] = field(default_factory=list)  # receive -> commit, real seconds
    send_delays_ms: list[int] = field(default_factory=list)  # kline close -> event time, exchange ms

    @property
    def rate_limited_429(self) -> int:
        """429s met by the follower's downloads (counted by their clients' RequestStats)."""
        return sum(t.rate_limited_429 for t in self.downloads)

    @property
    def banned_418(self) -> int:
        return sum(t.banned_418 for t in self.downloads)


def _download_request(req: FollowRequest, symbols: tuple[str, ...], start_ms: int) -> DownloadRequest:
    """The download of `symbols` from `start_ms` to the server's now, source auto."""
    return DownloadRequest(market=req.market, dataset="klines", symbols=symbols,
                           intervals=(req.interval,), start_ms=start_ms, end_ms=None,
                           lake=req.lake, base_url=req.base_url, source="auto")


def _ensure_fd_room(needed: int) -> None:
    """Raise the soft open-files limit towards the hard one when `needed` exceeds it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Follower:
    """Follows `request`'s series until `stop` is set or the duration ends."""

    def __init__(self, request: FollowRequest, *, connector: Connector = streams.connect,
                 log: Callable[[str], None] = lambda _line: None, seed: int | None = None) -> None:
        if request.dataset not in FOLLOW_DATASETS:
            raise InputError(f"follow supports --data {', '.join(FOLLOW_DATASETS)}, not {request.dataset!r}")
        self.req = request
        self.connector = connector
        self.log = log
        self.totals = FollowTotals()
        self.interval_ms = INTERVAL_MS[request.interval]
        self.writer = LakeWriter(request.lake)
        self.series: dict[str, SeriesState] = {}
        self._events: queue.Queue = queue.Queue()
        self._stop_conns = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: set = set()  # live connections, closed from here on stop to end their recv
        self._open_lock = threading.Lock()
        self._server_now_ms = 0  # the latest event time seen: the exchange's clock
        self._rng = random.Random(seed)
        self._executor: ThreadPoolExecutor | None = None
        self.symbols: tuple[str, ...] = request.symbols  # resolved by exchangeInfo in run()

    @property
    def server_now_ms(self) -> int:
        """The exchange's clock as last seen (REST at start, then stream event times)."""
        return self._server_now_ms

    # ---- lifecycle -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> FollowTotals:
        """Follow until `stop` is set (or `duration_s` passes); flushes before returning."""
        now_ms = asyncio.run(self._exchange_check())  # validates; writes nothing
        locks = self._acquire_locks()
        try:
            self._catch_up(now_ms)
            self._start_connections()
            deadline = None if self.req.duration_s is None else time.monotonic() + self.req.duration_s
            next_flush = time.monotonic() + self.req.flush_s
            while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self._drain(timeout_s=min(0.05, self.req.flush_s))
                if time.monotonic() >= next_flush:
                    self._flush()
                    self._backfill_due()
                    next_flush = time.monotonic() + self.req.flush_s
        finally:
            self._stop_conns.set()
            with self._open_lock:
                live = list(self._open)
            for conn in live:
                conn.close()
            for t in self._threads:
                t.join(timeout=5)
            self._drain(timeout_s=0)
            try:
                self._flush()
                self._backfill_holes_at_stop()
            finally:
                if self._executor is not None:
                    self._executor.shutdown()
                for lock in locks:
                    lock.release()
        return self.totals

    def _key(self, symbol: str) -> SeriesKey:
        return SeriesKey(self.req.market.name, "klines", symbol, self.req.interval)

    def _acquire_locks(self) -> list[FileLock]:
        _ensure_fd_room(len(self.symbols) + 256)  # one open lock file per series
        held: list[FileLock] = []
        for symbol in self.symbols:
            path = layout.lock_path(self.writer.root, self._key(symbol))
            lock = FileLock(path.with_name(path.name + ".follow"), timeout_s=0)
            try:
                lock.acquire()
            except LakeError:
                for h in held:
                    h.release()
                raise LakeError(f"another follower is already following {self._key(symbol).slug} "
                                f"in {self.writer.root} (lock {lock.path})") from None
            held.append(lock)
        return held

    # ---- REST: catch-up and backfill ---------------------------------------------------

    async def _exchange_check(self) -> int:
        """Through the exchange client (its weight limiter): the symbols exist on the
        market (exchangeInfo, unless `check_symbols` is off), and the exchange's clock."""
        async with Session() as session:
            client = session.client(self.req.market, self.req.base_url)
            if self.req.check_symbols:
                info = await xinfo.fetch_exchange_info(client)
                # ["ALL"]: every TRADING symbol of the market
                self.symbols = tuple(s.symbol for s in xinfo.resolve_symbols(info, list(self.req.symbols)))
            return await xinfo.server_time_ms(client)

    def _coverage_end_ms(self, key: SeriesKey, from_ms: int | None) -> int | None:
        """End of the coverage range that reaches `from_ms` (None: of the last range)."""
        ranges = self.writer.covered(key)
        if not ranges:
            return None
        if from_ms is None:
            return us_to_ms_ceil(ranges[-1][1])
        at_us = ms_to_us(from_ms)
        for a, b in ranges:
            if a <= at_us <= b:
                return us_to_ms_ceil(b)
        return from_ms

    def _first_row_ms(self, key: SeriesKey) -> int | None:
        frame = scan_series(self.writer.root, key).select(pl.col("open_time").min().cast(pl.Int64)).collect()
        value = frame.item() if frame.height else None
        return None if value is None else us_to_ms_ceil(int(value))

    def _catch_up(self, now_ms: int) -> None:
        self._server_now_ms = now_ms
        floor_now = floor_open_ms(now_ms, self.req.interval)
        for symbol in self.symbols:
            end = self._coverage_end_ms(self._key(symbol), None)
            if end is None:  # rows a killed follower committed past a hole: cover them too
                end = self._first_row_ms(self._key(symbol))
            if self.req.start_ms is not None:
                end = self.req.start_ms
            start = floor_now if end is None else min(end, floor_now)
            self.series[symbol] = SeriesState(self._key(symbol), symbol, start)
        starts = [s.covered_ms for s in self.series.values() if s.covered_ms < floor_now]
        if starts:
            self._download([s for s in self.series.values() if s.covered_ms < floor_now], "catch-up")

    def _download(self, states: list[SeriesState], why: str) -> None:
        start_ms = min(s.covered_ms for s in states)
        request = _download_request(self.req, tuple(s.symbol for s in states), start_ms)
        totals = asyncio.run(run_download(request))  # callers make sure a kline closed since start_ms
        self.totals.downloads.append(totals)
        for s in states:
            end = self._coverage_end_ms(s.key, s.covered_ms)
            s.covered_ms = max(s.covered_ms, end or s.covered_ms)
            s.needs_backfill, s.hole_since = False, None
            s.uncovered = {o for o in s.uncovered if o >= s.covered_ms}
        self.log(f"{why}: {', '.join(s.symbol for s in states)} downloaded from {start_ms} "
                 f"({totals.requests} requests, weight {totals.weight})")

    def _backfill_due(self) -> None:
        due = [s for s in self.series.values()
               if s.needs_backfill and s.covered_ms + self.interval_ms <= self._server_now_ms]
        for s in self.series.values():  # nothing has closed since: no hole to fill
            if s.needs_backfill and s not in due:
                s.needs_backfill = False
        if not due:
            return
        self.totals.backfills += 1
        try:
            self._download(due, "backfill")
        except KlineLakeError as exc:  # the REST side failed for now: retry at the next flush
            self.log(f"backfill failed, will retry: {exc}")
        self._flush()

    def _backfill_holes_at_stop(self) -> None:
        """A hole known at a graceful stop is filled now rather than at the next start."""
        for s in self.series.values():
            s.needs_backfill = s.needs_backfill or bool(s.uncovered)
        self._backfill_due()

    # ---- streams -----------------------------------------------------------------------

    def _start_connections(self) -> None:
        names = {streams.stream_name("klines", s, self.req.interval): s for s in self.symbols}
        chunks = streams.split_streams(list(names), self.req.market.name, self.req.max_streams_per_connection)
        for i, chunk in enumerate(chunks):
            symbols = [names[n] for n in chunk]
            t = threading.Thread(target=self._connection_loop, args=(i, chunk, symbols),
                                 name=f"follow-ws-{i}", daemon=True)
            self._threads.append(t)
            t.start()

    def _connection_loop(self, index: int, names: list[str], symbols: list[str]) -> None:
        url = streams.combined_url(self.req.ws_url, names)
        attempt, first = 0, True
        while not self._stop_conns.is_set():
            try:
                conn = self.connector(url, 10.0)
            except StreamError as exc:
                self._events.put(("log", f"connection {index}: {exc}"))
                self._sleep_backoff(attempt)
                attempt += 1
                continue
            with self._open_lock:
                self._open.add(conn)
            if self._stop_conns.is_set():
                conn.close()
                return
            self._events.put(("connected", symbols, not first))
            first, attempt = False, 0
            reason = self._read(conn)
            with self._open_lock:
                self._open.discard(conn)
            conn.close()
            if self._stop_conns.is_set():
                return
            self._events.put(("log", f"connection {index} ({len(names)} streams): {reason}; reconnecting"))
            self._sleep_backoff(attempt)
            attempt += 1

    def _sleep_backoff(self, attempt: int) -> None:
        self._stop_conns.wait(backoff_delay_s(attempt, RECONNECT_POLICY, self._rng.random()))

    def _read(self, conn: streams.Connection) -> str:
        """Read until the connection ends; returns why it ended."""
        while not self._stop_conns.is_set():
            try:
                text = conn.recv(timeout=self.req.silence_s)
            except TimeoutError:
                return f"silent for {self.req.silence_s:g} s"
            except StreamError as exc:
                return str(exc)
            try:
                _stream, event = streams.parse_message(text)
                kline = streams.closed_kline(event)
            except ValueError as exc:
                return str(exc)
            self._events.put(("msg", streams.event_time_ms(event), kline, time.monotonic()))
        return "stopped"

    def _drain(self, timeout_s: float) -> None:
        try:
            item = self._events.get(timeout=timeout_s) if timeout_s > 0 else self._events.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(item)
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return

    def _handle(self, item: tuple) -> None:
        kind = item[0]
        if kind == "msg":
            _, event_ms, kline, recv_t = item
            self.totals.messages += 1
            if event_ms is not None:
                self._server_now_ms = max(self._server_now_ms, event_ms)
            if kline is not None:
                self._on_closed(kline, recv_t)
        elif kind == "connected":
            _, symbols, is_reconnect = item
            for sym in symbols:  # what closed while not connected comes over REST
                self.series[sym].needs_backfill = True
            if is_reconnect:
                self.totals.reconnects += 1
                for sym in symbols:
                    self.series[sym].reconnects += 1
                self.log(f"reconnected ({len(symbols)} series): backfilling over REST")
        elif kind == "log":
            self.log(item[1])

    def _on_closed(self, kline: ClosedKline, recv_t: float) -> None:
        state = self.series.get(kline.symbol)
        if state is None:
            return
        self.totals.closed_klines += 1
        self.totals.send_delays_ms.append(kline.event_ms - int(kline.row[6]) - 1)
        state.received += 1
        if kline.open_ms + self.interval_ms <= state.covered_ms or kline.open_ms in state.uncovered:
            return  # a duplicate of what the lake holds
        state.buffer[kline.open_ms] = (kline.row, recv_t)
        state.last_closed_ms = max(state.last_closed_ms or 0, kline.open_ms)

    # ---- commit ------------------------------------------------------------------------

    def _flush(self) -> None:
        """Commit every series with new rows; series are independent files and locks, so
        their commits run side by side (their fsync waits overlap)."""
        work = [s for s in self.series.values() if s.buffer or s.uncovered]
        if len(work) <= 1:
            results = [self._flush_one(s) for s in work]
        else:
            results = list(self._pool().map(self._flush_one, work))
        for rows, lags in results:
            if rows is not None:
                self.totals.commits += 1
                self.totals.committed_rows += rows
                self.totals.lags_s.extend(lags)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=COMMIT_WORKERS, thread_name_prefix="follow-commit")
        return self._executor

    def _flush_one(self, state: SeriesState) -> tuple[int | None, list[float]]:
        """Commit one series' batch; (rows committed or None if no commit, lags)."""
        start = state.covered_ms
        cur = start
        opens = sorted(set(state.buffer) | state.uncovered)
        for o in opens:
            if o <= cur:
                cur = max(cur, o + self.interval_ms)
        covered = [(ms_to_us(start), ms_to_us(cur))] if cur > start else []
        rows = [state.buffer[o][0] for o in sorted(state.buffer)]
        result: tuple[int | None, list[float]] = (None, [])
        if rows or covered:
            self.writer.commit(state.key, parse_rest_klines(rows, "klines"), covered)
            done = time.monotonic()
            result = (len(rows), [done - recv_t for _, recv_t in state.buffer.values()])
        state.uncovered = {o for o in (state.uncovered | set(state.buffer)) if o >= cur}
        state.buffer.clear()
        state.covered_ms = cur
        if state.uncovered:
            now = time.monotonic()
            state.hole_since = state.hole_since or now
            if now - state.hole_since >= self.req.hole_grace_s and not state.needs_backfill:
                state.needs_backfill = True
                self.log(f"{state.symbol}: hole at {state.covered_ms}: backfilling over REST")
        else:
            state.hole_since = None
        return result
