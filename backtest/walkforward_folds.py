"""The pieces of a walk-forward that run the same locally and on a Dask worker.

A walk-forward reads every bar of its range once (`load_range`) and works on slices of
it: `sweep_window` sweeps the grid on one window (a fold's training window, or the whole
range for the full-sample statistics), `pick` chooses the best row by the objective and
`return_columns` runs grid points over the whole range for the T x N return matrix of
the PBO. Each is a pure function of its arguments, so a Dask worker that loads the same
range from the lake (`backtest.walkforward_dask`) returns the same values.

Stop levels are grid dimensions: ``sl_stop=[0.01, 0.02]`` (or ``tp_stop=[...]``) in the
settings is handed to `backtest.sweep` as it is (its rows gain ``sl_stop``/``tp_stop``
columns, which `row_params` reads like parameters), and `split_point` turns a chosen
row back into strategy parameters plus the scalar stop settings `backtest.run` takes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backtest.data import (
    Bars,
    FundingEvents,
    MarkOpens,
    load_bars,
    load_funding,
    load_mark_opens,
    parse_time_us,
)
from backtest.engine import TimeLike, run, validate_stops
from backtest.metrics import returns
from backtest.strategies import Strategy
from backtest.sweep import sweep
from kline_lake.core.markets import get_market
from kline_lake.core.timeutil import format_us
from kline_lake.errors import InputError

STOP_NAMES = ("sl_stop", "tp_stop")
MIN_WINDOW_BARS = 2


def slice_bars(bars: Bars, lo: int, hi: int) -> Bars:
    """Bars ``lo:hi`` (views, no copy)."""
    return replace(bars, open_time_us=bars.open_time_us[lo:hi], open=bars.open[lo:hi],
                   high=bars.high[lo:hi], low=bars.low[lo:hi], close=bars.close[lo:hi],
                   volume=bars.volume[lo:hi])


@dataclass(frozen=True)
class FoldData:
    """Every bar of the walk-forward's range and the keywords of its sweeps and runs."""

    bars: Bars
    start_us: int
    end_us: int
    run_kw: dict[str, Any]  # lake, funding events, mark opens, jit, filters, settings


def load_range(lake: str | Path | None, market: str, symbol: str, interval: str,
               start: TimeLike | None, end: TimeLike | None, bars: Bars | None,
               funding_events: FundingEvents | None, mark_opens: MarkOpens | None,
               funding: bool) -> tuple[Bars, int, int, FundingEvents | None, MarkOpens | None]:
    """Every bar of ``[start, end)`` once (folds are slices of it) and its funding."""
    if bars is None:
        if lake is None or start is None or end is None:
            raise InputError("give lake, start and end (or bars=...)")
        start_us, end_us = parse_time_us(start, "start"), parse_time_us(end, "end")
        bars = load_bars(lake, market, symbol, interval, start_us, end_us)
        if funding and get_market(market).is_futures:
            if funding_events is None:
                funding_events = load_funding(lake, market, symbol, start_us, end_us)
            if mark_opens is None:
                mark_opens = load_mark_opens(lake, market, symbol, interval, start_us, end_us)
        return bars, start_us, end_us, funding_events, mark_opens
    if len(bars) == 0:
        raise InputError("bars are empty")
    t = bars.open_time_us
    start_us = parse_time_us(start, "start") if start is not None else int(t[0])
    end_us = (parse_time_us(end, "end") if end is not None
              else int(t[-1]) + bars.bar_ms * 1000)
    lo, hi = np.searchsorted(t, [start_us, end_us])
    return slice_bars(bars, int(lo), int(hi)), start_us, end_us, funding_events, mark_opens


def window_bounds(data: FoldData, a_us: int, b_us: int, what: str) -> tuple[int, int]:
    """Bar indices ``lo, hi`` of ``[a_us, b_us)``; InputError below `MIN_WINDOW_BARS`."""
    lo, hi = (int(i) for i in np.searchsorted(data.bars.open_time_us, [a_us, b_us]))
    if hi - lo < MIN_WINDOW_BARS:
        raise InputError(f"the {what} window [{format_us(a_us)}, {format_us(b_us)}) has "
                         f"{hi - lo} bars; at least {MIN_WINDOW_BARS} are needed")
    return lo, hi


