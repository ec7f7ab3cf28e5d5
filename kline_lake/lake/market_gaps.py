"""Gaps of the futures extra datasets: metrics on their 5-minute grid, silences of the
event streams book_ticker and book_depth. Pure functions of sorted times and coverage.

- ``metrics``: one row every 5 minutes (create_time on the 5m grid, as the REST
  ``period=5m`` statistics are). A missing slot is a gap, exactly as a missing 5m kline:
  ``kline_lake.lake.gaps.kline_gaps`` on the create times, ``confirmed`` inside a covered
  range (the exchange answered without it), ``unknown`` outside.
- ``book_ticker`` and ``book_depth`` are event streams with no grid: an update comes when
  the best bid/ask changes, a depth snapshot every few tens of seconds. Missing events
  cannot be counted, so a *gap* here is a **silence**: a stretch longer than
  ``QUIET_US[dataset]`` (book_ticker 60 s, book_depth 5 min) between two consecutive
  stored events, or between the edge of a covered range and the first/last event in it.
  ``missing`` is the number of whole minutes of the silence; ``status`` is ``confirmed``
  when the silence lies inside one covered range (the archive's file for that day holds
  nothing there), ``unknown`` when it crosses a stretch nobody fetched.
"""

from __future__ import annotations

import numpy as np

from kline_lake.core import ranges as rg
from kline_lake.lake.grid import inside_covered

MINUTE_US = 60_000_000
QUIET_US: dict[str, int] = {"book_ticker": MINUTE_US, "book_depth": 5 * MINUTE_US,
                            "spot_book_ticker": MINUTE_US}
METRICS_INTERVAL = "5m"


def silence_gaps(times_us: np.ndarray, covered: list[tuple[int, int]], quiet_us: int,
                 start_us: int | None = None,
                 end_us: int | None = None) -> list[tuple[int, int, int, str]]:
    """Silences longer than ``quiet_us`` as (start_us, end_us, whole minutes, status)
    pieces, in time order; ``times_us`` sorted event times in ``[start_us, end_us)``."""
    times = np.unique(np.asarray(times_us, dtype=np.int64))
    spans = rg.merge(covered)
    if start_us is not None or end_us is not None:
        lo = start_us if start_us is not None else -(2**62)
        hi = end_us if end_us is not None else 2**62
        spans = rg.clip(spans, lo, hi)
    # event-to-event silences, plus each covered range's edges to its first/last event
    starts, stops = [times[:-1]], [times[1:]]
    for a, b in spans:
        inside = times[(times >= a) & (times < b)]
        starts.append(np.asarray([a, inside[-1] if len(inside) else a], dtype=np.int64))
        stops.append(np.asarray([inside[0] if len(inside) else b, b], dtype=np.int64))
    lo_all, hi_all = np.concatenate(starts), np.concatenate(stops)
    keep = (hi_all - lo_all) > quiet_us
    lo_all, hi_all = lo_all[keep], hi_all[keep]
    if not len(lo_all):
        return []
    pairs = np.unique(np.stack([lo_all, hi_all], axis=1), axis=0)
    lo_all, hi_all = pairs[:, 0], pairs[:, 1]
    known = inside_covered(lo_all, hi_all, spans)
    return [(int(a), int(b), int((b - a) // MINUTE_US), "confirmed" if k else "unknown")
            for a, b, k in zip(lo_all, hi_all, known, strict=True)]
