"""UTC date/time parsing and unit conversion for the command line and the fetcher.

Pure. Every time the user types is UTC: `2024-01-01`, `2024-01-01T12:30`,
`2024-01-01T12:30:15`, `2024-01-01 12:30`, optionally with a trailing `Z` or `+00:00`.
An explicit non-UTC offset is refused rather than silently converted.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from kline_lake.errors import InputError

US_PER_MS = 1_000
MS_PER_SECOND = 1_000

_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?"
    r"(Z|\+00:00|\+0000)?"
)


def parse_utc_ms(text: str, *, what: str = "date") -> int:
    """Parse a UTC date or datetime into epoch milliseconds; InputError if unparseable."""
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
            int(second or 0), int((frac or "0").ljust(3, "0")) * 1000, tzinfo=UTC,
        )
    except ValueError as exc:
        raise InputError(f"cannot parse {what} {text!r}: {exc}") from None
    return datetime_to_ms(dt)


def datetime_to_ms(dt: datetime) -> int:
    """An aware datetime -> epoch milliseconds (exact, no float rounding)."""
    if dt.tzinfo is None:
        raise InputError(f"naive datetime {dt!r}: kline-lake times are UTC")
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * MS_PER_SECOND + delta.microseconds // 1000


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
    dt = datetime.fromtimestamp(ts_ms // 1000, tz=UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ts_ms % 1000:03d}Z"
