"""Record layouts of the portfolio backtester (pure).

Like `backtest.records`: structured dtypes with named fields, written field by field by
the kernel, read by column in Python (``orders["asset"]``).
"""

from __future__ import annotations

import numpy as np

from backtest.records import KIND_SL, KIND_TP, KIND_TRAIL

# order kinds (`ORDER_DT["kind"]`): a rebalance, a delisting close, and the stop exits,
# whose codes are `backtest.records`' (what `backtest.stops.user_stop_exit_nb` returns)
KIND_REBALANCE, KIND_DELIST = 0, 1
KIND_NAMES = {KIND_REBALANCE: "rebalance", KIND_DELIST: "delisting", KIND_SL: "sl",
              KIND_TP: "tp", KIND_TRAIL: "trail"}

ORDER_DT = np.dtype([
    ("idx", np.int64),  # bar index of the fill
    ("asset", np.int64),  # column of the asset in the panel
    ("side", np.int64),  # +1 buy, -1 sell (of the kernel's quantity; see kernel.py)
    ("qty", np.float64),  # base units (linear) or mirrored USD (inverse), positive
    ("price", np.float64),  # fill price after slippage (1 / price for inverse)
    ("fee", np.float64),  # account currency (quote, or coin for COIN-M)
    ("kind", np.int64),  # KIND_REBALANCE, KIND_DELIST, KIND_SL, KIND_TP or KIND_TRAIL
])

# per-asset totals of one run (`backtest.multi_asset.results`)
ASSET_DT = np.dtype([
    ("pnl", np.float64),  # net of fees and funding, account currency
    ("fees_paid", np.float64),
    ("funding_paid", np.float64),  # positive = paid, negative = received
    ("turnover", np.float64),  # traded notional, account currency
    ("n_orders", np.int64),
    ("n_sl_exits", np.int64),  # stop exits by reason (`backtest.stops`)
    ("n_tp_exits", np.int64),
    ("n_trail_exits", np.int64),
    ("final_position", np.float64),  # base units, or contracts for COIN-M
])


def empty_orders(n: int) -> np.ndarray:
    """An uninitialized order buffer of `n` records."""
    return np.empty(n, dtype=ORDER_DT)
