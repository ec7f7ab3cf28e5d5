"""Does the lake hold a backtest's range? Pure: open times and coverage ranges in, a
verdict out (`backtest.data.load_lake_data` does the reading).

DESIGN.md: "A backtest never silently spans data the lake does not have". The rules:

- Klines are checked on the grid of the interval the bars come from (the requested one,
  or the finer one they are resampled from): every slot opening in the checked range is
  either stored, or missing. A missing slot whose whole kline lies inside the series'
  coverage record was asked of the exchange and answered without it (maintenance, before
  listing, after delisting): a *confirmed* gap, part of history, run as it is. Any other
  missing slot was never fetched: an *unknown* hole. This is the classification of
  ``kline-lake gaps`` (`kline_lake.lake.gaps.kline_gaps`, from the stored rows and the
  record alone: cost grows with the rows, never with the span).
- Unknown holes refuse to run (InputError: one line naming them and the
  ``kline-lake download`` command that fills them, exit 2 on the command line) unless
  ``allow_gaps``; then the run goes on, its notes say what it spans, and
  ``config["unknown_gaps"]`` counts the holes (0 for a run on complete data), with
  ``config["coverage"]`` (`CoverageReport.summary`) listing them.
- A range that ends in the future is checked up to ``now``: a kline that has not closed
  yet cannot be in any lake, so it is not a hole (a note says so).
- Clipping to the listing: a leading stretch the exchange confirmed empty (a range that
  starts before the symbol's listing) is not a hole; the run starts at the first stored
  bar and a note names it. Likewise a confirmed-empty tail (delisting) ends the run at the
  last bar. A stretch before the first bar that was never fetched is an unknown hole: a
  range is never quietly shortened.
- Funding (perpetuals, funding on): over the bars' span ``[first open, last close)``
  every settlement the funding series should hold must be stored or confirmed by its
  coverage record. Which settlements it should hold is the lake's rule
  (`kline_lake.lake.event_gaps.funding_gaps`, as ``kline-lake gaps --data funding``): the
  contract's own cadence read from its records (1, 2, 4 or 8 h; 8 h, the exchange's
  default, with none). Unknown settlements refuse like unknown klines (missing funding
  never counts as zero silently): download them, run with funding off, or allow gaps.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kline_lake.core.timeutil import format_us, us_to_datetime
from kline_lake.lake.event_gaps import funding_gaps
from kline_lake.lake.gaps import kline_gaps
from kline_lake.lake.grid import floor_opens_us, next_open_us

SHOWN_HOLES = 3


@dataclass(frozen=True)
class Hole:
    """A stretch ``[start_us, end_us)`` missing `count` kline slots (`unit` "bars") or
    funding settlements (`unit` "settlements")."""

    start_us: int
    end_us: int
    count: int
    unit: str = "bars"

    def describe(self) -> str:
        return f"{human_time(self.start_us)} .. {human_time(self.end_us)} ({self.count} {self.unit})"

    def as_list(self) -> list:
        return [format_us(self.start_us), format_us(self.end_us), self.count]


@dataclass(frozen=True)
class CoverageReport:
    """What the lake holds of a backtest's range (see the module docstring)."""

    market: str
    symbol: str
    interval: str
    source_interval: str
    start_us: int
    end_us: int
    first_bar_us: int | None = None
    last_bar_end_us: int | None = None
    confirmed: tuple[Hole, ...] = ()
    unknown: tuple[Hole, ...] = ()
    funding_checked: bool = False
    funding_unknown: tuple[Hole, ...] = ()
    allow_gaps: bool = False
    clamped_end_us: int | None = None
    checked: bool = True
    extra_notes: tuple[str, ...] = field(default=())

    @property
    def n_unknown(self) -> int:
        """How many never-fetched stretches (klines and funding) the range holds."""
        return len(self.unknown) + len(self.funding_unknown)

    @property
    def resampled(self) -> bool:
        return self.source_interval != self.interval

    def refusal(self, lake: str) -> str:
        """The one-line InputError message naming the holes and the download command."""
        parts = []
        if self.unknown:
            missing = sum(h.count for h in self.unknown)
            parts.append(
                f"the lake has never fetched {missing} {self.source_interval} klines in "
                f"{_holes_text(self.unknown)}; fill them with: "
                f"{download_command(lake, self.market, 'klines', self.symbol, self.source_interval, self.unknown)}")
        if self.funding_unknown:
            parts.append(
                f"funding was never fetched for {_holes_text(self.funding_unknown)}; fill it "
                f"with: {download_command(lake, self.market, 'funding', self.symbol, None, self.funding_unknown)}"
                " (or run with --no-funding / funding=False)")
        return (f"refusing to backtest {self._series()} over {self._range()}: "
                + "; ".join(parts) + "; or pass --allow-gaps (allow_gaps=True) to run anyway")

    def notes(self) -> list[str]:
        """Notes for the result: resampling, clipping, confirmed gaps, allowed holes."""
        out = list(self.extra_notes)
        if not self.checked:
            return out
        if self.clamped_end_us is not None:
            out.append(f"the range ends in the future: checked up to the last closed "
                       f"{self.source_interval} kline (up to {human_time(self.clamped_end_us)})")
        out += self._clip_notes()
        inner = [h for h in self.confirmed if self._inside_bars(h)]
        if inner:
            bars = sum(h.count for h in inner)
            out.append(f"{len(inner)} gap(s) the exchange confirmed ({bars} {self.source_interval}"
                       " bars, e.g. maintenance) are part of the history")
        if self.unknown:
            out.append(f"allow_gaps: running across {len(self.unknown)} never-fetched kline "
                       f"hole(s) ({_holes_text(self.unknown)}); results span data the lake "
                       "does not have")
        if self.funding_unknown:
            out.append(f"allow_gaps: funding never fetched for {_holes_text(self.funding_unknown)}"
                       " is counted as no funding")
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for the result's config (``config["coverage"]``)."""
        if not self.checked:
            return {"checked": False}
        return {
            "checked": True, "interval": self.interval, "source_interval": self.source_interval,
            "resampled": self.resampled, "checked_start": format_us(self.start_us),
            "checked_end": format_us(self.end_us),
            "first_bar": None if self.first_bar_us is None else format_us(self.first_bar_us),
            "last_bar_end": None if self.last_bar_end_us is None else format_us(self.last_bar_end_us),
            "confirmed_gaps": len(self.confirmed),
            "confirmed_missing_bars": sum(h.count for h in self.confirmed),
            "allow_gaps": self.allow_gaps, "unknown_gaps": [h.as_list() for h in self.unknown],
            "funding_checked": self.funding_checked,
            "funding_unknown": [h.as_list() for h in self.funding_unknown],
        }

    def _series(self) -> str:
        via = f" (resampled from {self.source_interval})" if self.resampled else ""
        return f"{self.market} {self.symbol} {self.interval}{via}"

    def _range(self) -> str:
        return f"[{human_time(self.start_us)}, {human_time(self.end_us)})"

    def _inside_bars(self, hole: Hole) -> bool:
        return (self.first_bar_us is not None and self.last_bar_end_us is not None
                and self.first_bar_us < hole.start_us and hole.end_us <= self.last_bar_end_us)

    def _clip_notes(self) -> list[str]:
        out = []
        if self.first_bar_us is None or self.last_bar_end_us is None:
            return out
        head = [h for h in self.confirmed if h.end_us <= self.first_bar_us]
        if head:
            out.append(f"no bars before {human_time(self.first_bar_us)}: the exchange "
                       f"confirmed [{human_time(head[0].start_us)}, {human_time(self.first_bar_us)})"
                       " empty (e.g. before listing); the run starts at the first bar")
        tail = [h for h in self.confirmed if h.start_us >= self.last_bar_end_us]
        if tail:
            out.append(f"no bars from {human_time(self.last_bar_end_us)}: the exchange "
                       f"confirmed [{human_time(self.last_bar_end_us)}, {human_time(tail[-1].end_us)})"
                       " empty (e.g. delisted); the run ends at the last bar")
        return out


