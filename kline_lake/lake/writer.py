"""The only code that writes data into the lake.

``LakeWriter(root).commit(key, table, covered=[...])`` makes rows durable and records which
time ranges they completely answer. Guarantees (DESIGN.md "The lake"):

- Schema enforced: every table is ``schemas.conform()``-ed first.
- Partitioned by the dataset's time column (``schemas.TIME_COLUMNS``: ``open_time``,
  ``transact_time``, ``funding_time``) into ``year=/month=`` directories; file names are
  deterministic (see ``layout``), one ``data.parquet`` per month, or one file per day for
  agg_trades.
- Rows unique on the dataset key (``schemas.KEYS``) and sorted by it. When a committed row
  has the key of a stored row, the committed row wins (the exchange's latest answer).
- Idempotent and byte-stable: a file whose merged content equals what is stored is not
  rewritten at all, so committing the same rows twice leaves byte-identical files.
- Atomic and ordered: data files first (temp + fsync + ``os.replace``), then the coverage
  record. The temps are built and fsynced outside the series lock, renamed and their
  directories fsynced under it, then coverage is written, still under it; a partition
  another writer changed meanwhile is rebuilt under the lock (`kline_lake.lake.staging`).
  A crash at any point leaves the old state, or rows without coverage (which a rerun
  refetches and merges idempotently), never coverage without rows. Orphaned ``.*.tmp``
  files are invisible to ``*.parquet`` globs and are removed by the next commit to that
  partition once their writer is gone.
- On object storage (``LakeWriter("s3://bucket/prefix")``, any URL
  `kline_lake.lake.storage.open_storage` accepts) the same order holds without rename:
  each object is built in a local temp file and sent with one PUT (visible whole or not at
  all), and the series lock is a lock object created with a conditional write
  (`kline_lake.lake.storage.StorageLock`; a store that cannot do that is refused).

Each file's Parquet flavour is `kline_lake.lake.data_files`'; merging rows with a
partition's and rewriting it whole, `kline_lake.lake.partitions`'.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kline_lake.core import ranges as rg
from kline_lake.core.schemas import KEYS, conform
from kline_lake.core.series import SeriesKey
from kline_lake.errors import LakeError
from kline_lake.lake import coverage, layout, roots
from kline_lake.lake.atomic import atomic_write_bytes, temp_path_for
from kline_lake.lake.data_files import FaultHook, read_data_file, write_parquet_file
from kline_lake.lake.lock import DEFAULT_TIMEOUT_S, FileLock
from kline_lake.lake.partitions import (
    ObjectPartition,
    merge_rows,
    rewrite_partition,
    split_by_target,
)
from kline_lake.lake.roots import check_exact_case, check_root
from kline_lake.lake.scan import object_series_files
from kline_lake.lake.staging import StagedPartition, fsync_all, make_dirs, snapshot
from kline_lake.lake.storage import LocalStorage, Storage, StorageLock, open_storage, split_url

__all__ = ["LakeWriter"]

CASE_COLLIDING_INTERVALS = frozenset({"1m", "1M"})
# A series lock object left by a writer on another host is broken after this long (a
# commit holds its lock for seconds); one left by a dead process on this host at once.
STALE_LOCK_S = 600.0


def _by_month(tables: list[pa.Table], dataset: str) -> dict[tuple[int, int], dict[str, list[pa.Table]]]:
    """Rows grouped by destination: {(year, month): {file name: [tables]}}, placed chunk
    by chunk (a batch of archive files concatenated is one chunk per file: no split)."""
    out: dict[tuple[int, int], dict[str, list[pa.Table]]] = {}
    for batch in (b for table in tables for b in table.to_batches() if b.num_rows):
        for (year, month, fname), part in split_by_target(pa.Table.from_batches([batch]), dataset).items():
            out.setdefault((year, month), {}).setdefault(fname, []).append(part)
    return out


def _stage_partition(pdir: Path, dataset: str, new_by_file: dict[str, list[pa.Table]]
                     ) -> tuple[StagedPartition, dict[str, pa.Table]]:
    """What `pdir` holds now, and the merged content of each file that changes (none when
    the partition holds non-canonical files: it is then rebuilt under the lock)."""
    part = StagedPartition(pdir, snapshot(pdir), new_by_file)
    names = [name for name, *_ in part.seen]
    if any(not layout.is_canonical_file(dataset, n) for n in names):
        part.rebuild = True
        return part, {}
    changed = {}
    for fname in sorted(new_by_file):
        old = None
        if fname in names:
            try:  # through one open file: a writer may replace the path meanwhile
                with pa.OSFile(str(pdir / fname)) as handle:
                    old = read_data_file(handle, dataset, str(pdir / fname))
            except FileNotFoundError:  # removed since the snapshot: merge under the lock
                part.rebuild = True
                return part, {}
        merged = merge_rows(new_by_file[fname] if old is None else [old, *new_by_file[fname]], dataset)
        if old is None or not merged.equals(old):
            changed[fname] = merged
    return part, changed


class LakeWriter:
    """Writes series into the lake at `root`; see the module docstring for guarantees.

    `root` is a local directory or an object-store URL (``s3://bucket/prefix``; a
    `kline_lake.lake.storage.Storage` too). `lock_timeout_s` bounds the wait for another
    process holding a series lock. `fault_hook` is a test seam called with a stage name
    ("data-temp-written", "data-replaced", "before-coverage") so tests can kill the
    process at each point.
    """

    def __init__(self, root: str | Path | Storage, *,
                 lock_timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 fault_hook: FaultHook | None = None) -> None:
        self.objects: Storage | None = None
        if isinstance(root, Storage) or split_url(root)[0]:
            storage = open_storage(root)
            if isinstance(storage, LocalStorage):
                root = storage.path
            else:
                self.objects = storage
        self.root: Any = check_root(Path(root)) if self.objects is None else self.objects.uri()
        self.lock_timeout_s = lock_timeout_s
        self.fault_hook = fault_hook

    # ------------------------------------------------------------------ data
    def commit(self, key: SeriesKey, table: pa.Table | Sequence[pa.Table],
               covered: Iterable[tuple[int, int]] = ()) -> None:
        """Merge `table` into the series and record `covered` (half-open us ranges).

        `table` may be a list of tables (a batch of months, say): each goes to the
        partitions its rows fall in, without concatenating the batch first. Durable on
        return. Rows are written before the coverage record; on a local lake the new
        files are built and fsynced outside the series lock and published under it
        (`kline_lake.lake.staging`), on an object store written under it.
        """
        tables = [table] if isinstance(table, pa.Table) else list(table)
        by_month = _by_month([conform(t, key.dataset) for t in tables], key.dataset)
        ranges = rg.validate(covered)
        staged = self._stage(key, by_month) if self.objects is None else None
        try:
            with self.lock(key):
                if staged is None:
                    for (year, month), new_by_file in sorted(by_month.items()):
                        rewrite_partition(self.partition(key, year, month), key.dataset,
                                          new_by_file, self.fault_hook)
                else:
                    self._publish(key.dataset, staged)
                if ranges:
                    self._record_coverage(key, ranges)
        finally:
            for part in staged or ():
                part.discard()

    def _record_coverage(self, key: SeriesKey, ranges: list[tuple[int, int]]) -> None:
        self._hook("before-coverage")
        if self.objects is None:
            path = layout.coverage_path(self.root, key)
            coverage.write(path, rg.union(coverage.read(path), ranges))
        else:
            rel = _rel(layout.coverage_path(Path(), key))
            self.write_meta(rel, coverage.dumps(rg.union(self.covered(key), ranges)).encode("utf-8"))

    def _hook(self, stage: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(stage)

    def _stage(self, key: SeriesKey, by_month: dict[tuple[int, int], dict[str, list[pa.Table]]]
               ) -> list[StagedPartition]:
        """Step 1 of a local commit, without the lock: the changed files of every touched
        partition as durable temps (`kline_lake.lake.staging`)."""
        if by_month and key.interval in CASE_COLLIDING_INTERVALS:
            check_exact_case(layout.series_dir(self.root, key))
        parts: list[StagedPartition] = []
        try:
            merged = []
            for (year, month), new_by_file in sorted(by_month.items()):
                part, changed = _stage_partition(layout.partition_dir(self.root, key, year, month),
                                                 key.dataset, new_by_file)
                parts.append(part)
                merged.extend((part, fname, rows) for fname, rows in changed.items())
            make_dirs(part.pdir for part, _, _ in merged)
            for part, fname, rows in merged:
                tmp = part.temps[fname] = temp_path_for(part.pdir / fname)
                write_parquet_file(rows, tmp, key.dataset)
            fsync_all(files=[tmp for part in parts for tmp in part.temps.values()])
            if merged:
                self._hook("data-temp-written")
        except BaseException:
            for part in parts:
                part.discard()
            raise
        return parts

    def _publish(self, dataset: str, parts: list[StagedPartition]) -> None:
        """Step 2, under the lock: rename the temps of every partition no other writer
        changed since step 1 and fsync their directories; rebuild the others here."""
        published = []
        for part in parts:
            if not part.rebuild and snapshot(part.pdir) == part.seen:
                try:
                    for fname, tmp in sorted(part.temps.items()):
                        os.replace(tmp, part.pdir / fname)
                        del part.temps[fname]
                        published.append(part.pdir)
                    continue
                except FileNotFoundError:  # a temp removed meanwhile: rebuild it here
                    pass
            part.discard()
            rewrite_partition(part.pdir, dataset, part.new_by_file, self.fault_hook)
        fsync_all(dirs=published)  # once each
        for _ in dict.fromkeys(published):
            self._hook("data-replaced")

    def partition(self, key: SeriesKey, year: int, month: int) -> Path | ObjectPartition:
        """A series' year/month partition: its directory, or an `ObjectPartition`."""
        if self.objects is None:
            return layout.partition_dir(self.root, key, year, month)
        return ObjectPartition(self.objects,
                               _rel(layout.partition_dir(Path(), key, year, month)))

    def lock(self, key: SeriesKey) -> FileLock | StorageLock:
        """The inter-process lock of one series (a context manager): a flock on a local
        lake, a conditionally created lock object on an object store."""
        if self.objects is None:
            return FileLock(layout.lock_path(self.root, key), timeout_s=self.lock_timeout_s)
        return StorageLock(self.objects, timeout_s=self.lock_timeout_s, poll_s=0.05,
                           break_stale_s=STALE_LOCK_S, key=_rel(layout.lock_path(Path(), key)))

    # -------------------------------------------------------------- coverage
    def covered(self, key: SeriesKey) -> list[tuple[int, int]]:
        """Merged, sorted half-open us ranges known to be completely stored."""
        if self.objects is None:
            return coverage.read(layout.coverage_path(self.root, key))
        rel = _rel(layout.coverage_path(Path(), key))
        data = self.read_meta(rel)
        return [] if data is None else coverage.loads(data.decode("utf-8"),
                                                      self.objects.uri(rel))

    def missing(self, key: SeriesKey, start_us: int, end_us: int) -> list[tuple[int, int]]:
        """The parts of ``[start_us, end_us)`` not covered yet (what a rerun must fetch)."""
        if start_us >= end_us:
            return []
        return rg.subtract(int(start_us), int(end_us), self.covered(key))

    def last_key_value(self, key: SeriesKey) -> int | None:
        """The largest stored key (agg_id, or a time key in us), or None if the series is
        empty. Reads only the key column of the latest non-empty partition."""
        key_col = KEYS[key.dataset]
        for files in reversed(self._partition_files(key)):
            best = None
            for source, name in files:
                try:
                    column = pq.read_table(source(), columns=[key_col]).column(key_col)
                except (OSError, pa.ArrowException) as exc:
                    raise LakeError(f"cannot read lake file {name}: {exc}") from exc
                if len(column):
                    if pa.types.is_timestamp(column.type):
                        column = column.cast(pa.int64())
                    value = pc.max(column).as_py()
                    best = value if best is None else max(best, value)
            if best is not None:
                return int(best)
        return None

    def _partition_files(self, key: SeriesKey) -> list[list[tuple[Callable[[], Any], str]]]:
        """Per partition (oldest first), its data files as (opener, name): pyarrow reads
        what the opener returns (a path, or an object's bytes fetched when called)."""
        if self.objects is None:
            return [[((lambda p=p: p), str(p)) for p in sorted(pdir.glob("*.parquet"))]
                    for pdir in roots.list_partitions(self.root, key)]
        objects, by_dir = self.objects, {}
        for rel in object_series_files(objects, key):
            by_dir.setdefault(rel.rsplit("/", 1)[0], []).append(rel)
        return [[((lambda r=rel: pa.BufferReader(objects.read_bytes(r))), objects.uri(rel))
                 for rel in rels] for _, rels in sorted(by_dir.items())]

    # ------------------------------------------------------------ metadata
    def read_meta(self, rel: str) -> bytes | None:
        """A metadata record (``_meta/...``, relative to the root), or None if absent."""
        try:
            if self.objects is None:
                return (self.root / rel).read_bytes()
            return self.objects.read_bytes(rel)
        except FileNotFoundError:
            return None

    def write_meta(self, rel: str, data: bytes) -> None:
        """Replace a metadata record whole (local: temp + fsync + rename; objects: one PUT)."""
        if self.objects is None:
            atomic_write_bytes(self.root / rel, data)
        else:
            self.objects.put_bytes(rel, data)

    def where(self, rel: str) -> str:
        """A record's full path or URL, for messages."""
        return str(self.root / rel) if self.objects is None else self.objects.uri(rel)

    # --------------------------------------------------------- exchange info
    def save_exchange_info(self, market: str, info: dict) -> None:
        """Cache a market's exchangeInfo JSON under ``_meta/exchange_info/<market>.json``."""
        rel = _rel(layout.exchange_info_path(Path(), market))
        self.write_meta(rel, json.dumps(info, sort_keys=True).encode("utf-8"))

    def load_exchange_info(self, market: str) -> dict | None:
        """The cached exchangeInfo of `market`, or None if never saved."""
        rel = _rel(layout.exchange_info_path(Path(), market))
        try:
            data = self.read_meta(rel)
            return None if data is None else json.loads(data.decode("utf-8"))
        except (ValueError, OSError) as exc:
            raise LakeError(f"cannot read cached exchangeInfo {self.where(rel)}: {exc}") from exc


def _rel(path: Path) -> str:
    """A layout path built on ``Path()`` as a storage key."""
    return path.as_posix()
