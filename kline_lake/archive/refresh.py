"""`kline-lake verify --refresh-archive`: re-check ingested archive files, re-ingest changes.

data.binance.vision may replace a file after publishing it (a corrected day). Every
ingested archive file is in the archive manifest (:mod:`kline_lake.archive.manifest`)
with the sha256 it had. A refresh reads each file's ``.CHECKSUM`` again (a few dozen bytes
per file, no request weight); where the digest changed it downloads the new file (verified
against the new CHECKSUM before parsing), and *replaces* the rows of the ranges that file
answered: rows the new file no longer holds are removed, changed rows overwritten, new
rows added. Then the manifest entry takes the new digest. A file whose CHECKSUM is now
missing (404) is reported and its rows are kept.

The replacement works partition by partition under the series lock of the lake writer,
with the writer's own Parquet flavour and atomic writes (new files durable first, emptied
files removed after), so readers never see a half-written partition.

The archive is found by the same rule as ``kline-lake download``'s
(:func:`kline_lake.archive.plan.archive_base_url`, per market), so a lake downloaded from
a local exchange is refreshed from it. An archive host that cannot be reached stops the
refresh at the first connection failure, with one line (not one line per file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc

from kline_lake.archive import manifest as archive_manifest
from kline_lake.archive.fetch import FetchPolicy, fetch_archive_file, fetch_checksum
from kline_lake.archive.ingest import STREAMED_DATASETS, archive_client, clip_rows, parse_fetched
from kline_lake.archive.manifest import ManifestEntry
from kline_lake.archive.plan import archive_base_url, archive_url
from kline_lake.core.aio import gather_or_cancel
from kline_lake.core.markets import MARKETS, get_market, resolve_base_url
from kline_lake.core.schemas import TIME_COLUMNS, TS, conform
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import month_end_us, month_start_us, months_overlapping_range
from kline_lake.errors import InputError, KlineLakeError, NotInArchive, TransientError
from kline_lake.lake import layout
from kline_lake.lake.data_files import read_data_file
from kline_lake.lake.partitions import merge_rows, replace_partition
from kline_lake.lake.writer import LakeWriter


@dataclass
class RefreshReport:
    """What a refresh found: per archive path, unchanged / re-ingested / gone / failed."""

    checked: int = 0
    unchanged: int = 0
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        """JSON-ready form (for ``verify --json``)."""
        return {"checked": self.checked, "unchanged": self.unchanged, "changed": self.changed,
                "missing": self.missing, "errors": self.errors}

    def lines(self) -> list[str]:
        """Human-readable report lines (one per changed/missing/failed file + a total)."""
        out = [f"re-ingested (CHECKSUM changed): {p}" for p in self.changed]
        out += [f"no longer in the archive (rows kept): {p}" for p in self.missing]
        out += [f"refresh failed: {e}" for e in self.errors]
        out.append(
            f"archive refresh: {self.checked} files checked, {self.unchanged} unchanged, "
            f"{len(self.changed)} re-ingested, {len(self.missing)} missing, {len(self.errors)} errors"
        )
        return out


def _replace_in_partition(pdir: Path, dataset: str, new_rows: pa.Table,
                          start_us: int, end_us: int) -> None:
    files = sorted(pdir.glob("*.parquet")) if pdir.is_dir() else []
    stored = merge_rows([read_data_file(f, dataset) for f in files], dataset)
    kept = stored.filter(pc.invert(_in_range(stored, dataset, start_us, end_us)))
    replace_partition(pdir, dataset, merge_rows([kept, new_rows], dataset))


def _in_range(table: pa.Table, dataset: str, start_us: int, end_us: int) -> pa.ChunkedArray:
    col = table.column(TIME_COLUMNS[dataset])
    return pc.and_(pc.greater_equal(col, pa.scalar(start_us, TS)), pc.less(col, pa.scalar(end_us, TS)))


def replace_range(writer: LakeWriter, key: SeriesKey, table: pa.Table,
                  ranges: Iterable[tuple[int, int]]) -> None:
    """Make the series' rows inside each of ``ranges`` exactly the rows of ``table`` there.

    Runs under the series lock; partitions are rewritten atomically. Coverage is
    unchanged (the ranges were covered already and still are).
    """
    table = conform(table, key.dataset)
    with writer.lock(key):
        for start_us, end_us in ranges:
            part = clip_rows(table, key.dataset, start_us, end_us)
            for year, month in months_overlapping_range(start_us, end_us):
                lo = max(start_us, month_start_us(year, month))
                hi = min(end_us, month_end_us(year, month))
                rows = clip_rows(part, key.dataset, lo, hi)
                pdir = layout.partition_dir(writer.root, key, year, month)
                _replace_in_partition(pdir, key.dataset, rows, lo, hi)


def is_connection_failure(exc: BaseException) -> bool:
    """True if ``exc`` (from the archive fetcher) means the archive host cannot be reached
    at all (refused, unresolvable, connect timeout), as opposed to one file's trouble."""
    cause = exc.__cause__
    return isinstance(exc, TransientError) and isinstance(
        cause, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError)


class _Unreachable(Exception):
    """Internal: the archive host is unreachable; stop the whole refresh."""

    def __init__(self, url: str, exc: BaseException) -> None:
        super().__init__(url)
        self.url = url
        self.reason = f"{type(exc.__cause__).__name__}: {exc.__cause__}"


