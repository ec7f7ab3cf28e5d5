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
  record, all under the series lock. A crash at any point leaves the old state, or rows
  without coverage (which a rerun refetches and merges idempotently), never coverage
  without rows. Orphaned ``.*.tmp`` files are invisible to ``*.parquet`` globs and are
  removed by the next commit to that partition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

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
from kline_lake.lake import coverage, layout
from kline_lake.lake.atomic import atomic_write_bytes, atomic_write_with, ensure_dir
from kline_lake.lake.lock import DEFAULT_TIMEOUT_S, FileLock

__all__ = ["LakeWriter", "SeriesKey", "write_parquet", "merge_rows", "read_data_file"]

# Row groups of at most this many rows: small enough that row-group statistics let
# DuckDB/Polars skip most of a day of trades, large enough to compress well.
ROW_GROUP_ROWS = 128 * 1024
# zstd level 1, not 3: on a month of 1m klines 12 ms instead of 17 ms per write for 11% more
# bytes (2.34 vs 2.10 MB); on a day of 1M aggTrades 158 vs 248 ms for 8% more bytes.
ZSTD_LEVEL = 1
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
_PART = "__file"

FaultHook = Callable[[str], None]
CASE_COLLIDING_INTERVALS = frozenset({"1m", "1M"})


def write_parquet(table: pa.Table, target: Path, dataset: str,
                  fault_hook: FaultHook | None = None) -> None:
    """Atomically write `table` (already conformed, sorted) as the lake's Parquet flavour:
    zstd, DELTA_BINARY_PACKED int and time columns, row-group statistics, declared sort
    order, a CRC32 checksum per page (so ``verify`` and every rewrite detect flipped or
    zeroed bytes, which zstd alone can decode into plausible-looking garbage)."""
    key_index = table.schema.get_field_index(KEYS[dataset])
    encodings = column_encodings(table.schema)

    def _write(tmp: Path) -> None:
        pq.write_table(
            table, tmp, compression="zstd", compression_level=ZSTD_LEVEL,
            write_statistics=True, row_group_size=ROW_GROUP_ROWS, write_page_checksum=True,
            use_dictionary=False, column_encoding=encodings,
            sorting_columns=[pq.SortingColumn(key_index)],
        )

    before = (lambda _tmp: fault_hook("data-temp-written")) if fault_hook else None
    atomic_write_with(target, _write, before_replace=before)


def column_encodings(schema: pa.Schema) -> dict[str, str]:
    """DELTA_BINARY_PACKED for the int64 and timestamp columns (the others stay PLAIN)."""
    return {field.name: "DELTA_BINARY_PACKED" for field in schema
            if pa.types.is_int64(field.type) or pa.types.is_timestamp(field.type)}


