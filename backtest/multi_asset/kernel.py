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
3. stops (``sl_stop``, ``tp_stop``, ``sl_trail``; optional, one setting for every asset),
   per asset position, resolved by `backtest.stops` exactly as for ``run`` (worked
   numbers there): checked from the bar after the fill that opened the position (from
   flat, or across zero); a gap fills at the open, else at the level, the stop-loss
   before the take-profit in one bar; slippage and the asset's fee as for any fill;
   order kind `KIND_SL`/`KIND_TP`/`KIND_TRAIL`; then, without an exit, the trailing
   reference moves to the bar's high (long) / low (short). The levels are anchored at
   the opening fill price: a rebalance that resizes the position on the same side keeps
   them (the analogue of vectorbt's ``upon_stop_update="keep"``; worked numbers in
   ``tests/portfolio/test_stops.py``). After a stop the asset stays flat
   until the next rebalance fill re-applies its target weight (a new position, new
   levels); an asset without a bar is not checked;
4. funding inside the bar is charged on the positions held after the open fill;
5. ``fill="close"``: this bar's weights fill at its close, as in 2;
6. an asset whose data ends here because it was delisted (``delist_idx[a] == i``) is
   closed at this bar's close (slippage, fee; order kind `KIND_DELIST`);
7. equity is marked at the close (the last close for an asset without a bar):
   ``equity = (cash + sum(qty * close)) - fund``; funding sits in its own accumulator
   subtracted last, so a held portfolio's equity with funding equals its equity without
   funding minus ``funding_paid`` exactly.

