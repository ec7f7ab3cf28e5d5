"""Property tests: kline selection and agg-id arithmetic against brute force."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake.core.intervals import INTERVAL_MS, next_open_ms
from kline_lake.fake_exchange import series

DAY_S = 86_400
BASE_S = 1_600_000_000 - 1_600_000_000 % DAY_S


@st.composite
def segments(draw):
    """1-4 disjoint [a, b) second ranges within ~20 days of BASE_S."""
    cuts = sorted(draw(st.lists(st.integers(0, 20 * DAY_S), min_size=2, max_size=8, unique=True)))
    if len(cuts) % 2:
        cuts = cuts[:-1]
    return [(BASE_S + cuts[i], BASE_S + cuts[i + 1]) for i in range(0, len(cuts), 2)]


def brute(segs, interval, start_ms, end_ms, limit):
    margin_s = 32 * DAY_S if interval in ("1M", "1w", "3d") else 2 * DAY_S
    lo = (segs[0][0] - margin_s) * 1000
    hi = (segs[-1][1] + margin_s) * 1000
    o = series.floor_open_ms(lo, interval)
    opens = []
    while o <= hi:
        e = next_open_ms(o, interval)
        present = any(o // 1000 < b and e // 1000 > a for a, b in segs)
        if present and (start_ms is None or o >= start_ms) and (end_ms is None or o <= end_ms):
            opens.append(o)
        o = e
    return opens[:limit] if start_ms is not None else opens[-limit:] if limit else []


@settings(max_examples=200, deadline=None)
@given(
    segs=segments(),
    interval=st.sampled_from(["15m", "1h", "4h", "1d", "3d", "1w", "1M"]),
    start_off=st.one_of(st.none(), st.integers(-5 * DAY_S, 25 * DAY_S)),
    end_off=st.one_of(st.none(), st.integers(-5 * DAY_S, 25 * DAY_S)),
    limit=st.integers(1, 40),
)
def test_select_kline_opens_matches_brute_force(segs, interval, start_off, end_off, limit) -> None:
    start_ms = None if start_off is None else (BASE_S + start_off) * 1000 + 7
    end_ms = None if end_off is None else (BASE_S + end_off) * 1000 + 3
    got = series.select_kline_opens(segs, interval, start_ms, end_ms, limit).tolist()
    assert got == brute(segs, interval, start_ms, end_ms, limit)


@settings(max_examples=200, deadline=None)
@given(segs=segments(), data=st.data())
def test_agg_id_round_trip(segs, data) -> None:
    total = sum(b - a for a, b in segs)
    agg_id = data.draw(st.integers(0, total - 1))
    sec = series.second_of_agg_id(segs, agg_id)
    assert sec is not None and any(a <= sec < b for a, b in segs)
    assert series.agg_id_of_second(segs, sec) == agg_id
    assert series.second_of_agg_id(segs, total) is None
    fwd = series.seconds_forward(segs, sec, 50)
    ids = [series.agg_id_of_second(segs, int(s)) for s in fwd]
    assert ids == list(range(agg_id, agg_id + len(fwd)))
    back = series.seconds_backward(segs, sec, 50)
    assert back[-1] == sec and np.all(np.diff(back) > 0)
    assert [series.agg_id_of_second(segs, int(s)) for s in back] == list(range(agg_id - len(back) + 1, agg_id + 1))


def test_interval_levels() -> None:
    assert {series.interval_level(iv) for iv in INTERVAL_MS} == {"second", "minute", "hour", "day"}
