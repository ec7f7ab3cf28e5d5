"""Record layouts of the backtester: orders, trades and the metric vector (pure).

Every array the kernels fill is a NumPy structured array with named fields, declared
here once, so no reader counts columns: ``trades["pnl"]``, ``orders[k]["qty"]``,
``metrics["sharpe"]``. Numba kernels write them field by field (``rec["qty"] = q``),
Python reads whole columns (``trades["exit_idx"]``).

Integer fields are int64 and the others float64 (one bool in the metrics), so records
hold no padding between numbers and Numba reads them as plainly as a row of floats.
"""

from __future__ import annotations

import numpy as np

from backtest.names import METRIC_FIELDS

# order kinds (`ORDER_DT["kind"]`), also a closed trade's exit reason (`TRADE_DT["reason"]`):
# a strategy signal, a liquidation/ruin, a stop-loss, a take-profit, a trailing stop-loss
KIND_SIGNAL, KIND_LIQUIDATION, KIND_SL, KIND_TP, KIND_TRAIL = 0, 1, 2, 3, 4
KIND_NAMES = {KIND_SIGNAL: "signal", KIND_LIQUIDATION: "liquidation", KIND_SL: "sl",
              KIND_TP: "tp", KIND_TRAIL: "trail"}
REASON_NONE = -1  # `TRADE_DT["reason"]` of a trade still open
# trade states (`TRADE_DT["status"]`)
TRADE_CLOSED, TRADE_OPEN, TRADE_LIQUIDATED = 0, 1, 2

ORDER_DT = np.dtype([
    ("idx", np.int64),  # bar index of the fill
    ("side", np.int64),  # +1 buy, -1 sell
    ("qty", np.float64),  # base units, always positive
    ("price", np.float64),  # fill price after slippage
    ("fee", np.float64),  # quote currency
    ("kind", np.int64),  # KIND_SIGNAL, KIND_LIQUIDATION, KIND_SL, KIND_TP or KIND_TRAIL
])

TRADE_DT = np.dtype([
    ("entry_idx", np.int64),  # bar index of the entry fill
    ("exit_idx", np.int64),  # bar of the exit fill (the last bar for an open trade)
    ("side", np.int64),  # +1 long, -1 short
    ("qty", np.float64),
    ("entry_price", np.float64),
    ("exit_price", np.float64),  # the last close for an open trade
    ("entry_fee", np.float64),
    ("exit_fee", np.float64),  # 0 for an open trade
    ("funding_paid", np.float64),  # positive = paid, negative = received
    ("pnl", np.float64),  # net of fees and funding
    ("status", np.int64),  # TRADE_CLOSED, TRADE_OPEN or TRADE_LIQUIDATED
    ("reason", np.int64),  # the exit order's KIND_* (REASON_NONE while open)
])

# One run's metrics, in the order reports list them (definitions in `backtest.metrics`);
# the fields are declared in `backtest.names`, which the command line reads without NumPy.
METRICS_DT = np.dtype(list(METRIC_FIELDS))


def empty_orders(n: int) -> np.ndarray:
    """An uninitialized order buffer of `n` records."""
    return np.empty(n, dtype=ORDER_DT)


def empty_trades(n: int) -> np.ndarray:
    """An uninitialized trade buffer of `n` records."""
    return np.empty(n, dtype=TRADE_DT)


def empty_metrics(n: int) -> np.ndarray:
    """`n` metric records (one per run), zeroed."""
    return np.zeros(n, dtype=METRICS_DT)