async def _refresh_one(client: httpx.AsyncClient, writer: LakeWriter, key: SeriesKey,
                       entry: ManifestEntry, base_url: str, policy: FetchPolicy,
                       report: RefreshReport) -> ManifestEntry | None:
    url = archive_url(base_url, entry.path)
    try:
        sha = await fetch_checksum(client, url, policy)
        if sha == entry.sha256:
            report.unchanged += 1
            return None
        fetched = await fetch_archive_file(client, url, policy,
                                           stream=key.dataset in STREAMED_DATASETS)
        table = await asyncio.to_thread(parse_fetched, fetched, key.dataset)
        await asyncio.to_thread(replace_range, writer, key, table, entry.ranges)
    except NotInArchive:
        report.missing.append(entry.path)
        return None
    except KlineLakeError as exc:
        if is_connection_failure(exc):
            raise _Unreachable(base_url, exc) from exc
        report.errors.append(f"{entry.path}: {exc}")
        return None
    report.changed.append(entry.path)
    rows = sum(clip_rows(table, key.dataset, a, b).num_rows for a, b in entry.ranges)
    return ManifestEntry(entry.path, fetched.sha256, entry.period_start_us, entry.period_end_us,
                         entry.ranges, rows, fetched.zip_bytes)


BaseUrl = str | Callable[[str], str]  # one archive base, or market name -> its base


async def _refresh_series(client: httpx.AsyncClient, writer: LakeWriter, key: SeriesKey,
                          entries: Iterable[ManifestEntry], base_url: str,
                          policy: FetchPolicy, report: RefreshReport,
                          sem: asyncio.Semaphore) -> None:
    """Refresh one series' files; the new digests of the files re-ingested are recorded
    even when the refresh stops half way (their rows are already replaced)."""
    done: list[ManifestEntry] = []

    async def one(entry: ManifestEntry) -> None:
        async with sem:
            result = await _refresh_one(client, writer, key, entry, base_url, policy, report)
        if result is not None:
            done.append(result)

    try:
        await gather_or_cancel([one(e) for e in entries])
    finally:
        if done:
            archive_manifest.replace_entries(writer, key, done)


async def refresh_archive(
    root: str | Path,
    base_url: BaseUrl,
    *,
    policy: FetchPolicy | None = None,
    concurrency: int = 8,
    client: httpx.AsyncClient | None = None,
) -> RefreshReport:
    """Re-check every ingested archive file of the lake at ``root`` and re-ingest changes.

    ``base_url`` is the archive base, or a function from a market name to its base (what
    :func:`run_refresh` passes). If the archive host cannot be reached (connection
    refused, name not resolved, connect timeout) the refresh stops at once: TransientError
    with one line saying where and how far it got.
    """
    writer = LakeWriter(root)
    policy = policy or FetchPolicy()
    report = RefreshReport()
    sem = asyncio.Semaphore(concurrency)
    own = client is None
    client = client or archive_client(max_connections=concurrency)
    manifests = list(archive_manifest.iter_manifests(writer.root))
    total = sum(len(entries) for _, entries in manifests)
    try:
        for key, entries in manifests:
            url = base_url(key.market) if callable(base_url) else base_url
            report.checked += len(entries)
            await _refresh_series(client, writer, key, entries.values(), url, policy, report, sem)
    except _Unreachable as exc:
        done = report.unchanged + len(report.changed) + len(report.missing) + len(report.errors)
        changed = (f"{len(report.changed)} re-ingested before it (their new digests are "
                   f"recorded)" if report.changed else "nothing was re-ingested")
        raise TransientError(
            f"archive refresh stopped: cannot connect to {exc.url} ({exc.reason}); "
            f"{done} of {total} files checked, {changed}; set --archive-url (or "
            f"KLINE_LAKE_ARCHIVE_URL / KLINE_LAKE_BASE_URL) to a reachable archive") from None
    finally:
        if own:
            await client.aclose()
    report.changed.sort()
    report.missing.sort()
    return report


def run_refresh(root: str | Path, archive_url: str | None = None,
                base_url: str | None = None) -> RefreshReport:
    """Synchronous entry point for ``kline-lake verify --refresh-archive [--archive-url]``.

    Each market's archive is found as ``kline-lake download`` finds it
    (:func:`kline_lake.archive.plan.archive_base_url`): ``archive_url``, then
    KLINE_LAKE_ARCHIVE_URL, then the market's REST base if it is not the exchange's own
    (``base_url``, KLINE_LAKE_<MARKET>_URL, KLINE_LAKE_BASE_URL), then
    https://data.binance.vision.
    """
    bases = {m: archive_base_url(get_market(m), archive_url, resolve_base_url(get_market(m), base_url))
             for m in MARKETS if get_market(m).archive_prefix is not None}
    for url in bases.values():
        if not url.startswith(("http://", "https://")):
            raise InputError(f"invalid archive URL {url!r} (--archive-url, KLINE_LAKE_ARCHIVE_URL "
                             f"or KLINE_LAKE_BASE_URL): expected http:// or https://")
    return asyncio.run(refresh_archive(root, bases.__getitem__))
