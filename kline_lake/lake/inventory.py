"""What the lake holds, from Parquet footers only (no data pages are read).

One row per market/dataset/symbol/interval: first and last time (the dataset's time column,
from row-group statistics), rows, files, bytes, and the coverage record's extent
(``covered_from``/``covered_to``) with the holes inside it: ``coverage_holes`` never-fetched
stretches between covered ranges, ``coverage_hole_days`` their total span (null without a
coverage record). An extent hides its holes; ``kline-lake gaps`` lists them.
Unreadable files are counted in ``unreadable_files`` rather than raising; ``verify`` says why.
On an object store (a `kline_lake.lake.storage.Storage` root) the same table comes from one
listing and each object's footer (ranged reads), no data pages either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from kline_lake.core.markets import DATASETS, MARKETS
from kline_lake.core.schemas import TIME_COLUMNS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import US_PER_DAY
from kline_lake.errors import LakeError
from kline_lake.lake import coverage, layout
from kline_lake.lake.storage import LocalStorage, Storage

INVENTORY_SCHEMA = {
    "market": pl.String,
    "dataset": pl.String,
    "symbol": pl.String,
    "interval": pl.String,
    "first_time": pl.Datetime("us", "UTC"),
    "last_time": pl.Datetime("us", "UTC"),
    "rows": pl.Int64,
    "files": pl.Int64,
    "bytes": pl.Int64,
    "unreadable_files": pl.Int64,
    "covered_from": pl.Datetime("us", "UTC"),
    "covered_to": pl.Datetime("us", "UTC"),
    "coverage_holes": pl.Int64,
    "coverage_hole_days": pl.Float64,
}


@dataclass
class _Acc:
    first_us: int | None = None
    last_us: int | None = None
    rows: int = 0
    files: int = 0
    bytes: int = 0
    unreadable: int = 0
    paths: list[Path] = field(default_factory=list)


def iter_data_files(root: Path) -> Iterator[tuple[Path, tuple[SeriesKey, int, int] | None]]:
    """Every ``*.parquet`` under the market/dataset trees with its parsed series (or None
    when the path does not fit the layout), in path order."""
    for market in MARKETS:
        for dataset in DATASETS:
            ddir = layout.dataset_dir(root, market, dataset)
            if not ddir.is_dir():
                continue
            for path in sorted(ddir.rglob("*.parquet")):
                yield path, layout.series_key_of_file(root, path)


def footer_time_range(path: Path | Any, dataset: str) -> tuple[int, int | None, int | None]:
    """(rows, min_us, max_us) of a file's time column from its footer statistics; `path`
    is a local path or an open binary file (an object store's).

    LakeError if the footer cannot be read.
    """
    try:
        meta = pq.ParquetFile(path).metadata
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise LakeError(f"cannot read Parquet footer of {path}: {exc}") from exc
    time_col = TIME_COLUMNS[dataset]
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if time_col not in names:
        raise LakeError(f"{path}: no {time_col} column")
    idx = names.index(time_col)
    lo = hi = None
    for rg in range(meta.num_row_groups):
        column = meta.row_group(rg).column(idx)
        stats = column.statistics
        if meta.row_group(rg).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max:
            raise LakeError(f"{path}: row group {rg} has no statistics for {time_col}")
        lo = stats.min_raw if lo is None else min(lo, stats.min_raw)
        hi = stats.max_raw if hi is None else max(hi, stats.max_raw)
    return meta.num_rows, lo, hi


def coverage_holes(ranges: list[tuple[int, int]]) -> dict[str, int | float | None]:
    """How many never-fetched stretches lie inside ``[covered_from, covered_to)`` of merged
    covered `ranges`, and their total span in days (None for both without a record)."""
    if not ranges:
        return {"coverage_holes": None, "coverage_hole_days": None}
    span_us = sum(b[0] - a[1] for a, b in zip(ranges[:-1], ranges[1:], strict=True))
    return {"coverage_holes": len(ranges) - 1, "coverage_hole_days": span_us / US_PER_DAY}


def _local_files(root: Path) -> Iterator[tuple[SeriesKey, int, Callable[[], Any]]]:
    for path, parsed in iter_data_files(root):
        if parsed is not None:  # misplaced: verify() names it
            yield parsed[0], path.stat().st_size, (lambda p=path: p)


def _object_files(storage: Storage) -> Iterator[tuple[SeriesKey, int, Callable[[], Any]]]:
    for rel in storage.list_files():
        if rel.startswith(layout.META_DIR + "/") or not rel.endswith(".parquet"):
            continue
        parsed = layout.series_key_of_file(Path(), Path(rel))
        if parsed is not None and not Path(rel).name.startswith("."):
            yield parsed[0], storage.size(rel), (lambda r=rel: storage.open_input(r))


def inventory(root: Path | Storage) -> pl.DataFrame:
    """The inventory table of the lake at `root` (see the module docstring)."""
    if isinstance(root, LocalStorage):
        root = root.path
    files = _object_files(root) if isinstance(root, Storage) else _local_files(Path(root))
    accs: dict[SeriesKey, _Acc] = {}
    for key, size, source in files:
        acc = accs.setdefault(key, _Acc())
        acc.files += 1
        acc.bytes += size
        try:
            rows, lo, hi = footer_time_range(source(), key.dataset)
        except LakeError:
            acc.unreadable += 1
            continue
        acc.rows += rows
        if lo is not None:
            acc.first_us = lo if acc.first_us is None else min(acc.first_us, lo)
            acc.last_us = hi if acc.last_us is None else max(acc.last_us, hi)
    records = []
    for key in sorted(accs, key=lambda k: (k.market, k.dataset, k.symbol, k.interval or "")):
        acc = accs[key]
        try:
            ranges = coverage.read_at(root, key)
        except LakeError:
            ranges = []
        records.append({
            "market": key.market, "dataset": key.dataset, "symbol": key.symbol,
            "interval": key.interval, "first_time": acc.first_us, "last_time": acc.last_us,
            "rows": acc.rows, "files": acc.files, "bytes": acc.bytes,
            "unreadable_files": acc.unreadable,
            "covered_from": ranges[0][0] if ranges else None,
            "covered_to": ranges[-1][1] if ranges else None,
            **coverage_holes(ranges),
        })
    if not records:
        return pl.DataFrame(schema=INVENTORY_SCHEMA)
    frame = pl.DataFrame(records, schema_overrides={
        k: (pl.Int64 if isinstance(v, pl.Datetime) else v) for k, v in INVENTORY_SCHEMA.items()})
    return frame.with_columns(
        pl.col(c).cast(pl.Datetime("us", "UTC"))
        for c, t in INVENTORY_SCHEMA.items() if isinstance(t, pl.Datetime)
    )
