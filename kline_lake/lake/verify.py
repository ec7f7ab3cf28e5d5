"""Check the lake on disk and name every problem; never raise on a bad file.

Checks, per data file: readable Parquet whose page checksums match (the writer stores a
CRC32 per page; a file written before checksums existed has none to check), schema
(column names and types) equal to the dataset's, key column strictly increasing (sorted
and unique), every row's time column in the file's year/month partition (and day, for
daily files), values that a genuine row has (``sanity``: positive finite prices, OHLC
order, non-negative volumes, ...; each rule names its first offending row), path fits the
layout.
Per partition: no key in two files (a crashed compaction or a foreign file). Per series:
coverage record parseable; rows without any coverage record is a warning (a crash between
the data and coverage writes leaves exactly that, and a rerun repairs it). Leftover
``.*.tmp`` files are warnings (invisible to readers; the next commit removes them).

Errors make ``VerifyReport.ok`` false (and ``kline-lake verify`` exit 1); warnings do not.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kline_lake.core.markets import DATASETS, MARKETS
from kline_lake.core.schemas import KEYS, SCHEMAS, TIME_COLUMNS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import US_PER_DAY, month_end_us, month_start_us
from kline_lake.errors import LakeError
from kline_lake.lake import coverage, layout
from kline_lake.lake.inventory import iter_data_files
from kline_lake.lake.sanity import check_values, first_time_text


@dataclass(frozen=True)
class Problem:
    """One finding: the file it is about, a short kind, a sentence, and its severity."""

    path: str
    kind: str
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        return f"{self.severity}: {self.kind}: {self.path}: {self.message}"


@dataclass
class VerifyReport:
    """What ``verify`` found. ``ok`` is True when there are no errors."""

    root: str
    files_checked: int = 0
    rows_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, path: Path | str, kind: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(str(path), kind, message, severity))

    def summary(self) -> str:
        return (f"checked {self.files_checked} file(s), {self.rows_checked} row(s): "
                f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)")

    def to_dict(self) -> dict:
        return {"root": self.root, "ok": self.ok, "files_checked": self.files_checked,
                "rows_checked": self.rows_checked,
                "problems": [p.__dict__ for p in self.problems]}


def check_file(path: Path, key: SeriesKey, year: int, month: int,
               report: VerifyReport) -> np.ndarray | None:
    """Check one data file; returns its key values (int64) for cross-file checks."""
    schema = SCHEMAS[key.dataset]
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        where = locate_bad_page(path) if "checksum" in str(exc).lower() else None
        if where is not None:
            report.add(path, "checksum", f"page checksum mismatch (corrupted bytes) in {where}")
        else:
            report.add(path, "unreadable", f"not a readable Parquet file: {exc}")
        return None
    report.rows_checked += table.num_rows
    actual = {f.name: f.type for f in table.schema}
    wrong = [f"{f.name} ({actual.get(f.name, 'missing')} != {f.type})"
             for f in schema if actual.get(f.name) != f.type]
    extra = [n for n in actual if n not in schema.names]
    if wrong or extra:
        report.add(path, "schema", "schema mismatch: " + "; ".join(
            wrong + [f"unexpected column {n}" for n in extra]))
        if KEYS[key.dataset] not in actual or TIME_COLUMNS[key.dataset] not in actual:
            return None
    keys = _as_int64(table.column(KEYS[key.dataset]))
    duplicates = len(keys) - len(np.unique(keys))
    if duplicates:
        report.add(path, "duplicate-keys",
                   f"{duplicates} duplicate {KEYS[key.dataset]} value(s)")
    if (np.diff(keys) < 0).any():
        report.add(path, "unsorted", f"{KEYS[key.dataset]} is not sorted")
    times = _as_int64(table.column(TIME_COLUMNS[key.dataset]))
    lo, hi = month_start_us(year, month), month_end_us(year, month)
    day = layout.day_of_file(path.name) if key.dataset in layout.DAILY_FILE_DATASETS else None
    if day is not None and day[:2] == (year, month):
        lo = month_start_us(year, month) + (day[2] - 1) * US_PER_DAY
        hi = lo + US_PER_DAY
    outside = int(((times < lo) | (times >= hi)).sum())
    if outside:
        report.add(path, "misplaced-rows",
                   f"{outside} row(s) outside the partition year={year} month={month:02d}"
                   + (f" day={day[2]:02d}" if day else ""))
    if not wrong:
        for bad in check_values(table, key.dataset, key.interval):
            report.add(path, "bad-values", bad.message(
                TIME_COLUMNS[key.dataset], first_time_text(table, key.dataset, bad.first_row)))
    if not layout.is_canonical_file(key.dataset, path.name):
        report.add(path, "extra-file", "not a canonical file name (run `kline-lake compact`)",
                   severity="warning")
    return keys


def locate_bad_page(path: Path) -> str | None:
    """Which column chunk of `path` fails its page checksums, as "column C, row group G
    (rows A..B)"; None if no single chunk fails on its own."""
    try:
        pfile = pq.ParquetFile(path, page_checksum_verification=True)
        meta = pfile.metadata
    except (OSError, pa.ArrowException):
        return None
    first_row = 0
    for group in range(meta.num_row_groups):
        rows = meta.row_group(group).num_rows
        for name in pfile.schema_arrow.names:
            try:
                pfile.read_row_group(group, columns=[name])
            except (OSError, pa.ArrowException):
                return (f"column {name}, row group {group} "
                        f"(rows {first_row}..{first_row + rows - 1})")
        first_row += rows
    return None