Inverse (COIN-M) contracts enter the kernel already mirrored by `backtest.multi_asset.
engine`: price ``1 / p``, quantity ``-contracts * contractSize``, weight ``-w``,
``lot_step = contractSize``, high ``1 / low`` and low ``1 / high``; ``inverse[a]`` makes
slippage act on the real price (a real buy at ``p * (1 + slip)`` is a mirrored sell at
``(1 / p) / (1 + slip)``) and sets the stop levels in real USD prices (`backtest.stops`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.multi_asset.records import KIND_DELIST, KIND_REBALANCE, KIND_SL
from backtest.stops import trail_ref_nb, user_stop_exit_nb

STATUS_OK = 0
STATUS_BAD_INPUT = 8  # array shapes disagree
STATUS_RUINED = 16  # account value <= 0 at a rebalance: trading stopped
STATUS_RECORDS_FULL = 2  # the order buffer was too small
STATUS_CASH_LIMITED = 64  # a buy was reduced to the cash the account may spend

# slots of the scalar state vector
CASH, FUND, N_ORD, STATUS, FEES = 0, 1, 2, 3, 4
N_SLOTS = 5
# columns of the per-asset accumulator (fees, funding, traded notional, cash flow, and
# the exits by stop-loss, take-profit, trailing stop: A_SL + kind - KIND_SL)
A_FEES, A_FUND, A_TURN, A_FLOW, A_SL, A_TP, A_TRAIL = 0, 1, 2, 3, 4, 5, 6
N_ACC = 7
# columns of the per-asset stop anchor: entry fill price, trailing reference, entry bar
S_ENTRY, S_REF, S_IDX = 0, 1, 2


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
def trade_nb(st, acc, pos, anchor, orders, i, a, delta, price, fee_rate, slip, inverse, step,
             spendable, kind):
    """Buy (delta > 0) or sell (< 0) `delta` units of asset `a` at `price`; a buy is cut
    to `spendable` cash (NaN: no limit), rounded down to `step` when it is set. A fill
    that opens a position (from flat, or across zero) anchors its stops in `anchor[a]`."""
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
    before = pos[a]
    pos[a] += side * qty
    if before == 0.0 or (before > 0.0) != (pos[a] > 0.0):
        anchor[a, S_ENTRY] = px
        anchor[a, S_REF] = px
        anchor[a, S_IDX] = i
    acc[a, A_FEES] += fee
    acc[a, A_TURN] += cost
    acc[a, A_FLOW] -= side * cost + fee
    _record_nb(st, orders, i, a, side, qty, px, fee, kind)


@njit(cache=True)
def rebalance_nb(st, acc, pos, anchor, last_px, orders, i, price_row, tradable_row, w_row,
                 inverse, step, fee_rate, slip, leverage, threshold):
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
    for a in range(m):
        if not np.isnan(w_row[a]) and tradable_row[a]:
            break
    else:  # nothing to fill on this row: no order buffers, no sort
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
        trade_nb(st, acc, pos, anchor, orders, i, a, delta[a], price_row[a], fee_rate[a],
                 slip, inverse[a], step[a], spendable, KIND_REBALANCE)


@njit(cache=True)
def stops_nb(st, acc, pos, anchor, orders, i, open_row, high_row, low_row, tradable_row,
             inverse, fee_rate, slip, sl_stop, tp_stop, sl_trail):
    """Step 3 for every open position of bar `i` (see the module docstring)."""
    for a in range(pos.shape[0]):
        if pos[a] == 0.0 or not tradable_row[a] or anchor[a, S_IDX] >= i:
            continue
        px, kind = user_stop_exit_nb(pos[a], anchor[a, S_REF], anchor[a, S_ENTRY], sl_stop,
                                     tp_stop, sl_trail, open_row[a], high_row[a], low_row[a],
                                     inverse[a])
        if kind >= 0:
            trade_nb(st, acc, pos, anchor, orders, i, a, -pos[a], px, fee_rate[a], slip,
                     inverse[a], 0.0, np.nan, kind)
            pos[a] = 0.0  # exactly flat (no rounding residue)
            acc[a, A_SL + kind - KIND_SL] += 1.0
        elif sl_trail:
            anchor[a, S_REF] = trail_ref_nb(pos[a], anchor[a, S_REF], high_row[a], low_row[a])


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
                          fees_out, fund_out, pos_out, acc, orders, high, low, sl_stop, tp_stop,
                          sl_trail):
    """Simulate one portfolio; fills the *_out arrays (fees and funding cumulative),
    `orders` (a `backtest.multi_asset.records.ORDER_DT` buffer).

    `weights[t]` is used only where `rebalance[t]`; a NaN weight leaves the asset as it
    is. `fee_rate`, `inverse` and `lot_step` are per asset. `sl_stop`/`tp_stop` (NaN =
    off) and `sl_trail` are the stops of step 3; `high`/`low` (bars x assets) are read
    only when a stop is on (else they may have no rows). Returns ``(status, n_orders)``.
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
                            net_out, fees_out, fund_out, pos_out, acc, orders, high, low,
                            sl_stop, tp_stop, sl_trail)


@njit(cache=True)
def _inputs_ok_nb(open_, close, tradable, w_rows, row_of, fund_at_open, fund_intra,
                  delist_idx, inverse, lot_step, fee_rate, equity_out, gross_out, acc, high, low,
                  stops_on):
    n, m = close.shape
    if stops_on and (high.shape != (n, m) or low.shape != (n, m)):
        return False
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
                     fund_out, pos_out, acc, orders, high, low, sl_stop, tp_stop, sl_trail):
    """The simulation itself (see the module docstring), with the target weights stored
    compactly: bar ``t`` is a rebalance bar when ``row_of[t] >= 0`` and then uses the
    weights ``w_rows[row_of[t]]``. `equity_out` and `gross_out` are always written;
    `cash_out`, `net_out`, `fees_out`, `fund_out`, `pos_out` only when `pos_out` has
    rows (a sweep passes empty ones, and an empty `orders` buffer to count orders
    only). Stops as in `simulate_portfolio_nb`. Returns ``(status, n_orders)``."""
    n, m = close.shape
    stops_on = not (np.isnan(sl_stop) and np.isnan(tp_stop))
    if not _inputs_ok_nb(open_, close, tradable, w_rows, row_of, fund_at_open, fund_intra,
                         delist_idx, inverse, lot_step, fee_rate, equity_out, gross_out, acc,
                         high, low, stops_on):
        return STATUS_BAD_INPUT, 0
    full = pos_out.shape[0] > 0
    st = np.zeros(N_SLOTS)
    st[CASH] = init_cash
    pos = np.zeros(m)
    anchor = np.zeros((m, 3))
    last_px = np.full(m, np.nan)
    for i in range(n):
        _charge_funding_nb(st, acc, pos, fund_at_open[i])
        if (not fill_close and i > 0 and row_of[i - 1] >= 0
                and int(st[STATUS]) & STATUS_RUINED == 0):
            rebalance_nb(st, acc, pos, anchor, last_px, orders, i, open_[i], tradable[i],
                         w_rows[row_of[i - 1]], inverse, lot_step, fee_rate, slip, leverage,
                         threshold)
        if stops_on:
            stops_nb(st, acc, pos, anchor, orders, i, open_[i], high[i], low[i], tradable[i],
                     inverse, fee_rate, slip, sl_stop, tp_stop, sl_trail)
        _charge_funding_nb(st, acc, pos, fund_intra[i])
        if fill_close and row_of[i] >= 0 and int(st[STATUS]) & STATUS_RUINED == 0:
            rebalance_nb(st, acc, pos, anchor, last_px, orders, i, close[i], tradable[i],
                         w_rows[row_of[i]], inverse, lot_step, fee_rate, slip, leverage,
                         threshold)
        for a in range(m):
            if delist_idx[a] == i and pos[a] != 0.0:
                trade_nb(st, acc, pos, anchor, orders, i, a, -pos[a], close[i, a], fee_rate[a],
                         slip, inverse[a], 0.0, np.nan, KIND_DELIST)
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


def order_capacity(weights, rebalance, stops: bool = False) -> int:
    """Rows an order buffer needs: one per finite weight on a rebalance bar, plus one
    delisting close per asset; with stops, one stop exit per position opened (each needs
    an order before it), so at most twice that."""
    rows = weights[np.asarray(rebalance, dtype=bool)]
    base = int(np.isfinite(rows).sum()) + weights.shape[1] + 1
    return 2 * base if stops else base
