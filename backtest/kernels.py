"""Numba simulation kernels: arrays in, arrays out, status codes instead of exceptions.

One bar at a time, in this order (the order is part of the contract and is tested):

1. funding events stamped *at* the bar's open (see `backtest.funding`) are charged on
   the position carried into the bar, so an entry filled at that open is not charged
   and an exit filled at that open is;
2. with ``fill="next_open"`` the signal of the previous bar fills at this bar's open;
3. isolated-margin liquidation (optional): if the bar's low (long) / high (short)
   reaches the liquidation price, the position closes at that price;
4. funding events strictly inside the bar are charged on the position held then;
5. with ``fill="close"`` this bar's signal fills at its close;
6. equity is marked at the close: ``equity = cash + qty * close`` where cash already
   includes every fee and funding payment (funding is kept in its own accumulator and
   subtracted last so that, for one held position, equity with funding equals equity
   without funding minus ``funding_paid`` exactly, bit for bit).

Sizing is all-in: an entry spends ``size * leverage * equity`` (notional plus fee) on
a long, and sells short ``size * leverage * equity / (price * (1 + fee_rate))`` units;
the arithmetic follows ``vectorbt.Portfolio.from_signals`` so the two agree to
rounding. Positions never accumulate: a signal in the current direction is ignored.

Orders and trades are written into structured arrays of `backtest.records` (``ORDER_DT``,
``TRADE_DT``), field by field. Every public kernel has the ``_nb`` suffix; ``kernel.py_func`` is the same code
uninterpreted by Numba, which `backtest.engine` uses when ``jit=False``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.records import (
    KIND_LIQUIDATION,
    KIND_SIGNAL,
    TRADE_CLOSED,
    TRADE_LIQUIDATED,
    TRADE_OPEN,
)

# direction codes
LONG, SHORT, BOTH = 0, 1, 2
# status bit flags returned by the kernels
STATUS_OK = 0
STATUS_NO_CASH = 1  # an entry was skipped because equity was not positive
STATUS_RECORDS_FULL = 2  # an order/trade buffer was too small (records truncated)
STATUS_LIQUIDATED = 4  # at least one liquidation happened
STATUS_BAD_INPUT = 8  # array lengths disagree

# slots of the per-run state vector (a float array keeps the helpers' signatures small)
CASH, POS, FUND, FEES, N_ORD, N_TR = 0, 1, 2, 3, 4, 5
E_IDX, E_PX, E_FEE, T_FUND, MARGIN, STATUS = 6, 7, 8, 9, 10, 11
N_SLOTS = 12


@njit(cache=True)
def target_side_nb(sig: int, direction: int, cur_side: int) -> int:
    """Side (-1, 0, 1) a signal asks for: +1 bullish, -1 bearish, 0 keep."""
    if sig == 0:
        return cur_side
    if direction == LONG:
        return 1 if sig > 0 else 0
    if direction == SHORT:
        return -1 if sig < 0 else 0
    return 1 if sig > 0 else -1


@njit(cache=True)
def _flag_nb(st, flag):
    st[STATUS] = float(int(st[STATUS]) | flag)


@njit(cache=True)
def _record_order_nb(st, orders, i, side, qty, price, fee, kind):
    k = int(st[N_ORD])
    if orders.shape[0] == 0:
        return
    if k >= orders.shape[0]:
        _flag_nb(st, STATUS_RECORDS_FULL)
        return
    rec = orders[k]
    rec["idx"] = i
    rec["side"] = side
    rec["qty"] = qty
    rec["price"] = price
    rec["fee"] = fee
    rec["kind"] = kind
    st[N_ORD] = k + 1


@njit(cache=True)
def _record_trade_nb(st, trades, exit_idx, side, qty, exit_px, exit_fee, status):
    k = int(st[N_TR])
    if k >= trades.shape[0]:
        _flag_nb(st, STATUS_RECORDS_FULL)
        return
    entry_px = st[E_PX]
    pnl = side * (exit_px - entry_px) * qty - st[E_FEE] - exit_fee - st[T_FUND]
    rec = trades[k]
    rec["entry_idx"] = int(st[E_IDX])
    rec["exit_idx"] = exit_idx
    rec["side"] = side
    rec["qty"] = qty
    rec["entry_price"] = entry_px
    rec["exit_price"] = exit_px
    rec["entry_fee"] = st[E_FEE]
    rec["exit_fee"] = exit_fee
    rec["funding_paid"] = st[T_FUND]
    rec["pnl"] = pnl
    rec["status"] = status
    st[N_TR] = k + 1


@njit(cache=True)
def close_position_nb(st, orders, trades, i, px, fee_rate, slip, kind):
    """Close the whole position at `px` moved by `slip` against the trader."""
    pos = st[POS]
    if pos > 0.0:
        side, qty = 1, pos
        adj = px * (1.0 - slip)
        acq = qty * adj
        fee = acq * fee_rate
        st[CASH] = st[CASH] + (acq - fee)
        order_side = -1
    else:
        side, qty = -1, -pos
        adj = px * (1.0 + slip)
        req = qty * adj
        fee = req * fee_rate
        st[CASH] = st[CASH] - (req + fee)
        order_side = 1
    st[FEES] += fee
    st[POS] = 0.0
    _record_order_nb(st, orders, i, order_side, qty, adj, fee, kind)
    status = TRADE_LIQUIDATED if kind == KIND_LIQUIDATION else TRADE_CLOSED
    _record_trade_nb(st, trades, i, side, qty, adj, fee, status)


@njit(cache=True)
def open_position_nb(st, orders, i, side, px, fee_rate, slip, size_frac, leverage):
    """Open an all-in position of `side` (+1/-1) from a flat book at `px`."""
    equity = st[CASH] - st[FUND]
    budget = size_frac * leverage * equity
    if not budget > 0.0:
        _flag_nb(st, STATUS_NO_CASH)
        return
    if side > 0:
        adj = px * (1.0 + slip)
        max_req = budget / (1.0 + fee_rate)
        qty = max_req / adj
        fee = budget - max_req
        st[CASH] = st[CASH] - budget
        st[POS] = qty
    else:
        adj = px * (1.0 - slip)
        qty = budget / (adj * (1.0 + fee_rate))
        acq = qty * adj
        fee = acq * fee_rate
        st[CASH] = st[CASH] + (acq - fee)
        st[POS] = -qty
    st[FEES] += fee
    st[E_IDX] = i
    st[E_PX] = adj
    st[E_FEE] = fee
    st[T_FUND] = 0.0
    st[MARGIN] = qty * adj / leverage
    _record_order_nb(st, orders, i, side, qty, adj, fee, KIND_SIGNAL)


@njit(cache=True)
def apply_signal_nb(st, orders, trades, i, sig, px, direction, fee_rate, slip, size_frac,
                    leverage):
    """Move the book to the side `sig` asks for, filling at `px`."""
    pos = st[POS]
    cur = 1 if pos > 0.0 else (-1 if pos < 0.0 else 0)
    tgt = target_side_nb(sig, direction, cur)
    if tgt == cur:
        return
    if cur != 0:
        close_position_nb(st, orders, trades, i, px, fee_rate, slip, KIND_SIGNAL)
    if tgt != 0:
        open_position_nb(st, orders, i, tgt, px, fee_rate, slip, size_frac, leverage)


@njit(cache=True)
def liquidation_price_nb(qty, entry_px, margin, mmr):
    """Isolated-margin liquidation price of a position of signed `qty`.

    Liquidated when margin + unrealized PnL <= mmr * |qty| * price:
    long  ``p = (q*entry - margin) / (q*(1-mmr))``,
    short ``p = (q*entry + margin) / (q*(1+mmr))`` with ``q = |qty|``.
    """
    q = abs(qty)
    if qty > 0.0:
        return (q * entry_px - margin) / (q * (1.0 - mmr))
    return (q * entry_px + margin) / (q * (1.0 + mmr))


@njit(cache=True)
def _check_liquidation_nb(st, orders, trades, i, high, low, fee_rate, mmr):
    pos = st[POS]
    liq = liquidation_price_nb(pos, st[E_PX], st[MARGIN] - st[T_FUND], mmr)
    if (pos > 0.0 and low <= liq) or (pos < 0.0 and high >= liq):
        close_position_nb(st, orders, trades, i, max(liq, 0.0), fee_rate, 0.0, KIND_LIQUIDATION)
        _flag_nb(st, STATUS_LIQUIDATED)


@njit(cache=True)
def _charge_funding_nb(st, rate_x_mark):
    charge = st[POS] * rate_x_mark
    st[FUND] += charge
    st[T_FUND] += charge


@njit(cache=True)
def simulate_nb(open_, high, low, close, sig, fund_at_open, fund_intra, direction, fill_close,
                init_cash, size_frac, leverage, fee_rate, slip, mmr,
                equity_out, pos_out, cash_out, fees_out, fund_out, orders, trades):
    """Simulate one strategy; fills the *_out arrays and the record buffers.

    Returns ``(status, n_orders, n_trades, fees_paid, funding_paid)``. `mmr` NaN disables
    liquidation. Zero-length ``cash_out``/``fees_out``/``fund_out`` skip those per-bar
    series (sweeps need only equity and position).
    ``fund_at_open``/``fund_intra`` hold, per bar, the sum of ``rate * mark_price`` of
    the funding events mapped to that bar (see `backtest.funding.align_funding`).
    An `orders` buffer with zero rows disables order recording (used by sweeps).
    """
    n = close.shape[0]
    st = np.zeros(N_SLOTS)
    st[CASH] = init_cash
    if (open_.shape[0] != n or high.shape[0] != n or low.shape[0] != n or sig.shape[0] != n
            or fund_at_open.shape[0] != n or fund_intra.shape[0] != n or equity_out.shape[0] != n):
        return STATUS_BAD_INPUT, 0, 0, 0.0, 0.0
    full = cash_out.shape[0] == n and fees_out.shape[0] == n and fund_out.shape[0] == n
    liq_on = not np.isnan(mmr)
    # hot loop: helpers are only called on bars where something happens
    for i in range(n):
        if st[POS] != 0.0 and fund_at_open[i] != 0.0:
            _charge_funding_nb(st, fund_at_open[i])
        if not fill_close and i > 0 and sig[i - 1] != 0:
            apply_signal_nb(st, orders, trades, i, sig[i - 1], open_[i], direction, fee_rate,
                            slip, size_frac, leverage)
        if liq_on and st[POS] != 0.0:
            _check_liquidation_nb(st, orders, trades, i, high[i], low[i], fee_rate, mmr)
        if st[POS] != 0.0 and fund_intra[i] != 0.0:
            _charge_funding_nb(st, fund_intra[i])
        if fill_close and sig[i] != 0:
            apply_signal_nb(st, orders, trades, i, sig[i], close[i], direction, fee_rate,
                            slip, size_frac, leverage)
        pos = st[POS]
        fund = st[FUND]
        equity_out[i] = (st[CASH] + pos * close[i]) - fund
        pos_out[i] = pos
        if full:
            cash_out[i] = st[CASH] - fund
            fees_out[i] = st[FEES]
            fund_out[i] = fund
    if st[POS] != 0.0 and n > 0:
        side = 1 if st[POS] > 0.0 else -1
        _record_trade_nb(st, trades, n - 1, side, abs(st[POS]), close[n - 1], 0.0, TRADE_OPEN)
    return int(st[STATUS]), int(st[N_ORD]), int(st[N_TR]), st[FEES], st[FUND]


@njit(cache=True)
def cross_signal_nb(fast, slow):
    """+1 where `fast` crosses above `slow` (now >, previous bar <=), -1 where it crosses
    below (now <, previous >=), else 0. Bars where either value is NaN give 0."""
    n = fast.shape[0]
    out = np.zeros(n, dtype=np.int8)
    for t in range(1, n):
        f0, s0, f1, s1 = fast[t - 1], slow[t - 1], fast[t], slow[t]
        if np.isnan(f0) or np.isnan(s0) or np.isnan(f1) or np.isnan(s1):
            continue
        if f1 > s1 and f0 <= s0:
            out[t] = 1
        elif f1 < s1 and f0 >= s0:
            out[t] = -1
    return out


def trade_capacity(n_bars: int) -> int:
    """Rows a trade buffer needs: at most one trade per bar, plus the final open one."""
    return n_bars + 1


def order_capacity(n_bars: int) -> int:
    """Rows an order buffer needs: a reversal is two orders per bar, plus a liquidation."""
    return 2 * n_bars + 2
