"""The portfolio kernel: target weights -> orders, one shared account (Numba, pure).

Arrays in, arrays out, a status code instead of exceptions. One bar ``i`` at a time:

1. funding stamped at the bar's open is charged on every perpetual position carried
   into the bar: ``fund += qty * fund_at_open[i, a]`` (`backtest.funding`: the per-bar
   ``sum(rate * mark)``), exactly as `backtest.kernels.simulate_nb` charges it;
2. ``fill="next_open"``: if bar ``i-1`` is a rebalance bar, its weights fill at this
   bar's open (`rebalance_nb`): the account value ``V = cash + sum(qty * open)`` is taken
   once, every asset with a finite weight that is tradable now gets the target
   ``qty = w * V / open``; orders run in ascending order of ``w * V - qty * open``
   (sells first, their cash funds the buys). Fills pay slippage against the trader
   (``open * (1 +- slip)``) and ``fee_rate`` on the traded notional. A buy is limited to
   the cash the account may spend, ``cash + (leverage - 1) * V``; one that needs more is
   reduced to what that cash pays for, fee included. ``threshold`` skips an asset whose
   weight drift ``|w - qty * open / V|`` is below it;
3. funding inside the bar is charged on the positions held after the open fill;
4. ``fill="close"``: this bar's weights fill at its close, as in 2;
5. an asset whose data ends here because it was delisted (``delist_idx[a] == i``) is
   closed at this bar's close (slippage, fee; order kind `KIND_DELIST`);
6. equity is marked at the close (the last close for an asset without a bar):
   ``equity = (cash + sum(qty * close)) - fund``; funding sits in its own accumulator
   subtracted last, so a held portfolio's equity with funding equals its equity without
   funding minus ``funding_paid`` exactly.

Inverse (COIN-M) contracts enter the kernel already mirrored by `backtest.multi_asset.
engine`: price ``1 / p``, quantity ``-contracts * contractSize``, weight ``-w``,
``lot_step = contractSize``; ``inverse[a]`` makes slippage act on the real price
(a real buy at ``p * (1 + slip)`` is a mirrored sell at ``(1 / p) / (1 + slip)``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.multi_asset.records import KIND_DELIST, KIND_REBALANCE

STATUS_OK = 0
STATUS_BAD_INPUT = 8  # array shapes disagree
STATUS_RUINED = 16  # account value <= 0 at a rebalance: trading stopped
STATUS_RECORDS_FULL = 2  # the order buffer was too small
STATUS_CASH_LIMITED = 64  # a buy was reduced to the cash the account may spend

# slots of the scalar state vector
CASH, FUND, N_ORD, STATUS, FEES = 0, 1, 2, 3, 4
N_SLOTS = 5
# columns of the per-asset accumulator (fees, funding, traded notional, cash flow)
A_FEES, A_FUND, A_TURN, A_FLOW = 0, 1, 2, 3
N_ACC = 4


@njit(cache=True)
def _flag_nb(st, flag):
    st[STATUS] = float(int(st[STATUS]) | flag)


@njit(cache=True)
def _record_nb(st, orders, i, a, side, qty, price, fee, kind):
    """Write one order; an empty `orders` buffer only counts them (a sweep's runs)."""
    k = int(st[N_ORD])
    if orders.shape[0] == 0:
        st[N_ORD] = k + 1
        return
    if k >= orders.shape[0]:
        _flag_nb(st, STATUS_RECORDS_FULL)
        return
    rec = orders[k]
    rec["idx"] = i
    rec["asset"] = a
    rec["side"] = side
    rec["qty"] = qty
    rec["price"] = price
    rec["fee"] = fee
    rec["kind"] = kind
    st[N_ORD] = k + 1


@njit(cache=True)
def _fill_price_nb(price, side, slip, inverse):
    if inverse:
        return price / (1.0 - slip) if side > 0 else price / (1.0 + slip)
    return price * (1.0 + slip) if side > 0 else price * (1.0 - slip)


@njit(cache=True)
def trade_nb(st, acc, pos, orders, i, a, delta, price, fee_rate, slip, inverse, step,
             spendable, kind):
    """Buy (delta > 0) or sell (< 0) `delta` units of asset `a` at `price`; a buy is cut
    to `spendable` cash (NaN: no limit), rounded down to `step` when it is set."""
    side = 1 if delta > 0.0 else -1
    px = _fill_price_nb(price, side, slip, inverse)
    qty = abs(delta)
    cost = qty * px
    fee = cost * fee_rate
    if side > 0 and not np.isnan(spendable) and cost + fee > spendable:
        if spendable <= 0.0:
            _flag_nb(st, STATUS_CASH_LIMITED)
            return
        qty = spendable / (1.0 + fee_rate) / px
        if step > 0.0:
            qty = np.floor(qty / step) * step
        if qty <= 0.0:
            _flag_nb(st, STATUS_CASH_LIMITED)
            return
        cost = qty * px
        fee = cost * fee_rate if step > 0.0 else spendable - cost
        _flag_nb(st, STATUS_CASH_LIMITED)
    st[CASH] -= side * cost + fee
    st[FEES] += fee
    pos[a] += side * qty
    acc[a, A_FEES] += fee
    acc[a, A_TURN] += cost
    acc[a, A_FLOW] -= side * cost + fee
    _record_nb(st, orders, i, a, side, qty, px, fee, kind)


@njit(cache=True)
def rebalance_nb(st, acc, pos, last_px, orders, i, price_row, tradable_row, w_row, inverse,
                 step, fee_rate, slip, leverage, threshold):
    """Fill one row of target weights at `price_row` (see the module docstring)."""
    m = pos.shape[0]
    value = st[CASH] - st[FUND]
    for a in range(m):
        if pos[a] != 0.0:
            px = price_row[a] if tradable_row[a] else last_px[a]
            value += pos[a] * px
    if not value > 0.0:
        _flag_nb(st, STATUS_RUINED)
        return
    delta = np.zeros(m)
    order_value = np.full(m, np.inf)
    for a in range(m):
        w = w_row[a]
        if np.isnan(w) or not tradable_row[a]:
            continue
        px = price_row[a]
        if threshold > 0.0 and abs(w - pos[a] * px / value) < threshold:
            continue
        target = w * value / px
        if step[a] > 0.0:
            target = np.trunc(target / step[a]) * step[a]
        delta[a] = target - pos[a]
        if delta[a] != 0.0:
            order_value[a] = w * value - pos[a] * px
    seq = np.argsort(order_value, kind="mergesort")
    for k in range(m):
        a = seq[k]
        if delta[a] == 0.0 or np.isinf(order_value[a]):
            continue
        spendable = np.nan
        if delta[a] > 0.0:
            spendable = (st[CASH] - st[FUND]) + (leverage - 1.0) * value
        trade_nb(st, acc, pos, orders, i, a, delta[a], price_row[a], fee_rate[a], slip,
                 inverse[a], step[a], spendable, KIND_REBALANCE)


@njit(cache=True)
def _charge_funding_nb(st, acc, pos, fund_row):
    for a in range(pos.shape[0]):
        if pos[a] != 0.0 and fund_row[a] != 0.0:
            charge = pos[a] * fund_row[a]
            st[FUND] += charge
            acc[a, A_FUND] += charge


@njit(cache=True)
def _mark_nb(st, pos, last_px, close_row):
    """(equity, gross, net) at the close; updates the last known price (an asset
    without a bar, NaN close, keeps its last one)."""
    holdings = 0.0
    gross = 0.0
    for a in range(pos.shape[0]):
        if not np.isnan(close_row[a]):
            last_px[a] = close_row[a]
        if pos[a] != 0.0:
            v = pos[a] * last_px[a]
            holdings += v
            gross += abs(v)
    return (st[CASH] + holdings) - st[FUND], gross, holdings


@njit(cache=True)
def simulate_portfolio_nb(open_, close, tradable, weights, rebalance, fund_at_open, fund_intra,
                          delist_idx, inverse, lot_step, fill_close, init_cash, fee_rate, slip,
                          leverage, threshold, equity_out, cash_out, gross_out, net_out,
                          fees_out, fund_out, pos_out, acc, orders):
    """Simulate one portfolio; fills the *_out arrays (fees and funding cumulative),
    `orders` (a `backtest.multi_asset.records.ORDER_DT` buffer).

    `weights[t]` is used only where `rebalance[t]`; a NaN weight leaves the asset as it
    is. `fee_rate`, `inverse` and `lot_step` are per asset. Returns ``(status, n_orders)``.
    """
    n, m = close.shape
    if (weights.shape != (n, m) or rebalance.shape[0] != n or pos_out.shape != (n, m)
            or cash_out.shape[0] != n or net_out.shape[0] != n or fees_out.shape[0] != n
            or fund_out.shape[0] != n):
        return STATUS_BAD_INPUT, 0
    row_of = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        if rebalance[i]:
            row_of[i] = i
    return run_portfolio_nb(open_, close, tradable, weights, row_of, fund_at_open, fund_intra,
                            delist_idx, inverse, lot_step, fill_close, init_cash, fee_rate,
                            slip, leverage, threshold, equity_out, gross_out, cash_out,
                            net_out, fees_out, fund_out, pos_out, acc, orders)


@njit(cache=True)
def _inputs_ok_nb(open_, close, tradable, w_rows, row_of, fund_at_open, fund_intra,
                  delist_idx, inverse, lot_step, fee_rate, equity_out, gross_out, acc):
    n, m = close.shape
    if (open_.shape != (n, m) or tradable.shape != (n, m) or w_rows.shape[1] != m
            or fund_at_open.shape != (n, m) or fund_intra.shape != (n, m)
            or row_of.shape[0] != n or delist_idx.shape[0] != m or acc.shape != (m, N_ACC)
            or fee_rate.shape[0] != m or inverse.shape[0] != m or lot_step.shape[0] != m
            or equity_out.shape[0] != n or gross_out.shape[0] != n):
        return False
    return bool(np.all(row_of < w_rows.shape[0]))


@njit(cache=True)
def run_portfolio_nb(open_, close, tradable, w_rows, row_of, fund_at_open, fund_intra,
                     delist_idx, inverse, lot_step, fill_close, init_cash, fee_rate, slip,
                     leverage, threshold, equity_out, gross_out, cash_out, net_out, fees_out,
                     fund_out, pos_out, acc, orders):
    """The simulation itself (see the module docstring), with the target weights stored
    compactly: bar ``t`` is a rebalance bar when ``row_of[t] >= 0`` and then uses the
    weights ``w_rows[row_of[t]]``. `equity_out` and `gross_out` are always written;
    `cash_out`, `net_out`, `fees_out`, `fund_out`, `pos_out` only when `pos_out` has
    rows (a sweep passes empty ones, and an empty `orders` buffer to count orders
    only). Returns ``(status, n_orders)``."""
    n, m = close.shape
    if not _inputs_ok_nb(open_, close, tradable, w_rows, row_of, fund_at_open, fund_intra,
                         delist_idx, inverse, lot_step, fee_rate, equity_out, gross_out, acc):
        return STATUS_BAD_INPUT, 0
    full = pos_out.shape[0] > 0
    st = np.zeros(N_SLOTS)
    st[CASH] = init_cash
    pos = np.zeros(m)
    last_px = np.full(m, np.nan)
    for i in range(n):
        _charge_funding_nb(st, acc, pos, fund_at_open[i])
        if (not fill_close and i > 0 and row_of[i - 1] >= 0
                and int(st[STATUS]) & STATUS_RUINED == 0):
            rebalance_nb(st, acc, pos, last_px, orders, i, open_[i], tradable[i],
                         w_rows[row_of[i - 1]], inverse, lot_step, fee_rate, slip, leverage,
                         threshold)
        _charge_funding_nb(st, acc, pos, fund_intra[i])
        if fill_close and row_of[i] >= 0 and int(st[STATUS]) & STATUS_RUINED == 0:
            rebalance_nb(st, acc, pos, last_px, orders, i, close[i], tradable[i],
                         w_rows[row_of[i]], inverse, lot_step, fee_rate, slip, leverage,
                         threshold)
        for a in range(m):
            if delist_idx[a] == i and pos[a] != 0.0:
                trade_nb(st, acc, pos, orders, i, a, -pos[a], close[i, a], fee_rate[a], slip,
                         inverse[a], 0.0, np.nan, KIND_DELIST)
                pos[a] = 0.0  # exactly flat (no rounding residue)
        equity, gross, net = _mark_nb(st, pos, last_px, close[i])
        equity_out[i] = equity
        gross_out[i] = gross
        if full:
            cash_out[i] = st[CASH] - st[FUND]
            net_out[i] = net
            fees_out[i] = st[FEES]
            fund_out[i] = st[FUND]
            pos_out[i] = pos
    return int(st[STATUS]), int(st[N_ORD])


def order_capacity(weights, rebalance) -> int:
    """Rows an order buffer needs: one per finite weight on a rebalance bar, plus one
    delisting close per asset."""
    rows = weights[np.asarray(rebalance, dtype=bool)]
    return int(np.isfinite(rows).sum()) + weights.shape[1] + 1
