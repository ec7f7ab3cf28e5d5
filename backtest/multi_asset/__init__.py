"""Portfolio backtests: many symbols and markets in one account.

``backtest.portfolio(strategy, params, lake=..., universe=..., ...)`` (`engine`) loads
an aligned panel (`panel`), asks a strategy for target weights (`strategies`), fills
them with the Numba kernel (`kernel`) and returns a `PortfolioResult` (`results`);
`portfolio_sweep` (`sweep`) runs a grid on one panel in one batched kernel call
(`sweep_kernel`; on Dask with ``dask=``), `report` writes the HTML.

Named ``multi_asset`` so that ``backtest.portfolio`` is only ever the function: a
subpackage of that name would be an attribute of `backtest` too, and ``import
backtest.portfolio.engine as e`` failed while it was one.

The names below are imported on first use (`backtest.lazy`), so ``backtest portfolio
--help`` (`cli`) does not load the kernels.
"""

from backtest.lazy import lazy_face

__all__ = ["PORTFOLIO_STRATEGIES", "Panel", "PortfolioResult", "load_panel", "portfolio",
           "portfolio_sweep"]
lazy_face(__name__, {
    "portfolio": "backtest.multi_asset.engine",
    "Panel": "backtest.multi_asset.panel", "load_panel": "backtest.multi_asset.panel",
    "PortfolioResult": "backtest.multi_asset.results",
    "PORTFOLIO_STRATEGIES": "backtest.multi_asset.strategies",
    "portfolio_sweep": "backtest.multi_asset.sweep",
})
