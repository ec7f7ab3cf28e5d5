"""Thin long per-bar series for plotting without changing what the eye sees.

A year of 1m bars is 525,600 points per line: a browser draws that slowly and the HTML
file gets large. The report therefore plots at most about `max_points` points per chart
(default `MAX_PLOT_POINTS`), chosen with the M4 rule: cut the bars into equal buckets and
keep, in each bucket, the first, last, lowest and highest bar of every plotted series.
A line drawn through those points has the same extremes, the same envelope and the same
end points as the full line at screen resolution (Jugel et al., "M4: A Visualization-
Oriented Time Series Data Aggregation", VLDB 2014), so drawdown troughs and equity peaks
are never smoothed away. Series with up to `max_points` bars are plotted whole.

Pure functions of arrays: no plotting library here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_PLOT_POINTS = 20_000
MAX_MARKERS = 5_000
POINTS_PER_BUCKET_PER_SERIES = 4  # first, last, min, max


def _bucket_extremes(values: np.ndarray, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the min and max of each `bucket`-long slice (NaN never wins)."""
    n = values.shape[0]
    n_buckets = -(-n // bucket)
    pad = n_buckets * bucket - n
    low = np.where(np.isnan(values), np.inf, values)
    high = np.where(np.isnan(values), -np.inf, values)
    if pad:
        low = np.concatenate([low, np.full(pad, np.inf)])
        high = np.concatenate([high, np.full(pad, -np.inf)])
    offsets = np.arange(n_buckets, dtype=np.int64) * bucket
    arg_min = low.reshape(n_buckets, bucket).argmin(axis=1) + offsets
    arg_max = high.reshape(n_buckets, bucket).argmax(axis=1) + offsets
    return np.minimum(arg_min, n - 1), np.minimum(arg_max, n - 1)


def m4_indices(series: Sequence[np.ndarray], max_points: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Sorted bar indices to plot for equally long `series` sharing one x axis.

    Returns ``arange(n)`` when ``n <= max_points``; otherwise per bucket the first and
    last bar and the argmin/argmax of every series, with buckets sized so the result
    has at most about `max_points` indices.
    """
    if max_points < 8:
        raise ValueError(f"max_points must be at least 8, got {max_points}")
    arrays = [np.asarray(s, dtype=np.float64) for s in series]
    if not arrays:
        raise ValueError("m4_indices needs at least one series")
    n = arrays[0].shape[0]
    if any(a.shape != (n,) for a in arrays):
        raise ValueError("all series must be one-dimensional and equally long")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    per_bucket = 2 + 2 * len(arrays)
    n_buckets = max(1, max_points // per_bucket)
    bucket = -(-n // n_buckets)
    starts = np.arange(0, n, bucket, dtype=np.int64)
    ends = np.minimum(starts + bucket, n) - 1
    picks = [starts, ends]
    for values in arrays:
        picks.extend(_bucket_extremes(values, bucket))
    return np.unique(np.concatenate(picks))


def thin_markers(n_markers: int, max_markers: int = MAX_MARKERS) -> np.ndarray:
    """Indices of at most `max_markers` evenly spread markers out of `n_markers`.

    Entry/exit markers are not bucketed like lines: with more trades than a chart can
    show, every k-th trade is marked (the first and last always), and the chart says so.
    """
    if max_markers < 2:
        raise ValueError(f"max_markers must be at least 2, got {max_markers}")
    if n_markers <= max_markers:
        return np.arange(n_markers, dtype=np.int64)
    return np.unique(np.linspace(0, n_markers - 1, max_markers).round().astype(np.int64))
