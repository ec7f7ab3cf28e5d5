"""The follower behind `kline-lake follow`: catch up, subscribe, commit, backfill holes.

What is the same for every dataset lives here; what a dataset's rows, holes and
coverage mean lives in its track (`kline_track` for closed klines, `trade_track` for
aggregate trades, `recorder_track` for datasets the exchange keeps no history of, such
as `mark_price`: recorded, never caught up or backfilled, a reconnect an unrecorded gap).

1. One follower per series: a lock file per series next to the writer's lock
   (`<series lock>.follow`), held for the follower's life; a second follower is refused.
2. Catch up (the track): the normal download path (`run_download`, source `auto`) from
   where each series' coverage ends to now; a recorder dataset has nothing to catch up.
3. Streams: combined streams split across connections within the per-connection limit
   (`streams.split_streams`), one thread per connection; each message is parsed on its
   connection's thread and tagged with the connection's serial number.
4. Every `flush_s`: what the track buffered is committed (`LakeWriter.commit`) in one
   atomic batch per series, coverage extended only over what the track can prove
   complete. Duplicates and out-of-order messages change nothing.
5. Holes (a missing kline or agg id for `hole_grace_s`) and reconnects (after a drop, the
   24 h cut, or silence past `silence_s`) are backfilled over REST by the track, through
   the follower's one REST session (`rest_side.RestSide`: one client, one weight limiter).
   Reconnects wait with exponential backoff and jitter (`kline_lake.exchange.retry`).
6. Stop (`stop` event: SIGINT/SIGTERM in the CLI, or `duration_s`): flush and return.
   After a SIGKILL at most the unflushed batch is lost; the next start's catch-up
   downloads it (coverage never claims it).
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kline_lake.core.markets import Market
from kline_lake.core.schemas import TIME_COLUMNS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us, us_to_ms_ceil
from kline_lake.download.progress import RunTotals
from kline_lake.download.request import DownloadRequest
from kline_lake.errors import InputError, LakeError, StreamError
from kline_lake.exchange import exchange_info as xinfo
from kline_lake.exchange.request_stats import RequestStats
from kline_lake.exchange.retry import RetryPolicy, backoff_delay_s
from kline_lake.lake import layout
from kline_lake.lake.lock import FileLock
from kline_lake.lake.scan import scan_series
from kline_lake.lake.writer import LakeWriter
from kline_lake.live import streams
from kline_lake.live.kline_track import KlineTrack
from kline_lake.live.recorder_track import RECORDERS, RecorderTrack
from kline_lake.live.rest_side import RestSide
from kline_lake.live.state import SeriesState
from kline_lake.live.streams import Connector
from kline_lake.live.trade_track import AggTradeTrack

FOLLOW_DATASETS = ("klines", "agg_trades", "mark_price", "book_ticker", "spot_book_ticker")
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
    start_ms: int | None = None  # None: where each series' coverage ends (see the tracks)
    check_symbols: bool = True  # refuse symbols the market does not list (exchangeInfo)


@dataclass
class FollowTotals:
    messages: int = 0
    closed_klines: int = 0  # dataset items received: closed klines, trades, updates
    committed_rows: int = 0
    commits: int = 0
    reconnects: int = 0
    backfills: int = 0
    downloads: list[RunTotals] = field(default_factory=list)  # catch-up and backfill downloads
    lags_s: list[float] = field(default_factory=list)  # receive -> commit, real seconds
    send_delays_ms: list[int] = field(default_factory=list)  # kline close -> event time, exchange ms
    rest: RequestStats = field(default_factory=RequestStats)  # every REST request of the follower

    @property
    def rate_limited_429(self) -> int:
        """429s met by the follower's REST requests (its one client's RequestStats)."""
        return self.rest.rate_limited_429

    @property
    def banned_418(self) -> int:
        return self.rest.banned_418


def _ensure_fd_room(needed: int) -> None:
    """Raise the soft open-files limit towards the hard one when `needed` exceeds it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def make_track(follower: Follower) -> Any:
    """The track of the follower's dataset."""
    if follower.req.dataset == "agg_trades":
        return AggTradeTrack(follower)
    if follower.req.dataset in RECORDERS:
        return RecorderTrack(follower)
    return KlineTrack(follower)


