"""Load bars, funding and mark prices from the lake into aligned NumPy arrays.

Reads klines, funding and mark-price klines through the lake's scan API
(`kline_lake.lake.scan.scan_series`: only the partitions that overlap the range are
opened, keys unique and sorted). Ranges are half-open: ``start <= open_time < end`` (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from kline_lake.core.intervals import INTERVAL_MS, validate_interval
from kline_lake.core.markets import get_market
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import MS_PER_DAY, format_us, to_us
from kline_lake.errors import InputError
from kline_lake.lake.scan import scan_series


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
    """'2024-01-01', '2024-01-01T08:00', a date or a datetime (naive = UTC) -> epoch us,
    exactly (the lake's one parser, `kline_lake.core.timeutil.to_us`)."""
    if value is None:
        raise InputError(f"{name}: a date is required")
    return to_us(value, name)


def _scan(lake: str | Path, key: SeriesKey, columns: list[str], start_us: int,
          end_us: int) -> pl.DataFrame:
    """Rows of one series in ``[start_us, end_us)`` through the lake's scan API (partition
    pruning, unique sorted keys)."""
    return scan_series(Path(lake), key, start_us, end_us).select(columns).collect()


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
    cols = ["open_time", "open", "high", "low", "close", "volume"]
    df = _scan(lake, SeriesKey(market, "klines", symbol, interval), cols, start_us, end_us)
    if df.height == 0:
        raise InputError(
            f"no {market} {symbol} {interval} klines in the lake {lake} for "
            f"[{_iso(start_us)}, {_iso(end_us)})"
        )
    f64 = [np.ascontiguousarray(df.get_column(c).to_numpy(), dtype=np.float64) for c in cols[1:]]
    return Bars(market, symbol, interval, _time_us(df, "open_time"), *f64)


def load_funding(lake: str | Path, market: str, symbol: str, start_us: int,
                 end_us: int) -> FundingEvents:
    """Funding records in the range (empty when the lake has none)."""
    df = _scan(lake, SeriesKey(market, "funding", symbol),
               ["funding_time", "funding_rate", "mark_price"], start_us, end_us)
    if df.height == 0:
        return FundingEvents.empty()
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
    df = _scan(lake, SeriesKey(market, "mark_klines", symbol, interval), ["open_time", "open"],
               start_us, end_us)
    if df.height == 0:
        return MarkOpens.empty(bar_ms)
    return MarkOpens(_time_us(df, "open_time"),
                     np.ascontiguousarray(df.get_column("open").to_numpy(), dtype=np.float64),
                     bar_ms)


def _iso(ts_us: int) -> str:
    return format_us(ts_us)
