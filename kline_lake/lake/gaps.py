"""Missing klines, tagged by what the lake knows about them.

A kline slot (an open time on the interval's grid) is *missing* when no row opens there.
Each maximal run of missing slots is split by the coverage record:

- ``confirmed``: the slots lie inside a covered range, i.e. the exchange was asked and
  answered without them (maintenance, not yet listed, delisted);
- ``unknown``: never fetched (or fetched by a process that crashed before recording it).

The default range is from the first stored kline (or covered start, whichever is earlier)
to the end of the last stored kline (or covered end, whichever is later), so leading and
trailing unfetched stretches inside an explicit ``[start, end)`` are reported too.
Grid arithmetic is pure (``missing_runs``, ``tag_runs``); ``find_gaps`` does the I/O.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from kline_lake.core.intervals import ceil_open_ms, next_open_ms
from kline_lake.core.markets import KLINE_DATASETS
from kline_lake.errors import InputError
from kline_lake.lake import coverage, layout
from kline_lake.lake.layout import SeriesKey

US_PER_MS = 1_000
GAPS_SCHEMA = {
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "missing": pl.Int64,
    "status": pl.String,
}


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
        return np.asarray([_next_us(int(t), interval) for t in slots_us], dtype=np.int64)
    if len(slots_us) == 0:
        return slots_us.copy()
    return slots_us + (_next_us(int(slots_us[0]), interval) - int(slots_us[0]))


def inside_covered(starts_us: np.ndarray, ends_us: np.ndarray,
                   covered: list[tuple[int, int]]) -> np.ndarray:
    """Vectorised: is each ``[start, end)`` inside one merged covered range?"""
    merged = coverage.merge(covered)
    if not merged:
        return np.zeros(len(starts_us), dtype=bool)
    c_start = np.asarray([r[0] for r in merged], dtype=np.int64)
    c_end = np.asarray([r[1] for r in merged], dtype=np.int64)
    idx = np.searchsorted(c_start, starts_us, side="right") - 1
    ok = idx >= 0
    return ok & (ends_us <= c_end[np.where(ok, idx, 0)])


def tag_runs(expected_us: np.ndarray, runs: list[tuple[int, int]],
             covered: list[tuple[int, int]], interval: str) -> list[tuple[int, int, int, str]]:
    """Split each run of missing slots into confirmed/unknown pieces by whether each
    slot's whole kline ``[open, next_open)`` is inside `covered`. Returns
    (start_us, end_us, slots, status), ``end_us`` being the open after the last slot."""
    out = []
    for a, b in runs:
        slots = expected_us[a:b]
        ends = slot_ends(slots, interval)
        inside = inside_covered(slots, ends, covered)
        edges = np.flatnonzero(np.diff(inside.astype(np.int8))) + 1
        for lo, hi in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(slots)]]),
                          strict=True):
            status = "confirmed" if inside[lo] else "unknown"
            out.append((int(slots[lo]), int(ends[hi - 1]), int(hi - lo), status))
    return out


def _next_us(open_us: int, interval: str) -> int:
    return next_open_ms(open_us // US_PER_MS, interval) * US_PER_MS


def find_gaps(root: Path, key: SeriesKey, start_us: int | None = None,
              end_us: int | None = None) -> pl.DataFrame:
    """Missing klines of a series in ``[start_us, end_us)`` as a Polars frame with
    columns start, end (exclusive), missing (slot count), status."""
    from kline_lake.lake.catalog import scan_series

    if key.dataset not in KLINE_DATASETS:
        raise InputError(f"gaps are defined for kline datasets, not {key.dataset!r}")
    present = (scan_series(root, key, start_us, end_us).select("open_time")
               .collect()["open_time"].cast(pl.Int64).to_numpy())
    covered = coverage.read(layout.coverage_path(root, key))
    lo_candidates = [v for v in (present.min() if len(present) else None,
                                 covered[0][0] if covered else None) if v is not None]
    hi_candidates = [v for v in (_next_us(int(present.max()), key.interval) if len(present) else None,
                                 covered[-1][1] if covered else None) if v is not None]
    lo = start_us if start_us is not None else (min(lo_candidates) if lo_candidates else None)
    hi = end_us if end_us is not None else (max(hi_candidates) if hi_candidates else None)
    if lo is None or hi is None or lo >= hi:
        return pl.DataFrame(schema=GAPS_SCHEMA)
    expected = grid(int(lo), int(hi), key.interval)
    # a trailing slot whose kline would end after `hi` is not expected yet (still open)
    if len(expected) and end_us is None and _next_us(int(expected[-1]), key.interval) > hi:
        expected = expected[:-1]
    pieces = tag_runs(expected, missing_runs(expected, present), covered, key.interval)
    if not pieces:
        return pl.DataFrame(schema=GAPS_SCHEMA)
    starts, ends, counts, statuses = zip(*pieces, strict=True)
    return pl.DataFrame({
        "start": pl.Series(starts, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "end": pl.Series(ends, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "missing": pl.Series(counts, dtype=pl.Int64),
        "status": pl.Series(statuses, dtype=pl.String),
    })