def read_data_file(path: Path, dataset: str) -> pa.Table:
    """Read one lake data file in the dataset schema; LakeError naming the file if it is
    unreadable or a page fails its checksum (a rewrite must not launder corrupted rows
    into a freshly checksummed file)."""
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(f"cannot read lake file {path}: {exc}") from exc
    try:
        return conform(table, dataset)
    except InputError as exc:
        raise LakeError(f"lake file {path} does not match the {dataset} schema: {exc}") from exc


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

    `lock_timeout_s` bounds the wait for another process holding a series lock.
    `fault_hook` is a test seam called with a stage name ("data-temp-written",
    "data-replaced", "before-coverage") so tests can kill the process at each point.
    """

    def __init__(self, root: str | Path, *, lock_timeout_s: float | None = DEFAULT_TIMEOUT_S,
                 fault_hook: FaultHook | None = None) -> None:
        self.root = check_root(Path(root))
        self.lock_timeout_s = lock_timeout_s
        self.fault_hook = fault_hook

    # ------------------------------------------------------------------ data
    def commit(self, key: SeriesKey, table: pa.Table,
               covered: Iterable[tuple[int, int]] = ()) -> None:
        """Merge `table` into the series and record `covered` (half-open us ranges).

        Durable on return. Rows are written before the coverage record, under the lock.
        """
        table = conform(table, key.dataset)
        ranges = rg.validate(covered)
        with self.lock(key):
            self._write_rows(key, table)
            if ranges:
                self._hook("before-coverage")
                path = layout.coverage_path(self.root, key)
                coverage.write(path, rg.union(coverage.read(path), ranges))

    def _hook(self, stage: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(stage)

    def _write_rows(self, key: SeriesKey, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if key.interval in CASE_COLLIDING_INTERVALS:
            check_exact_case(layout.series_dir(self.root, key))
        by_month: dict[tuple[int, int], dict[str, pa.Table]] = {}
        for (year, month, fname), part in split_by_target(table, key.dataset).items():
            by_month.setdefault((year, month), {})[fname] = part
        for (year, month), new_by_file in sorted(by_month.items()):
            pdir = layout.partition_dir(self.root, key, year, month)
            rewrite_partition(pdir, key.dataset, new_by_file, self.fault_hook)

    def lock(self, key: SeriesKey) -> FileLock:
        """The inter-process lock of one series (a context manager)."""
        return FileLock(layout.lock_path(self.root, key), timeout_s=self.lock_timeout_s)

    # -------------------------------------------------------------- coverage
    def covered(self, key: SeriesKey) -> list[tuple[int, int]]:
        """Merged, sorted half-open us ranges known to be completely stored."""
        return coverage.read(layout.coverage_path(self.root, key))

    def missing(self, key: SeriesKey, start_us: int, end_us: int) -> list[tuple[int, int]]:
        """The parts of ``[start_us, end_us)`` not covered yet (what a rerun must fetch)."""
        if start_us >= end_us:
            return []
        return rg.subtract(int(start_us), int(end_us), self.covered(key))

    def last_key_value(self, key: SeriesKey) -> int | None:
        """The largest stored key (agg_id, or a time key in us), or None if the series is
        empty. Reads only the key column of the latest non-empty partition."""
        key_col = KEYS[key.dataset]
        for pdir in reversed(list_partitions(self.root, key)):
            files = sorted(pdir.glob("*.parquet"))
            best = None
            for path in files:
                try:
                    column = pq.read_table(path, columns=[key_col]).column(key_col)
                except (OSError, pa.ArrowException) as exc:
                    raise LakeError(f"cannot read lake file {path}: {exc}") from exc
                if len(column):
                    if pa.types.is_timestamp(column.type):
                        column = column.cast(pa.int64())
                    value = pc.max(column).as_py()
                    best = value if best is None else max(best, value)
            if best is not None:
                return int(best)
        return None

    # --------------------------------------------------------- exchange info
    def save_exchange_info(self, market: str, info: dict) -> None:
        """Cache a market's exchangeInfo JSON under ``_meta/exchange_info/<market>.json``."""
        path = layout.exchange_info_path(self.root, market)
        atomic_write_bytes(path, json.dumps(info, sort_keys=True).encode("utf-8"))

    def load_exchange_info(self, market: str) -> dict | None:
        """The cached exchangeInfo of `market`, or None if never saved."""
        path = layout.exchange_info_path(self.root, market)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:
            raise LakeError(f"cannot read cached exchangeInfo {path}: {exc}") from exc


def check_exact_case(series_dir: Path) -> None:
    """LakeError if the filesystem folded `series_dir`'s name onto another case.

    ``interval=1m`` and ``interval=1M`` (the DESIGN.md layout) are one directory on a
    case-insensitive filesystem (macOS and Windows defaults); writing both would mix minute
    and month klines in one file, so the second one is refused instead.
    """
    from kline_lake.lake.atomic import ensure_dir

    ensure_dir(series_dir)
    if series_dir.name not in os.listdir(series_dir.parent):
        raise LakeError(
            f"{series_dir}: this filesystem is case-insensitive and already holds another "
            f"interval under the same name (1m vs 1M); use a case-sensitive lake volume")


