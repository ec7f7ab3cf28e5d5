"""Missing funding settlements and aggregate trades, tagged confirmed/unknown like klines.

Funding (``funding_gaps``): settlements fall on a grid of the contract's funding interval
(8h: 00:00, 08:00, 16:00 UTC; some contracts settle every 4h or 1h, and Binance changes a
contract's interval now and then: https://www.binance.com/en/support/faq/introduction-to-binance-futures-funding-rates-360033525031).
The lake does not store the interval, so it is read from the data's own cadence:

- Each record's time is rounded to the nearest hour (REST times carry a few ms of jitter,
  e.g. ``16:00:00.001``) and the gaps between consecutive records are measured in hours.
- A run of at least two equal gaps of 1, 2, 4 or 8 hours establishes that cadence for
  its stretch; two established runs with different cadences are an *interval change*,
  reported as a row with status ``interval-change`` (missing 0, ``cadence`` "8h -> 4h").
- Any other gap (longer, or a lone different one) is measured against the smaller of the
  established cadences around it (with none anywhere: the largest of 1/2/4/8 h dividing
  every gap, or 8h, the exchange's default, for fewer than two records): the grid points
  of that cadence strictly inside the gap are missing settlements. Before the first and
  after the last record, the first and last cadence apply.
- A missing settlement is ``confirmed`` when its time lies inside a covered range (the
  exchange was asked and answered without it), ``unknown`` otherwise. Caveat: a long run
  of every other settlement missing looks like a slower cadence; in a covered stretch
  that is what the exchange holds anyway.

Aggregate trades (``agg_trade_gaps``): agg ids are consecutive per symbol, so a jump
between two stored ids is a run of missing trades (ids ``first_id..last_id``), which
happened between the two stored trades' times (``start`` .. ``end``). The run is
``confirmed`` when ``[start, end]`` lies inside one covered range, else ``unknown``. What
lies before the first or after the last stored trade cannot be counted by ids (see
``inventory``'s coverage holes and extent).

Recorded datasets (``recorded_gaps``, ``mark_price``): the exchange keeps no history of
them, so their coverage record says what a follower recorded (updates that came one
after the other on one connection; see ``kline_lake.live.recorder_track``). Every
stretch between covered ranges (and, with an explicit range, before the first and after
the last) is ``unrecorded``: a reconnect, a missed update or time nobody followed. It
can never be filled; ``missing`` is the number of updates the period implies were not
recorded (at least 1).

Pure functions (``funding_gaps``, ``agg_trade_gaps``, ``recorded_gaps``) take sorted
times/ids and the coverage record; memory and time grow with the rows, never the span.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kline_lake.core import ranges as rg
from kline_lake.lake.grid import inside_covered, split_runs

HOUR_US = 3_600_000_000
RECORDED_PERIOD_US = {"mark_price": 1_000_000}  # one update a second (`@markPrice@1s`)
FUNDING_CADENCES_H = (1, 2, 4, 8)
DEFAULT_CADENCE_H = 8
_TS = pl.Datetime("us", "UTC")
FUNDING_GAPS_SCHEMA = {"start": _TS, "end": _TS, "missing": pl.Int64, "status": pl.String,
                       "cadence": pl.String}
AGG_TRADE_GAPS_SCHEMA = {"start": _TS, "end": _TS, "missing": pl.Int64, "status": pl.String,
                         "first_id": pl.Int64, "last_id": pl.Int64}


def _ceil_to(values: np.ndarray, step: np.ndarray | int) -> np.ndarray:
    return -(-np.asarray(values, dtype=np.int64) // step) * step


def _fallback_cadence(diffs_h: np.ndarray) -> int:
    if len(diffs_h) == 0:
        return DEFAULT_CADENCE_H
    common = int(np.gcd.reduce(diffs_h))
    return max(c for c in FUNDING_CADENCES_H if common % c == 0)


def diff_cadences(hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per gap between consecutive settlement hours: the cadence (hours) it is measured
    against, and whether it belongs to an established run (see the module docstring)."""
    diffs = np.diff(hours)
    if len(diffs) == 0:
        return diffs, np.zeros(0, dtype=bool)
    run_id = np.concatenate([[0], np.cumsum(diffs[1:] != diffs[:-1])])
    run_len = np.bincount(run_id)
    run_val = diffs[np.concatenate([[0], np.flatnonzero(np.diff(run_id)) + 1])]
    established = (np.isin(run_val, FUNDING_CADENCES_H) & (run_len >= 2))[run_id]
    index = np.arange(len(diffs))
    left = np.maximum.accumulate(np.where(established, index, -1))
    right = np.minimum.accumulate(np.where(established, index, len(diffs))[::-1])[::-1]
    big = np.iinfo(np.int64).max
    left_c = np.where(left >= 0, diffs[np.maximum(left, 0)], big)
    right_c = np.where(right < len(diffs), diffs[np.minimum(right, len(diffs) - 1)], big)
    around = np.minimum(left_c, right_c)
    around = np.where(around == big, _fallback_cadence(diffs), around)
    return np.where(established, diffs, around), established


