"""Strategy inputs beyond OHLCV: open interest, long/short ratios and the book-ticker
spread, aligned point-in-time to the bar grid.

``backtest.run(..., inputs=["open_interest", "spread"])`` reads the lake's ``metrics``
and ``book_ticker`` series and hands the signal function an `InputBars` (a `Bars` whose
extra columns are ``bars.inputs[name]``, also readable as ``bars.<name>``).

The alignment rule (no look-ahead). A bar "closes" at its kline close time, the last
millisecond of the bar, ``close_time = open_time + bar - 1 ms``; a row stamped at ``T`` is
known to a bar iff ``T <= close_time`` (so a 5-minute metric stamped 01:00:00 is first
seen by the bar opening at 01:00, never by the bar closing into it):

- ``metrics`` (5-minute grid): the value in force at time ``t`` is the row with the
  greatest ``create_time T <= t``, and only while ``t < T + 5 min`` (the slot after it
  replaces it; when that slot is missing the bar gets NaN, not a stale value);
- ``book_ticker`` (an event stream: an update comes when the best bid/ask changes): the
  update in force at ``t`` is the last one with ``transaction_time <= t`` since
  ``QUIET_US`` (60 s) before the first bar's open; before any, NaN.

Columns: ``open_interest`` -> ``sum_open_interest``, ``sum_open_interest_value``;
``ratios`` -> ``count_toptrader_long_short_ratio``, ``sum_toptrader_long_short_ratio``,
``count_long_short_ratio``, ``sum_taker_long_short_vol_ratio``; ``spread`` ->
``best_bid``, ``best_ask``, ``spread_bps`` (``(ask - bid) / mid * 1e4``).

Missing data (DESIGN: a result that rests on missing data is refused or flagged): over
the bars' span ``[first open, last close)`` the lake's own gap rule of each dataset is
applied (`kline_lake.lake.gaps`: metrics slots on the 5-minute grid, book-ticker
silences). An *unknown* piece (never fetched) refuses the run (CoverageError naming it
and the download command) unless ``allow_gaps``; then the result's notes flag it and
``config["inputs"]["unknown_gaps"]`` counts it. Bars without a value are NaN.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType

import numpy as np
import polars as pl

from backtest import coverage as cov
from backtest.data import Bars
from kline_lake.core import ranges as rg
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import US_PER_MS
from kline_lake.errors import CoverageError, InputError
from kline_lake.lake import coverage
from kline_lake.lake.gaps import kline_gaps
from kline_lake.lake.grid import next_open_us
from kline_lake.lake.market_gaps import METRICS_INTERVAL, QUIET_US, silence_gaps
from kline_lake.lake.scan import scan_series
from kline_lake.lake.storage import lake_root

METRICS_PERIOD_US = 300_000_000
INPUTS: Mapping[str, tuple[str, tuple[str, ...]]] = MappingProxyType({
    "open_interest": ("metrics", ("sum_open_interest", "sum_open_interest_value")),
    "ratios": ("metrics", ("count_toptrader_long_short_ratio",
                           "sum_toptrader_long_short_ratio", "count_long_short_ratio",
                           "sum_taker_long_short_vol_ratio")),
    "spread": ("book_ticker", ("best_bid", "best_ask", "spread_bps")),
})


@dataclass(frozen=True)
class InputBars(Bars):
    """Bars plus extra per-bar columns (`inputs`, name -> float64 array, NaN = none in
    force); ``bars.sum_open_interest`` reads ``bars.inputs["sum_open_interest"]``."""

    inputs: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __getattr__(self, name: str) -> np.ndarray:
        extra = self.__dict__.get("inputs") or {}
        if name in extra:
            return extra[name]
        raise AttributeError(f"bars have no column {name!r} (inputs loaded: "
                             f"{', '.join(extra) or 'none'}; see backtest.inputs.INPUTS)")


def with_inputs(bars: Bars, columns: Mapping[str, np.ndarray]) -> InputBars:
    """`bars` as `InputBars` carrying `columns` (each one value per bar)."""
    for name, values in columns.items():
        if np.shape(values) != (len(bars),):
            raise InputError(f"input {name!r} has shape {np.shape(values)}, expected "
                             f"({len(bars)},)")
    base = {f.name: getattr(bars, f.name) for f in fields(Bars)}
    return InputBars(**base, inputs=MappingProxyType(dict(columns)))


def validate_inputs(names: Iterable[str]) -> tuple[str, ...]:
    """Unique known input names, in order; InputError on an unknown one."""
    out: list[str] = []
    for name in names:
        if name not in INPUTS:
            raise InputError(f"unknown input {name!r}; expected one of {', '.join(INPUTS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def close_times_us(bars: Bars) -> np.ndarray:
    """Each bar's kline close time: the last millisecond of the bar (``1M``: of its
    calendar month)."""
    if bars.interval == "1M":
        ends = [next_open_us(int(t), "1M") for t in bars.open_time_us]
        return np.asarray(ends, dtype=np.int64) - US_PER_MS
    return bars.open_time_us + (bars.bar_ms - 1) * US_PER_MS


def in_force(times_us: np.ndarray, at_us: np.ndarray, max_age_us: int | None = None
             ) -> np.ndarray:
    """Index of the row in force at each of `at_us` (the last ``time <= at``; -1 when
    none, or when it is `max_age_us` old or older)."""
    idx = np.searchsorted(times_us, at_us, side="right") - 1
    if max_age_us is not None and len(times_us):
        stale = (idx >= 0) & (at_us - times_us[np.maximum(idx, 0)] >= max_age_us)
        idx = np.where(stale, -1, idx)
    return idx


def take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`values[idx]` with NaN where `idx` is -1."""
    if not len(values):
        return np.full(idx.shape, np.nan)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)


