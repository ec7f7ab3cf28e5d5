"""Missing klines (and, through ``event_gaps``, funding settlements and aggregate
trades), tagged by what the lake knows about them.

A kline slot (an open time on the interval's grid) is *missing* when no row opens there.
Each maximal run of missing slots is split by the coverage record:

- ``confirmed``: the slots lie inside a covered range, i.e. the exchange was asked and
  answered without them (maintenance, not yet listed, delisted);
- ``unknown``: never fetched (or fetched by a process that crashed before recording it).

The default range is from the first stored kline (or covered start, whichever is earlier)
to the end of the last stored kline (or covered end, whichever is later), so leading and
trailing unfetched stretches inside an explicit ``[start, end)`` are reported too.
The answer is computed from the stored open times and the coverage record alone
(``kline_gaps``, pure): memory and time grow with the rows, never with the span, so two
days of 1s klines two years apart cost what two days cost. ``tag_runs`` (slot by slot on
a materialised grid) stays for callers that hold the grid anyway; ``find_gaps`` does the
I/O.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from kline_lake.core.markets import KLINE_DATASETS
from kline_lake.core.schemas import TIME_COLUMNS
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake import coverage
from kline_lake.lake.event_gaps import (
    RECORDED_PERIOD_US,
    agg_trade_gaps,
    funding_gaps,
    recorded_gaps,
)
from kline_lake.lake.grid import (
    absent_runs,
    ceil_opens_us,
    floor_opens_us,
    inside_covered,
    next_open_us,
    slot_ends,
    split_by_coverage,
)
from kline_lake.lake.market_gaps import METRICS_INTERVAL, QUIET_US, silence_gaps
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


def kline_gaps(present_us: np.ndarray, covered: list[tuple[int, int]], interval: str,
               start_us: int | None = None, end_us: int | None = None) -> list[tuple[int, int, int, str]]:
    """Pure: missing kline slots of one series as (start_us, end_us, slots, status) pieces,
    from its sorted stored open times and coverage alone (see the module docstring for
    the default range). Memory and time grow with the rows and ranges, never the span."""
    present = np.asarray(present_us, dtype=np.int64)
    lo = start_us if start_us is not None else min(
        [v for v in (int(present[0]) if len(present) else None,
                     covered[0][0] if covered else None) if v is not None], default=None)
    hi = end_us if end_us is not None else max(
        [v for v in (next_open_us(int(present[-1]), interval) if len(present) else None,
                     covered[-1][1] if covered else None) if v is not None], default=None)
    if lo is None or hi is None or lo >= hi:
        return []
    first = int(ceil_opens_us(np.asarray([lo]), interval)[0])
    # slots open in [lo, hi); without an explicit end, a trailing slot whose kline would
    # end after `hi` is not expected yet (still open)
    edge = ceil_opens_us if end_us is not None else floor_opens_us
    stop = int(edge(np.asarray([hi]), interval)[0])
    if first >= stop:
        return []
    starts, stops = absent_runs(present, first, stop, interval)
    return split_by_coverage(starts, stops, covered, interval)


def find_gaps(root: Path, key: SeriesKey, start_us: int | None = None,
              end_us: int | None = None) -> pl.DataFrame:
    """Missing rows of a series in ``[start_us, end_us)`` as a Polars frame with columns
    start, end (exclusive), missing (count), status; funding adds ``cadence`` (and
    ``interval-change`` rows), agg_trades ``first_id``/``last_id`` (see ``event_gaps``)."""
    covered = coverage.read_at(root, key)
    if key.dataset == "funding":
        times = _column(root, key, "funding_time", start_us, end_us)
        return funding_gaps(times, covered, start_us, end_us)
    if key.dataset == "agg_trades":
        frame = scan_series(root, key, start_us, end_us).select("agg_id", "transact_time") \
            .collect()
        return agg_trade_gaps(frame["agg_id"].to_numpy(),
                              frame["transact_time"].cast(pl.Int64).to_numpy(), covered)
    if key.dataset == "trades":  # trade ids are consecutive per symbol too
        frame = scan_series(root, key, start_us, end_us).select("trade_id", "time").collect()
        return agg_trade_gaps(frame["trade_id"].to_numpy(),
                              frame["time"].cast(pl.Int64).to_numpy(), covered)
    if key.dataset == "metrics":  # the 5-minute grid (see market_gaps)
        present = _column(root, key, "create_time", start_us, end_us)
        return gaps_frame(kline_gaps(present, covered, METRICS_INTERVAL, start_us, end_us))
    if key.dataset in QUIET_US:  # book_ticker, book_depth: silences (see market_gaps)
        times = _column(root, key, TIME_COLUMNS[key.dataset], start_us, end_us)
        return gaps_frame(silence_gaps(times, covered, QUIET_US[key.dataset], start_us, end_us))
    if key.dataset in RECORDED_PERIOD_US:  # mark_price: what no follower recorded
        return gaps_frame(recorded_gaps(covered, RECORDED_PERIOD_US[key.dataset], start_us, end_us))
    if key.dataset not in KLINE_DATASETS:
        raise InputError(f"gaps are not defined for {key.dataset!r}")
    present = _column(root, key, "open_time", start_us, end_us)
    return gaps_frame(kline_gaps(present, covered, key.interval, start_us, end_us))


def _column(root: Path, key: SeriesKey, name: str, start_us: int | None,
            end_us: int | None) -> np.ndarray:
    return (scan_series(root, key, start_us, end_us).select(name).collect()[name]
            .cast(pl.Int64).to_numpy())


def gaps_frame(pieces: list[tuple[int, int, int, str]]) -> pl.DataFrame:
    """(start_us, end_us, missing, status) pieces as the GAPS_SCHEMA frame."""
    if not pieces:
        return pl.DataFrame(schema=GAPS_SCHEMA)
    starts, ends, counts, statuses = zip(*pieces, strict=True)
    return pl.DataFrame({
        "start": pl.Series(starts, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "end": pl.Series(ends, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
        "missing": pl.Series(counts, dtype=pl.Int64),
        "status": pl.Series(statuses, dtype=pl.String),
    })
