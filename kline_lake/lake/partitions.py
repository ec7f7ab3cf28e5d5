"""Rows into partitions: merged with what is stored, split by destination file, and the
one-step rewrite of a partition (a directory, or an `ObjectPartition` on an object store)
under the series lock.

`kline_lake.lake.writer.LakeWriter.commit` stages its files outside the lock and uses
`rewrite_partition` only for a partition another writer changed meanwhile (and for every
object-store partition); `replace_partition` is the one way the lake rewrites a whole
partition (`compact`, the archive refresh, non-canonical partitions).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from kline_lake.core.schemas import KEYS, SCHEMAS, TIME_COLUMNS, conform
from kline_lake.core.timeutil import year_month
from kline_lake.lake import layout
from kline_lake.lake.atomic import ensure_dir
from kline_lake.lake.data_files import FaultHook, read_data_file, write_parquet, write_parquet_file
from kline_lake.lake.staging import remove_stale_temps
from kline_lake.lake.storage import Storage

_PART = "__file"


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
