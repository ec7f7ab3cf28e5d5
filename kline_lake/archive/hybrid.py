"""`--source auto` and `--source archive`: the download orchestration's archive sources.

:mod:`kline_lake.download.orchestrate` calls the source's function (registered in
:mod:`kline_lake.download.sources`), ``fetch_series_auto(ctx, task, ranges_ms)`` or
``fetch_series_archive``, with the ranges of one series the lake does not cover yet. Here each range is planned
(:func:`kline_lake.archive.plan.plan_for_source`: whole past months from monthly zips,
remaining past days from daily zips, the rest from REST), the archive pieces are ingested
(:mod:`kline_lake.archive.ingest`), and what is left, the unpublished tail plus every
file the archive does not have (404), goes to the REST source
(:func:`kline_lake.download.rest_source.fetch_series_rest`). ``--source archive`` skips that REST
part and counts what it skipped.

Commits go through the run's ``ctx.commit`` (serialized, counted), and the summary gets
per-source counters in ``totals.extra``: archive files, archive kB, rows from the
archive, rows from REST, files not in the archive. Funding under ``auto`` is the
exception: REST first, the archive as the fallback (:func:`fetch_funding_auto`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TextIO

import numpy as np
import pyarrow as pa

from kline_lake.archive.ingest import (
    ArchiveProgress,
    ArchiveSettings,
    archive_client,
    ingest_archive_pieces,
    raise_first,
)
from kline_lake.archive.plan import (
    archive_base_url,
    archive_frequencies,
    merge_rest_pieces,
    plan_for_source,
)
from kline_lake.core.intervals import INTERVAL_MS, ceil_open_ms
from kline_lake.core.markets import KLINE_DATASETS
from kline_lake.core.ranges import Range
from kline_lake.core.schemas import TIME_COLUMNS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import US_PER_MS
from kline_lake.download.context import RunContext, SeriesTask
from kline_lake.download.progress import MAX_SYMBOL_BARS, RunTotals, TqdmProgress
from kline_lake.download.request import DownloadRequest
from kline_lake.download.rest_source import clamp_to_listing, fetch_series_rest
from kline_lake.errors import BannedError, BinanceAPIError, TransientError


def kline_holes_ms(open_ms: np.ndarray, interval: str, covered_ms: Sequence[Range]) -> list[Range]:
    """Missing kline opens inside ``covered_ms`` given the sorted opens present. Pure.

    A hole is a half-open ms range with no kline although the archive answered for it
    (maintenance). Calendar-month klines (1M) are not checked. A covered range need not
    start on a kline open (a month of 3d or 1w klines): holes start at the first open.
    """
    step = INTERVAL_MS.get(interval)
    if step is None:
        return []
    holes: list[Range] = []
    for start, end in covered_ms:
        first = ceil_open_ms(start, interval)
        inside = open_ms[(open_ms >= start) & (open_ms < end)]
        if not len(inside):
            if first < end:
                holes.append((first, end))
            continue
        if inside[0] > first:
            holes.append((first, int(inside[0])))
        jumps = np.nonzero(np.diff(inside) > step)[0]
        holes.extend((int(inside[i]) + step, int(inside[i + 1])) for i in jumps)
        if int(inside[-1]) + step < end:
            holes.append((int(inside[-1]) + step, end))
    return holes


class HybridProgress(TqdmProgress, ArchiveProgress):
    """The download bars (rows and weight per symbol, a total) plus two archive bars:
    files (done / planned) and bytes received."""

    def __init__(self, stream: TextIO | None = None, disable: bool | None = None) -> None:
        super().__init__(stream, disable)
        self._files = None
        self._bytes = None

    def start(self, labels: list[str], expected_rows: dict[str, int | None]) -> None:
        from tqdm import tqdm

        super().start(labels, expected_rows)
        pos = 1 + (len(labels) if len(labels) <= MAX_SYMBOL_BARS else 0)
        kw = {"file": self.stream, "disable": self.disable, "dynamic_ncols": True, "leave": True}
        self._files = tqdm(total=0, desc="archive files", unit=" files", position=pos, **kw)
        self._bytes = tqdm(desc="archive bytes", unit="B", unit_scale=True, unit_divisor=1024,
                           position=pos + 1, **kw)

    def add_files_total(self, n: int) -> None:
        if self._files is None:
            return
        self._files.total = (self._files.total or 0) + n
        self._files.refresh()

    def file_done(self) -> None:
        if self._files is not None:
            self._files.update(1)

    def add_bytes(self, n: int) -> None:
        if self._bytes is not None:
            self._bytes.update(n)

    def close(self) -> None:
        for bar in (self._files, self._bytes):
            if bar is not None:
                bar.close()
        self._files = self._bytes = None
        super().close()


def _bump(totals: RunTotals, name: str, n: int) -> None:
    if n:
        totals.extra[name] = totals.extra.get(name, 0) + n


def archive_url_for(request: DownloadRequest) -> str:
    """The archive base of a download (:func:`kline_lake.archive.plan.archive_base_url`):
    an overridden REST base (flag or environment) stands in for an archive URL nobody set."""
    return archive_base_url(request.market, request.archive_url, request.base_url)


def _make_commit(ctx: RunContext, task: SeriesTask):
    async def commit(key: SeriesKey, table: pa.Table, covered_us: list[Range]) -> None:
        covered_ms = [(a // US_PER_MS, b // US_PER_MS) for a, b in covered_us]
        await ctx.commit(key, table, covered_ms)
        times_ms = table.column(TIME_COLUMNS[key.dataset]).cast(pa.int64()).to_numpy() // US_PER_MS
        if len(times_ms):
            task.see_times(int(times_ms.min()), int(times_ms.max()))
        if key.dataset in KLINE_DATASETS and key.interval is not None:
            task.holes_ms.extend(kline_holes_ms(np.sort(times_ms), key.interval, covered_ms))
        ctx.progress.advance(task.label, table.num_rows, ctx.client.stats.weight)

    return commit


async def fetch_series_hybrid(ctx: RunContext, task: SeriesTask, ranges_ms: list[Range],
                              source: str) -> None:
    """Fetch ``ranges_ms`` of one series from the archive, then the rest from REST.

    The plan starts at the series' first row (one REST probe,
    :func:`kline_lake.download.rest_source.clamp_to_listing`), not at ``--start``: no
    archive file is asked for the years before a listing.
    """
    key = task.key
    sink = ctx.sink(task)
    ranges_ms = await clamp_to_listing(ctx, task, sink, ranges_ms)
    await sink.flush()
    freqs = archive_frequencies(ctx.market, key.dataset)
    now_us = ctx.server_now_ms * US_PER_MS
    pieces = [p for a, b in ranges_ms
              for p in plan_for_source(source, a * US_PER_MS, b * US_PER_MS, now_us, freqs)]
    archive_pieces = [p for p in pieces if p.is_archive]
    progress = ctx.progress if isinstance(ctx.progress, ArchiveProgress) else ArchiveProgress()
    settings = ArchiveSettings(archive_url_for(ctx.request), frequencies=freqs, now_us=now_us)
    errors = []
    if archive_pieces:
        async with archive_client(max_connections=settings.concurrency) as client:
            outcome = await ingest_archive_pieces(client, ctx.writer, ctx.market, key,
                                                  archive_pieces, settings, progress,
                                                  _make_commit(ctx, task))
        stats = outcome.stats
        _bump(ctx.totals, "archive files", stats.files)
        _bump(ctx.totals, "archive kB", -(-stats.bytes // 1000))
        _bump(ctx.totals, "rows from archive", stats.rows)
        _bump(ctx.totals, "files not in archive", stats.not_in_archive)
        _bump(ctx.totals, "checksum retries", stats.checksum_retries)
        _bump(ctx.totals, "archive requests", outcome.requests.requests)
        _bump(ctx.totals, "archive 429s", outcome.requests.rate_limited_429)
        errors, fallback = outcome.errors, outcome.rest_pieces
    else:
        fallback = []
    rest = merge_rest_pieces([p for p in pieces if not p.is_archive] + fallback)
    if source == "archive":
        _bump(ctx.totals, "ranges skipped (not in archive)", len(rest))
    elif rest:
        await _fetch_rest(ctx, task, [(p.start_us // US_PER_MS, p.end_us // US_PER_MS) for p in rest])
    raise_first(errors)


async def _fetch_rest(ctx: RunContext, task: SeriesTask, ranges_ms: list[Range]) -> None:
    """The REST source on a private copy of the run context whose totals count only this
    call (client, writer, progress and the commit lock stay shared), so the summary can
    say how many rows came from REST."""
    mine = RunTotals()
    rest_ctx = dataclasses.replace(ctx, totals=mine)
    try:
        await fetch_series_rest(rest_ctx, task, ranges_ms)
    finally:
        ctx.totals.rows_written += mine.rows_written
        ctx.totals.commits += mine.commits
        _bump(ctx.totals, "rows from REST", mine.rows_written)
        for name, n in mine.extra.items():  # e.g. ranges the REST source skipped
            _bump(ctx.totals, name, n)


async def fetch_series_auto(ctx: RunContext, task: SeriesTask, ranges_ms: list[Range]) -> None:
    """``--source auto``: archive first, the rest from REST; funding REST first (see
    :func:`fetch_funding_auto`)."""
    if task.key.dataset == "funding":
        await fetch_funding_auto(ctx, task, ranges_ms)
        return
    await fetch_series_hybrid(ctx, task, ranges_ms, "auto")


async def fetch_funding_auto(ctx: RunContext, task: SeriesTask, ranges_ms: list[Range]) -> None:
    """Funding under ``--source auto``: REST first, the archive as the fallback.

    A decision the data forces: REST ``fundingRate`` pages hold 1000 settlements (a year
    of 8h funding per request, out of its own 500-per-5-minutes pool) and carry
    ``markPrice``, which the backtester's funding cash flow uses; the archive's monthly
    ``fundingRate`` files lack it (null) and cost a file per month. When REST fails
    (the retry budget spent on 5xx or timeouts, an API error, an IP ban), the parts of the
    ranges it did not commit come from the archive, with one line saying so.
    """
    try:
        await _fetch_rest(ctx, task, ranges_ms)
    except (TransientError, BinanceAPIError, BannedError) as exc:
        left = [(a // US_PER_MS, b // US_PER_MS) for lo, hi in ranges_ms
                for a, b in ctx.writer.missing(task.key, lo * US_PER_MS, hi * US_PER_MS)]
        ctx.progress.note(f"{task.label}: funding from REST failed ({exc}); "
                          f"{len(left)} range(s) from the archive instead (no markPrice there)")
        _bump(ctx.totals, "funding ranges from archive (REST failed)", len(left))
        if left:
            await fetch_series_hybrid(ctx, task, left, "archive")


async def fetch_series_archive(ctx: RunContext, task: SeriesTask, ranges_ms: list[Range]) -> None:
    """``--source archive``: archive files only; unpublished or missing parts are skipped."""
    await fetch_series_hybrid(ctx, task, ranges_ms, "archive")
