"""The out-of-sample side of a walk-forward: one test window traded, then stitched.

`trade_window` runs the chosen point (strategy parameters and stop levels) on a test
window with warmed-up signals (`warm_strategy`), closes a position still open at its
last bar (`close_at_boundary`) and computes the window's metrics from its trades, exit reasons
included (``n_sl_exits``, ``n_tp_exits``, ``n_trail_exits``); `stitch` joins the legs
into one curve and computes the metrics of the whole out-of-sample span.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from backtest import fills
from backtest.data import Bars
from backtest.metrics import compute_metrics
from backtest.records import (
    KIND_NAMES,
    KIND_SIGNAL,
    REASON_NONE,
    TRADE_CLOSED,
    TRADE_DT,
    TRADE_LIQUIDATED,
    TRADE_OPEN,
)
from backtest.results import RunResult
from backtest.strategies import Strategy
from backtest.walkforward_folds import FoldData, run_point, slice_bars


def warm_strategy(strat: Strategy, history: Bars, offset: int) -> Strategy:
    """`strat` whose signals for bars ``history[offset:offset + n]`` are computed on
    ``history[:offset + n]`` (the window plus every bar before it) and then cut to the
    window: indicators arrive warmed up, and nothing after the window is read."""

    def signals(bars: Bars, **params: Any) -> np.ndarray:
        stop = offset + len(bars)
        if stop > len(history) or not np.array_equal(
                history.open_time_us[offset:stop], bars.open_time_us):
            raise ValueError("warm_strategy: bars are not the window it was built for")
        return strat.signals(slice_bars(history, 0, stop), params)[offset:]

    return Strategy(strat.name, signals, strat.defaults, strat.validate, None,
                    strat.follows_direction)


_STATUS_CODES = {"closed": TRADE_CLOSED, "open": TRADE_OPEN, "liquidated": TRADE_LIQUIDATED}
_REASON_CODES = {name: code for code, name in KIND_NAMES.items()}


def trade_records(frame: pl.DataFrame) -> np.ndarray:
    """A `RunResult.trades` frame back to TRADE_DT records (for the metric kernel), the
    exit reason included (an open trade's is REASON_NONE)."""
    out = np.zeros(frame.height, dtype=TRADE_DT)
    for name in ("entry_idx", "exit_idx", "qty", "entry_price", "exit_price", "entry_fee",
                 "exit_fee", "funding_paid", "pnl"):
        out[name] = frame.get_column(name).to_numpy()
    out["side"] = np.where(frame.get_column("side").to_numpy() == "long", 1, -1)
    out["status"] = [_STATUS_CODES[s] for s in frame.get_column("status").to_list()]
    out["reason"] = [REASON_NONE if r is None else _REASON_CODES[r]
                     for r in frame.get_column("reason").to_list()]
    return out


def close_at_boundary(res: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The run's (equity, position, trades) with an open position closed at the last
    bar's close, as the kernel closes a position: a long sells ``qty`` at
    ``close * (1 - slip)`` and pays ``fee_rate`` of that; a short buys at
    ``close * (1 + slip)`` plus the fee. The closed trade's reason is ``signal`` (a
    forced close, not a stop). Returns also the closing fee.

    A coin account (cm, inverse: ``qty`` signed contracts of ``S`` USD, prices in USD)
    closes as the exchange settles it: the marked equity moves by
    ``qty * S * (1/close - 1/exit) - fee`` with ``fee = fee_rate * |qty| * S / exit``,
    and the trade's PnL is ``qty * S * (1/entry - 1/exit)`` less its fees and funding."""
    eq = res.equity
    equity = eq.get_column("equity").to_numpy().astype(np.float64).copy()
    position = eq.get_column("position").to_numpy().astype(np.float64).copy()
    trades = trade_records(res.trades)
    qty = position[-1]
    if qty == 0.0 or res.metrics["ruined"]:
        return equity, position, trades, 0.0
    fee_rate = float(res.config["fee_rate"])
    slip = fills.slippage_fraction(float(res.config["slippage_bps"]))
    close = float(eq.get_column("close")[-1])
    side = 1.0 if qty > 0 else -1.0
    exit_px = close * (1.0 - side * slip)
    t = trades[-1]  # the kernel writes the open trade last
    if res.config.get("account") == "coin":
        size = float(res.config["contract_size"])
        fee = abs(qty) * size / exit_px * fee_rate
        equity[-1] += qty * size * (1.0 / close - 1.0 / exit_px) - fee
        gross = side * t["qty"] * size * (1.0 / t["entry_price"] - 1.0 / exit_px)
    else:
        fee = abs(qty) * exit_px * fee_rate
        # marked value qty * close -> proceeds qty * exit_px - fee
        equity[-1] -= qty * (close - exit_px) + fee
        gross = side * (exit_px - t["entry_price"]) * t["qty"]
    position[-1] = 0.0
    if int(t["status"]) == TRADE_OPEN:
        t["exit_price"], t["exit_fee"], t["status"] = exit_px, fee, TRADE_CLOSED
        t["reason"] = KIND_SIGNAL
        t["pnl"] = gross - t["entry_fee"] - fee - t["funding_paid"]
    return equity, position, trades, fee


@dataclass
class Leg:
    """One traded test window after the boundary close, in stitched form."""

    equity: np.ndarray
    position: np.ndarray
    trades: np.ndarray
    fees: float
    funding: float
    ruin_idx: int
    metrics: dict[str, Any]
    notes: list[str]


def trade_window(strat: Strategy, point: dict[str, Any], data: FoldData, lo: int,
                 hi: int, cash: float) -> Leg:
    """Run `point` (parameters and stop levels) on bars ``lo:hi`` with warmed-up
    signals, starting with `cash`."""
    res = run_point(warm_strategy(strat, data.bars, lo), point, slice_bars(data.bars, lo, hi),
                    data.run_kw | {"cash": cash})
    equity, position, trades, close_fee = close_at_boundary(res)
    fees = float(res.metrics["fees_paid"]) + close_fee
    funding = float(res.metrics["funding_paid"])
    ruin_idx = int(res.metrics["ruin_idx"])
    metrics = compute_metrics(equity, position, trades, cash, fees, funding,
                              data.bars.bar_days, ruin_idx)
    return Leg(equity, position, trades, fees, funding, ruin_idx, metrics, res.warnings)


def flat_leg(n: int, value: float) -> Leg:
    """A window that is not traded (after ruin): equity held at `value`."""
    return Leg(np.full(n, value), np.zeros(n), np.zeros(0, dtype=TRADE_DT), 0.0, 0.0, -1,
               {}, [])


def stitch(legs: list[Leg], cash: float, bar_days: float) -> tuple[np.ndarray, dict]:
    """One out-of-sample curve from consecutive legs and its metrics."""
    offsets = np.cumsum([0] + [leg.equity.shape[0] for leg in legs[:-1]])
    trades = []
    ruin_idx = -1
    for off, leg in zip(offsets, legs, strict=True):
        t = leg.trades.copy()
        t["entry_idx"] += off
        t["exit_idx"] += off
        trades.append(t)
        if leg.ruin_idx >= 0 and ruin_idx < 0:
            ruin_idx = int(off + leg.ruin_idx)
    equity = np.concatenate([leg.equity for leg in legs])
    position = np.concatenate([leg.position for leg in legs])
    metrics = compute_metrics(equity, position, np.concatenate(trades), cash,
                              sum(leg.fees for leg in legs), sum(leg.funding for leg in legs),
                              bar_days, ruin_idx)
    return equity, metrics