def _as_int64(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_numpy().astype(np.int64, copy=False)


def _check_partition_overlap(files: list[tuple[Path, np.ndarray]], report: VerifyReport) -> None:
    if len(files) < 2:
        return
    seen = np.concatenate([k for _, k in files])
    _, counts = np.unique(seen, return_counts=True)
    dup = int((counts > 1).sum())
    if dup:
        names = ", ".join(p.name for p, _ in files)
        report.add(files[0][0].parent, "duplicate-keys",
                   f"{dup} key(s) appear in more than one file ({names})")


def _check_coverage(root: Path, series: set[SeriesKey], report: VerifyReport) -> None:
    base = layout.meta_dir(root) / "coverage"
    for path in sorted(base.rglob("*.json")) if base.is_dir() else []:
        try:
            coverage.read(path)
        except LakeError as exc:
            report.add(path, "coverage", str(exc))
    for key in sorted(series, key=lambda k: k.slug):
        if not layout.coverage_path(root, key).exists():
            report.add(layout.series_dir(root, key), "no-coverage",
                       "rows without a coverage record (a rerun of the download records it)",
                       severity="warning")


def verify_lake(root: Path) -> VerifyReport:
    """Verify the whole lake at `root` (see the module docstring)."""
    root = Path(root)
    report = VerifyReport(str(root))
    partitions: dict[Path, list[tuple[Path, np.ndarray]]] = defaultdict(list)
    series: set[SeriesKey] = set()
    for path, parsed in iter_data_files(root):
        report.files_checked += 1
        if parsed is None:
            report.add(path, "misplaced-file", "path does not fit the lake layout "
                       "<market>/<dataset>/symbol=<S>/[interval=<iv>/]year=<Y>/month=<MM>/")
            continue
        key, year, month = parsed
        series.add(key)
        keys = check_file(path, key, year, month, report)
        if keys is not None:
            partitions[path.parent].append((path, keys))
    for files in partitions.values():
        _check_partition_overlap(files, report)
    _check_coverage(root, series, report)
    _check_stray(root, report)
    return report


def _check_stray(root: Path, report: VerifyReport) -> None:
    for market in MARKETS:
        for dataset in DATASETS:
            ddir = layout.dataset_dir(root, market, dataset)
            if not ddir.is_dir():
                continue
            for tmp in sorted(ddir.rglob(f".*{layout.TMP_SUFFIX}")):
                report.add(tmp, "temp-file", "leftover temporary file of an interrupted "
                           "write (invisible to readers)", severity="warning")
