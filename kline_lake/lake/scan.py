"""Finding and reading a series' files: partition pruning and the read-time invariants.

`series_files` lists the data files whose year/month partition (and, for daily files,
day) overlaps a range from directory names alone; `scan_series` is a Polars LazyFrame over
them, filtered to ``[start_us, end_us)`` with the lake's invariants (unique sorted keys)
restored when a partition holds uncompacted files. Everything that reads rows of one
series (catalog, gaps, resample, the backtester) goes through here.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from kline_lake.core.schemas import KEYS, SCHEMAS, TIME_COLUMNS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import US_PER_DAY, month_start_us
from kline_lake.errors import InputError
from kline_lake.lake import layout
from kline_lake.lake.storage import LocalStorage, Storage


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


def object_series_files(storage: Storage, key: SeriesKey, start_us: int | None = None,
                        end_us: int | None = None) -> list[str]:
    """`series_files` on an object store: keys (relative to the lake root) of the series'
    data objects whose partition overlaps the range, from one listing of its prefix."""
    prefix = layout.series_dir(Path(), key).as_posix()
    months: dict[tuple[int, int], list[str]] = {}
    for rel in storage.list_files(prefix):
        parts = rel[len(prefix) + 1:].split("/")
        if (len(parts) != 3 or not parts[0].startswith("year=")
                or not parts[1].startswith("month=") or not parts[2].endswith(".parquet")):
            continue
        try:
            months.setdefault((int(parts[0][5:]), int(parts[1][6:])), []).append(rel)
        except ValueError:
            continue  # not ours; verify() reports it
    return [rel for ym in sorted(layout.months_overlapping(start_us, end_us, list(months)))
            for rel in sorted(months[ym])
            if not _day_file_outside(rel.rsplit("/", 1)[1], start_us, end_us)]


def pruned_files(root: Path | Storage, key: SeriesKey, start_us: int | None = None,
                 end_us: int | None = None) -> list[str]:
    """`series_files` (as strings) of a local lake or `object_series_files` of an object
    store: the series' data files whose partition overlaps the range."""
    if isinstance(root, LocalStorage):
        root = root.path
    if isinstance(root, Storage):
        return object_series_files(root, key, start_us, end_us)
    return [str(p) for p in series_files(Path(root), key, start_us, end_us)]


def require_object_series(storage: Storage, key: SeriesKey) -> None:
    """InputError unless the object-store lake holds `key` (data or coverage record)."""
    prefix = layout.series_dir(Path(), key).as_posix()
    if storage.list_files(prefix) or storage.exists(layout.coverage_path(Path(), key).as_posix()):
        return
    what = key.symbol + (f" {key.interval}" if key.interval else "")
    raise InputError(f"no {key.market} {key.dataset} for {what} in the lake {storage.uri()}")


POLARS_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "http", "https"})


def _scan_objects(storage: Storage, keys: list[str]) -> pl.LazyFrame:
    """Polars reads the object stores it knows in place; others (memory://) through
    fsspec, object by object."""
    if storage.scheme in POLARS_SCHEMES:
        return pl.scan_parquet([storage.uri(k) for k in keys], hive_partitioning=False,
                               storage_options=storage.storage_options())
    return pl.concat([pl.read_parquet(io.BytesIO(storage.read_bytes(k))) for k in keys]).lazy()


def scan_series(root: Path | Storage, key: SeriesKey, start_us: int | None = None,
                end_us: int | None = None) -> pl.LazyFrame:
    """A LazyFrame over the pruned files of a series, filtered to ``[start_us, end_us)``,
    sorted by the dataset key and unique on it. `root` is a lake directory or an
    object-store `kline_lake.lake.storage.Storage`."""
    if isinstance(root, Storage) and not isinstance(root, LocalStorage):
        keys = object_series_files(root, key, start_us, end_us)
        names = [k.rsplit("/", 1)[1] for k in keys]
        frame = _scan_objects(root, keys) if keys else None
    else:
        local = root.path if isinstance(root, LocalStorage) else root
        files = series_files(local, key, start_us, end_us)
        names = [f.name for f in files]
        frame = pl.scan_parquet([str(f) for f in files], hive_partitioning=False) if files \
            else None
    if frame is None:
        return empty_frame(key.dataset).lazy()
    if any(not layout.is_canonical_file(key.dataset, name) for name in names):
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
