"""Archive ingest over N worker processes: whole months dealt to processes.

The one-process pipeline (`kline_lake.archive.ingest.ingest_archive_pieces`: fetch,
sha256, unzip, parse, commit per month, manifest) is bound by one core. This runs it in
`workers` processes at once: whole series per process when there are enough of them,
else each series' commit groups (a calendar month of klines, a day of trades;
`group_for_commit`) dealt round-robin, so a year of one series splits too. Its
processes share the series lock only to publish: each builds and fsyncs its months'
Parquet files without it and holds it for the renames, the coverage record and the
manifest (`kline_lake.lake.staging`), so fetch, parse and the zstd write all run in
parallel. Each process has its own archive HTTP client and its own `LakeWriter`; a
commit is still an atomic partition replace published under the series lock
(`lake.lock`, an flock every process honours), and the coverage record and the manifest
are read-modify-written under that lock, so two processes committing months of one
series never lose each other's ranges or entries.

Not pure: starts processes (``spawn``: no fork of a process holding threads and locks),
talks to the archive, writes the lake. The caller may pass its own
`concurrent.futures.ProcessPoolExecutor` (a benchmark keeps one warm); otherwise one is
started and stopped per call. ``workers=1`` runs in this process.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kline_lake.archive.ingest import (
    ArchiveOutcome,
    ArchiveSettings,
    archive_client,
    group_for_commit,
    ingest_archive_pieces,
)
from kline_lake.archive.plan import PlanPiece
from kline_lake.core.markets import get_market
from kline_lake.core.series import SeriesKey
from kline_lake.lake.writer import LakeWriter

MAX_WORKERS = 256


@dataclass(frozen=True)
class IngestJob:
    """The archive pieces of one series to ingest (a market name, not a `Market`, so a
    job pickles small)."""

    market: str
    key: SeriesKey
    pieces: tuple[PlanPiece, ...]


def split_jobs(jobs: list[IngestJob], workers: int) -> list[list[IngestJob]]:
    """`jobs` dealt over `workers` shares; empty shares dropped. Pure.

    With at least as many series as workers, whole series are dealt (largest first, each
    to the share with the fewest pieces so far): no two processes then wait on one
    series lock. With fewer, each job's commit groups (months) are dealt round-robin, so
    a share holds at most one job per series, made of whole groups.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be within 1..{MAX_WORKERS}, got {workers}")
    if len(jobs) >= workers:
        by_series: list[list[IngestJob]] = [[] for _ in range(workers)]
        loads = [0] * workers
        for job in sorted(jobs, key=lambda j: -len(j.pieces)):
            k = loads.index(min(loads))
            by_series[k].append(job)
            loads[k] += len(job.pieces)
        return [share for share in by_series if share]
    shares: list[list[IngestJob]] = [[] for _ in range(workers)]
    turn = 0
    for job in jobs:
        groups = group_for_commit([p for p in job.pieces if p.is_archive], job.key.dataset)
        dealt: list[list[PlanPiece]] = [[] for _ in range(workers)]
        for group in groups:
            dealt[turn % workers].extend(group)
            turn += 1
        for share, pieces in zip(shares, dealt, strict=True):
            if pieces:
                share.append(IngestJob(job.market, job.key, tuple(pieces)))
    return [share for share in shares if share]


def merge_outcomes(outcomes: list[ArchiveOutcome]) -> ArchiveOutcome:
    """One outcome of many: stats and request counters summed, REST pieces sorted, errors
    in order."""
    out = ArchiveOutcome()
    for outcome in outcomes:
        out.stats.add(outcome.stats)
        out.rest_pieces.extend(outcome.rest_pieces)
        out.errors.extend(outcome.errors)
        for name in ("requests", "weight", "retries", "rate_limited_429", "banned_418",
                     "bytes_received"):
            setattr(out.requests, name, getattr(out.requests, name) + getattr(outcome.requests, name))
    out.rest_pieces.sort()
    return out


def ingest_share(lake: str, share: list[IngestJob], settings: ArchiveSettings,
                 cpu: int | None = None) -> ArchiveOutcome:
    """Run in a worker: ingest `share` (one job after another) into the lake at `lake`;
    `cpu` pins this process to that CPU first (Linux)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})

    async def run() -> list[ArchiveOutcome]:
        writer = LakeWriter(lake)
        async with archive_client(max_connections=settings.concurrency) as client:
            return [await ingest_archive_pieces(client, writer, get_market(job.market), job.key,
                                                list(job.pieces), settings)
                    for job in share]

    return merge_outcomes(asyncio.run(run()))


def ingest_parallel(lake: str | Path, jobs: list[IngestJob], settings: ArchiveSettings,
                    workers: int, *, pool: Executor | None = None,
                    cpus: list[int] | None = None) -> ArchiveOutcome:
    """Ingest `jobs` with `workers` processes (see the module docstring); returns the
    merged outcome (the caller raises its errors: `kline_lake.archive.ingest.raise_first`).
    `cpus`, when given, pins share k to ``cpus[k % len(cpus)]``."""
    shares = split_jobs(jobs, workers)
    pins = [cpus[k % len(cpus)] if cpus else None for k in range(len(shares))]
    if workers == 1 and pool is None:
        return merge_outcomes([ingest_share(str(lake), s, settings, c) for s, c in zip(shares, pins, strict=True)])
    own = pool is None
    executor = pool or ProcessPoolExecutor(max_workers=workers,
                                           mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [executor.submit(ingest_share, str(lake), s, settings, c)
                   for s, c in zip(shares, pins, strict=True)]
        return merge_outcomes([f.result() for f in futures])
    finally:
        if own:
            executor.shutdown(wait=True, cancel_futures=True)