def not_checked(note: str | None = None) -> CoverageReport:
    """The report of data given as arrays (nothing to check against a lake)."""
    return CoverageReport("", "", "", "", 0, 0, checked=False,
                          extra_notes=(note,) if note else ())


def closed_end_us(end_us: int, interval: str, now_us: int | None) -> int | None:
    """The open of the `interval` kline still open at `now_us` when it is before
    `end_us` (the checked range stops there: that kline cannot be stored yet), else None."""
    if now_us is None:
        return None
    stop = int(floor_opens_us(np.asarray([now_us], dtype=np.int64), interval)[0])
    return stop if stop < end_us else None


def kline_holes(present_us: np.ndarray, covered: list[tuple[int, int]], interval: str,
                start_us: int, end_us: int) -> tuple[list[Hole], list[Hole]]:
    """(confirmed, unknown) runs of missing slots opening in ``[start_us, end_us)``, split
    by the coverage record (`kline_lake.lake.gaps.kline_gaps`: O(rows), never a grid)."""
    if start_us >= end_us:
        return [], []
    pieces = kline_gaps(present_us, covered, interval, start_us, end_us)
    confirmed = [Hole(a, b, n) for a, b, n, status in pieces if status == "confirmed"]
    unknown = [Hole(a, b, n) for a, b, n, status in pieces if status != "confirmed"]
    return confirmed, unknown


