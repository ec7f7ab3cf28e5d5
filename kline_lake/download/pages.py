"""Page plans: which requests fetch a range, and what each answer proves. Pure.

Times are epoch milliseconds, ranges half-open `[start, end)` over the dataset's time
key (kline open time, trade time, funding time). The I/O loop in `kline_lake.download.rest_source` asks the
functions here for the next request and hands them each answer; they return the rows
to keep, the range the exchange *confirmed* (rows present, or proven empty) and what to
ask next.

Exchange rules honoured (docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints,
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api):
- klines: `startTime` is inclusive; rows come sorted by open time from the first open
  >= startTime. Pages carry `endTime = chunk_end - 1` so an answer shorter than the
  limit is complete for the chunk. An empty page, or a first row later than asked, proves
  `[asked, first_open)` empty (exchange gap, or before the listing).
- the last kline may still be open: rows whose close time is >= the server's now are
  dropped, and coverage never reaches past the open of the still-open kline.
- COIN-M klines: endTime - startTime at most 200 days.
- futures aggTrades: a startTime..endTime window shorter than 1 hour; then `fromId`.
- fundingRate: by fundingTime, limit up to 1000.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kline_lake.core import ranges as rg
from kline_lake.core.intervals import INTERVAL_MS, ceil_open_ms, floor_open_ms, next_open_ms
from kline_lake.core.ranges import Range
from kline_lake.core.timeutil import MS_PER_DAY, MS_PER_HOUR

# Futures aggTrades: "startTime and endTime must be less than 1 hour apart" -> span < 1 h.
FUTURES_AGG_WINDOW_MS = MS_PER_HOUR
# COIN-M klines: "the difference between startTime and endTime can only be up to 200 days".
CM_KLINE_WINDOW_MS = 200 * MS_PER_DAY


# ----------------------------------------------------------------- klines
def kline_upper_bound_ms(end_ms: int, interval: str, server_now_ms: int) -> int:
    """Where kline coverage must stop: the requested end, or the open of the kline still
    open at the server's now (never store, never claim, an unfinished kline)."""
    return min(end_ms, floor_open_ms(server_now_ms, interval))


def advance_opens_ms(start_ms: int, interval: str, n: int) -> int:
    """The time `n` kline slots after `start_ms` (calendar months for 1M)."""
    if interval == "1M":
        t = ceil_open_ms(start_ms, "1M")
        for _ in range(n if t == start_ms else n - 1):
            t = next_open_ms(t, "1M")
        return t
    return start_ms + n * INTERVAL_MS[interval]


def plan_kline_chunks(start_ms: int, end_ms: int, interval: str, page_limit: int,
                      pages_per_chunk: int, max_window_ms: int | None = None) -> list[Range]:
    """Split `[start_ms, end_ms)` into independent chunks of `pages_per_chunk` full pages
    (each chunk is paged sequentially; chunks run concurrently). `max_window_ms` caps a
    chunk's span (COIN-M's 200 days) so every request inside it respects the window."""
    if page_limit <= 0 or pages_per_chunk <= 0:
        raise ValueError("page_limit and pages_per_chunk must be > 0")
    chunks = []
    cursor = start_ms
    while cursor < end_ms:
        nxt = advance_opens_ms(cursor, interval, page_limit * pages_per_chunk)
        if max_window_ms is not None:
            nxt = min(nxt, cursor + max_window_ms)
        nxt = min(max(nxt, cursor + 1), end_ms)
        chunks.append((cursor, nxt))
        cursor = nxt
    return chunks


def kline_page_params(cursor_ms: int, chunk_end_ms: int, limit: int) -> dict[str, int]:
    """Query parameters of the next klines page of a chunk."""
    if cursor_ms >= chunk_end_ms:
        raise ValueError("empty kline page request")
    return {"startTime": cursor_ms, "endTime": chunk_end_ms - 1, "limit": limit}


@dataclass(frozen=True)
class KlinePage:
    """What one klines answer proves.

    `rows`: raw rows to keep (closed, inside the chunk). `covered`: the range confirmed
    complete (None if nothing). `next_cursor_ms`: where to ask next, None when the
    chunk is done. `holes`: ranges with no klines inside `covered` (gaps, pre-listing).
    """

    rows: list[Sequence[Any]]
    covered: Range | None
    next_cursor_ms: int | None
    holes: list[Range] = field(default_factory=list)


def interpret_kline_page(rows: Sequence[Sequence[Any]], asked_ms: int, chunk_end_ms: int,
                         limit: int, interval: str, server_now_ms: int) -> KlinePage:
    """Interpret a klines answer for `startTime=asked_ms, endTime=chunk_end_ms - 1`.

    Full page (`limit` rows): confirmed up to the last row's close + 1 ms; continue
    there. Short page: the exchange returned everything it has, so confirmed up to the
    chunk end or the still-open kline, whichever is first; the chunk is done.
    """
    upper = kline_upper_bound_ms(chunk_end_ms, interval, server_now_ms)
    inside = [r for r in rows if asked_ms <= int(r[0]) < chunk_end_ms]
    kept = [r for r in inside if int(r[6]) < server_now_ms and int(r[0]) < upper]
    full = len(rows) >= limit
    if full and kept and len(kept) == len(inside):
        covered_end = min(int(kept[-1][6]) + 1, upper)
        done = covered_end >= upper
    else:
        covered_end, done = upper, True
    covered = (asked_ms, covered_end) if covered_end > asked_ms else None
    holes = kline_holes(kept, asked_ms, covered_end, interval) if covered else []
    next_cursor = None if done else covered_end
    return KlinePage(kept, covered, next_cursor, holes)


