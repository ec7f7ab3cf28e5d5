"""What a download source works with: the series task, the run context and the sink.

A source is one function, `SourceFetcher(ctx, task, ranges_ms)`: fetch the planned
`[start, end)` ranges (ms) of one series and commit them through `ctx.sink(task)`
(`SeriesSink`: batched commits, progress, counters). Sources are listed in
`kline_lake.download.sources`. Coverage is recorded in the writer's microseconds;
sources work in ms (`RunContext.commit` converts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from kline_lake.core import ranges as rg
from kline_lake.core.markets import Market
from kline_lake.core.ranges import Range
from kline_lake.core.schemas import KEYS, TIME_COLUMNS, schema_for
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us, us_to_ms
from kline_lake.download.progress import DownloadProgress, RunTotals
from kline_lake.download.request import DownloadRequest
from kline_lake.exchange import exchange_info as xinfo
from kline_lake.exchange.client import ExchangeClient
from kline_lake.lake.writer import LakeWriter

DEFAULT_BATCH_ROWS = 100_000


@dataclass
class SeriesTask:
    """One series of the run: what to fetch and what was seen."""

    key: SeriesKey
    info: xinfo.SymbolInfo
    start_ms: int
    end_ms: int
    label: str
    holes_ms: list[Range] = field(default_factory=list)
    id_holes: list[Range] = field(default_factory=list)
    first_key_ms: int | None = None
    last_key_ms: int | None = None
    weight: int = 0  # request weight spent on this series (first attempts)
    listing_probed: bool = False  # rest_source.clamp_to_listing ran for this task

    def see_times(self, first_ms: int, last_ms: int) -> None:
        self.first_key_ms = first_ms if self.first_key_ms is None else min(self.first_key_ms, first_ms)
        self.last_key_ms = last_ms if self.last_key_ms is None else max(self.last_key_ms, last_ms)

    def gaps_found(self) -> int:
        """Holes strictly between the first and last row seen (not before the listing,
        not after a delisting), after merging the pieces pages reported."""
        if self.first_key_ms is None or self.last_key_ms is None:
            return 0
        return sum(1 for a, b in rg.merge(self.holes_ms)
                   if a > self.first_key_ms and b <= self.last_key_ms)


@dataclass
class RunContext:
    """Everything a source needs, shared by every series of one run."""

    request: DownloadRequest
    client: ExchangeClient
    writer: LakeWriter
    server_now_ms: int
    progress: DownloadProgress
    totals: RunTotals
    batch_rows: int = DEFAULT_BATCH_ROWS
    commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def market(self) -> Market:
        return self.request.market

    def sink(self, task: SeriesTask) -> SeriesSink:
        return SeriesSink(self, task)

    async def commit(self, key: SeriesKey, table: pa.Table, covered_ms: Sequence[Range]) -> None:
        """Commit rows and coverage (ms ranges) durably, one commit at a time, off the loop.

        A commit that has started finishes in its thread even if the run is cancelled
        (Ctrl-C) meanwhile; it is counted once it has, so the summary of an interrupted
        run says exactly what the lake holds.
        """
        covered_us = [(ms_to_us(a), ms_to_us(b)) for a, b in rg.merge(covered_ms)]
        async with self.commit_lock:
            done = asyncio.ensure_future(asyncio.to_thread(self.writer.commit, key, table, covered_us))
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                # the thread cannot be stopped: let it land, however many times the run is
                # cancelled meanwhile (Ctrl-C cancels the task, asyncio.run's shutdown again)
                while not done.done():
                    try:
                        await asyncio.wait([done])
                    except asyncio.CancelledError:
                        continue
                if not done.cancelled() and done.exception() is None:
                    self._count(table)
                raise
        self._count(table)

    def _count(self, table: pa.Table) -> None:
        self.totals.rows_written += table.num_rows
        self.totals.commits += 1


class SeriesSink:
    """Collects a series' pages and commits them in batches of about `batch_rows` rows.

    Coverage is committed only together with (after) the rows it vouches for.
    """

    def __init__(self, ctx: RunContext, task: SeriesTask) -> None:
        self.ctx = ctx
        self.task = task
        self._tables: list[pa.Table] = []
        self._covered: list[Range] = []
        self._rows = 0

    async def add(self, table: pa.Table | None, covered_ms: Sequence[Range] = ()) -> None:
        """Queue rows and the ranges they completely answer; flush when the batch is full."""
        if table is not None and table.num_rows:
            self._tables.append(table)
            self._rows += table.num_rows
            col = table.column(TIME_COLUMNS[self.task.key.dataset]).cast(pa.int64())
            self.task.see_times(us_to_ms(col[0].as_py()), us_to_ms(col[-1].as_py()))
            self.ctx.progress.advance(self.task.label, table.num_rows,
                                      self.ctx.client.stats.weight, self.task.weight)
        self._covered.extend(r for r in covered_ms if r[0] < r[1])
        if self._rows >= self.ctx.batch_rows:
            await self.flush()

    async def flush(self) -> None:
        """Commit everything queued (no-op when empty)."""
        if not self._tables and not self._covered:
            return
        tables, covered = self._tables, self._covered
        self._tables, self._covered, self._rows = [], [], 0
        schema_table = tables[0] if tables else None
        table = (pa.concat_tables(tables) if schema_table is not None
                 else _empty_table(self.task.key.dataset))
        if table.num_rows:
            table = table.sort_by(KEYS[self.task.key.dataset])
        await self.ctx.commit(self.task.key, table, covered)


def _empty_table(dataset: str) -> pa.Table:
    return schema_for(dataset).empty_table()


SourceFetcher = Callable[[RunContext, SeriesTask, list[Range]], Awaitable[None]]
