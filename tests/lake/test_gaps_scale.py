"""gaps costs what the rows cost, not the span: O(rows) and equal to the slot-by-slot answer."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake import Lake
from kline_lake.core import ranges as rg
from kline_lake.core.series import SeriesKey
from kline_lake.lake.gaps import kline_gaps, tag_runs
from kline_lake.lake.grid import grid, missing_runs, next_open_us
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

DAY_S = 86_400
J_US = JAN_2024_MS * 1000
SECOND_US = 1_000_000


def test_two_days_of_1s_two_years_apart_in_bounded_memory(lake_root):
    key = SeriesKey("spot", "klines", "BTCUSDT", "1s")
    later_ms = JAN_2024_MS + 731 * DAY_S * 1000  # 2026-01-01
    w = LakeWriter(lake_root)
    w.commit(key, synthetic_klines(JAN_2024_MS, DAY_S, "1s"),
             covered=[(J_US, J_US + DAY_S * SECOND_US)])
    w.commit(key, synthetic_klines(later_ms, DAY_S, "1s", seed=1),
             covered=[(later_ms * 1000, (later_ms + DAY_S * 1000) * 1000)])
    lake = Lake(lake_root)
    tracemalloc.start()
    try:
        gaps = lake.gaps("spot", "BTCUSDT", "1s")
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # one hole of 730 days between the two stored days, never fetched
    assert gaps.rows() == [(datetime(2024, 1, 2, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
                            730 * DAY_S, "unknown")]
    # the dense 1s grid of that span is 63 million slots (505 MB as int64); the stored
    # rows are 172,800 (1.4 MB): the traced peak must be of the rows' order, not the span's
    span_grid_bytes = 732 * DAY_S * 8
    assert peak_bytes < 32 * 2**20 < span_grid_bytes / 10


def _slot_by_slot(present, covered, interval, start_us, end_us):
    """The previous implementation: materialise the grid, mark each slot (the oracle)."""
    lo_c = [v for v in (present[0] if len(present) else None,
                        covered[0][0] if covered else None) if v is not None]
    hi_c = [v for v in (next_open_us(int(present[-1]), interval) if len(present) else None,
                        covered[-1][1] if covered else None) if v is not None]
    lo = start_us if start_us is not None else (min(lo_c) if lo_c else None)
    hi = end_us if end_us is not None else (max(hi_c) if hi_c else None)
    if lo is None or hi is None or lo >= hi:
        return []
    expected = grid(int(lo), int(hi), interval)
    if len(expected) and end_us is None and next_open_us(int(expected[-1]), interval) > hi:
        expected = expected[:-1]
    return tag_runs(expected, missing_runs(expected, present), covered, interval)


INTERVALS = ["1m", "1h", "3d", "1w", "1M"]


@settings(max_examples=300, deadline=None)
@given(interval=st.sampled_from(INTERVALS), seed=st.integers(0, 2**32 - 1),
       pool=st.integers(1, 60), ends=st.sampled_from(["none", "start", "end", "both"]))
def test_row_based_gaps_equal_slot_by_slot(interval, seed, pool, ends):
    rng = np.random.default_rng(seed)
    slots = grid(J_US, J_US + 3000 * 86_400_000_000, interval)[:pool]
    present = np.sort(rng.choice(slots, size=int(rng.integers(0, pool + 1)), replace=False))
    lo_us, hi_us = int(slots[0]), int(next_open_us(int(slots[-1]), interval))
    margin = (hi_us - lo_us) // 4 + 1
    cuts = np.sort(rng.integers(lo_us - margin, hi_us + margin, size=2 * int(rng.integers(0, 5))))
    covered = rg.merge((int(a), int(b)) for a, b in zip(cuts[::2], cuts[1::2], strict=True))
    start_us = int(rng.integers(lo_us - margin, hi_us)) if ends in ("start", "both") else None
    end_us = int(rng.integers(start_us or lo_us, hi_us + margin)) + 1 \
        if ends in ("end", "both") else None
    if start_us is not None:  # the scan's filter
        present = present[present >= start_us]
    if end_us is not None:
        present = present[present < end_us]
    assert kline_gaps(present, covered, interval, start_us, end_us) == \
        _slot_by_slot(present, covered, interval, start_us, end_us)
