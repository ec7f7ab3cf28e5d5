"""A run's fills as a ``vectorbt.Portfolio``, so vectorbt's analysis and plots apply.

`to_vectorbt` hands vectorbt our order records as they are (bar, size, fill price after
slippage, fee, side) instead of asking vectorbt to simulate them again: vectorbt's
``Portfolio.from_orders`` has no leverage (a long cannot spend borrowed cash) and one
order per bar, while a run may buy at a bar's open and be liquidated inside the same
bar at another price. vectorbt then computes positions, cash, value, trades, drawdowns
and its stats from those fills with its own bookkeeping, which is also an independent
check of ours: with funding off its value equals our equity bar for bar.

What vectorbt does not model: funding. With funding on, vectorbt's value is our equity
plus the funding paid so far (``equity["cum_funding"]``); its trade PnL excludes funding.
Pure apart from building vectorbt objects; vectorbt is imported on first use.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kline_lake.core.intervals import INTERVAL_MS
from kline_lake.errors import InputError

VBT_BUY, VBT_SELL = 0, 1  # vectorbt.portfolio.enums.OrderSide


def vbt_order_records(orders: Any, order_dt: np.dtype) -> np.ndarray:
    """Our orders frame (idx, side buy/sell, qty, price, fee) as vectorbt order records of
    `order_dt`, one column (col 0), ids in fill order."""
    n = orders.height
    rec = np.zeros(n, dtype=order_dt)
    rec["id"] = np.arange(n)
    rec["col"] = 0
    rec["idx"] = orders.get_column("idx").to_numpy()
    rec["size"] = orders.get_column("qty").to_numpy()
    rec["price"] = orders.get_column("price").to_numpy()
    rec["fees"] = orders.get_column("fee").to_numpy()
    rec["side"] = np.where(orders.get_column("side").to_numpy() == "buy", VBT_BUY, VBT_SELL)
    return rec


def to_vectorbt(result: Any, freq: Any = None):
    """A ``vectorbt.Portfolio`` of the fills of `result` (a `backtest.results.RunResult`,
    which calls this; not imported here, so no cycle) over its bars (index: bar open
    times, UTC; one column named after the symbol). `freq` defaults to the bar interval."""
    if result.config.get("account") == "coin":
        raise InputError("to_vectorbt: vectorbt models linear contracts only; this cm "
                         "(inverse) run's account is in coin (`backtest.inverse`)")
    try:
        import pandas as pd
        import vectorbt as vbt
        from vectorbt.portfolio.enums import log_dt, order_dt
    except ImportError as exc:  # a declared dependency, but say what is missing
        raise ImportError(f"to_vectorbt needs vectorbt and pandas installed: {exc}") from exc
    frame = result.equity
    if frame.height == 0:
        raise ValueError("the result has no bars: nothing to give vectorbt")
    index = pd.DatetimeIndex(frame.get_column("open_time").to_pandas(), name="open_time")
    symbol = str(result.config.get("symbol", "close"))
    if freq is None:
        interval_ms = INTERVAL_MS.get(str(result.config.get("interval")))
        freq = pd.Timedelta(milliseconds=interval_ms) if interval_ms else None
    close = pd.Series(frame.get_column("close").to_numpy(), index=index, name=symbol)
    wrapper = vbt.ArrayWrapper(index, pd.Index([symbol]), ndim=1, freq=freq)
    return vbt.Portfolio(wrapper, close, vbt_order_records(result.orders, order_dt),
                         np.zeros(0, dtype=log_dt), float(result.config["cash"]),
                         cash_sharing=False)
