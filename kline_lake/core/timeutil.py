"""Time units, user-typed times and calendar-month arithmetic: the one owner of each. Pure.

Every time the user types is UTC: `2024-01-01`, `2024-01-01T12:30`,
`2024-01-01T12:30:15(.123456)`, `2024-01-01 12:30`, optionally with a trailing `Z` or
`+00:00`. An explicit non-UTC offset in text is refused rather than silently converted
(an aware `datetime` object is unambiguous and is converted). Conversions are integer
arithmetic: no float rounding on the way to microseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from kline_lake.errors import InputError

US_PER_MS = 1_000
US_PER_SECOND = 1_000_000
MS_PER_SECOND = 1_000
MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
US_PER_DAY = MS_PER_DAY * US_PER_MS

# An integer epoch at or above this magnitude is microseconds, below it milliseconds
# (1e15 us is 1970-01-12; 1e15 ms is the year 33658).
_MS_US_THRESHOLD = 10**15
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"(Z|\+00:00|\+0000)?"
)


# ----------------------------------------------------------------- user times
def parse_utc_us(text: str, *, what: str = "date") -> int:
    """Parse a UTC date or datetime (see the module docstring) into epoch microseconds."""
    if not isinstance(text, str):
        raise InputError(f"{what}: expected a date such as 2024-01-01, got {text!r}")
    match = _DATE_RE.fullmatch(text.strip())
    if match is None:
        raise InputError(
            f"cannot parse {what} {text!r}: expected a UTC date or datetime such as "
            f"2024-01-01 or 2024-01-01T12:30"
        )
    year, month, day, hour, minute, second, frac = match.groups()[:7]
    try:
        dt = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0),
            int(second or 0), int((frac or "0").ljust(6, "0")), tzinfo=UTC,
        )
    except ValueError as exc:
        raise InputError(f"cannot parse {what} {text!r}: {exc}") from None
    return datetime_to_us(dt)


def parse_utc_ms(text: str, *, what: str = "date") -> int:
    """`parse_utc_us` in epoch milliseconds (rounded down)."""
    return us_to_ms(parse_utc_us(text, what=what))


def to_us(value: Any, what: str = "time") -> int | None:
    """Coerce a user-supplied time to epoch microseconds (None stays None).

    Accepts the strings of `parse_utc_us`, `date`, `datetime` (naive = UTC), NumPy
    datetime64 (UTC by definition), pandas Timestamps, and integer epochs (milliseconds
    below 1e15, microseconds above).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a date, datetime or epoch, got {value!r}")
    if isinstance(value, int):
        return value if abs(value) >= _MS_US_THRESHOLD else value * US_PER_MS
    if isinstance(value, str):
        return parse_utc_us(value, what=what)
    if isinstance(value, datetime):
        return datetime_to_us(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return datetime_to_us(datetime(value.year, value.month, value.day, tzinfo=UTC))
    if type(value).__name__ == "datetime64":  # numpy, without importing it here
        return int(value.astype("datetime64[us]").astype("int64"))
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        return to_us(value.to_pydatetime(), what)
    raise InputError(f"{what}: expected a date, datetime or epoch, got {type(value).__name__}")


def datetime_to_us(dt: datetime) -> int:
    """An aware datetime -> epoch microseconds (exact, no float rounding)."""
    if dt.tzinfo is None:
        raise InputError(f"naive datetime {dt!r}: kline-lake times are UTC")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def datetime_to_ms(dt: datetime) -> int:
    """An aware datetime -> epoch milliseconds (rounded down)."""
    return us_to_ms(datetime_to_us(dt))


def us_to_datetime(ts_us: int) -> datetime:
    """Epoch microseconds -> aware UTC datetime (exact)."""
    from datetime import timedelta

    return _EPOCH + timedelta(microseconds=int(ts_us))


# ----------------------------------------------------------------- units
def ms_to_us(ts_ms: int) -> int:
    """Epoch milliseconds -> epoch microseconds."""
    return int(ts_ms) * US_PER_MS


def us_to_ms(ts_us: int) -> int:
    """Epoch microseconds -> epoch milliseconds, rounded down."""
    return int(ts_us) // US_PER_MS


def us_to_ms_ceil(ts_us: int) -> int:
    """Epoch microseconds -> epoch milliseconds, rounded up (for exclusive range ends)."""
    return -(-int(ts_us) // US_PER_MS)


def format_ms(ts_ms: int) -> str:
    """Epoch milliseconds -> `YYYY-MM-DDTHH:MM:SS.mmmZ` (for messages)."""
    dt = us_to_datetime(ms_to_us(ts_ms))
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{int(ts_ms) % 1000:03d}Z"


def format_us(ts_us: int) -> str:
    """Epoch microseconds -> ISO text without trailing zeros (`2024-01-01T00:00:00Z`)."""
    dt = us_to_datetime(ts_us)
    frac = f".{dt.microsecond:06d}".rstrip("0").rstrip(".")
    return f"{dt:%Y-%m-%dT%H:%M:%S}{frac}Z"


# ----------------------------------------------------------------- calendar months
def year_month_day(ts_us: int) -> tuple[int, int, int]:
    """UTC (year, month, day) of a microsecond timestamp."""
    dt = us_to_datetime(ts_us)
    return dt.year, dt.month, dt.day


def year_month(ts_us: int) -> tuple[int, int]:
    """UTC (year, month) of a microsecond timestamp."""
    year, month, _ = year_month_day(ts_us)
    return year, month


def month_start_us(year: int, month: int) -> int:
    """First microsecond of a calendar month (UTC)."""
    return datetime_to_us(datetime(year, month, 1, tzinfo=UTC))


def add_months(year: int, month: int, n: int) -> tuple[int, int]:
    """(year, month) `n` months after (year, month); `n` may be negative."""
    idx = year * 12 + (month - 1) + n
    return idx // 12, idx % 12 + 1


def month_end_us(year: int, month: int) -> int:
    """Exclusive end of a month: the first microsecond of the next month."""
    return month_start_us(*add_months(year, month, 1))


def month_floor_us(ts_us: int) -> int:
    """Start of the UTC calendar month containing `ts_us`."""
    return month_start_us(*year_month(ts_us))


def next_month_us(ts_us: int) -> int:
    """Start of the calendar month after the one containing `ts_us`."""
    return month_end_us(*year_month(ts_us))


def months_overlapping_range(start_us: int, end_us: int) -> list[tuple[int, int]]:
    """Every (year, month) whose month overlaps ``[start_us, end_us)`` (empty if empty)."""
    out: list[tuple[int, int]] = []
    if start_us >= end_us:
        return out
    year, month = year_month(start_us)
    while month_start_us(year, month) < end_us:
        out.append((year, month))
        year, month = add_months(year, month, 1)
    return out
