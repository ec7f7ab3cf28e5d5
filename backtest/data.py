"""Load bars, funding and mark prices from the lake into aligned NumPy arrays.

Reads klines, funding and mark-price klines through the lake's scan API
(`kline_lake.lake.scan.scan_series`: only the partitions that overlap the range are
opened, keys unique and sorted). Ranges are half-open: ``start <= open_time < end`` (UTC).

`load_lake_data` is what a backtest uses: it checks the lake's coverage first (see
`backtest.coverage`: never-fetched holes refuse to run unless ``allow_gaps``) and, when
the lake holds no klines of the requested interval in the range, resamples them exactly
from the finest interval it does hold that tiles it (``1m`` -> ``1h``; see
`kline_lake.lake.resample`: the exchange's grid, incomplete bars dropped unless the
exchange confirmed the missing part empty). The requested interval is used whenever the
lake holds it in the range (rows or a coverage record), even if a finer one is fuller.
Mark-price opens follow the same choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from backtest import coverage as cov
from kline_lake.core import ranges as rg
from kline_lake.core.intervals import ALL_INTERVALS, INTERVAL_MS, ceil_open_ms, validate_interval
from kline_lake.core.markets import get_market
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import MS_PER_DAY, US_PER_MS, format_us, to_us
from kline_lake.errors import CoverageError, InputError
from kline_lake.lake import coverage
from kline_lake.lake.resample import check_resample, resample_series
from kline_lake.lake.scan import pruned_files, scan_series
from kline_lake.lake.storage import lake_root

KLINE_COLUMNS = ["open_time", "open", "high", "low", "close", "volume"]


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
    return scan_series(lake_root(lake), key, start_us, end_us).select(columns).collect()


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
    df = _scan(lake, SeriesKey(market, "klines", symbol, interval), KLINE_COLUMNS, start_us,
               end_us)
    return _bars_of(df, lake, market, symbol, interval, start_us, end_us)


def _bars_of(df: pl.DataFrame, lake: str | Path, market: str, symbol: str, interval: str,
             start_us: int, end_us: int, why: str = "") -> Bars:
    if df.height == 0:
        raise InputError(
            f"no {market} {symbol} {interval} klines in the lake {lake} for "
            f"[{_iso(start_us)}, {_iso(end_us)}){why}"
        )
    f64 = [np.ascontiguousarray(df.get_column(c).to_numpy(), dtype=np.float64)
           for c in KLINE_COLUMNS[1:]]
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


@dataclass(frozen=True)
class LakeData:
    """What a backtest reads from the lake: bars, funding and mark opens (None when
    funding is not used) and the coverage report (`backtest.coverage.CoverageReport`)."""

    bars: Bars
    funding_events: FundingEvents | None
    mark_opens: MarkOpens | None
    coverage: cov.CoverageReport


def finer_intervals(interval: str, market: str) -> list[str]:
    """The intervals whose bars tile `interval` bars exactly, finest first (1s: spot)."""
    out = []
    for iv in ALL_INTERVALS[:ALL_INTERVALS.index(interval)]:
        if iv == "1s" and market != "spot":
            continue
        try:
            check_resample(iv, interval)
        except InputError:
            continue
        out.append(iv)
    return out


def _held(lake: str | Path, key: SeriesKey, start_us: int, end_us: int) -> bool:
    """Whether the lake holds anything of `key` in the range: a file or a coverage record."""
    root = lake_root(lake)  # a directory, or an object store (s3://bucket/prefix)
    if pruned_files(root, key, start_us, end_us):
        return True
    return bool(rg.intersect(start_us, end_us, coverage.read_at(root, key)))


def source_interval(lake: str | Path, market: str, dataset: str, symbol: str, interval: str,
                    start_us: int, end_us: int) -> str:
    """The interval `interval` bars are read from: itself when the lake holds it in the
    range, else the finest interval held there that tiles it, else itself (the coverage
    check then names what to download)."""
    if _held(lake, SeriesKey(market, dataset, symbol, interval), start_us, end_us):
        return interval
    for iv in finer_intervals(interval, market):
        if _held(lake, SeriesKey(market, dataset, symbol, iv), start_us, end_us):
            return iv
    return interval


def source_range(start_us: int, end_us: int, interval: str, source: str) -> tuple[int, int]:
    """The source klines `interval` bars opening in ``[start_us, end_us)`` are made of:
    the range itself, or (resampling) from the first `interval` open at/after start to
    the close of the last bar opening before end."""
    if source == interval:
        return start_us, end_us
    lo = ceil_open_ms(-(-start_us // US_PER_MS), interval) * US_PER_MS
    hi = ceil_open_ms(-(-end_us // US_PER_MS), interval) * US_PER_MS
    return lo, hi


def load_lake_data(lake: str | Path, market: str, symbol: str, interval: str, start_us: int,
                   end_us: int, *, funding: bool = True, allow_gaps: bool = False,
                   now_us: int | None = None) -> LakeData:
    """Bars opening in ``[start_us, end_us)`` (resampled when needed, see the module
    docstring) and, for futures with `funding`, funding records and mark opens, after
    checking the lake covers them: InputError naming the never-fetched holes and the
    download command unless `allow_gaps` (`backtest.coverage`). `now_us` is the clock
    (default: the system's)."""
    get_market(market)
    validate_interval(interval, market)
    check_range(start_us, end_us)
    root = lake_root(lake)
    source = source_interval(root, market, "klines", symbol, interval, start_us, end_us)
    key = SeriesKey(market, "klines", symbol, source)
    lo, hi = source_range(start_us, end_us, interval, source)
    frame = _scan(root, key, KLINE_COLUMNS if source == interval else ["open_time"], lo, hi)
    present = _time_us(frame, "open_time")
    span = cov.bar_span(present, source)
    with_funding = funding and get_market(market).is_futures
    events = fund_cov = None
    if with_funding and span is not None:
        events = load_funding(root, market, symbol, min(start_us, span[0]), max(end_us, span[1]))
        fund_cov = coverage.read_at(root, SeriesKey(market, "funding", symbol))
    notes = () if source == interval else (
        f"{interval} bars resampled exactly from the lake's {source} klines (it holds no "
        f"{interval} klines in the range; the exchange's grid, incomplete bars dropped)",)
    report = cov.check_coverage(
        market=market, symbol=symbol, interval=interval, source_interval=source, start_us=lo,
        end_us=hi, present_us=present, covered=coverage.read_at(root, key),
        now_us=time.time_ns() // 1000 if now_us is None else now_us,
        funding_time_us=None if events is None else events.time_us, funding_covered=fund_cov,
        allow_gaps=allow_gaps, notes=notes)
    if report.n_unknown and not allow_gaps:
        raise CoverageError(report.refusal(str(lake)))
    why = (": the exchange confirmed it empty (before listing or after delisting)"
           if span is None and report.confirmed else "")
    if source == interval:
        bars = _bars_of(frame, lake, market, symbol, interval, start_us, end_us, why)
    else:
        df = resample_series(root, key, interval, start_us, end_us).select(KLINE_COLUMNS)
        bars = _bars_of(df, lake, market, symbol, interval, start_us, end_us,
                        why or f" (resampled from {source})")
    marks = None
    if with_funding:
        mark_iv = source_interval(root, market, "mark_klines", symbol, interval, start_us, end_us)
        marks = load_mark_opens(root, market, symbol, mark_iv, start_us, max(end_us, span[1]))
    return LakeData(bars, events, marks, report)
