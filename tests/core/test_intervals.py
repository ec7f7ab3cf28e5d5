"""Interval arithmetic, including the calendar ones (1w on Mondays, 1M months)."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kline_lake.core import intervals
from kline_lake.errors import InputError


def ms(*args) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_weekly_klines_open_on_monday():
    # 2024-01-03 is a Wednesday; its week opened Monday 2024-01-01.
    assert intervals.floor_open_ms(ms(2024, 1, 3, 12), "1w") == ms(2024, 1, 1)


def test_monthly_klines_follow_the_calendar():
    assert intervals.floor_open_ms(ms(2024, 2, 29, 23, 59), "1M") == ms(2024, 2, 1)
    assert intervals.next_open_ms(ms(2024, 2, 1), "1M") == ms(2024, 3, 1)
    assert intervals.next_open_ms(ms(2024, 12, 1), "1M") == ms(2025, 1, 1)
    assert intervals.ceil_open_ms(ms(2024, 2, 1, 0, 0, 1), "1M") == ms(2024, 3, 1)


def test_1s_is_spot_only():
    assert intervals.validate_interval("1s", "spot") == "1s"
    with pytest.raises(InputError, match="only on the spot market"):
        intervals.validate_interval("1s", "um")
    with pytest.raises(InputError, match="unknown interval '7m'"):
        intervals.validate_interval("7m", "spot")


@given(st.integers(0, 4_102_444_800_000), st.sampled_from(intervals.ALL_INTERVALS))
def test_floor_ceil_bracket_every_timestamp(ts_ms, interval):
    lo = intervals.floor_open_ms(ts_ms, interval)
    hi = intervals.next_open_ms(lo, interval)
    assert lo <= ts_ms < hi
    assert intervals.floor_open_ms(lo, interval) == lo
    assert intervals.ceil_open_ms(ts_ms, interval) in (lo, hi)