def kline_holes(rows: Sequence[Sequence[Any]], start_ms: int, end_ms: int,
                interval: str) -> list[Range]:
    """Ranges of `[start_ms, end_ms)` where a kline should open but none did."""
    holes = []
    expected = ceil_open_ms(start_ms, interval)
    for row in rows:
        open_ms = int(row[0])
        if open_ms > expected:
            holes.append((expected, open_ms))
        expected = max(expected, next_open_ms(open_ms, interval))
    if expected < end_ms:
        holes.append((expected, end_ms))
    return holes


def clamp_to_first_open(ranges: Sequence[Range], first_open_ms: int | None,
                        probe_end_ms: int) -> tuple[list[Range], list[Range]]:
    """Listing-date clamp from a probe (`startTime=ranges[0][0], limit=1`): returns
    (ranges still to fetch, ranges now proven empty). `first_open_ms` None means the probe
    found nothing before `probe_end_ms`."""
    if not ranges:
        return [], []
    lo = ranges[0][0]
    cut = probe_end_ms if first_open_ms is None else min(first_open_ms, probe_end_ms)
    empty = rg.clip(ranges, lo, cut)
    todo = rg.clip(ranges, cut, max(b for _, b in ranges))
    return todo, empty


# ------------------------------------------------------------- agg trades
def plan_time_chunks(start_ms: int, end_ms: int, chunk_ms: int) -> list[Range]:
    """Independent time chunks (agg trades, funding) of at most `chunk_ms`."""
    return rg.split(start_ms, end_ms, chunk_ms)


def agg_window_params(t_ms: int, chunk_end_ms: int, futures: bool, limit: int) -> dict[str, int]:
    """Locate the first trades at or after `t_ms` by time. On futures the window must
    span less than one hour: `endTime = t + 1h - 1 ms` at most."""
    end = chunk_end_ms if not futures else min(chunk_end_ms, t_ms + FUTURES_AGG_WINDOW_MS)
    return {"startTime": t_ms, "endTime": end - 1, "limit": limit}


def agg_from_id_params(from_id: int, limit: int) -> dict[str, int]:
    return {"fromId": from_id, "limit": limit}


@dataclass(frozen=True)
class AggPage:
    """What one aggTrades answer proves. `next_from_id` / `next_window_ms` say what to
    ask next (at most one is set); `covered_end_ms` is set when the chunk is done.
    `holes` are missing id ranges `[a, b)` (ids must be contiguous)."""

    rows: list[Mapping[str, Any]]
    next_from_id: int | None
    next_window_ms: int | None
    covered_end_ms: int | None
    holes: list[Range] = field(default_factory=list)


def _id_holes(rows: Sequence[Mapping[str, Any]], expected_first: int | None) -> list[Range]:
    holes = []
    expected = expected_first
    for row in rows:
        agg_id = int(row["a"])
        if expected is not None and agg_id > expected:
            holes.append((expected, agg_id))
        expected = agg_id + 1 if expected is None else max(expected, agg_id + 1)
    return holes


def interpret_agg_page(rows: Sequence[Mapping[str, Any]], *, chunk_end_ms: int, cap_ms: int,
                       limit: int, from_id: int | None = None,
                       window: Mapping[str, int] | None = None) -> AggPage:
    """Interpret an aggTrades answer to either a time-window query (`window`: its params)
    or a `fromId` query. `cap_ms` = min(chunk end, server now at the start of the run).

    Rows at or after `chunk_end_ms`/`cap_ms` end the chunk (they belong to the next one).
    A short `fromId` page means the stream has no newer trades: done up to the cap.
    """
    end = min(chunk_end_ms, cap_ms)
    ordered = sorted(rows, key=lambda r: int(r["a"]))
    kept = [r for r in ordered if int(r["T"]) < end]
    holes = _id_holes(kept, from_id)
    beyond = len(kept) < len(ordered)
    if beyond:
        return AggPage(kept, None, None, end, holes)
    if window is not None and not kept:
        window_end = int(window["endTime"]) + 1
        if window_end >= end:
            return AggPage(kept, None, None, end, holes)
        return AggPage(kept, None, window_end, None, holes)
    if kept and (len(rows) >= limit or window is not None):
        if window is not None and len(rows) < limit and int(window["endTime"]) + 1 >= end:
            return AggPage(kept, None, None, end, holes)
        return AggPage(kept, int(kept[-1]["a"]) + 1, None, None, holes)
    return AggPage(kept, None, None, end, holes)


# ---------------------------------------------------------------- funding
def funding_params(cursor_ms: int, end_ms: int, limit: int) -> dict[str, int]:
    return {"startTime": cursor_ms, "endTime": end_ms - 1, "limit": limit}


@dataclass(frozen=True)
class FundingPage:
    rows: list[Mapping[str, Any]]
    covered: Range | None
    next_cursor_ms: int | None


def interpret_funding_page(rows: Sequence[Mapping[str, Any]], asked_ms: int, end_ms: int,
                           limit: int, cap_ms: int) -> FundingPage:
    """Full page: confirmed to the last fundingTime + 1 ms, continue. Short page: all
    records up to min(end, server now) were returned."""
    upper = min(end_ms, cap_ms)
    kept = [r for r in rows if asked_ms <= int(r["fundingTime"]) < upper]
    if len(rows) >= limit and kept and len(kept) == len(rows):
        covered_end = int(kept[-1]["fundingTime"]) + 1
        nxt = covered_end if covered_end < upper else None
    else:
        covered_end, nxt = upper, None
    covered = (asked_ms, covered_end) if covered_end > asked_ms else None
    return FundingPage(kept, covered, nxt)
