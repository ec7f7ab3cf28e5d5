"""`sweep`: run a parameter grid in one compiled, parallel kernel call.

Crossover strategies (``sma_cross``, ``ema_cross``) compute each moving average once
per distinct window and cross the pairs inside the batch kernel; other strategies
compute their signals per grid point in Python and simulate in batches. Grid points
that fail the strategy's validation (e.g. ``fast >= slow``) are skipped and listed in
``SweepResult.skipped``; a grid with no valid point is an InputError.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numba
import numpy as np
import polars as pl

from backtest.batch import sweep_cross_nb, sweep_signals_nb
from backtest.data import Bars, FundingEvents, MarkOpens
from backtest.engine import (
    Config,
    MarketData,
    TimeLike,
    load_market_data,
    make_config,
    strategy_signals,
    use_jit,
    with_exchange_filters,
)
from backtest.filters import ExchangeFilters
from backtest.indicators import ma_lines_nb
from backtest.metrics import METRIC_NAMES, bars_per_year
from backtest.params import grid_product
from backtest.results import SweepResult
from backtest.strategies import SignalFunc, Strategy, get_strategy
from kline_lake.errors import InputError

SIGNAL_BATCH_BYTES = 64 * 1024 * 1024


def valid_points(strat: Strategy, grid: Mapping[str, Sequence[Any]]
                 ) -> tuple[list[dict], list[dict]]:
    """Resolve every grid point: (valid resolved params, skipped points with reasons)."""
    if not grid:
        raise InputError("sweep needs at least one --param")
    ok, skipped = [], []
    for point in grid_product(grid):
        unknown = sorted(set(point) - set(strat.defaults))
        if unknown:
            strat.resolve_params(point)  # raises the clear unknown-parameter error
        try:
            ok.append(strat.resolve_params(point))
        except InputError as exc:
            skipped.append(point | {"reason": str(exc)})
    if not ok:
        reason = skipped[0]["reason"] if skipped else "empty grid"
        raise InputError(f"no valid parameter combination in the grid ({reason})")
    return ok, skipped


def _n_chunks(n_points: int) -> int:
    """One chunk of grid points per Numba thread (each reuses its scratch buffers)."""
    return max(1, min(n_points, numba.get_num_threads()))


def _kernel(fn, jit: bool):
    return fn if jit else fn.py_func


def _run_cross(strat: Strategy, data: MarketData, points: list[dict], config: Config,
               jit: bool) -> np.ndarray:
    b = data.bars
    windows = np.array(sorted({p["fast"] for p in points} | {p["slow"] for p in points}),
                       dtype=np.int64)
    pos = {int(w): k for k, w in enumerate(windows)}
    lines = ma_lines_nb(b.close, windows, strat.cross_line == "ema")
    fast_idx = np.array([pos[p["fast"]] for p in points], dtype=np.int64)
    slow_idx = np.array([pos[p["slow"]] for p in points], dtype=np.int64)
    metrics, _ = _kernel(sweep_cross_nb, jit)(
        b.open, b.high, b.low, b.close, lines, fast_idx, slow_idx, data.fund_at_open,
        data.fund_intra, *config.kernel_args(), bars_per_year(b.bar_days), b.bar_days,
        _n_chunks(len(points)))
    return metrics


def _run_signals(strat: Strategy, data: MarketData, points: list[dict], config: Config,
                 jit: bool) -> np.ndarray:
    b = data.bars
    n = len(b)
    per_batch = max(1, SIGNAL_BATCH_BYTES // max(n, 1))
    out = []
    for lo in range(0, len(points), per_batch):
        chunk = points[lo:lo + per_batch]
        sigs = np.empty((len(chunk), n), dtype=np.int8)
        for k, p in enumerate(chunk):
            sigs[k] = strategy_signals(strat, b, p, config.direction)
        metrics, _ = _kernel(sweep_signals_nb, jit)(
            b.open, b.high, b.low, b.close, sigs, data.fund_at_open, data.fund_intra,
            *config.kernel_args(), bars_per_year(b.bar_days), b.bar_days,
            _n_chunks(len(chunk)))
        out.append(metrics)
    return np.concatenate(out)


def run_grid(strat: Strategy, data: MarketData, points: list[dict], config: Config,
             jit: bool = True) -> np.ndarray:
    """One `backtest.records.METRICS_DT` record per resolved grid point."""
    if strat.cross_line is not None and not strat.follows_direction:
        return _run_cross(strat, data, points, config, jit)
    return _run_signals(strat, data, points, config, jit)


def grid_frame(points: list[dict], metrics: np.ndarray, names: list[str]) -> pl.DataFrame:
    """Params (by name) followed by every metric, one row per grid point."""
    cols: dict[str, Any] = {name: [p[name] for p in points] for name in names}
    for name in METRIC_NAMES:
        cols[name] = np.ascontiguousarray(metrics[name])
    return pl.DataFrame(cols)


def sweep(strategy: str | Strategy | SignalFunc = "sma_cross",
          params: Mapping[str, Sequence[Any]] | None = None, *, lake: str | Path | None = None,
          market: str = "um", symbol: str = "BTCUSDT", interval: str = "1h",
          start: TimeLike | None = None, end: TimeLike | None = None, bars: Bars | None = None,
          funding_events: FundingEvents | None = None, mark_opens: MarkOpens | None = None,
          jit: bool | None = None, exchange_filters: bool | ExchangeFilters = True,
          allow_gaps: bool = False, **settings: Any) -> SweepResult:
    """Backtest every combination of `params` (name -> list of values).

    Same data, settings, `exchange_filters` and `allow_gaps` arguments as `backtest.run`
    (the lake's coverage is checked before any simulation). Returns a
    `SweepResult` whose ``to_frame()`` has one row per valid combination (``ruined``
    rows stopped trading at bar ``ruin_idx``).
    """
    config = make_config(market=bars.market if bars is not None else market, **settings)
    strat = get_strategy(strategy)
    grid = {k: list(v) if isinstance(v, Sequence | np.ndarray | range) else [v]
            for k, v in (params or {}).items()}
    points, skipped = valid_points(strat, grid)
    data = load_market_data(lake, config.market, symbol, interval, start, end, bars=bars,
                            funding_events=funding_events, mark_opens=mark_opens,
                            funding=config.funding, allow_gaps=allow_gaps)
    config, notes = with_exchange_filters(config, exchange_filters, lake, data.bars.symbol)
    notes[:0] = data.coverage.notes()
    metrics = run_grid(strat, data, points, config, use_jit(jit))
    frame = grid_frame(points, metrics, list(grid))
    cfg = asdict(config) | {"symbol": data.bars.symbol, "interval": data.bars.interval,
                            "n_bars": len(data.bars), "coverage": data.coverage.summary(),
                            "unknown_gaps": data.coverage.n_unknown}
    ruined = int(np.count_nonzero(metrics["ruined"]))
    if ruined:
        notes.append(f"{ruined} of {len(points)} combinations ruined the account "
                     "(column ruined; no Sharpe/Sortino/Calmar for them)")
    return SweepResult(frame, strat.name, list(grid), cfg, skipped, notes)
