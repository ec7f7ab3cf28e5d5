"""Exact OHLCV aggregation of stored klines into a coarser interval.

open = first open, high = max, low = min, close = last close, volume / quote_volume /
trades / taker_buy_* = sums, ``open_time`` = the bucket's open on the exchange's grid
(``1w`` opens Monday 00:00 UTC, ``1M`` the first of the calendar month, ``3d`` on
multiples of 3 days since the epoch), ``close_time`` = next open - 1 ms (the canonical
close rule of ``schemas``). Price klines (mark/index/premium) aggregate their prices only.

Which bars are returned: those whose open lies in ``[start, end)``, each computed from its
whole span. A bar is *complete* when every source slot is present or the missing slots are
covered by the coverage record (the exchange confirmed them empty, e.g. before listing or
during maintenance; it builds its own higher interval from the same trades, so the bars
agree). Incomplete bars (data not fetched yet, a still-open period) are dropped unless
``partial=True``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from kline_lake.core.intervals import INTERVAL_MS, floor_open_ms, next_open_ms
from kline_lake.core.markets import KLINE_DATASETS
from kline_lake.core.schemas import SCHEMAS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import MS_PER_DAY, US_PER_MS
from kline_lake.errors import InputError
from kline_lake.lake import coverage
from kline_lake.lake.grid import grid, inside_covered, slot_ends
from kline_lake.lake.scan import scan_series

_WEEK_OFFSET_US = 4 * MS_PER_DAY * US_PER_MS  # 1970-01-01 was a Thursday
_SUMS = ("volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume")


def check_resample(from_interval: str, to_interval: str) -> None:
    """InputError unless every `to_interval` bucket is an exact union of `from_interval` bars."""
    if from_interval == to_interval:
        return
    if from_interval == "1M":
        raise InputError("1M klines cannot be resampled to a different interval")
    from_ms = INTERVAL_MS.get(from_interval)
    if from_ms is None:
        raise InputError(f"unknown interval {from_interval!r}")
    if to_interval == "1M":
        if MS_PER_DAY % from_ms:
            raise InputError(f"{from_interval} bars do not tile calendar months")
        return
    to_ms = INTERVAL_MS.get(to_interval)
    if to_ms is None:
        raise InputError(f"unknown interval {to_interval!r}")
    offset_ms = _WEEK_OFFSET_US // US_PER_MS if to_interval == "1w" else 0
    if to_ms <= from_ms or to_ms % from_ms or offset_ms % from_ms:
        raise InputError(f"cannot resample {from_interval} to {to_interval}: "
                         f"{to_interval} bars are not whole {from_interval} bars")


def bucket_expr(to_interval: str) -> pl.Expr:
    """Polars expression: the `to_interval` open time of each ``open_time``."""
    if to_interval == "1M":
        return pl.col("open_time").dt.truncate("1mo")
    step_us = INTERVAL_MS[to_interval] * US_PER_MS
    offset_us = _WEEK_OFFSET_US if to_interval == "1w" else 0
    ts = pl.col("open_time").cast(pl.Int64)
    return (ts - (ts - offset_us) % step_us).cast(pl.Datetime("us", "UTC"))


def next_open_expr(bucket: pl.Expr, to_interval: str) -> pl.Expr:
    if to_interval == "1M":
        return bucket.dt.offset_by("1mo")
    return bucket + pl.duration(milliseconds=INTERVAL_MS[to_interval])


def aggregate(frame: pl.DataFrame | pl.LazyFrame, dataset: str,
              to_interval: str) -> pl.DataFrame | pl.LazyFrame:
    """Pure aggregation of klines sorted by open_time into `to_interval` bars, plus a
    ``slots`` column counting source rows per bar. Lazy in, lazy out."""
    names = SCHEMAS[dataset].names
    aggs = [
        pl.col("open").first(), pl.col("high").max(), pl.col("low").min(),
        pl.col("close").last(), pl.len().alias("slots"),
    ]
    aggs += [pl.col(c).sum() for c in _SUMS if c in names]
    out = (frame.group_by(bucket_expr(to_interval).alias("open_time"), maintain_order=True)
           .agg(aggs)
           .sort("open_time"))
    out = out.with_columns(
        (next_open_expr(pl.col("open_time"), to_interval)
         - pl.duration(milliseconds=1)).alias("close_time"))
    return out.select([*names, "slots"])


def _bounds(start_us: int | None, end_us: int | None, to_interval: str) -> tuple[int | None, int | None]:
    """Source read range: from the first bar opening at/after start to the end of the last
    bar opening before end."""
    lo = hi = None
    if start_us is not None:
        floor = floor_open_ms(-(-start_us // US_PER_MS), to_interval)
        lo_ms = floor if floor * US_PER_MS >= start_us else next_open_ms(floor, to_interval)
        lo = lo_ms * US_PER_MS
    if end_us is not None:
        last_open_ms = floor_open_ms((end_us - 1) // US_PER_MS, to_interval)
        hi = next_open_ms(last_open_ms, to_interval) * US_PER_MS
    return lo, hi


def resample_series(root: Path, key: SeriesKey, to_interval: str, start_us: int | None = None,
                    end_us: int | None = None, partial: bool = False) -> pl.DataFrame:
    """Resample a stored kline series (see the module docstring)."""
    if key.dataset not in KLINE_DATASETS:
        raise InputError(f"resample is defined for kline datasets, not {key.dataset!r}")
    check_resample(key.interval, to_interval)
    lo, hi = _bounds(start_us, end_us, to_interval)
    # files hold sorted, unique keys and are listed in key order (verify() checks it), so
    # the scan is already sorted and the aggregation can stream without a sort
    bars = aggregate(scan_series(root, key, lo, hi), key.dataset, to_interval).collect()
    if not partial and bars.height:
        bars = bars.filter(_complete_mask(root, key, bars, lo, hi))
    return bars.drop("slots")


def _complete_mask(root: Path, key: SeriesKey, bars: pl.DataFrame, lo: int | None,
                   hi: int | None) -> pl.Series:
    """True for bars whose every source slot is present or confirmed empty by coverage."""
    opens = bars["open_time"].cast(pl.Int64).to_numpy()
    ends = bars["close_time"].cast(pl.Int64).to_numpy() + US_PER_MS
    if key.interval == "1M":
        expected = np.ones(len(opens), dtype=np.int64)
    else:
        expected = (ends - opens) // (INTERVAL_MS[key.interval] * US_PER_MS)
    complete = bars["slots"].to_numpy() == expected
    if complete.all():
        return pl.Series(complete)
    covered = coverage.read_at(root, key)
    if not covered:
        return pl.Series(complete)
    source_opens = (scan_series(root, key, lo, hi).select("open_time").collect()
                    ["open_time"].cast(pl.Int64).to_numpy())
    for i in np.flatnonzero(~complete):
        lo, hi = np.searchsorted(source_opens, [opens[i], ends[i]])
        slots = grid(int(opens[i]), int(ends[i]), key.interval)
        absent = slots[~np.isin(slots, source_opens[lo:hi])]
        complete[i] = bool(inside_covered(absent, slot_ends(absent, key.interval), covered).all())
    return pl.Series(complete)
