"""Names the `backtest` command line offers before anything heavy loads: the built-in
strategies and the metrics (pure data; no NumPy, Numba or Polars).

``backtest run --help`` and ``backtest sweep --help`` list these names, and
``backtest.lazy`` keeps the kernels behind them unloaded until a command runs. The
heavy modules take them from here: `backtest.records` builds ``METRICS_DT`` from
`METRIC_FIELDS`, `backtest.results` sorts by `LOWER_IS_BETTER`; the strategy registries
(`backtest.strategies.REGISTRY`, `backtest.multi_asset.strategies.PORTFOLIO_STRATEGIES`)
hold the functions under these names, in this order (tests/cli/test_startup.py checks).
"""

from __future__ import annotations

# One run's metrics, in the order reports list them (definitions in `backtest.metrics`),
# with their NumPy dtype names (`backtest.records.METRICS_DT`).
METRIC_FIELDS: tuple[tuple[str, str], ...] = (
    ("final_equity", "float64"),
    ("total_return", "float64"),
    ("cagr", "float64"),
    ("sharpe", "float64"),
    ("sortino", "float64"),
    ("calmar", "float64"),
    ("max_drawdown", "float64"),
    ("max_drawdown_duration", "float64"),
    ("n_trades", "int64"),
    ("win_rate", "float64"),
    ("profit_factor", "float64"),
    ("expectancy", "float64"),
    ("exposure", "float64"),
    ("fees_paid", "float64"),
    ("funding_paid", "float64"),
    ("n_sl_exits", "int64"),  # trades closed by the stop-loss (`sl_stop`, not trailing)
    ("n_tp_exits", "int64"),  # trades closed by the take-profit (`tp_stop`)
    ("n_trail_exits", "int64"),  # trades closed by the trailing stop-loss
    ("ruined", "bool"),  # trading stopped: equity gone or below the minimum order
    ("ruin_idx", "int64"),  # bar index of the ruin, -1 if none
)
METRIC_NAMES: tuple[str, ...] = tuple(name for name, _ in METRIC_FIELDS)
# metrics where the smallest value is the best (sweep sorting, `SweepResult.best`)
LOWER_IS_BETTER = frozenset({"max_drawdown", "max_drawdown_duration", "fees_paid",
                             "funding_paid"})

# `backtest.strategies.REGISTRY` (single-asset, bars only)
STRATEGY_NAMES: tuple[str, ...] = ("sma_cross", "ema_cross", "rsi", "donchian", "hold")
# `backtest.multi_asset.strategies.PORTFOLIO_STRATEGIES`
PORTFOLIO_STRATEGY_NAMES: tuple[str, ...] = (
    "equal_weight", "momentum_rank", "funding_carry", "basis", "inverse_vol")