def check_stop_levels(settings: Mapping[str, Any]) -> list[str]:
    """InputError unless every combination of the stop levels is valid (as `run` checks
    one); the names of the stops given as levels (lists), in `STOP_NAMES` order."""
    levels = {k: list(v) for k, v in settings.items()
              if k in STOP_NAMES and isinstance(v, Sequence | np.ndarray | range)}
    for name, values in levels.items():
        if not values:
            raise InputError(f"{name}: a swept stop needs at least one level")
    sl = levels.get("sl_stop", [settings.get("sl_stop")])
    tp = levels.get("tp_stop", [settings.get("tp_stop")])
    for s, t in product(sl, tp):
        validate_stops(None if s is None else float(s), None if t is None else float(t),
                       bool(settings.get("sl_trail", False)))
    return [k for k in STOP_NAMES if k in levels]


def split_point(point: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A chosen row's values -> (strategy parameters, stop settings for `run`); a NaN or
    missing stop level is no stop (None)."""
    params = {k: v for k, v in point.items() if k not in STOP_NAMES}
    stops = {}
    for k in STOP_NAMES:
        if k in point:
            v = point[k]
            stops[k] = None if v is None or (isinstance(v, float) and np.isnan(v)) else v
    return params, stops


def run_point(strat: Strategy, point: Mapping[str, Any], bars: Bars,
              run_kw: Mapping[str, Any]):
    """`backtest.run` of one grid point (stop levels included) on `bars`."""
    params, stops = split_point(point)
    return run(strat, params, bars=bars, **(dict(run_kw) | stops))


@dataclass
class WindowSweep:
    """The rows of one window's sweep, its row names (parameters, then stop levels),
    its notes and its config."""

    frame: pl.DataFrame
    names: list[str]
    notes: list[str]
    config: dict[str, Any]


def sweep_window(strat: Strategy, grid: Mapping[str, Sequence[Any]], data: FoldData,
                 lo: int, hi: int) -> WindowSweep:
    """Sweep the grid (and the stop levels in the settings) on bars ``lo:hi`` only."""
    res = sweep(strat, grid, bars=slice_bars(data.bars, lo, hi), **data.run_kw)
    return WindowSweep(res.to_frame(), list(res.param_names), list(res.warnings),
                       dict(res.config))


def pick(frame: pl.DataFrame, objective: str) -> tuple[int, bool]:
    """Row of the best `objective` (NaN last, +inf first, first of ties) and whether any
    row had it defined."""
    values = frame.get_column(objective).cast(pl.Float64).fill_null(np.nan).to_numpy()
    defined = ~np.isnan(values)
    if not defined.any():
        return 0, False
    return int(np.argmax(np.where(defined, values, -np.inf))), True


def row_params(frame: pl.DataFrame, names: list[str], k: int) -> dict[str, Any]:
    """Row `k`'s parameter (and stop level) values by name, as Python values."""
    row = frame.row(k, named=True)
    return {n: (v.item() if isinstance(v, np.generic) else v) for n, v in
            ((n, row[n]) for n in names)}


def row_metrics(frame: pl.DataFrame, names: list[str], k: int) -> dict[str, Any]:
    """Row `k`'s metrics (every column that is not a parameter)."""
    row = frame.row(k, named=True)
    return {key: value for key, value in row.items() if key not in names}


def safe_returns(equity: np.ndarray, cash: float) -> np.ndarray:
    """Per-bar returns; after an account is gone (equity <= 0) they count as 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = returns(equity, cash)
    return np.where(np.isfinite(r), r, 0.0)


def return_columns(strat: Strategy, points: list[dict[str, Any]], data: FoldData,
                   cash: float) -> np.ndarray:
    """The T x len(points) matrix of per-bar returns of `points` over the whole range."""
    out = np.empty((len(data.bars), len(points)))
    for j, point in enumerate(points):
        out[:, j] = safe_returns(run_point(strat, point, data.bars, data.run_kw).equity_curve,
                                 cash)
    return out
