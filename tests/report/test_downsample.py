"""M4 thinning keeps ends and every bucket's extremes; markers thin evenly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.report.downsample import m4_indices, thin_markers


def test_short_series_are_kept_whole():
    values = np.arange(100.0)
    assert np.array_equal(m4_indices([values], 100), np.arange(100))


def test_long_series_keep_first_last_and_global_extremes():
    rng = np.random.default_rng(1)
    a = np.cumsum(rng.normal(size=100_000))
    b = np.cumsum(rng.normal(size=100_000))
    idx = m4_indices([a, b], 2_000)
    assert len(idx) <= 2_000
    assert idx[0] == 0 and idx[-1] == 99_999
    assert np.all(np.diff(idx) > 0)
    for s in (a, b):
        assert s[idx].max() == s.max() and s[idx].min() == s.min()
        assert int(np.argmax(s)) in idx and int(np.argmin(s)) in idx


def test_nan_never_chosen_as_extreme():
    values = np.arange(1_000.0)
    values[::3] = np.nan
    idx = m4_indices([values], 40)
    kept = values[idx]
    assert np.nanmax(kept) == np.nanmax(values) and np.nanmin(kept) == np.nanmin(values)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(9, 3_000), max_points=st.integers(8, 400), seed=st.integers(0, 2**16))
def test_every_bucket_keeps_its_extremes(n, max_points, seed):
    values = np.random.default_rng(seed).normal(size=n)
    idx = m4_indices([values], max_points)
    assert np.all(np.diff(idx) > 0) and idx[0] == 0 and idx[-1] == n - 1
    if n <= max_points:
        assert len(idx) == n
        return
    assert len(idx) <= max_points
    bucket = -(-n // max(1, max_points // 4))
    for lo in range(0, n, bucket):
        inside = idx[(idx >= lo) & (idx < lo + bucket)]
        chunk = values[lo:lo + bucket]
        assert values[inside].max() == chunk.max() and values[inside].min() == chunk.min()


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="at least 8"):
        m4_indices([np.zeros(10)], 4)
    with pytest.raises(ValueError, match="equally long"):
        m4_indices([np.zeros(10), np.zeros(11)], 100)
    with pytest.raises(ValueError, match="at least one"):
        m4_indices([], 100)


def test_thin_markers_spreads_evenly_and_keeps_ends():
    assert np.array_equal(thin_markers(10, 50), np.arange(10))
    idx = thin_markers(10_001, 101)
    assert len(idx) == 101 and idx[0] == 0 and idx[-1] == 10_000
    assert set(np.diff(idx)) == {100}
