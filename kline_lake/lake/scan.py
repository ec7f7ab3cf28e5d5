"""Finding and reading a series' files: partition pruning and the read-time invariants.

`series_files` lists the data files whose year/month partition (and, for daily files,
day) overlaps a range from directory names alone; `scan_series` is a Polars LazyFrame over
them, filtered to ``[start_us, end_us)`` with the lake's invariants (unique sorted keys)
restored when a partition holds uncompacted files. Everything that reads rows of one
series (catalog, gaps, resample, the backtester) goes through here.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from kline_lake.core.schemas import KEYS, SCHEMAS, TIME_COLUMNS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import US_PER_DAY, month_start_us
from kline_lake.errors import InputError
from kline_lake.lake import layout


def check_range(start_us: int | None, end_us: int | None) -> None:
    if start_us is not None and end_us is not None and start_us > end_us:
        raise InputError("start is after end")


def empty_frame(dataset: str) -> pl.DataFrame:
    """An empty Polars frame with the dataset's columns and types."""
    return pl.from_arrow(SCHEMAS[dataset].empty_table())


def series_files(root: Path, key: SeriesKey, start_us: int | None = None,
                 end_us: int | None = None) -> list[Path]:
    """Data files of a series whose partition (and, for daily files, day) overlaps
    ``[start_us, end_us)``, in key order. Only directory names are read: no file is opened."""
    base = layout.series_dir(root, key)
    months = []
    for ydir in base.glob("year=*"):
        for mdir in ydir.glob("month=*"):
            try:
                months.append((int(ydir.name[5:]), int(mdir.name[6:])))
            except ValueError:
                continue  # not ours; verify() reports it
    files: list[Path] = []
    for year, month in sorted(layout.months_overlapping(start_us, end_us, months)):
        pdir = layout.partition_dir(root, key, year, month)
        for path in sorted(pdir.glob("*.parquet")):
            if _day_file_outside(path.name, start_us, end_us):
                continue
            files.append(path)
    return files


def _day_file_outside(name: str, start_us: int | None, end_us: int | None) -> bool:
    day = layout.day_of_file(name)
    if day is None:
        return False
    try:
        day_start = month_start_us(*day[:2]) + (day[2] - 1) * US_PER_DAY
    except ValueError:
        return False
    day_end = day_start + US_PER_DAY
    return (end_us is not None and day_start >= end_us) or (
        start_us is not None and day_end <= start_us)


def scan_series(root: Path, key: SeriesKey, start_us: int | None = None,
                end_us: int | None = None) -> pl.LazyFrame:
    """A LazyFrame over the pruned files of a series, filtered to ``[start_us, end_us)``,
    sorted by the dataset key and unique on it."""
    files = series_files(root, key, start_us, end_us)
    if not files:
        return empty_frame(key.dataset).lazy()
    frame = pl.scan_parquet([str(f) for f in files], hive_partitioning=False)
    if any(not layout.is_canonical_file(key.dataset, f.name) for f in files):
        # a partition holds foreign/uncompacted files: their rows may overlap or be out of
        # order, so restore the lake's invariants (unique sorted keys) at read time
        frame = frame.unique(subset=[KEYS[key.dataset]], keep="last", maintain_order=True) \
            .sort(KEYS[key.dataset])
    time_col = pl.col(TIME_COLUMNS[key.dataset])
    if start_us is not None:
        frame = frame.filter(time_col >= pl.lit(start_us).cast(pl.Datetime("us", "UTC")))
    if end_us is not None:
        frame = frame.filter(time_col < pl.lit(end_us).cast(pl.Datetime("us", "UTC")))
    return frame
