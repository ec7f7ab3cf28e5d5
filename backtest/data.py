"""Load bars, funding and mark prices from the lake into aligned NumPy arrays.

Reads the Hive layout directly with Polars (no dependency on the catalog):
``<root>/<market>/klines/symbol=<S>/interval=<iv>/year=<Y>/month=<MM>/*.parquet``,
``<root>/<market>/funding/symbol=<S>/year=<Y>/month=<MM>/*.parquet`` and
``<root>/<market>/mark_klines/symbol=<S>/interval=<iv>/...``. Only the month
directories that overlap the requested range are scanned. Ranges are half-open:
``start <= open_time < end`` (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from kline_lake.core.intervals import INTERVAL_MS, validate_interval
from kline_lake.core.markets import get_market
from kline_lake.core.timeutil import MS_PER_DAY
from kline_lake.errors import InputError

US_PER_MS = 1_000


@dataclass(frozen=True)
class Bars:
    """OHLCV bars of one symbol and interval; every array has one entry per bar."""

    market: str
    symbol: str
    interval: str
    open_time_us: np.ndarray  # int64, UTC microseconds
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.close.shape[0])

    @property
    def bar_ms(self) -> int:
        """Bar length in ms (1M bars count as 30 days for annualization)."""
        return INTERVAL_MS.get(self.interval, 30 * MS_PER_DAY)

    @property
    def bar_days(self) -> float:
        return self.bar_ms / MS_PER_DAY


@dataclass(frozen=True)
class FundingEvents:
    """Funding records: time, rate and the record's mark price (NaN when absent)."""

    time_us: np.ndarray
    rate: np.ndarray
    mark_price: np.ndarray

    @staticmethod
    def empty() -> FundingEvents:
        z = np.empty(0)
        return FundingEvents(np.empty(0, dtype=np.int64), z, z.copy())


@dataclass(frozen=True)
class MarkOpens:
    """Mark-price kline opens (time and price), used when a record lacks markPrice."""

    open_time_us: np.ndarray
    open: np.ndarray
    bar_ms: int

    @staticmethod
    def empty(bar_ms: int = 60_000) -> MarkOpens:
        return MarkOpens(np.empty(0, dtype=np.int64), np.empty(0), bar_ms)


def parse_time_us(value: str | date | datetime, name: str) -> int:
    """'2024-01-01', '2024-01-01T08:00', a date or a datetime (naive = UTC) -> epoch us."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{name}: cannot parse {value!r} as a date or ISO datetime") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


def _months(start_us: int, end_us: int) -> list[tuple[int, int]]:
    s = datetime.fromtimestamp(start_us / 1e6, tz=UTC)
    e = datetime.fromtimestamp((end_us - 1) / 1e6, tz=UTC)
    out = []
    y, m = s.year, s.month
    while (y, m) <= (e.year, e.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _files(base: Path, start_us: int, end_us: int) -> list[str]:
    files: list[str] = []
    for y, m in _months(start_us, end_us):
        month_dir = base / f"year={y}" / f"month={m:02d}"
        if month_dir.is_dir():
            files.extend(str(p) for p in sorted(month_dir.glob("*.parquet")))
    return files


def _scan(files: list[str], time_col: str, columns: list[str], start_us: int,
          end_us: int) -> pl.DataFrame:
    lo = datetime.fromtimestamp(start_us / 1e6, tz=UTC)
    hi = datetime.fromtimestamp(end_us / 1e6, tz=UTC)
    return (
        pl.scan_parquet(files, hive_partitioning=False)
        .select(columns)
        .filter((pl.col(time_col) >= lo) & (pl.col(time_col) < hi))
        .unique(subset=[time_col], keep="last")
        .sort(time_col)
        .collect()
    )


def _time_us(df: pl.DataFrame, col: str) -> np.ndarray:
    return df.get_column(col).dt.cast_time_unit("us").cast(pl.Int64).to_numpy()


def check_range(start_us: int, end_us: int) -> None:
    if end_us <= start_us:
        raise InputError("empty date range: --end must be after --start")


def load_bars(lake: str | Path, market: str, symbol: str, interval: str, start_us: int,
              end_us: int) -> Bars:
    """Bars with ``start_us <= open_time < end_us``; InputError when there are none."""
    get_market(market)
    validate_interval(interval, market)
    check_range(start_us, end_us)
    base = Path(lake) / market / "klines" / f"symbol={symbol}" / f"interval={interval}"
    files = _files(base, start_us, end_us)
    cols = ["open_time", "open", "high", "low", "close", "volume"]
    df = _scan(files, "open_time", cols, start_us, end_us) if files else None
    if df is None or df.height == 0:
        raise InputError(
            f"no {market} {symbol} {interval} klines in the lake {lake} for "
            f"[{_iso(start_us)}, {_iso(end_us)})"
        )
    f64 = [np.ascontiguousarray(df.get_column(c).to_numpy(), dtype=np.float64) for c in cols[1:]]
    return Bars(market, symbol, interval, _time_us(df, "open_time"), *f64)


def load_funding(lake: str | Path, market: str, symbol: str, start_us: int,
                 end_us: int) -> FundingEvents:
    """Funding records in the range (empty when the lake has none)."""
    base = Path(lake) / market / "funding" / f"symbol={symbol}"
    files = _files(base, start_us, end_us)
    if not files:
        return FundingEvents.empty()
    df = _scan(files, "funding_time", ["funding_time", "funding_rate", "mark_price"],
               start_us, end_us)
    mark = df.get_column("mark_price").cast(pl.Float64).fill_null(np.nan).to_numpy()
    return FundingEvents(
        _time_us(df, "funding_time"),
        np.ascontiguousarray(df.get_column("funding_rate").to_numpy(), dtype=np.float64),
        np.ascontiguousarray(mark, dtype=np.float64),
    )


def load_mark_opens(lake: str | Path, market: str, symbol: str, interval: str, start_us: int,
                    end_us: int) -> MarkOpens:
    """Mark-price kline opens in the range (empty when the lake has none)."""
    bar_ms = INTERVAL_MS.get(interval, 30 * MS_PER_DAY)
    base = Path(lake) / market / "mark_klines" / f"symbol={symbol}" / f"interval={interval}"
    files = _files(base, start_us, end_us)
    if not files:
        return MarkOpens.empty(bar_ms)
    df = _scan(files, "open_time", ["open_time", "open"], start_us, end_us)
    return MarkOpens(_time_us(df, "open_time"),
                     np.ascontiguousarray(df.get_column("open").to_numpy(), dtype=np.float64),
                     bar_ms)


def _iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