def bar_span(present_us: np.ndarray, interval: str) -> tuple[int, int] | None:
    """``[first open, last close)`` of sorted stored opens, or None if there are none."""
    if not len(present_us):
        return None
    return int(present_us[0]), next_open_us(int(present_us[-1]), interval)


def funding_holes(span: tuple[int, int], funding_time_us: np.ndarray,
                  covered: list[tuple[int, int]]) -> list[Hole]:
    """Runs of settlements in `span` that are neither stored nor confirmed by the funding
    coverage record (`kline_lake.lake.event_gaps.funding_gaps`)."""
    t = np.asarray(funding_time_us, dtype=np.int64)
    t = t[(t >= span[0]) & (t < span[1])]
    gaps = funding_gaps(t, covered, span[0], span[1])
    unknown = gaps.filter(gaps["status"] == "unknown")
    return [Hole(int(a), int(b), int(n), "settlements") for a, b, n in zip(
        unknown["start"].cast(int).to_list(), unknown["end"].cast(int).to_list(),
        unknown["missing"].to_list(), strict=True)]


def check_coverage(*, market: str, symbol: str, interval: str, source_interval: str,
                   start_us: int, end_us: int, present_us: np.ndarray,
                   covered: list[tuple[int, int]], now_us: int | None = None,
                   funding_time_us: np.ndarray | None = None,
                   funding_covered: list[tuple[int, int]] | None = None,
                   allow_gaps: bool = False, notes: tuple[str, ...] = ()) -> CoverageReport:
    """Classify the source klines of ``[start_us, end_us)`` (and, when `funding_time_us`
    is given, the funding over the bars' span) into confirmed gaps and unknown holes."""
    present = np.asarray(present_us, dtype=np.int64)
    clamp = closed_end_us(end_us, source_interval, now_us)
    checked_end = end_us if clamp is None else max(start_us, clamp)
    confirmed, unknown = kline_holes(present, covered, source_interval, start_us, checked_end)
    span = bar_span(present, source_interval)
    fund_unknown: list[Hole] = []
    if funding_time_us is not None and span is not None:
        fund_unknown = funding_holes(span, funding_time_us, funding_covered or [])
    return CoverageReport(
        market, symbol, interval, source_interval, start_us, checked_end,
        span[0] if span else None, span[1] if span else None, tuple(confirmed),
        tuple(unknown), funding_time_us is not None, tuple(fund_unknown), allow_gaps, clamp,
        True, notes)


def download_command(lake: str, market: str, dataset: str, symbol: str,
                     interval: str | None, holes: tuple[Hole, ...] | list[Hole]) -> str:
    """One ``kline-lake download`` command spanning every hole (it fetches only what the
    coverage record lacks, so the stretches between holes cost nothing)."""
    args = ["kline-lake", "download", "--market", market, "--data", dataset,
            "--symbols", symbol]
    if interval is not None:
        args += ["--interval", interval]
    args += ["--start", human_time(min(h.start_us for h in holes)),
             "--end", human_time(max(h.end_us for h in holes)), "--lake", str(lake)]
    return shlex.join(args)


def human_time(ts_us: int) -> str:
    """``2024-01-01`` at midnight, ``2024-01-01T12:30`` on a minute, else full ISO; every
    form parses back with the CLIs' time parser."""
    dt = us_to_datetime(ts_us)
    if dt.second == 0 and dt.microsecond == 0:
        return f"{dt:%Y-%m-%d}" if dt.hour == 0 and dt.minute == 0 else f"{dt:%Y-%m-%dT%H:%M}"
    return format_us(ts_us)


def _holes_text(holes: tuple[Hole, ...]) -> str:
    shown = ", ".join(h.describe() for h in holes[:SHOWN_HOLES])
    more = f" and {len(holes) - SHOWN_HOLES} more" if len(holes) > SHOWN_HOLES else ""
    return f"{len(holes)} hole(s): {shown}{more}"
