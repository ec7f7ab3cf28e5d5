"""The archive source: planned data.binance.vision files -> verified -> parsed -> the lake.

For one series and a list of archive pieces (:mod:`kline_lake.archive.plan`), files are
downloaded concurrently (:func:`kline_lake.archive.fetch.fetch_archive_file`: sha256
verified before anything is parsed), parsed straight into Arrow columns
(:func:`kline_lake.archive.csv.parse_archive_csv`: one Numba pass over the CSV bytes; a
day of trades, gigabytes of CSV, is inflated and parsed 8 MiB at a time instead,
:func:`kline_lake.archive.trades_stream.parse_trades_stream`, to the same table),
clipped to the piece, and committed through the :class:`~kline_lake.lake.writer.LakeWriter`
one calendar month at a time (one commit per month partition, so a month of daily files is
one rewrite, not thirty; agg_trades commit file by file, matching the lake's per-day trade
files).

Coverage: an archive file is the exchange's complete answer for its day or month, so a
piece's whole range is recorded as covered even when the file is short or empty; stretches
without rows inside it are confirmed gaps (maintenance, before listing). A file the archive
does not have (404) is handed back as a REST piece; a missing monthly file is first
retried as the daily files of its days (monthly files are published days late). A file that fails its CHECKSUM after
retries contributes nothing; the other files are still committed and the first error is
raised at the end, naming the file. Every committed file is recorded in the archive
manifest (:mod:`kline_lake.archive.manifest`) with its sha256.

Funding from the archive has no mark price (the CSV carries
``calc_time,funding_interval_hours,last_funding_rate``): ``mark_price`` is null for those
rows, while REST funding carries ``markPrice``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from kline_lake.archive import manifest as archive_manifest
from kline_lake.archive.csv import parse_archive_csv
from kline_lake.archive.fetch import FetchedArchive, FetchPolicy, fetch_archive_file
from kline_lake.archive.manifest import ManifestEntry
from kline_lake.archive.plan import (
    DAILY,
    MONTHLY,
    REST,
    PlanPiece,
    archive_path,
    archive_url,
    fallback_pieces,
)
from kline_lake.archive.trades_stream import parse_trades_stream
from kline_lake.core.aio import gather_or_cancel
from kline_lake.core.markets import Market
from kline_lake.core.schemas import TIME_COLUMNS, TS
from kline_lake.core.series import SeriesKey
from kline_lake.errors import KlineLakeError, NotInArchive
from kline_lake.exchange.request_stats import RequestStats
from kline_lake.lake.layout import DAILY_FILE_DATASETS
from kline_lake.lake.writer import LakeWriter

DEFAULT_CONCURRENCY = 8
# Commit groups (a month of klines, a day of trades) held in memory at once.
DEFAULT_GROUPS_IN_FLIGHT = 2
# Parsed groups are committed together once they hold this many rows (and at the end):
# one lock, one coverage record, one manifest write and one round of fsyncs for several
# months (a year of 1m klines is 525,600 rows, ~46 MB of columns). A larger group (a
# month of 1s klines, a big day of trades) is committed on its own, as before.
DEFAULT_BATCH_ROWS = 600_000
# Datasets whose CSV is inflated as it is parsed, never held whole: a day of BTCUSDT
# trades is GBs of text (5 M trades from a zip: 439 MB peak RSS streamed vs 804 MB whole,
# benchmarks/trades.py). Other archive files are small enough to inflate whole.
STREAMED_DATASETS = frozenset({"trades"})


@dataclass
class ArchiveStats:
    """What the archive source did: the "archive" line of the summary."""

    files: int = 0
    bytes: int = 0
    rows: int = 0
    not_in_archive: int = 0
    checksum_retries: int = 0

    def add(self, other: ArchiveStats) -> None:
        self.files += other.files
        self.bytes += other.bytes
        self.rows += other.rows
        self.not_in_archive += other.not_in_archive
        self.checksum_retries += other.checksum_retries

    def describe(self) -> str:
        text = f"archive: {self.files} files, {self.bytes / 1e6:.1f} MB, {self.rows:,} rows"
        if self.not_in_archive:
            text += f", {self.not_in_archive} not in archive (-> REST)"
        if self.checksum_retries:
            text += f", {self.checksum_retries} checksum retries"
        return text


@dataclass
class ArchiveOutcome:
    """Result of ingesting archive pieces for one series."""

    stats: ArchiveStats = field(default_factory=ArchiveStats)
    rest_pieces: list[PlanPiece] = field(default_factory=list)  # 404s: fetch from REST
    errors: list[KlineLakeError] = field(default_factory=list)
    requests: RequestStats = field(default_factory=RequestStats)  # every archive GET


class ArchiveProgress:
    """Progress callbacks (files done, bytes received); no-ops by default.

    :class:`kline_lake.archive.hybrid.HybridProgress` draws them as tqdm bars.
    """

    def add_files_total(self, n: int) -> None:
        """``n`` more files are planned."""

    def file_done(self) -> None:
        """One planned file was ingested, or found missing."""

    def add_bytes(self, n: int) -> None:
        """``n`` more zip bytes were received."""


@dataclass(frozen=True)
class ArchiveSettings:
    """Where the archive is and how hard to pull on it."""

    base_url: str
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    concurrency: int = DEFAULT_CONCURRENCY
    groups_in_flight: int = DEFAULT_GROUPS_IN_FLIGHT
    batch_rows: int = DEFAULT_BATCH_ROWS  # 1: every group committed on its own
    # what the archive offers for the series (archive_plan.archive_frequencies): a monthly
    # 404 is retried as daily files only when daily files exist
    frequencies: tuple[str, ...] = (MONTHLY, DAILY)
    now_us: int | None = None  # the run's clock, to tell a late monthly file from an absent one

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.groups_in_flight < 1 or self.batch_rows < 1:
            raise ValueError("archive concurrency and batch rows must be at least 1")


def clip_rows(table: pa.Table, dataset: str, start_us: int, end_us: int) -> pa.Table:
    """Rows of ``table`` whose time column lies in ``[start_us, end_us)``. Pure."""
    col = table.column(TIME_COLUMNS[dataset])
    lo, hi = pa.scalar(start_us, type=TS), pa.scalar(end_us, type=TS)
    mask = pc.and_(pc.greater_equal(col, lo), pc.less(col, hi))
    if pc.all(mask).as_py() is not False:  # True, or None for an empty table
        return table
    return table.filter(mask)


def parse_fetched(fetched: FetchedArchive, dataset: str) -> pa.Table:
    """The lake table of a fetched archive file, streamed or whole (see FetchedArchive);
    the same table either way. CPU-bound: run it in a worker thread."""
    if fetched.csv_bytes is not None:
        return parse_archive_csv(fetched.csv_bytes, dataset)
    if fetched.open_csv is None:
        raise ValueError(f"{fetched.filename}: fetched archive holds no CSV")
    if dataset == "trades":
        return parse_trades_stream(fetched.open_csv, size_bytes=fetched.csv_size)
    with fetched.open_csv() as stream:
        return parse_archive_csv(stream.read(), dataset)


def group_for_commit(pieces: list[PlanPiece], dataset: str) -> list[list[PlanPiece]]:
    """Archive pieces grouped into commits, in time order: one per calendar month (the
    lake's month partition file), or one per file for agg_trades (the lake keeps a file
    per day there, and a day of trades is already large)."""
    if dataset in DAILY_FILE_DATASETS:  # agg_trades, trades, book_ticker
        return [[p] for p in sorted(pieces)]
    groups: dict[str, list[PlanPiece]] = {}
    for piece in sorted(pieces):
        groups.setdefault(piece.period_label[:7], []).append(piece)  # YYYY-MM
    return [groups[k] for k in sorted(groups)]


@dataclass
class _Parsed:
    piece: PlanPiece
    path: str
    fetched: FetchedArchive
    table: pa.Table


class _SeriesIngest:
    """Ingests one series' archive pieces: fetch, parse, commit per month, manifest."""

    def __init__(self, client: httpx.AsyncClient, writer: LakeWriter, market: Market,
                 key: SeriesKey, settings: ArchiveSettings, progress: ArchiveProgress,
                 commit: CommitFn | None = None) -> None:
        self.client, self.writer, self.market, self.key = client, writer, market, key
        self.settings, self.progress = settings, progress
        self.commit = commit or self._commit_direct
        self.files_sem = asyncio.Semaphore(settings.concurrency)
        self.groups_sem = asyncio.Semaphore(settings.groups_in_flight)
        # one commit at a time, as the download's RunContext.commit does: two groups
        # committing at once would only queue on the series' file lock (which polls)
        self.commit_lock = asyncio.Lock()
        self.outcome = ArchiveOutcome()
        self.batch: list[_Parsed] = []  # parsed, not committed yet
        self.batch_rows = 0

    async def run(self, pieces: list[PlanPiece]) -> ArchiveOutcome:
        pieces = [p for p in pieces if p.is_archive]
        self.progress.add_files_total(len(pieces))
        groups = group_for_commit(pieces, self.key.dataset)
        await gather_or_cancel([self._group(g) for g in groups])
        await self._flush()
        self.outcome.rest_pieces.sort()
        return self.outcome

    async def _group(self, group: list[PlanPiece]) -> None:
        async with self.groups_sem:
            results = await asyncio.gather(*(self._one(p) for p in group))
            parsed = [r for rs in results for r in rs]
            self.batch.extend(parsed)
            self.batch_rows += sum(p.table.num_rows for p in parsed)
            if self.batch_rows >= self.settings.batch_rows:
                await self._flush()

    async def _flush(self) -> None:
        """Commit the parsed groups gathered so far, as one commit (in time order)."""
        batch, self.batch, self.batch_rows = sorted(self.batch, key=lambda p: p.piece), [], 0
        if batch:
            await self._commit(batch)

    async def _fallback(self, piece: PlanPiece) -> list[_Parsed]:
        """A 404: the daily files of a missing month, or a REST piece."""
        self.outcome.stats.not_in_archive += 1
        self.progress.file_done()
        alternatives = fallback_pieces(piece, self.settings.frequencies, self.settings.now_us)
        if alternatives[0].kind == REST:
            self.outcome.rest_pieces.extend(alternatives)
            return []
        self.progress.add_files_total(len(alternatives))
        results = await asyncio.gather(*(self._one(p) for p in alternatives))
        return [r for rs in results for r in rs]

    async def _one(self, piece: PlanPiece) -> list[_Parsed]:
        path = archive_path(self.market, self.key.dataset, self.key.symbol, self.key.interval, piece)
        url = archive_url(self.settings.base_url, path)
        try:
            async with self.files_sem:
                fetched = await fetch_archive_file(
                    self.client, url, self.settings.policy, on_bytes=self.progress.add_bytes,
                    stats=self.outcome.requests, stream=self.key.dataset in STREAMED_DATASETS,
                )
            table = await asyncio.to_thread(parse_fetched, fetched, self.key.dataset)
            # parsed: the CSV (or the zip it streams from) need not wait for the commit
            fetched = replace(fetched, csv_bytes=None, open_csv=None)
        except NotInArchive:
            return await self._fallback(piece)
        except KlineLakeError as exc:  # ChecksumError, TransientError, UnsafeArchiveError, InputError
            self.outcome.errors.append(exc)
            self.progress.file_done()
            return []
        self.outcome.stats.checksum_retries += fetched.attempts - 1
        table = clip_rows(table, self.key.dataset, piece.start_us, piece.end_us)
        return [_Parsed(piece, path, fetched, table)]

    async def _commit_direct(self, key: SeriesKey, table: pa.Table,
                             covered_us: list[tuple[int, int]]) -> None:
        async with self.commit_lock:
            await asyncio.to_thread(self.writer.commit, key, table, covered_us)

    async def _commit(self, parsed: list[_Parsed]) -> None:
        # concatenated without a copy: each file's rows stay one chunk, which the writer
        # places on its own (no split of the whole batch by month)
        table = pa.concat_tables([p.table for p in parsed])
        covered = [(p.piece.start_us, p.piece.end_us) for p in parsed]
        await self.commit(self.key, table, covered)
        entries = [_entry(p) for p in parsed]
        await asyncio.to_thread(archive_manifest.record, self.writer, self.key, entries)
        stats = self.outcome.stats
        for p in parsed:
            stats.files += 1
            stats.bytes += p.fetched.zip_bytes
            stats.rows += p.table.num_rows
            self.progress.file_done()