def _funding_runs(hours: np.ndarray, lo_h: int, stop_h: int) -> tuple[np.ndarray, ...]:
    """Missing-settlement runs in open-space hours: (starts, stops, cadence) arrays."""
    cadence, _ = diff_cadences(hours)
    if len(hours) == 0:
        c = np.asarray([DEFAULT_CADENCE_H])
        return _ceil_to([lo_h], c), _ceil_to([stop_h], c), c
    first_c = cadence[0] if len(cadence) else _fallback_cadence(cadence)
    last_c = cadence[-1] if len(cadence) else first_c
    starts = np.concatenate([_ceil_to([lo_h], first_c), (hours[:-1] // cadence + 1) * cadence,
                             [(hours[-1] // last_c + 1) * last_c]])
    stops = np.concatenate([_ceil_to([hours[0]], first_c), _ceil_to(hours[1:], cadence),
                            _ceil_to([stop_h], last_c)])
    steps = np.concatenate([[first_c], cadence, [last_c]]).astype(np.int64)
    keep = starts < stops
    return starts[keep], stops[keep], steps[keep]


def funding_gaps(times_us: np.ndarray, covered: list[tuple[int, int]],
                 start_us: int | None = None, end_us: int | None = None) -> pl.DataFrame:
    """Missing funding settlements and interval changes (see the module docstring) as a
    frame of FUNDING_GAPS_SCHEMA; `times_us` sorted funding times in ``[start_us, end_us)``."""
    times = np.asarray(times_us, dtype=np.int64)
    covered = rg.merge(covered)
    lo = start_us if start_us is not None else min(
        [v for v in (int(times[0]) if len(times) else None,
                     covered[0][0] if covered else None) if v is not None], default=None)
    hi = end_us if end_us is not None else max(
        [v for v in (int(times[-1]) + 1 if len(times) else None,
                     covered[-1][1] if covered else None) if v is not None], default=None)
    if lo is None or hi is None or lo >= hi:
        return pl.DataFrame(schema=FUNDING_GAPS_SCHEMA)
    hours = np.unique((times + HOUR_US // 2) // HOUR_US)
    lo_h, stop_h = int(-(-lo // HOUR_US)), int(-(-hi // HOUR_US))  # slots t: lo <= t*H < hi
    starts, stops, steps = _funding_runs(hours, lo_h, stop_h)
    rows = []
    for step in np.unique(steps):
        sel = steps == step
        c_lo = _ceil_to(_ceil_to([a for a, _ in covered], HOUR_US) // HOUR_US, step)
        c_hi = _ceil_to(_ceil_to([b for _, b in covered], HOUR_US) // HOUR_US, step)
        ok = c_lo < c_hi
        a, b, known = split_runs(starts[sel], stops[sel], c_lo[ok], c_hi[ok])
        rows += [(int(x) * HOUR_US, int(y) * HOUR_US, int((y - x) // step),
                  "confirmed" if k else "unknown", f"{int(step)}h")
                 for x, y, k in zip(a, b, known, strict=True)]
    rows += _interval_changes(hours)
    rows.sort(key=lambda r: (r[0], r[1]))
    return pl.DataFrame(rows, schema=FUNDING_GAPS_SCHEMA, orient="row") if rows else \
        pl.DataFrame(schema=FUNDING_GAPS_SCHEMA)


def _interval_changes(hours: np.ndarray) -> list[tuple]:
    cadence, established = diff_cadences(hours)
    idx = np.flatnonzero(established)
    out = []
    for prev, cur in zip(idx[:-1], idx[1:], strict=True):
        if cadence[prev] != cadence[cur]:
            out.append((int(hours[cur]) * HOUR_US, int(hours[cur + 1]) * HOUR_US, 0,
                        "interval-change", f"{int(cadence[prev])}h -> {int(cadence[cur])}h"))
    return out


def agg_trade_gaps(ids: np.ndarray, times_us: np.ndarray,
                   covered: list[tuple[int, int]]) -> pl.DataFrame:
    """Runs of missing agg ids between stored trades (see the module docstring) as a frame
    of AGG_TRADE_GAPS_SCHEMA; `ids` sorted, `times_us` their transact times."""
    ids, times = np.asarray(ids, dtype=np.int64), np.asarray(times_us, dtype=np.int64)
    jump = np.flatnonzero(np.diff(ids) > 1)
    if len(jump) == 0:
        return pl.DataFrame(schema=AGG_TRADE_GAPS_SCHEMA)
    before, after = times[jump], times[jump + 1]
    confirmed = inside_covered(before, after + 1, rg.merge(covered))
    return pl.DataFrame({
        "start": pl.Series(before, dtype=pl.Int64).cast(_TS),
        "end": pl.Series(after, dtype=pl.Int64).cast(_TS),
        "missing": pl.Series(ids[jump + 1] - ids[jump] - 1, dtype=pl.Int64),
        "status": pl.Series(np.where(confirmed, "confirmed", "unknown"), dtype=pl.String),
        "first_id": pl.Series(ids[jump] + 1, dtype=pl.Int64),
        "last_id": pl.Series(ids[jump + 1] - 1, dtype=pl.Int64),
    })


def recorded_gaps(covered: list[tuple[int, int]], period_us: int, start_us: int | None = None,
                  end_us: int | None = None) -> list[tuple[int, int, int, str]]:
    """Unrecorded stretches of a recorded dataset (see the module docstring) as
    (start_us, end_us, missing updates, "unrecorded") pieces."""
    covered = rg.merge(covered)
    if not covered and (start_us is None or end_us is None):
        return []
    lo = covered[0][0] if start_us is None else start_us
    hi = covered[-1][1] if end_us is None else end_us
    if lo >= hi:
        return []
    return [(a, b, max(1, round((b - a) / period_us) - 1), "unrecorded") for a, b in rg.subtract(lo, hi, covered)]
