"""Portfolio backtests: many symbols and markets in one account.

``backtest.portfolio(strategy, params, lake=..., universe=..., ...)`` (`engine`) loads
an aligned panel (`panel`), asks a strategy for target weights (`strategies`), fills
them with the Numba kernel (`kernel`) and returns a `PortfolioResult` (`results`);
`portfolio_sweep` (`sweep`) runs a grid on one panel in one batched kernel call
(`sweep_kernel`; on Dask with ``dask=``), `report` writes the HTML.

Named ``multi_asset`` so that ``backtest.portfolio`` is only ever the function: a
subpackage of that name would be an attribute of `backtest` too, and ``import
backtest.portfolio.engine as e`` failed while it was one.
"""

from backtest.multi_asset.engine import portfolio
from backtest.multi_asset.panel import Panel, load_panel
from backtest.multi_asset.results import PortfolioResult
from backtest.multi_asset.strategies import PORTFOLIO_STRATEGIES
from backtest.multi_asset.sweep import portfolio_sweep

__all__ = ["PORTFOLIO_STRATEGIES", "Panel", "PortfolioResult", "load_panel", "portfolio",
           "portfolio_sweep"]