@dataclass(frozen=True)
class Rows:
    """The rows of one extra dataset read for a run, and what its gap check found."""

    dataset: str
    times_us: np.ndarray
    columns: Mapping[str, np.ndarray]
    unknown: tuple[cov.Hole, ...] = ()
    confirmed: int = 0


def _time(df: pl.DataFrame, col: str) -> np.ndarray:
    return df.get_column(col).dt.cast_time_unit("us").cast(pl.Int64).to_numpy()


def _f64(df: pl.DataFrame, col: str) -> np.ndarray:
    return np.ascontiguousarray(df.get_column(col).cast(pl.Float64).fill_null(np.nan)
                                .to_numpy(), dtype=np.float64)


def _holes(pieces: list[tuple[int, int, int, str]], unit: str) -> tuple[tuple, int]:
    unknown = tuple(cov.Hole(a, b, n, unit) for a, b, n, s in pieces if s == "unknown")
    return unknown, sum(1 for p in pieces if p[3] != "unknown")


def read_metrics(lake: str | Path, market: str, symbol: str, lo_us: int, hi_us: int) -> Rows:
    """Metrics rows in force over ``[lo_us, hi_us)`` and the 5-minute slots missing there."""
    root = lake_root(lake)
    key = SeriesKey(market, "metrics", symbol)
    df = scan_series(root, key, lo_us - METRICS_PERIOD_US, hi_us).collect()
    times = _time(df, "create_time")
    names = INPUTS["open_interest"][1] + INPUTS["ratios"][1]
    inside = times[times >= lo_us]
    pieces = kline_gaps(inside, coverage.read_at(root, key), METRICS_INTERVAL, lo_us, hi_us)
    unknown, confirmed = _holes(pieces, "5m slots")
    return Rows("metrics", times, {c: _f64(df, c) for c in names}, unknown, confirmed)


