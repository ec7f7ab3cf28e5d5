"""`portfolio_sweep`: a portfolio strategy over a parameter grid, one panel, one kernel call.

The panel (bars, funding, listing) is read from the lake once. Strategies are Python
functions, so each combination's weights are computed in Python first and checked as
`backtest.portfolio` checks them; only their rebalance rows are kept, in float64 (the
very numbers a single run uses). One call of `sweep_kernel.sweep_portfolio_nb` then
simulates every combination in parallel and reduces each to its metrics. A grid whose
weight rows exceed `WEIGHT_BUDGET_BYTES` runs in consecutive blocks of combinations, one
call each. Each row equals the metrics of the single ``backtest.portfolio(strategy,
params, ...)`` run of its combination, value for value (same kernel code, same inputs,
the same sums).

Stops: ``sl_stop``/``tp_stop`` given as several levels (a list or tuple) are grid
dimensions after the parameters (`backtest.stop_grid`; ``sl_trail`` is one setting):
every parameter combination runs under every level combination in the same batched
call, its weight rows computed and held once for all its levels. Rows come parameter
combination by parameter combination, each one's stop levels in order (the stops vary
fastest, as if they were the last parameters), with ``sl_stop``/``tp_stop`` columns
after the parameters; each row equals the single ``backtest.portfolio(...,
sl_stop=level)`` run.

``dask="local:N"`` or ``"tcp://HOST:PORT"`` splits the grid into consecutive blocks, one
Dask task each (`backtest.distributed`): a task loads the panel itself from the lake
(`PanelSource`: the lake path and the settings, never the panel, pass through the
scheduler; a panel given in memory is scattered once), computes its block's weights and
runs the same batched kernel. The rows, gathered in grid order, are identical to a local
run's.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import polars as pl

from backtest import fills
from backtest.engine import make_config
from backtest.metrics import bars_per_year, metrics_record_to_dict
from backtest.multi_asset.engine import (
    account_kind,
    check_settings,
    check_weights,
    fee_rates,
    kernel_inputs,
    rebalance_mask,
    without_funding,
)
from backtest.multi_asset.kernel import A_FEES, A_FUND, A_TURN, STATUS_BAD_INPUT
from backtest.multi_asset.panel import Panel, load_panel
from backtest.multi_asset.results import exit_counts
from backtest.multi_asset.strategies import WeightFunc, get_weight_func, resolve_params
from backtest.multi_asset.sweep_kernel import sweep_portfolio_nb
from backtest.params import grid_product, grid_size
from backtest.stop_grid import StopGrid, first_levels, stop_grid, stop_levels
from kline_lake.errors import InputError

WEIGHT_BUDGET_BYTES = 512 * 2**20  # weight rows held at once; above it, blocks of combos


@dataclass(frozen=True)
class Settings:
    """The settings of `backtest.portfolio` a sweep shares between its combinations."""

    cash: float = 10_000.0
    fee: float | None = None
    slippage_bps: float = 0.0
    funding: bool = True
    leverage: float = 1.0
    fill: str = "next_open"
    rebalance: str | None = None
    threshold: float = 0.0
    sl_stop: float | tuple[float, ...] | None = None  # a tuple: swept levels
    tp_stop: float | tuple[float, ...] | None = None
    sl_trail: bool = False

    def stops(self) -> StopGrid:
        """Every stop setting of the sweep (one when no stop is swept), validated as
        `backtest.portfolio` validates a stop (InputError naming the bad level)."""
        given = {"sl_stop": self.sl_stop, "tp_stop": self.tp_stop}
        levels = stop_levels(given)
        first = first_levels(given, levels)
        return stop_grid(make_config(**first, sl_trail=self.sl_trail), levels)


@dataclass(frozen=True)
class PanelSource:
    """Where a Dask worker loads the panel from: the lake path and the range."""

    lake: str
    universe: str | tuple[str, ...]
    interval: str
    start: Any
    end: Any
    funding: bool
    allow_gaps: bool


@functools.lru_cache(maxsize=2)
def _source_panel(src: PanelSource) -> Panel:
    """The panel of `src`, loaded once per worker process."""
    universe = src.universe if isinstance(src.universe, str) else list(src.universe)
    return load_panel(src.lake, universe, src.interval, src.start, src.end,
                      funding=src.funding, allow_gaps=src.allow_gaps)


def _weight_rows(panel: Panel, func: WeightFunc, params: Mapping[str, Any], s: Settings,
                 rebal: np.ndarray, rows: np.ndarray, inverse: bool) -> np.ndarray:
    """One combination's weights, checked as a single run checks them, rebalance rows
    only (mirrored for inverse contracts as `engine.kernel_inputs` mirrors them)."""
    w = check_weights(panel, func(panel, **resolve_params(func, params)), s.leverage, rebal)
    return -w[rows] if inverse else w[rows]


def _metrics_rows(combos: list[dict], stops: StopGrid, out: np.ndarray, acc: np.ndarray,
                  n_orders: np.ndarray) -> list[dict[str, Any]]:
    """Each point's row (combination by combination, its stop levels fastest): its
    parameters, its swept stops, then the metrics of a single run
    (`results.build_result` computes them the same way)."""
    rows = []
    for c in range(out.shape[0]):
        p, lv = divmod(c, stops.n_levels)
        level = {name: float(stops.sl[lv] if name == "sl_stop" else stops.tp[lv])
                 for name in stops.levels}
        rec = metrics_record_to_dict(out[c])
        rec.update(fees_paid=float(acc[c][:, A_FEES].sum()),
                   funding_paid=float(acc[c][:, A_FUND].sum()))
        rec.update(n_trades=int(n_orders[c]), n_orders=int(n_orders[c]),
                   turnover=float(acc[c][:, A_TURN].sum()), **exit_counts(acc[c]))
        rows.append({**combos[p], **level, **rec})
    return rows


def run_combos(panel: Panel, strategy: str | WeightFunc, combos: list[dict], s: Settings,
               jit: bool = True) -> list[dict[str, Any]]:
    """Rows of `combos` on `panel` (loaded with funding; `s.funding` applies here)."""
    _, func = get_weight_func(strategy)
    panel = without_funding(panel, s.funding)
    inverse = account_kind(panel) == "inverse"
    rebal = rebalance_mask(panel, s.rebalance)
    rows = np.flatnonzero(rebal)
    row_of = np.full(panel.n_bars, -1, dtype=np.int64)
    row_of[rows] = np.arange(rows.size)
    stops = s.stops()
    stops_on = not (np.isnan(stops.sl).all() and np.isnan(stops.tp).all())
    k = kernel_inputs(panel, np.empty((0, 0)), inverse, stops_on)
    rates = fee_rates(panel, s.fee)
    slip = fills.slippage_fraction(s.slippage_bps)
    kernel = sweep_portfolio_nb if jit else sweep_portfolio_nb.py_func
    per_call = max(1, WEIGHT_BUDGET_BYTES // max(1, rows.size * panel.n_assets * 8))
    out_rows: list[dict[str, Any]] = []
    for lo in range(0, len(combos), per_call):
        block = combos[lo:lo + per_call]
        w_rows = np.empty((len(block), rows.size, panel.n_assets))
        for c, params in enumerate(block):
            w_rows[c] = _weight_rows(panel, func, params, s, rebal, rows, inverse)
        n_levels = stops.n_levels
        out, acc, n_orders, status = kernel(
            np.ascontiguousarray(k["open"]), np.ascontiguousarray(k["close"]), panel.tradable,
            w_rows, row_of, np.ascontiguousarray(k["fund_at_open"]),
            np.ascontiguousarray(k["fund_intra"]), panel.delist_idx, k["inverse"],
            k["lot_step"], s.fill == "close", float(s.cash), rates, slip, float(s.leverage),
            float(s.threshold), bars_per_year(panel.bar_days), float(panel.bar_days),
            min(len(block) * n_levels, numba.get_num_threads()),
            np.repeat(np.arange(len(block), dtype=np.int64), n_levels),
            np.ascontiguousarray(k["high"]), np.ascontiguousarray(k["low"]),
            np.tile(stops.sl, len(block)), np.tile(stops.tp, len(block)), stops.sl_trail)
        if (status & STATUS_BAD_INPUT).any():
            raise ValueError("portfolio sweep kernel: array shapes disagree")
        out_rows.extend(_metrics_rows(block, stops, out, acc, n_orders))
    return out_rows


def run_task(source: PanelSource | Panel, strategy: str | WeightFunc,
             grid: Mapping[str, Sequence[Any]], per_task: int, s: Settings, jit: bool,
             k: int) -> list[dict[str, Any]]:
    """One Dask task: grid points ``k * per_task`` onwards through the batched kernel."""
    from backtest.distributed import grid_slice

    panel = _source_panel(source) if isinstance(source, PanelSource) else source
    return run_combos(panel, strategy, grid_slice(grid, k * per_task, (k + 1) * per_task),
                      s, jit)


def _run_dask(address: str, source: PanelSource | Panel, strategy: str | WeightFunc,
              grid: Mapping[str, Sequence[Any]], s: Settings, jit: bool,
              progress: bool) -> list[dict[str, Any]]:
    from backtest import distributed

    n_points = grid_size(grid)
    with distributed.connect(address) as client:
        per = distributed.task_points(n_points, n_points, distributed.n_workers(client))
        src = source if isinstance(source, PanelSource) else distributed.scatter(client,
                                                                                 source)
        parts = distributed.map_blocks(client, run_task, -(-n_points // per),
                                       (src, strategy, grid, per, s, jit), progress)
    return [row for part in parts for row in part]


def portfolio_sweep(strategy: str | WeightFunc, grid: Mapping[str, Sequence[Any]], *,
                    lake: str | Path | None = None, universe: str | list[str] | None = None,
                    interval: str = "1h", start: Any = None, end: Any = None,
                    panel: Panel | None = None, allow_gaps: bool = False,
                    dask: str | None = None, progress: bool = True, jit: bool | None = None,
                    **settings: Any) -> pl.DataFrame:
    """One row per combination of `grid` (first parameter varying slowest): the
    parameters, then every metric of `backtest.portfolio` for them. `settings` are
    `portfolio`'s (cash, fee, slippage_bps, funding, leverage, fill, rebalance,
    threshold, sl_stop, tp_stop, sl_trail); a stop given as a list of levels is swept
    (see the module docstring). `dask` (``"local:N"`` or a scheduler address) runs blocks of the grid on
    a Dask cluster whose workers read the lake themselves; the rows are identical."""
    from backtest.engine import use_jit

    unknown = sorted(set(settings) - set(Settings.__dataclass_fields__))
    if unknown:
        raise TypeError(f"portfolio_sweep() got unexpected keyword(s) {', '.join(unknown)}")
    for name in ("sl_stop", "tp_stop"):
        if isinstance(settings.get(name), list | range | np.ndarray):
            settings[name] = tuple(settings[name])
    s = Settings(**settings)
    check_settings(s.cash, s.leverage, s.fill, s.threshold)
    s.stops()  # bad stop levels fail before any work
    _, func = get_weight_func(strategy)
    combos = grid_product(grid)
    if not combos:
        raise InputError("the parameter grid is empty")
    resolve_params(func, combos[0])  # unknown parameter names fail before any work
    if dask is not None:
        from backtest.distributed import parse_address

        parse_address(dask)
    if panel is None:
        if lake is None or universe is None or start is None or end is None:
            raise InputError("give lake, universe, start and end (or panel=...)")
        source = PanelSource(str(lake), universe if isinstance(universe, str)
                             else tuple(universe), interval, start, end, s.funding, allow_gaps)
        if dask is not None:
            return pl.DataFrame(_run_dask(dask, source, strategy, grid, s, use_jit(jit),
                                          progress))
        panel = _source_panel.__wrapped__(source)
    if dask is not None:
        return pl.DataFrame(_run_dask(dask, panel, strategy, grid, s, use_jit(jit), progress))
    return pl.DataFrame(run_combos(panel, strategy, combos, s, use_jit(jit)))

