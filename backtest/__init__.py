"""Vectorized backtester over the kline lake: fees, slippage, funding, sweeps.

``backtest.run(...)`` backtests one strategy, ``backtest.sweep(...)`` a parameter grid;
see `backtest.engine` and `backtest.sweep` for the arguments and the documented
decisions, `backtest.kernels` for the per-bar order of events.
"""

from backtest.data import Bars, FundingEvents, MarkOpens
from backtest.engine import run
from backtest.multi_asset import portfolio, portfolio_sweep
from backtest.results import RunResult, SweepResult
from backtest.strategies import REGISTRY, Strategy
from backtest.sweep import sweep
from backtest.walkforward import walk_forward

__all__ = [
    "REGISTRY", "Bars", "FundingEvents", "MarkOpens", "RunResult", "Strategy", "SweepResult",
    "portfolio", "portfolio_sweep", "run", "sweep", "walk_forward",
]
