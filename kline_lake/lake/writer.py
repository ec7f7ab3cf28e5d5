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
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kline_lake.core import ranges as rg
from kline_lake.core.schemas import KEYS, SCHEMAS, TIME_COLUMNS, conform
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import year_month
from kline_lake.errors import InputError, LakeError
from kline_lake.lake import coverage, layout, roots
from kline_lake.lake.atomic import atomic_write_bytes, atomic_write_with, ensure_dir, temp_path_for
from kline_lake.lake.lock import DEFAULT_TIMEOUT_S, FileLock
from kline_lake.lake.roots import check_exact_case, check_lake_root, check_root, is_object_store
from kline_lake.lake.scan import object_series_files
from kline_lake.lake.staging import (
    StagedPartition,
    fsync_all,
    make_dirs,
    remove_stale_temps,
    snapshot,
)
from kline_lake.lake.storage import LocalStorage, Storage, StorageLock, open_storage, split_url

__all__ = ["LakeWriter", "ObjectPartition", "SeriesKey", "write_parquet", "merge_rows",
           "read_data_file", "check_root", "check_lake_root", "is_object_store"]

# Row groups of at most this many rows: small enough that row-group statistics let
# DuckDB/Polars skip most of a day of trades, large enough to compress well.
ROW_GROUP_ROWS = 128 * 1024
# zstd level 1, not 3: on a month of 1m klines 12 ms instead of 17 ms per write for 11% more
# bytes (2.34 vs 2.10 MB); on a day of 1M aggTrades 158 vs 248 ms for 8% more bytes.
ZSTD_LEVEL = 1
# The klines' four volume columns are stored uncompressed: their digits are noise to zstd
# (ten real days of BTCUSDT 1m: only 15% smaller for volume and taker_buy_volume, 6% for
# the quote volumes) and compressing them was a third of the write: 3.6 -> 2.5 ms for the
# ten days (13.5 -> 9.5 ms for a month of 1m klines), files 7% larger (446 -> 479 KB),
# Polars reads them faster. Prices (which repeat from minute to minute) keep zstd: 2.3x.
UNCOMPRESSED_COLUMNS = frozenset({"volume", "quote_volume", "taker_buy_volume",
                                  "taker_buy_quote_volume"})
# No dictionary encoding: on ids, times and float columns it cost 3-7x the write time for
# larger files (measured on 800k agg trades); zstd captures repeated values anyway.
# Int64 and timestamp columns are DELTA_BINARY_PACKED: a 1m open_time column becomes one
# constant delta (76 KB -> 0.2 KB for ten real days of BTCUSDT 1m), ids and trade counts
# shrink too. Floats stay PLAIN. Measured on real BTCUSDT 1m klines, zstd 1, for ten days:
#   PLAIN everywhere               794 KB   (the lake's format before)
#   DELTA ints                     639 KB   write 14% faster than PLAIN
#   DELTA ints + BYTE_STREAM_SPLIT 722 KB   write 2x faster, but prices (which repeat from
#                                           minute to minute, which zstd finds in PLAIN
#                                           bytes) grow 50%, and Polars decodes BSS columns
#                                           at half the speed
# A lake is written once and read many times: the smaller, faster-to-read format wins.
# Also measured for the price columns (a month of 1m klines, best of 15): zstd -1 the
# same size and time as level 1; zstd -3 a little faster but 13% (synthetic) to 44% (eight
# real days) larger; lz4 or snappy 11-13% larger. None is worth a larger lake.
_PART = "__file"

FaultHook = Callable[[str], None]
CASE_COLLIDING_INTERVALS = frozenset({"1m", "1M"})
# A series lock object left by a writer on another host is broken after this long (a
# commit holds its lock for seconds); one left by a dead process on this host at once.
STALE_LOCK_S = 600.0


def write_parquet(table: pa.Table, target: Path, dataset: str,
                  fault_hook: FaultHook | None = None) -> None:
    """Atomically write `table` (already conformed, sorted) as the lake's Parquet flavour:
    zstd, DELTA_BINARY_PACKED int and time columns, row-group statistics, declared sort
    order, a CRC32 checksum per page (so ``verify`` and every rewrite detect flipped or
    zeroed bytes, which zstd alone can decode into plausible-looking garbage)."""
    before = (lambda _tmp: fault_hook("data-temp-written")) if fault_hook else None
    atomic_write_with(target, lambda tmp: write_parquet_file(table, tmp, dataset),
                      before_replace=before)


def write_parquet_file(table: pa.Table, dest: Path, dataset: str) -> None:
    """Write `table` to `dest` as the lake's Parquet flavour (no atomicity of its own:
    `write_parquet` and `ObjectPartition.write` wrap it)."""
    key_index = table.schema.get_field_index(KEYS[dataset])
    encodings = column_encodings(table.schema)
    pq.write_table(
        table, dest, **column_compression(table.schema),
        write_statistics=True, row_group_size=ROW_GROUP_ROWS, write_page_checksum=True,
        use_dictionary=False, column_encoding=encodings,
        sorting_columns=[pq.SortingColumn(key_index)],
    )


