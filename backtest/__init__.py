"""Vectorized backtester over the kline lake: fees, slippage, funding, sweeps.

``backtest.run(...)`` backtests one strategy, ``backtest.sweep(...)`` a parameter grid;
see `backtest.engine` and `backtest.sweep` for the arguments and the documented
decisions, `backtest.kernels` for the per-bar order of events.

The public names below are imported on first use (`backtest.lazy`), so the command
lines (``backtest --help``, ``kline-lake tour --help``) do not load the kernels.
"""

from backtest.lazy import lazy_face

__all__ = [
    "REGISTRY", "Bars", "FundingEvents", "MarkOpens", "RunResult", "Strategy", "SweepResult",
    "portfolio", "portfolio_sweep", "run", "sweep", "walk_forward",
]
lazy_face(__name__, {
    "Bars": "backtest.data", "FundingEvents": "backtest.data", "MarkOpens": "backtest.data",
    "run": "backtest.engine",
    "portfolio": "backtest.multi_asset", "portfolio_sweep": "backtest.multi_asset",
    "RunResult": "backtest.results", "SweepResult": "backtest.results",
    "REGISTRY": "backtest.strategies", "Strategy": "backtest.strategies",
    "sweep": "backtest.sweep",
    "walk_forward": "backtest.walkforward",
})
