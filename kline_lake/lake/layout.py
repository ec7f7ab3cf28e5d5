"""Where things live in the lake: pure path arithmetic, no I/O.

Data files (see DESIGN.md "The lake")::

    <root>/<market>/<dataset>/symbol=<SYMBOL>/[interval=<iv>/]year=<YYYY>/month=<MM>/<file>.parquet

File names are deterministic so that committing the same rows twice leaves identical files:

- klines, mark/index/premium klines and funding: one ``data.parquet`` per month partition
  (a month of 1m klines is 44,640 rows; rewriting it on each commit is cheap).
- agg_trades: one ``<YYYY>-<MM>-<DD>.parquet`` per UTC day of ``transact_time`` inside the
  month partition, so a commit rewrites at most a day of trades rather than a month
  (a busy symbol trades millions of times a day); so do trades, book_ticker and
  mark_price (an update a second: 86,400 rows a day).

Lake metadata lives under ``<root>/_meta/`` (coverage records, exchangeInfo cache, locks),
outside every ``<market>/<dataset>`` tree, so a plain ``read_parquet`` glob sees only data.
Temporary files start with ``.`` and end with ``.tmp``: no ``*.parquet`` glob matches them.
"""

from __future__ import annotations

import re
from pathlib import Path

from kline_lake.core.markets import KLINE_DATASETS, MARKETS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import month_end_us, month_start_us, year_month_day
from kline_lake.errors import InputError

META_DIR = "_meta"
MONTH_FILE = "data.parquet"
DAILY_FILE_DATASETS: frozenset[str] = frozenset({"agg_trades", "trades", "book_ticker", "mark_price",
                                                   "spot_book_ticker"})
TMP_SUFFIX = ".tmp"

_DAY_FILE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\.parquet")



def dataset_dir(root: Path, market: str, dataset: str) -> Path:
    return Path(root) / market / dataset


def series_dir(root: Path, key: SeriesKey) -> Path:
    """`<root>/<market>/<dataset>/symbol=<S>/[interval=<iv>/]`."""
    path = dataset_dir(root, key.market, key.dataset) / f"symbol={key.symbol}"
    if key.interval is not None:
        path = path / f"interval={key.interval}"
    return path


def partition_dir(root: Path, key: SeriesKey, year: int, month: int) -> Path:
    """The year/month partition directory of a series."""
    return series_dir(root, key) / f"year={year:04d}" / f"month={month:02d}"


def months_overlapping(start_us: int | None, end_us: int | None,
                       available: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (year, month) pairs of `available` whose month overlaps [start_us, end_us)."""
    out = []
    for year, month in available:
        if end_us is not None and month_start_us(year, month) >= end_us:
            continue
        if start_us is not None and month_end_us(year, month) <= start_us:
            continue
        out.append((year, month))
    return out


def file_name(dataset: str, ts_us: int) -> str:
    """The deterministic data file name for a row of `dataset` at time `ts_us`."""
    if dataset in DAILY_FILE_DATASETS:
        year, month, day = year_month_day(ts_us)
        return f"{year:04d}-{month:02d}-{day:02d}.parquet"
    return MONTH_FILE


def is_canonical_file(dataset: str, name: str) -> bool:
    """Whether `name` is a file name this writer produces for `dataset`."""
    if dataset in DAILY_FILE_DATASETS:
        return _DAY_FILE_RE.fullmatch(name) is not None
    return name == MONTH_FILE


def day_of_file(name: str) -> tuple[int, int, int] | None:
    """(year, month, day) encoded in a daily file name, or None."""
    match = _DAY_FILE_RE.fullmatch(name)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def meta_dir(root: Path) -> Path:
    return Path(root) / META_DIR


def coverage_path(root: Path, key: SeriesKey) -> Path:
    return meta_dir(root) / "coverage" / key.market / key.dataset / f"{key.slug}.json"


def lock_path(root: Path, key: SeriesKey) -> Path:
    return meta_dir(root) / "locks" / f"{key.slug}.lock"


def exchange_info_path(root: Path, market: str) -> Path:
    if market not in MARKETS:
        raise InputError(f"unknown market {market!r}; expected one of {', '.join(MARKETS)}")
    return meta_dir(root) / "exchange_info" / f"{market}.json"


def parse_partition_value(part: str, name: str) -> str | None:
    """`'symbol=BTCUSDT'`, `'symbol'` -> `'BTCUSDT'`; None if the component does not match."""
    prefix = f"{name}="
    return part[len(prefix):] if part.startswith(prefix) else None


def series_key_of_file(root: Path, path: Path) -> tuple[SeriesKey, int, int] | None:
    """Parse a data file path back into (series, year, month); None if it does not fit
    the layout (a misplaced file)."""
    try:
        rel = Path(path).relative_to(root).parts
    except ValueError:
        return None
    if len(rel) < 6:
        return None
    market, dataset = rel[0], rel[1]
    has_interval = dataset in KLINE_DATASETS
    expected = 7 if has_interval else 6
    if len(rel) != expected:
        return None
    symbol = parse_partition_value(rel[2], "symbol")
    interval = parse_partition_value(rel[3], "interval") if has_interval else None
    year = parse_partition_value(rel[-3], "year")
    month = parse_partition_value(rel[-2], "month")
    if None in (symbol, year, month) or (has_interval and interval is None):
        return None
    try:
        key = SeriesKey(market, dataset, symbol, interval)
        y, m = int(year), int(month)
    except ValueError:  # InputError is a ValueError
        return None
    if not 1 <= m <= 12:
        return None
    return key, y, m