def column_encodings(schema: pa.Schema) -> dict[str, str]:
    """DELTA_BINARY_PACKED for the int64 and timestamp columns (the others stay PLAIN)."""
    return {field.name: "DELTA_BINARY_PACKED" for field in schema
            if pa.types.is_int64(field.type) or pa.types.is_timestamp(field.type)}


def column_compression(schema: pa.Schema) -> dict[str, dict]:
    """``pq.write_table``'s compression arguments: zstd at ``ZSTD_LEVEL`` for every column
    but the `UNCOMPRESSED_COLUMNS`, which are written uncompressed."""
    codecs = {f.name: "none" if f.name in UNCOMPRESSED_COLUMNS else "zstd" for f in schema}
    return {"compression": codecs,
            "compression_level": {name: ZSTD_LEVEL for name, c in codecs.items() if c == "zstd"}}


def read_data_file(path: Path | pa.NativeFile, dataset: str, name: str | None = None) -> pa.Table:
    """Read one lake data file (a path, or an object's bytes in a ``pa.BufferReader``
    named `name`) in the dataset schema; LakeError naming the file if it is unreadable
    or a page fails its checksum (a rewrite must not launder corrupted rows into a
    freshly checksummed file)."""
    name = str(path) if name is None else name
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(f"cannot read lake file {name}: {exc}") from exc
    try:
        return conform(table, dataset)
    except InputError as exc:
        raise LakeError(f"lake file {name} does not match the {dataset} schema: {exc}") from exc


def merge_rows(tables: list[pa.Table], dataset: str) -> pa.Table:
    """Concatenate, keep the last occurrence of each key (later tables win), sort by key."""
    key = KEYS[dataset]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return SCHEMAS[dataset].empty_table()
    if _already_ordered(tables, key):  # the common append: no hashing, no sort
        return conform(pa.concat_tables(tables), dataset)
    frame = pl.from_arrow(pa.concat_tables(tables))
    frame = frame.unique(subset=[key], keep="last", maintain_order=True).sort(key)
    return conform(frame.to_arrow(), dataset)


def _already_ordered(tables: list[pa.Table], key: str) -> bool:
    """True when each table's keys strictly increase and each table starts after the
    previous one ends, so concatenation is already unique and sorted."""
    last = None
    for table in tables:
        column = table.column(key)
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        values = column.to_numpy()
        if (last is not None and values[0] <= last) or (len(values) > 1 and (np.diff(values) <= 0).any()):
            return False
        last = values[-1]
    return True


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


def split_by_target(table: pa.Table, dataset: str) -> dict[tuple[int, int, str], pa.Table]:
    """Group rows by their (year, month, file name) destination."""
    time_col = TIME_COLUMNS[dataset]
    single = _single_target(table, dataset)
    if single is not None:  # the common case (one archive file): no grouping, no copy
        return {single: table}
    frame = pl.from_arrow(table.select([time_col])).with_row_index("__row")
    ts = pl.col(time_col)
    name = (ts.dt.strftime("%Y-%m-%d") + ".parquet") if dataset in layout.DAILY_FILE_DATASETS \
        else pl.lit(layout.MONTH_FILE)
    frame = frame.with_columns(ts.dt.year().alias("y"), ts.dt.month().alias("m"), name.alias(_PART))
    out = {}
    for (year, month, fname), group in frame.group_by(["y", "m", _PART], maintain_order=True):
        out[(int(year), int(month), str(fname))] = table.take(group["__row"].to_arrow())
    return out


def _single_target(table: pa.Table, dataset: str) -> tuple[int, int, str] | None:
    """The one (year, month, file name) all rows go to, or None if they span several."""
    if not table.num_rows:
        return None
    bounds = pc.min_max(table.column(TIME_COLUMNS[dataset]).cast(pa.int64()))
    lo_us, hi_us = bounds["min"].as_py(), bounds["max"].as_py()
    lo_ym, hi_ym = year_month(lo_us), year_month(hi_us)
    lo_name, hi_name = layout.file_name(dataset, lo_us), layout.file_name(dataset, hi_us)
    if lo_ym != hi_ym or lo_name != hi_name:
        return None
    return (lo_ym[0], lo_ym[1], lo_name)


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


class ObjectPartition:
    """A year/month partition on an object store: `prefix` (its key) in `storage`.

    The object counterpart of a partition directory for `rewrite_partition` and
    `replace_partition`: each file is built in a local temp directory and sent with one
    PUT, so readers see the old object or the new one, never part of one.
    """

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage, self.prefix = storage, prefix.strip("/")

    def __repr__(self) -> str:
        return f"ObjectPartition({self.storage.uri(self.prefix)!r})"

    def names(self) -> list[str]:
        """The partition's ``*.parquet`` object names (sorted)."""
        cut = len(self.prefix) + 1
        return sorted(k[cut:] for k in self.storage.list_files(self.prefix)
                      if "/" not in k[cut:] and k.endswith(".parquet")
                      and not k[cut:].startswith("."))

    def read(self, name: str, dataset: str) -> pa.Table:
        rel = f"{self.prefix}/{name}"
        return read_data_file(pa.BufferReader(self.storage.read_bytes(rel)), dataset,
                              name=self.storage.uri(rel))

    def write(self, name: str, table: pa.Table, dataset: str,
              fault_hook: FaultHook | None = None) -> None:
        with tempfile.TemporaryDirectory(prefix="kline-lake-") as tmp:
            local = Path(tmp) / name
            write_parquet_file(table, local, dataset)
            if fault_hook is not None:
                fault_hook("data-temp-written")
            self.storage.put_file(f"{self.prefix}/{name}", local)

    def remove(self, name: str) -> None:
        self.storage.delete(f"{self.prefix}/{name}")


