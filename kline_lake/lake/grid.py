"""The kline time grid: which open times an interval has in a range, and which of them
are missing or covered. Pure (NumPy arrays of microseconds in, arrays or runs out).
"""

from __future__ import annotations

import numpy as np

from kline_lake.core import ranges as rg
from kline_lake.core.intervals import ceil_open_ms, next_open_ms
from kline_lake.core.timeutil import US_PER_MS


def grid(start_us: int, end_us: int, interval: str) -> np.ndarray:
    """Every kline open time (us) of `interval` in ``[start_us, end_us)``."""
    first_ms = ceil_open_ms(-(-start_us // US_PER_MS), interval)
    end_ms = -(-end_us // US_PER_MS)
    if interval != "1M":
        step_ms = next_open_ms(first_ms, interval) - first_ms
        return np.arange(first_ms, end_ms, step_ms, dtype=np.int64) * US_PER_MS
    out = []
    t = first_ms
    while t < end_ms:
        out.append(t)
        t = next_open_ms(t, interval)
    return np.asarray(out, dtype=np.int64) * US_PER_MS


def missing_runs(expected_us: np.ndarray, present_us: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of `expected_us` slots absent from `present_us`, as half-open index
    ranges ``(first, stop)`` into `expected_us`."""
    if len(expected_us) == 0:
        return []
    absent = ~np.isin(expected_us, present_us)
    if not absent.any():
        return []
    edges = np.diff(np.concatenate([[0], absent.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def slot_ends(slots_us: np.ndarray, interval: str) -> np.ndarray:
    """The exclusive end (next open) of each kline slot."""
    if interval == "1M":
        return np.asarray([next_open_us(int(t), interval) for t in slots_us], dtype=np.int64)
    if len(slots_us) == 0:
        return slots_us.copy()
    return slots_us + (next_open_us(int(slots_us[0]), interval) - int(slots_us[0]))


def inside_covered(starts_us: np.ndarray, ends_us: np.ndarray,
                   covered: list[tuple[int, int]]) -> np.ndarray:
    """Vectorised: is each ``[start, end)`` inside one merged covered range?"""
    merged = rg.merge(covered)
    if not merged:
        return np.zeros(len(starts_us), dtype=bool)
    c_start = np.asarray([r[0] for r in merged], dtype=np.int64)
    c_end = np.asarray([r[1] for r in merged], dtype=np.int64)
    idx = np.searchsorted(c_start, starts_us, side="right") - 1
    ok = idx >= 0
    return ok & (ends_us <= c_end[np.where(ok, idx, 0)])


def next_open_us(open_us: int, interval: str) -> int:
    """The open (us) of the kline after the one opening at `open_us`."""
    return next_open_ms(open_us // US_PER_MS, interval) * US_PER_MS