def check_root(root: Path) -> Path:
    """Validate a lake root without creating it: InputError if it (or an ancestor) is a
    file, LakeError if it cannot be created for lack of permission."""
    if root.exists() and not root.is_dir():
        raise InputError(f"lake path {root} exists and is not a directory")
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"lake path {root}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LakeError(f"lake path {root} is not writable ({probe})")
    return root


def list_partitions(root: Path, key: SeriesKey) -> list[Path]:
    """The existing year/month partition directories of a series, oldest first."""
    base = layout.series_dir(root, key)
    out = []
    for ydir in sorted(base.glob("year=*")):
        out.extend(sorted(p for p in ydir.glob("month=*") if p.is_dir()))
    return out


def rewrite_partition(pdir: Path, dataset: str, new_by_file: dict[str, pa.Table],
                      fault_hook: FaultHook | None = None) -> list[str]:
    """Merge `new_by_file` ({canonical file name: rows}) into the partition `pdir`.

    If the partition holds only canonical files, only the targeted files are read and
    rewritten. If it holds other ``*.parquet`` files (foreign or pre-compaction), the whole
    partition is normalised: all rows merged and redistributed into canonical files, then
    the other files removed (after the canonical ones are durable). Returns the names of
    the files actually (re)written.
    """
    _remove_stale_temps(pdir)
    existing = sorted(p.name for p in pdir.glob("*.parquet")) if pdir.is_dir() else []
    if any(not layout.is_canonical_file(dataset, n) for n in existing):
        stored = [read_data_file(pdir / n, dataset) for n in existing]
        merged = merge_rows([*stored, *new_by_file.values()], dataset)
        return replace_partition(pdir, dataset, merged, fault_hook)[0]
    written = []
    for fname in sorted(new_by_file):
        path = pdir / fname
        old = read_data_file(path, dataset) if fname in existing else None
        merged = merge_rows([new_by_file[fname]] if old is None else [old, new_by_file[fname]],
                            dataset)
        if old is not None and merged.equals(old):
            continue
        write_parquet(merged, path, dataset, fault_hook)
        written.append(fname)
        if fault_hook is not None:
            fault_hook("data-replaced")
    return written


def replace_partition(pdir: Path, dataset: str, rows: pa.Table,
                      fault_hook: FaultHook | None = None) -> tuple[list[str], list[str]]:
    """Make the partition `pdir` hold exactly `rows` (merged: unique sorted keys), in its
    canonical file(s). The one way the lake rewrites a whole partition: used by writes
    into non-canonical partitions, `compact` and the archive refresh.

    A canonical file that already holds exactly its share is left alone; files the new
    layout does not have (foreign, pre-compaction, emptied days) are removed only after
    every new file is durable, so a crash leaves duplicates (which `verify` reports and a
    rerun removes), never a loss. The caller holds the series lock. Returns (files
    written, files the partition holds afterwards).
    """
    _remove_stale_temps(pdir)
    existing = sorted(p.name for p in pdir.glob("*.parquet")) if pdir.is_dir() else []
    targets = ({fname: part for (_, _, fname), part in split_by_target(rows, dataset).items()}
               if rows.num_rows else {})
    if targets and not pdir.is_dir():
        ensure_dir(pdir)
    written = []
    for fname in sorted(targets):
        path = pdir / fname
        if (fname in existing and layout.is_canonical_file(dataset, fname)
                and read_data_file(path, dataset).equals(targets[fname])):
            continue
        write_parquet(targets[fname], path, dataset, fault_hook)
        written.append(fname)
        if fault_hook is not None:
            fault_hook("data-replaced")
    for name in existing:  # only after every new file is durable
        if name not in targets:
            (pdir / name).unlink(missing_ok=True)
    return written, sorted(targets)


def _remove_stale_temps(pdir: Path) -> None:
    for stale in pdir.glob(f".*{layout.TMP_SUFFIX}"):
        stale.unlink(missing_ok=True)  # orphaned by a crashed writer; invisible to readers
