"""Kline intervals: names, lengths and calendar arithmetic.

Binance kline intervals (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#klinecandlestick-data):
1s (spot only), 1m 3m 5m 15m 30m, 1h 2h 4h 6h 8h 12h, 1d 3d, 1w, 1M.
`1w` bars open on Monday 00:00 UTC; `1M` bars open on the first of each calendar month.
`3d` bars are aligned on multiples of 3 days since the Unix epoch.
"""

from __future__ import annotations

import calendar

from kline_lake.core.timeutil import (
    MS_PER_DAY,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    MS_PER_SECOND,
    month_floor_us,
    ms_to_us,
    next_month_us,
    us_to_ms,
)
from kline_lake.errors import InputError

# Fixed-length intervals in milliseconds. 1M is calendar-based and handled separately.
INTERVAL_MS: dict[str, int] = {
    "1s": MS_PER_SECOND,
    "1m": MS_PER_MINUTE,
    "3m": 3 * MS_PER_MINUTE,
    "5m": 5 * MS_PER_MINUTE,
    "15m": 15 * MS_PER_MINUTE,
    "30m": 30 * MS_PER_MINUTE,
    "1h": MS_PER_HOUR,
    "2h": 2 * MS_PER_HOUR,
    "4h": 4 * MS_PER_HOUR,
    "6h": 6 * MS_PER_HOUR,
    "8h": 8 * MS_PER_HOUR,
    "12h": 12 * MS_PER_HOUR,
    "1d": MS_PER_DAY,
    "3d": 3 * MS_PER_DAY,
    "1w": 7 * MS_PER_DAY,
}
ALL_INTERVALS: tuple[str, ...] = (*INTERVAL_MS, "1M")

# 1970-01-01 was a Thursday; weekly klines open on Mondays, 4 days later.
_WEEK_OFFSET_MS = 4 * MS_PER_DAY


def validate_interval(interval: str, market: str) -> str:
    """Return `interval` if the market serves it, else raise InputError."""
    if interval not in ALL_INTERVALS:
        raise InputError(
            f"unknown interval {interval!r}; expected one of {', '.join(ALL_INTERVALS)}"
        )
    if interval == "1s" and market != "spot":
        raise InputError(f"interval 1s exists only on the spot market, not on {market!r}")
    return interval


def floor_open_ms(ts_ms: int, interval: str) -> int:
    """The open time of the kline of `interval` that contains `ts_ms`."""
    if interval == "1M":
        return us_to_ms(month_floor_us(ms_to_us(ts_ms)))
    step = INTERVAL_MS[interval]
    if interval == "1w":
        return ts_ms - (ts_ms - _WEEK_OFFSET_MS) % step
    return ts_ms - ts_ms % step


def next_open_ms(open_ms: int, interval: str) -> int:
    """Open time of the kline after the one opening at `open_ms` (its close + 1 ms)."""
    if interval == "1M":
        return us_to_ms(next_month_us(ms_to_us(open_ms)))
    return open_ms + INTERVAL_MS[interval]


def ceil_open_ms(ts_ms: int, interval: str) -> int:
    """The first kline open time >= ts_ms."""
    floor = floor_open_ms(ts_ms, interval)
    return floor if floor == ts_ms else next_open_ms(floor, interval)


def days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]