class Follower:
    """Follows `request`'s series until `stop` is set or the duration ends."""

    def __init__(self, request: FollowRequest, *, connector: Connector = streams.connect,
                 log: Callable[[str], None] = lambda _line: None, seed: int | None = None) -> None:
        if request.dataset not in FOLLOW_DATASETS:
            raise InputError(f"follow supports --data {', '.join(FOLLOW_DATASETS)}, not {request.dataset!r}")
        streams.validate_stream_dataset(request.market, request.dataset)
        self.req = request
        self.connector = connector
        self.log = log
        self.totals = FollowTotals()
        self.writer = LakeWriter(request.lake)
        self.series: dict[str, SeriesState] = {}
        self.rest = RestSide(request.market, request.base_url)
        self.totals.rest = self.rest.stats
        self.track = make_track(self)
        self._events: queue.Queue = queue.Queue()
        self._stop_conns = threading.Event()
        self._threads: list[threading.Thread] = []
        self._open: set = set()  # live connections, closed from here on stop to end their recv
        self._open_lock = threading.Lock()
        self._conn_serials = itertools.count()
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
        try:
            now_ms = self.rest.run(self._exchange_check())  # validates; writes nothing
            self._server_now_ms = now_ms
            locks = self._acquire_locks()
            try:
                self.track.catch_up(now_ms)
                self._follow(stop)
            finally:
                self._stop_connections()
                try:
                    self.flush()
                    self.track.backfill_at_stop()
                finally:
                    if self._executor is not None:
                        self._executor.shutdown()
                    for lock in locks:
                        lock.release()
        finally:
            self.rest.close()
        return self.totals

    def _follow(self, stop: threading.Event) -> None:
        self._start_connections()
        deadline = None if self.req.duration_s is None else time.monotonic() + self.req.duration_s
        next_flush = time.monotonic() + self.req.flush_s
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            self._drain(timeout_s=min(0.05, self.req.flush_s))
            if time.monotonic() >= next_flush:
                self.flush()
                self.track.backfill_due()
                next_flush = time.monotonic() + self.req.flush_s

    def _stop_connections(self) -> None:
        self._stop_conns.set()
        with self._open_lock:
            live = list(self._open)
        for conn in live:
            conn.close()
        for t in self._threads:
            t.join(timeout=5)
        self._drain(timeout_s=0)

    def _acquire_locks(self) -> list[FileLock]:
        _ensure_fd_room(len(self.symbols) + 256)  # one open lock file per series
        held: list[FileLock] = []
        for symbol in self.symbols:
            key = self.track.key(symbol)
            path = layout.lock_path(self.writer.root, key)
            lock = FileLock(path.with_name(path.name + ".follow"), timeout_s=0)
            try:
                lock.acquire()
            except LakeError:
                for h in held:
                    h.release()
                raise LakeError(f"another follower is already following {key.slug} "
                                f"in {self.writer.root} (lock {lock.path})") from None
            held.append(lock)
        return held

    # ---- REST and lake helpers shared by the tracks -----------------------------------

    async def _exchange_check(self) -> int:
        """Through the follower's client (its weight limiter): the symbols exist on the
        market (exchangeInfo, unless `check_symbols` is off), and the exchange's clock."""
        client = self.rest.client
        if self.req.check_symbols:
            info = await xinfo.fetch_exchange_info(client)
            # ["ALL"]: every TRADING symbol of the market
            self.symbols = tuple(s.symbol for s in xinfo.resolve_symbols(info, list(self.req.symbols)))
        return await xinfo.server_time_ms(client)

    def coverage_end_ms(self, key: SeriesKey, from_ms: int | None) -> int | None:
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

    def first_row_ms(self, key: SeriesKey) -> int | None:
        """Time of the series' first stored row (rows a killed follower committed past a
        hole, with no coverage record yet), or None."""
        col = TIME_COLUMNS[key.dataset]
        frame = scan_series(self.writer.root, key).select(pl.col(col).min().cast(pl.Int64)).collect()
        value = frame.item() if frame.height else None
        return None if value is None else us_to_ms_ceil(int(value))

    def download(self, symbols: tuple[str, ...], start_ms: int, why: str) -> RunTotals:
        """The normal download path (source auto) of `symbols` from `start_ms` to the
        server's now, through the follower's session."""
        request = DownloadRequest(
            market=self.req.market, dataset=self.req.dataset, symbols=symbols,
            intervals=(self.req.interval,) if self.req.dataset == "klines" else (),
            start_ms=start_ms, end_ms=None, lake=self.req.lake, base_url=self.req.base_url,
            source="auto")
        before = (self.rest.stats.requests, self.rest.stats.weight)
        totals = self.rest.download(request)
        self.totals.downloads.append(totals)
        self.log(f"{why}: {', '.join(symbols)} downloaded from {start_ms} "
                 f"({self.rest.stats.requests - before[0]} requests, weight {self.rest.stats.weight - before[1]})")
        return totals

    # ---- streams -----------------------------------------------------------------------

    def _start_connections(self) -> None:
        names = {self.track.stream_name(s): s for s in self.symbols}
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
            reason = self._read(conn, next(self._conn_serials))
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

    def _read(self, conn: streams.Connection, serial: int) -> str:
        """Read until the connection ends; returns why it ended."""
        recv_parse = streams.RECV_PARSERS.get(self.req.dataset)
        parse = streams.PARSERS.get(self.req.dataset)
        while not self._stop_conns.is_set():
            try:
                text = conn.recv(timeout=self.req.silence_s)
            except TimeoutError:
                return f"silent for {self.req.silence_s:g} s"
            except StreamError as exc:
                return str(exc)
            try:
                _stream, event = streams.parse_message(text)
                item = recv_parse(event, time.time_ns() // 1000) if recv_parse else parse(event)
            except ValueError as exc:
                return str(exc)
            self._events.put(("msg", streams.event_time_ms(event), item, time.monotonic(), serial))
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
            _, event_ms, parsed, recv_t, serial = item
            self.totals.messages += 1
            if event_ms is not None:
                self._server_now_ms = max(self._server_now_ms, event_ms)
            if parsed is not None and parsed.symbol in self.series:
                self.totals.closed_klines += 1
                self.track.on_item(self.series[parsed.symbol], parsed, recv_t, serial)
        elif kind == "connected":
            _, symbols, is_reconnect = item
            if is_reconnect:
                self.totals.reconnects += 1
                for sym in symbols:
                    self.series[sym].reconnects += 1
            self.track.on_connected(symbols, is_reconnect)
        elif kind == "log":
            self.log(item[1])

    # ---- commit ------------------------------------------------------------------------

    def flush(self) -> None:
        """Commit every series with new rows; series are independent files and locks, so
        their commits run side by side (their fsync waits overlap)."""
        work = [s for s in self.series.values() if s.buffer or s.uncovered or s.seen]
        if len(work) <= 1:
            results = [self.track.flush_one(s) for s in work]
        else:
            results = list(self._pool().map(self.track.flush_one, work))
        for rows, lags in results:
            if rows is not None:
                self.totals.commits += 1
                self.totals.committed_rows += rows
                self.totals.lags_s.extend(lags)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=COMMIT_WORKERS, thread_name_prefix="follow-commit")
        return self._executor

    def note_hole(self, state: SeriesState, what: str) -> None:
        """After a flush: a hole that stays open for `hole_grace_s` is backfilled."""
        if state.uncovered:
            now = time.monotonic()
            state.hole_since = state.hole_since or now
            if now - state.hole_since >= self.req.hole_grace_s and not state.needs_backfill:
                state.needs_backfill = True
                self.log(f"{state.symbol}: hole at {what}: backfilling over REST")
        else:
            state.hole_since = None
