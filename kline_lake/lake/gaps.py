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

from kline_lake.core.markets import KLINE_DATASETS
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake import coverage, layout
from kline_lake.lake.grid import grid, inside_covered, missing_runs, next_open_us, slot_ends
from kline_lake.lake.scan import scan_series

GAPS_SCHEMA = {
    "start": pl.Datetime("us", "UTC"),
    "end": pl.Datetime("us", "UTC"),
    "missing": pl.Int64,
    "status": pl.String,
}


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


def find_gaps(root: Path, key: SeriesKey, start_us: int | None = None,
              end_us: int | None = None) -> pl.DataFrame:
    """Missing klines of a series in ``[start_us, end_us)`` as a Polars frame with
    columns start, end (exclusive), missing (slot count), status."""
    if key.dataset not in KLINE_DATASETS:
        raise InputError(f"gaps are defined for kline datasets, not {key.dataset!r}")
    present = (scan_series(root, key, start_us, end_us).select("open_time")
               .collect()["open_time"].cast(pl.Int64).to_numpy())
    covered = coverage.read(layout.coverage_path(root, key))
    lo_candidates = [v for v in (present.min() if len(present) else None,
                                 covered[0][0] if covered else None) if v is not None]
    hi_candidates = [v for v in (next_open_us(int(present.max()), key.interval) if len(present) else None,
                                 covered[-1][1] if covered else None) if v is not None]
    lo = start_us if start_us is not None else (min(lo_candidates) if lo_candidates else None)
    hi = end_us if end_us is not None else (max(hi_candidates) if hi_candidates else None)
    if lo is None or hi is None or lo >= hi:
        return pl.DataFrame(schema=GAPS_SCHEMA)
    expected = grid(int(lo), int(hi), key.interval)
    # a trailing slot whose kline would end after `hi` is not expected yet (still open)
    if len(expected) and end_us is None and next_open_us(int(expected[-1]), key.interval) > hi:
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