def rewrite_partition(pdir: Path | ObjectPartition, dataset: str,
                      new_by_file: dict[str, pa.Table] | dict[str, list[pa.Table]],
                      fault_hook: FaultHook | None = None) -> list[str]:
    """Merge `new_by_file` ({canonical file name: rows, or a list of tables}) into the
    partition `pdir` (a directory, or an `ObjectPartition`), under the series lock.

    If the partition holds only canonical files, only the targeted files are read and
    rewritten. If it holds other ``*.parquet`` files (foreign or pre-compaction), the whole
    partition is normalised: all rows merged and redistributed into canonical files, then
    the other files removed (after the canonical ones are durable). Returns the names of
    the files actually (re)written.
    """
    existing = _prepare(pdir)
    if any(not layout.is_canonical_file(dataset, n) for n in existing):
        stored = [_read(pdir, n, dataset) for n in existing]
        merged = merge_rows([*stored, *(t for v in new_by_file.values() for t in _listed(v))], dataset)
        return replace_partition(pdir, dataset, merged, fault_hook)[0]
    written = []
    for fname in sorted(new_by_file):
        old = _read(pdir, fname, dataset) if fname in existing else None
        merged = merge_rows(([] if old is None else [old]) + _listed(new_by_file[fname]), dataset)
        if old is not None and merged.equals(old):
            continue
        _write(pdir, fname, merged, dataset, fault_hook)
        written.append(fname)
        if fault_hook is not None:
            fault_hook("data-replaced")
    return written


def replace_partition(pdir: Path | ObjectPartition, dataset: str, rows: pa.Table,
                      fault_hook: FaultHook | None = None) -> tuple[list[str], list[str]]:
    """Make the partition `pdir` (a directory, or an `ObjectPartition`) hold exactly
    `rows` (merged: unique sorted keys), in its canonical file(s). The one way the lake
    rewrites a whole partition: used by writes into non-canonical partitions, `compact`
    and the archive refresh.

    A canonical file that already holds exactly its share is left alone; files the new
    layout does not have (foreign, pre-compaction, emptied days) are removed only after
    every new file is durable, so a crash leaves duplicates (which `verify` reports and a
    rerun removes), never a loss. The caller holds the series lock. Returns (files
    written, files the partition holds afterwards).
    """
    existing = _prepare(pdir)
    targets = ({fname: part for (_, _, fname), part in split_by_target(rows, dataset).items()}
               if rows.num_rows else {})
    if targets and isinstance(pdir, Path) and not pdir.is_dir():
        ensure_dir(pdir)
    written = []
    for fname in sorted(targets):
        if (fname in existing and layout.is_canonical_file(dataset, fname)
                and _read(pdir, fname, dataset).equals(targets[fname])):
            continue
        _write(pdir, fname, targets[fname], dataset, fault_hook)
        written.append(fname)
        if fault_hook is not None:
            fault_hook("data-replaced")
    for name in existing:  # only after every new file is durable
        if name not in targets:
            if isinstance(pdir, ObjectPartition):
                pdir.remove(name)
            else:
                (pdir / name).unlink(missing_ok=True)
    return written, sorted(targets)


def _prepare(pdir: Path | ObjectPartition) -> list[str]:
    """The partition's ``*.parquet`` names, after removing a crashed writer's temp files
    (local only: an object store never shows a half-sent object)."""
    if isinstance(pdir, ObjectPartition):
        return pdir.names()
    remove_stale_temps(pdir)  # orphans only: a live writer's staged temps stay
    return sorted(p.name for p in pdir.glob("*.parquet")) if pdir.is_dir() else []


def _read(pdir: Path | ObjectPartition, name: str, dataset: str) -> pa.Table:
    if isinstance(pdir, ObjectPartition):
        return pdir.read(name, dataset)
    return read_data_file(pdir / name, dataset)


def _write(pdir: Path | ObjectPartition, name: str, table: pa.Table, dataset: str,
           fault_hook: FaultHook | None) -> None:
    if isinstance(pdir, ObjectPartition):
        pdir.write(name, table, dataset, fault_hook)
    else:
        write_parquet(table, pdir / name, dataset, fault_hook)


def _listed(rows: pa.Table | list[pa.Table]) -> list[pa.Table]:
    return [rows] if isinstance(rows, pa.Table) else list(rows)
