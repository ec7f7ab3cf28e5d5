"""The kline time grid: which open times an interval has in a range, and which of them
are missing or covered. Pure (NumPy arrays of microseconds in, arrays or runs out).

`grid`/`missing_runs`/`inside_covered` work slot by slot on a materialised grid (fine for
a backtest's bars, which are dense anyway); `absent_runs`/`split_by_coverage` answer the
same question from stored rows and covered ranges only, in memory proportional to the
rows, whatever the span (what ``gaps`` uses).
"""

from __future__ import annotations

import numpy as np

from kline_lake.core import ranges as rg
from kline_lake.core.intervals import INTERVAL_MS, ceil_open_ms, next_open_ms
from kline_lake.core.timeutil import US_PER_DAY, US_PER_MS

_WEEK_OFFSET_US = 4 * US_PER_DAY  # 1970-01-01 was a Thursday; weekly klines open on Mondays


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


# ------------------------------------------------------------ O(rows) gap finding
# The functions below never materialise the grid of a range: they work on the stored
# open times and the covered ranges only, so two days of 1s klines two years apart cost
# what two days cost (the dense grid of that span is 63 million slots).

def floor_opens_us(ts_us: np.ndarray, interval: str) -> np.ndarray:
    """Vectorised: the open (us) of the `interval` kline containing each time."""
    ts = np.asarray(ts_us, dtype=np.int64)
    if interval == "1M":
        return ts.astype("datetime64[us]").astype("datetime64[M]").astype("datetime64[us]") \
            .astype(np.int64)
    step_us = INTERVAL_MS[interval] * US_PER_MS
    offset_us = _WEEK_OFFSET_US if interval == "1w" else 0
    return ts - (ts - offset_us) % step_us


def ceil_opens_us(ts_us: np.ndarray, interval: str) -> np.ndarray:
    """Vectorised: the first kline open (us) at or after each time."""
    ts = np.asarray(ts_us, dtype=np.int64)
    floor = floor_opens_us(ts, interval)
    return np.where(floor == ts, floor, next_opens_us(floor, interval))


def next_opens_us(opens_us: np.ndarray, interval: str) -> np.ndarray:
    """Vectorised `next_open_us` of kline opens (calendar months for 1M)."""
    opens = np.asarray(opens_us, dtype=np.int64)
    if interval == "1M":
        month = opens.astype("datetime64[us]").astype("datetime64[M]") + 1
        return month.astype("datetime64[us]").astype(np.int64)
    return opens + INTERVAL_MS[interval] * US_PER_MS


def slot_counts(lo_us: np.ndarray, hi_us: np.ndarray, interval: str) -> np.ndarray:
    """How many kline opens lie in each ``[lo, hi)`` (both ends on the grid)."""
    lo, hi = np.asarray(lo_us, dtype=np.int64), np.asarray(hi_us, dtype=np.int64)
    if interval == "1M":
        months = lambda t: t.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)  # noqa: E731
        return months(hi) - months(lo)
    return (hi - lo) // (INTERVAL_MS[interval] * US_PER_MS)


def absent_runs(present_us: np.ndarray, first_us: int, stop_us: int,
                interval: str) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of kline opens in ``[first_us, stop_us)`` (both on the grid) with no
    stored row, from the sorted stored opens alone: (run starts, run stops), each stop the
    open after the run's last slot. Stored times off the grid are not klines and ignored."""
    present = np.asarray(present_us, dtype=np.int64)
    present = present[(present >= first_us) & (present < stop_us)]
    present = present[floor_opens_us(present, interval) == present]
    starts = np.concatenate([[first_us], next_opens_us(present, interval)]).astype(np.int64)
    stops = np.concatenate([present, [stop_us]]).astype(np.int64)
    keep = starts < stops
    return starts[keep], stops[keep]


def split_runs(starts: np.ndarray, stops: np.ndarray, known_lo: np.ndarray,
               known_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut sorted disjoint runs ``[starts, stops)`` at the edges of sorted disjoint
    intervals ``[known_lo, known_hi)``: (piece starts, piece stops, inside-known flags),
    consecutive pieces of one run with one flag merged. O((runs + intervals) log)."""
    if len(starts) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0, dtype=bool)
    points = np.unique(np.concatenate([starts, stops, known_lo, known_hi]).astype(np.int64))
    seg_lo, seg_hi = points[:-1], points[1:]
    run = np.searchsorted(starts, seg_lo, side="right") - 1
    in_run = (run >= 0) & (seg_lo < stops[np.maximum(run, 0)])
    if len(known_lo):
        idx = np.searchsorted(known_lo, seg_lo, side="right") - 1
        known = (idx >= 0) & (seg_lo < known_hi[np.maximum(idx, 0)])
    else:
        known = np.zeros(len(seg_lo), dtype=bool)
    seg_lo, seg_hi, run, known = seg_lo[in_run], seg_hi[in_run], run[in_run], known[in_run]
    new = np.ones(len(seg_lo), dtype=bool)
    new[1:] = (run[1:] != run[:-1]) | (known[1:] != known[:-1])
    first = np.flatnonzero(new)
    last = np.concatenate([first[1:], [len(seg_lo)]]) - 1
    return seg_lo[first], seg_hi[last], known[first]


def split_by_coverage(starts_us: np.ndarray, stops_us: np.ndarray,
                      covered: list[tuple[int, int]],
                      interval: str) -> list[tuple[int, int, int, str]]:
    """Split runs of missing slots into confirmed/unknown pieces: a slot is confirmed when
    its whole kline ``[open, next_open)`` lies inside one covered range. Returns
    (start_us, end_us, slots, status) with ``end_us`` the open after the piece's last slot.
    No grid is built."""
    merged = rg.merge(covered)
    c_lo = ceil_opens_us(np.asarray([r[0] for r in merged], dtype=np.int64), interval)
    c_hi = floor_opens_us(np.asarray([r[1] for r in merged], dtype=np.int64), interval)
    ok = c_lo < c_hi  # in open-space: the confirmed slots open in [c_lo, c_hi)
    lo, hi, confirmed = split_runs(np.asarray(starts_us, dtype=np.int64),
                                   np.asarray(stops_us, dtype=np.int64), c_lo[ok], c_hi[ok])
    counts = slot_counts(lo, hi, interval)
    return [(int(a), int(b), int(n), "confirmed" if c else "unknown")
            for a, b, n, c in zip(lo, hi, counts, confirmed, strict=True)]
