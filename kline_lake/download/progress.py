"""Progress reporting for downloads: tqdm bars (one per symbol and a total, rows and
weight) and the final summary line.

`DownloadProgress` is the interface the orchestration talks to; `TqdmProgress` draws
bars on stderr, `NullProgress` (tests, `--quiet`) only counts. The summary is built
from counters, so it is the same whichever display is used.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

# Above this many symbols only the total bar is drawn (hundreds of bars help nobody).
MAX_SYMBOL_BARS = 30


@dataclass
class RunTotals:
    """The counters of the summary line."""

    rows_written: int = 0
    requests: int = 0
    weight: int = 0
    rate_limited_429: int = 0
    banned_418: int = 0
    retries: int = 0
    gaps_found: int = 0
    id_holes: int = 0
    commits: int = 0
    seconds: float = 0.0
    series: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def summary_line(totals: RunTotals, *, interrupted: bool = False) -> str:
    """One human line: rows written, requests, weight, 429s, gaps found, time.

    `interrupted`: the run was stopped (Ctrl-C); the counts are what was committed.
    """
    parts = [
        f"{totals.rows_written:,} rows written",
        f"{totals.series} series",
        f"{totals.requests:,} requests",
        f"weight {totals.weight:,}",
        f"{totals.rate_limited_429} x 429",
    ]
    if totals.banned_418:
        parts.append(f"{totals.banned_418} x 418")
    if totals.retries:
        parts.append(f"{totals.retries} retries")
    parts.append(f"{totals.gaps_found} gaps found")
    if totals.id_holes:
        parts.append(f"{totals.id_holes} agg-trade id holes")
    parts.extend(f"{v:,} {k}" for k, v in sorted(totals.extra.items()))
    parts.append(f"{totals.seconds:.1f} s")
    return ("download interrupted: " if interrupted else "download done: ") + ", ".join(parts)


class DownloadProgress:
    """Counts only; subclasses draw. Methods are called from the event loop thread."""

    def start(self, labels: list[str], expected_rows: dict[str, int | None]) -> None:
        """Announce the series of the run (label -> expected row count or None)."""

    def advance(self, label: str, rows: int, weight_total: int,
                weight_series: int | None = None) -> None:
        """`rows` more rows fetched for `label`; `weight_total` = weight spent so far by
        the run, `weight_series` (if known) by this series."""

    def finish(self, label: str) -> None:
        """`label` is complete."""

    def note(self, message: str) -> None:
        """Something the user should know: a wait (429/418) and how long, a range clamped
        to the listing or to the exchange's now. One line; subclasses show it."""

    def close(self) -> None:
        """Tear down any display."""


class NullProgress(DownloadProgress):
    """No bars. Notes are kept in `notes` and, when `stream` is given (`--quiet` passes
    stderr), written there one per line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)
        if self.stream is not None:
            print(message, file=self.stream, flush=True)


class TqdmProgress(DownloadProgress):
    """tqdm bars on `stream` (stderr by default): one per symbol, plus a total."""

    def __init__(self, stream: TextIO | None = None, disable: bool | None = None) -> None:
        self.stream = stream
        self.disable = disable
        self._bars: dict = {}
        self._total = None

    def start(self, labels: list[str], expected_rows: dict[str, int | None]) -> None:
        from tqdm import tqdm

        known = [v for v in expected_rows.values() if v is not None]
        total = sum(known) if len(known) == len(expected_rows) and known else None
        kw = {"file": self.stream, "disable": self.disable, "unit": " rows",
              "unit_scale": True, "dynamic_ncols": True, "leave": True}
        self._total = tqdm(total=total, desc="total", position=0, **kw)
        if len(labels) <= MAX_SYMBOL_BARS:
            for i, label in enumerate(labels, start=1):
                self._bars[label] = tqdm(total=expected_rows.get(label), desc=label,
                                         position=i, **kw)

    def advance(self, label: str, rows: int, weight_total: int,
                weight_series: int | None = None) -> None:
        bar = self._bars.get(label)
        if bar is not None:
            if weight_series is not None:
                bar.set_postfix(weight=weight_series, refresh=False)
            bar.update(rows)
        if self._total is not None:
            self._total.update(rows)
            self._total.set_postfix(weight=weight_total, refresh=False)

    def finish(self, label: str) -> None:
        bar = self._bars.get(label)
        if bar is not None:
            bar.refresh()

    def note(self, message: str) -> None:
        """Printed above the bars (tqdm.write keeps them intact), on the bars' stream."""
        from tqdm import tqdm

        tqdm.write(message, file=self.stream if self.stream is not None else sys.stderr)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        if self._total is not None:
            self._total.close()
        self._bars.clear()
        self._total = None
