"""Portfolio backtests: many symbols and markets in one account.

``backtest.portfolio(strategy, params, lake=..., universe=..., ...)`` (`engine`) loads
an aligned panel (`panel`), asks a strategy for target weights (`strategies`), fills
them with the Numba kernel (`kernel`) and returns a `PortfolioResult` (`results`);
`portfolio_sweep` (`sweep`) runs a grid on one panel, `report` writes the HTML.
"""

from backtest.multi_asset.engine import portfolio
from backtest.multi_asset.panel import Panel, load_panel
from backtest.multi_asset.results import PortfolioResult
from backtest.multi_asset.strategies import PORTFOLIO_STRATEGIES
from backtest.multi_asset.sweep import portfolio_sweep

__all__ = ["PORTFOLIO_STRATEGIES", "Panel", "PortfolioResult", "load_panel", "portfolio",
           "portfolio_sweep"]