CommitFn = Callable[[SeriesKey, pa.Table, list[tuple[int, int]]], Awaitable[None]]


def _entry(p: _Parsed) -> ManifestEntry:
    return ManifestEntry(
        path=p.path, sha256=p.fetched.sha256, period_start_us=p.piece.period_start_us,
        period_end_us=p.piece.period_end_us, ranges=((p.piece.start_us, p.piece.end_us),),
        rows=p.table.num_rows, zip_bytes=p.fetched.zip_bytes,
    )


async def ingest_archive_pieces(
    client: httpx.AsyncClient,
    writer: LakeWriter,
    market: Market,
    key: SeriesKey,
    pieces: list[PlanPiece],
    settings: ArchiveSettings,
    progress: ArchiveProgress | None = None,
    commit: CommitFn | None = None,
) -> ArchiveOutcome:
    """Fetch, verify, parse and commit the archive pieces of one series.

    Returns the stats, the pieces to fetch from REST instead (404s) and the errors met
    (the caller raises them after the rest of the work is done: see :func:`raise_first`).
    ``commit(key, table, covered_us)`` replaces the direct ``writer.commit`` (the download
    orchestration passes its own, which serializes commits and counts rows).
    """
    ingest = _SeriesIngest(client, writer, market, key, settings,
                           progress or ArchiveProgress(), commit)
    return await ingest.run(pieces)


def raise_first(errors: list[KlineLakeError]) -> None:
    """Raise the first of ``errors`` (same type), mentioning how many more there were."""
    if not errors:
        return
    first = errors[0]
    if len(errors) == 1:
        raise first
    raise type(first)(f"{first} (and {len(errors) - 1} more archive error(s))") from first


def archive_client(timeout_s: float = 60.0, transport: httpx.AsyncBaseTransport | None = None,
                   max_connections: int = DEFAULT_CONCURRENCY) -> httpx.AsyncClient:
    """An httpx client for the archive host (no weight limiter: the archive costs none)."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(timeout=timeout_s, transport=transport, limits=limits,
                             follow_redirects=True)
