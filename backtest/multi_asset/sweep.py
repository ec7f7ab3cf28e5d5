"""`portfolio_sweep`: a portfolio strategy over a parameter grid on one loaded panel.

The panel (bars, funding, listing) is read from the lake once and every combination
reuses it; each combination is one kernel call (`engine.portfolio` with ``panel=``).
Batching the grid into a single kernel call, as `backtest.sweep` does, is not done yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from backtest.multi_asset.engine import portfolio
from backtest.multi_asset.panel import Panel, load_panel
from backtest.multi_asset.strategies import WeightFunc
from backtest.params import grid_product
from kline_lake.errors import InputError


def portfolio_sweep(strategy: str | WeightFunc, grid: Mapping[str, Sequence[Any]], *,
                    lake: str | Path | None = None, universe: str | list[str] | None = None,
                    interval: str = "1h", start: Any = None, end: Any = None,
                    panel: Panel | None = None, funding: bool = True,
                    allow_gaps: bool = False, **settings: Any) -> pl.DataFrame:
    """One row per combination of `grid` (first parameter varying slowest): the
    parameters, then every metric of `portfolio`. `settings` are `portfolio`'s."""
    combos = grid_product(grid)
    if not combos:
        raise InputError("the parameter grid is empty")
    if panel is None:
        if lake is None or universe is None or start is None or end is None:
            raise InputError("give lake, universe, start and end (or panel=...)")
        panel = load_panel(lake, universe, interval, start, end, funding=funding,
                           allow_gaps=allow_gaps)
    rows = []
    for params in combos:
        res = portfolio(strategy, params, panel=panel, funding=funding, **settings)
        rows.append({**params, **res.metrics})
    return pl.DataFrame(rows)
