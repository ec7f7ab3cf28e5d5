"""Mapping funding events onto bars (the documented rule in backtest.funding)."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.data import FundingEvents, MarkOpens
from backtest.funding import align_funding, event_bars, event_mark_prices
from tests.support.backtest import T0_MS, make_bars

H_US = 3_600_000_000
T0 = T0_MS * 1000


def test_jitter_maps_to_the_bar_open():
    opens = T0 + np.arange(24) * H_US
    t = np.array([T0 + 16 * H_US + 1_000, T0 + 8 * H_US, T0 + 8 * H_US + 1_800_000_000])
    idx, at_open = event_bars(opens, H_US, t)
    assert idx.tolist() == [16, 8, 8]
    assert at_open.tolist() == [True, True, False]  # a half-hour offset is intra-bar


def test_eight_hour_funding_inside_daily_bars_is_intra_bar():
    day = 24 * H_US
    opens = T0 + np.arange(3) * day
    t = T0 + np.array([0, 8, 16, 24, 32]) * H_US
    idx, at_open = event_bars(opens, day, t)
    assert idx.tolist() == [0, 0, 0, 1, 1]
    assert at_open.tolist() == [True, False, False, True, False]


def test_gap_events_move_to_next_bar_and_outside_events_are_dropped():
    opens = T0 + np.array([0, 1, 5, 6]) * H_US  # bars 2..4 missing
    t = T0 + np.array([-1, 3, 6, 7]) * H_US  # before, in the gap, at a bar, after the end
    idx, at_open = event_bars(opens, H_US, t)
    assert idx.tolist() == [-1, 2, 3, -1]
    assert at_open[1]


def test_mark_price_precedence_and_sums_per_bar():
    bars = make_bars(10, seed=1)
    t = bars.open_time_us[[2, 3, 4, 4]] + np.array([0, 0, 0, 1_800_000_000])
    ev = FundingEvents(t, np.array([0.001, 0.002, 0.003, 0.004]),
                       np.array([50.0, np.nan, np.nan, np.nan]))
    marks = MarkOpens(bars.open_time_us[[3]], np.array([77.0]), 3_600_000)
    mark = event_mark_prices(ev, marks, bars)
    assert mark.tolist() == [50.0, 77.0, bars.open[4], bars.open[4]]
    at_open, intra = align_funding(bars, ev, marks)
    assert at_open[2] == 0.001 * 50.0 and at_open[3] == 0.002 * 77.0
    assert at_open[4] == 0.003 * bars.open[4]
    assert intra[4] == 0.004 * bars.open[4]
    assert at_open.sum() + intra.sum() == pytest.approx(0.001 * 50 + 0.002 * 77
                                                        + 0.007 * bars.open[4])