def read_book_ticker(lake: str | Path, market: str, symbol: str, lo_us: int,
                     hi_us: int) -> Rows:
    """Best bid/ask updates over ``[lo_us - QUIET_US, hi_us)`` (three columns only) and
    the silences of the stream over ``[lo_us, hi_us)``."""
    root = lake_root(lake)
    key = SeriesKey(market, "book_ticker", symbol)
    df = (scan_series(root, key, lo_us - QUIET_US["book_ticker"], hi_us)
          .select("transaction_time", "best_bid_price", "best_ask_price").collect()
          .sort("transaction_time", maintain_order=True))
    times = _time(df, "transaction_time")
    covered = coverage.read_at(root, key)
    pieces = silence_gaps(times[times >= lo_us], covered, QUIET_US["book_ticker"], lo_us,
                          hi_us)
    # a stretch outside every covered range was never fetched, events or not
    pieces += [(a, b, (b - a) // 60_000_000, "unknown")
               for a, b in rg.subtract(lo_us, hi_us, covered)]
    unknown, confirmed = _holes(sorted(set(pieces)), "minutes")
    return Rows("book_ticker", times, {"best_bid": _f64(df, "best_bid_price"),
                                       "best_ask": _f64(df, "best_ask_price")},
                unknown, confirmed)


def book_at(rows: Rows, at_us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(bid, ask)`` in force at each of `at_us` (NaN where none)."""
    idx = in_force(rows.times_us, at_us)
    return take(rows.columns["best_bid"], idx), take(rows.columns["best_ask"], idx)


def aligned_columns(name: str, rows: Rows, bars: Bars) -> dict[str, np.ndarray]:
    """The columns of input `name` in force at each bar's close (module docstring)."""
    at = close_times_us(bars)
    if rows.dataset == "book_ticker":
        bid, ask = book_at(rows, at)
        mid = 0.5 * (bid + ask)
        return {"best_bid": bid, "best_ask": ask, "spread_bps": (ask - bid) / mid * 1e4}
    idx = in_force(rows.times_us, at, METRICS_PERIOD_US)
    return {c: take(rows.columns[c], idx) for c in INPUTS[name][1]}


def bars_span_us(bars: Bars) -> tuple[int, int]:
    """``[first open, last close)`` of `bars`."""
    return int(bars.open_time_us[0]), int(close_times_us(bars)[-1]) + US_PER_MS


def read_rows(lake: str | Path, dataset: str, market: str, symbol: str, bars: Bars) -> Rows:
    """Read `dataset` (``metrics`` or ``book_ticker``) over the bars' span."""
    lo, hi = bars_span_us(bars)
    reader = read_metrics if dataset == "metrics" else read_book_ticker
    return reader(lake, market, symbol, lo, hi)


def refusal(rows: Rows, lake: str, market: str, symbol: str, what: str) -> str:
    """The one-line refusal of `rows`' unknown pieces."""
    holes = rows.unknown
    return (f"refusing to backtest {market} {symbol} with {what}: the lake has never "
            f"fetched its {rows.dataset} for {cov._holes_text(holes)}; fill them with: "
            f"{cov.download_command(lake, market, rows.dataset, symbol, None, holes)}; "
            "or pass --allow-gaps (allow_gaps=True) to run anyway")


def check_rows(rows: Rows, lake: str, market: str, symbol: str, what: str,
               allow_gaps: bool) -> list[str]:
    """Refuse (CoverageError) unknown pieces unless `allow_gaps`; the notes to flag."""
    if rows.unknown and not allow_gaps:
        raise CoverageError(refusal(rows, lake, market, symbol, what))
    if not rows.unknown:
        return []
    return [f"allow_gaps: {what} rests on {rows.dataset} the lake never fetched "
            f"({cov._holes_text(rows.unknown)}); bars without a value are NaN"]


@dataclass(frozen=True)
class LoadedInputs:
    """Aligned input columns, the rows read per dataset, and the notes to flag."""

    columns: dict[str, np.ndarray]
    rows: dict[str, Rows]
    notes: list[str]

    def summary(self) -> dict:
        """A JSON-ready description for ``config["inputs"]``."""
        return {"columns": list(self.columns),
                "unknown_gaps": sum(len(r.unknown) for r in self.rows.values()),
                "nan_bars": {k: int(np.isnan(v).sum()) for k, v in self.columns.items()}}


def load_inputs(lake: str | Path | None, market: str, symbol: str, bars: Bars,
                names: Iterable[str], *, allow_gaps: bool = False,
                rows: dict[str, Rows] | None = None) -> LoadedInputs:
    """Load and align the inputs `names` for `bars` (module docstring). `rows` are
    datasets already read (shared with the book-ticker slippage model)."""
    names = validate_inputs(names)
    rows = dict(rows or {})
    if names and lake is None:
        raise InputError("strategy inputs are read from the lake: give lake=... (--lake)")
    columns: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for name in names:
        dataset = INPUTS[name][0]
        if dataset not in rows:
            rows[dataset] = read_rows(lake, dataset, market, symbol, bars)
            notes += check_rows(rows[dataset], str(lake), market, symbol,
                                f"input {name!r}", allow_gaps)
        columns.update(aligned_columns(name, rows[dataset], bars))
    return LoadedInputs(columns, rows, notes)
