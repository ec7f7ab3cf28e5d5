"""Numba simulation kernels: arrays in, arrays out, status codes instead of exceptions.

One bar at a time, in this order (the order is part of the contract and is tested):

1. funding events stamped *at* the bar's open (see `backtest.funding`) are charged on
   the position carried into the bar, so an entry filled at that open is not charged
   and an exit filled at that open is;
2. with ``fill="next_open"`` the signal of the previous bar fills at this bar's open;
3. the user's stops (``sl_stop``, ``tp_stop``, ``sl_trail``; optional) of a position
   filled before this bar: the stop-loss, then the take-profit, then the trailing
   reference moves to the bar's high (long) / low (short); resolution with worked
   numbers in `backtest.stops`;
4. isolated-margin liquidation (optional): if the bar's low (long) / high (short)
   reaches the liquidation price, the position closes at that price; without it, a
   position whose equity marked at the bar's close is <= 0 is a ruin: it closes at
   that close (the exchange would have liquidated it);
5. funding events strictly inside the bar are charged on the position held then;
6. with ``fill="close"`` this bar's signal fills at its close;
7. equity is marked at the close: ``equity = cash + qty * close`` where cash already
   includes every fee and funding payment (funding is kept in its own accumulator and
   subtracted last so that, for one held position, equity with funding equals equity
   without funding minus ``funding_paid`` exactly, bit for bit).

Sizing is all-in: an entry spends ``size * leverage * equity`` (notional plus fee) on
a long, and sells short ``size * leverage * equity / (price * (1 + fee_rate))`` units;
the arithmetic follows ``vectorbt.Portfolio.from_signals`` so the two agree to
rounding. Positions never accumulate: a signal in the current direction is ignored.
With exchange filters (``qty_step``, ``min_qty``, ``min_notional``; see
`backtest.filters`) the quantity is rounded down to the step, a long then pays
``qty * price * (1 + fee_rate)``, and an entry below the minimum is not placed
(``STATUS_BELOW_MIN``). Ruin (``STATUS_RUINED``, see `simulate_nb`) stops trading.

Orders and trades are written into structured arrays of `backtest.records`
(``ORDER_DT``, ``TRADE_DT``), field by field. Every public kernel has the ``_nb``
suffix; ``kernel.py_func`` is the same code uninterpreted by Numba, which
`backtest.engine` uses when ``jit=False``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.records import (
    KIND_LIQUIDATION,
    KIND_SIGNAL,
    REASON_NONE,
    TRADE_CLOSED,
    TRADE_LIQUIDATED,
    TRADE_OPEN,
)
from backtest.stops import stop_level_nb, user_stop_exit_nb

# direction codes
LONG, SHORT, BOTH = 0, 1, 2
# status bit flags returned by the kernels
STATUS_OK = 0
STATUS_NO_CASH = 1  # an entry was skipped because equity was not positive
STATUS_RECORDS_FULL = 2  # an order/trade buffer was too small (records truncated)
STATUS_LIQUIDATED = 4  # at least one liquidation happened
STATUS_BAD_INPUT = 8  # array lengths disagree
STATUS_RUINED = 16  # the account was ruined: trading stopped (see `simulate_nb`)
STATUS_BELOW_MIN = 32  # an entry was skipped: below the exchange's minimum order

# slots of the per-run state vector (a float array keeps the helpers' signatures small)
CASH, POS, FUND, FEES, N_ORD, N_TR = 0, 1, 2, 3, 4, 5
E_IDX, E_PX, E_FEE, T_FUND, MARGIN, STATUS, RUIN, SL_REF = 6, 7, 8, 9, 10, 11, 12, 13
# the position's user stop levels, once per fill (LV_OK 0: to compute; `_user_stop_may_act_nb`)
SL_PX, TP_PX, LV_OK = 14, 15, 16
N_SLOTS = 17


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
def _record_trade_nb(st, trades, exit_idx, side, qty, exit_px, exit_fee, status, reason):
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
    rec["reason"] = reason
    st[N_TR] = k + 1


@njit(cache=True)
def slipped_price_nb(px, side, slip, inverse):
    """The fill price of a buy (`side` +1) or sell (-1) at `px` after slippage against
    the trader: ``px * (1 +/- slip)``; on an inverse mirror (`backtest.inverse`: ``px`` is
    ``1 / price``) the slippage acts on the real price: a mirrored buy is a real sell at
    ``price * (1 - slip)``, i.e. ``px / (1 - slip)``, a mirrored sell ``px / (1 + slip)``."""
    if inverse:
        return px / (1.0 - slip) if side > 0 else px / (1.0 + slip)
    return px * (1.0 + slip) if side > 0 else px * (1.0 - slip)


@njit(cache=True)
def close_position_nb(st, orders, trades, i, px, fee_rate, slip, kind, inverse=False):
    """Close the whole position at `px` moved by `slip` against the trader."""
    pos = st[POS]
    if pos > 0.0:
        side, qty = 1, pos
        adj = slipped_price_nb(px, -1, slip, inverse)
        acq = qty * adj
        fee = acq * fee_rate
        st[CASH] = st[CASH] + (acq - fee)
        order_side = -1
    else:
        side, qty = -1, -pos
        adj = slipped_price_nb(px, 1, slip, inverse)
        req = qty * adj
        fee = req * fee_rate
        st[CASH] = st[CASH] - (req + fee)
        order_side = 1
    st[FEES] += fee
    st[POS] = 0.0
    _record_order_nb(st, orders, i, order_side, qty, adj, fee, kind)
    status = TRADE_LIQUIDATED if kind == KIND_LIQUIDATION else TRADE_CLOSED
    _record_trade_nb(st, trades, i, side, qty, adj, fee, status, kind)


@njit(cache=True)
def floor_to_step_nb(qty, step):
    """The largest multiple of `step` not above `qty` (`qty` itself when step <= 0).

    A decimal step (0.001) is applied as ``k / 1000`` so the quantity is the double
    nearest the decimal the exchange would print, not ``k * 0.001``'s rounding error."""
    if not step > 0.0:
        return qty
    inv = np.round(1.0 / step)
    if not (inv >= 1.0 and abs(inv * step - 1.0) < 1e-9):
        inv = 0.0
    k = np.floor(qty / step)
    while k > 0.0 and (k / inv if inv > 0.0 else k * step) > qty:
        k -= 1.0
    while ((k + 1.0) / inv if inv > 0.0 else (k + 1.0) * step) <= qty:
        k += 1.0
    return k / inv if inv > 0.0 else k * step


@njit(cache=True)
def below_minimum_nb(qty, price, lot):
    """True if an order of `qty` at `price` breaks ``lot = (step, min_qty, min_notional)``."""
    return not qty > 0.0 or qty < lot[1] or qty * price < lot[2]


@njit(cache=True)
def _ruined_when_flat_nb(st, px, fee_rate, slip, leverage, lot, inverse):
    """A flat account is ruined when its equity is gone or its whole buying power
    (``leverage * equity``) at `px` no longer makes an order the exchange accepts."""
    equity = st[CASH] - st[FUND]
    if not equity > 0.0:
        return True
    if lot[0] > 0.0 or lot[1] > 0.0 or lot[2] > 0.0:
        adj = slipped_price_nb(px, 1, slip, inverse)
        qty = floor_to_step_nb(leverage * equity / (1.0 + fee_rate) / adj, lot[0])
        return below_minimum_nb(qty, adj, lot)
    return False


@njit(cache=True)
def _ruin_nb(st, i):
    st[RUIN] = i
    _flag_nb(st, STATUS_RUINED)


@njit(cache=True)
def open_position_nb(st, orders, i, side, px, fee_rate, slip, size_frac, leverage, lot,
                     inverse=False):
    """Open an all-in position of `side` (+1/-1) from a flat book at `px`; the quantity
    is rounded down to ``lot[0]`` and no order is placed below the minimum."""
    equity = st[CASH] - st[FUND]
    budget = size_frac * leverage * equity
    if not budget > 0.0:
        _flag_nb(st, STATUS_NO_CASH)
        return
    adj = slipped_price_nb(px, side, slip, inverse)
    if side > 0:
        max_req = budget / (1.0 + fee_rate)
        raw = max_req / adj
    else:
        raw = budget / (adj * (1.0 + fee_rate))
    qty = floor_to_step_nb(raw, lot[0])
    if below_minimum_nb(qty, adj, lot):
        _flag_nb(st, STATUS_BELOW_MIN)
        return
    if side > 0 and qty == raw:  # all-in, vectorbt's arithmetic
        fee = budget - max_req
        st[CASH] = st[CASH] - budget
    elif side > 0:
        req = qty * adj
        fee = req * fee_rate
        st[CASH] = st[CASH] - (req + fee)
    else:
        acq = qty * adj
        fee = acq * fee_rate
        st[CASH] = st[CASH] + (acq - fee)
    st[POS] = qty * side
    st[FEES] += fee
    st[E_IDX] = i
    st[E_PX] = adj
    st[E_FEE] = fee
    st[T_FUND] = 0.0
    st[MARGIN] = qty * adj / leverage
    st[SL_REF] = adj
    st[LV_OK] = 0.0
    _record_order_nb(st, orders, i, side, qty, adj, fee, KIND_SIGNAL)


@njit(cache=True)
def apply_signal_nb(st, orders, trades, i, sig, px, direction, fee_rate, slip, size_frac,
                    leverage, lot, inverse=False):
    """Move the book to the side `sig` asks for, filling at `px`; a close that leaves
    the account ruined (see `_ruined_when_flat_nb`) stops trading."""
    pos = st[POS]
    cur = 1 if pos > 0.0 else (-1 if pos < 0.0 else 0)
    tgt = target_side_nb(sig, direction, cur)
    if tgt == cur:
        return
    if cur != 0:
        close_position_nb(st, orders, trades, i, px, fee_rate, slip, KIND_SIGNAL, inverse)
        if _ruined_when_flat_nb(st, px, fee_rate, slip, leverage, lot, inverse):
            _ruin_nb(st, i)
            return
    if tgt != 0:
        open_position_nb(st, orders, i, tgt, px, fee_rate, slip, size_frac, leverage, lot,
                         inverse)


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
def stop_price_nb(st, mmr, liq_on):
    """The price that stops the open position: its liquidation price when a maintenance
    margin rate is set, otherwise the close at which equity is gone
    (``cash + qty * close - funding = 0``, i.e. ``(funding - cash) / qty``)."""
    pos = st[POS]
    if liq_on:
        return liquidation_price_nb(pos, st[E_PX], st[MARGIN] - st[T_FUND], mmr)
    return (st[FUND] - st[CASH]) / pos


@njit(cache=True)
def _apply_stop_nb(st, orders, trades, i, px, liq_on, fee_rate, leverage, lot, inverse):
    """Close the position its stop hit: at the liquidation price, or (no liquidation
    modelled) at the close where equity is gone: the exchange would have liquidated it,
    and the account is ruined."""
    px = max(px, 0.0)
    close_position_nb(st, orders, trades, i, px, fee_rate, 0.0, KIND_LIQUIDATION, inverse)
    _flag_nb(st, STATUS_LIQUIDATED)
    if not liq_on or _ruined_when_flat_nb(st, px, fee_rate, 0.0, leverage, lot, inverse):
        _ruin_nb(st, i)


@njit(cache=True)
def _user_stops_nb(st, orders, trades, i, open_px, high_px, low_px, sl_stop, tp_stop,
                   sl_trail, fee_rate, slip, leverage, lot, liq_on, mmr, inverse):
    """Step 3 of `simulate_nb` on a bar `i` where `_user_stop_may_act_nb` saw a stop
    reached: exit through it. A stop whose fill lies beyond the liquidation price is
    left to the liquidation (the price reached that first)."""
    pos = st[POS]
    px, kind = user_stop_exit_nb(pos, st[SL_REF], st[E_PX], sl_stop, tp_stop, sl_trail,
                                 open_px, high_px, low_px, inverse)
    if kind >= 0:
        if liq_on:
            liq = stop_price_nb(st, mmr, True)
            if (pos > 0.0 and px <= liq) or (pos < 0.0 and px >= liq):
                return
        close_position_nb(st, orders, trades, i, px, fee_rate, slip, kind, inverse)
        if _ruined_when_flat_nb(st, px, fee_rate, slip, leverage, lot, inverse):
            _ruin_nb(st, i)


@njit(cache=True, inline="always")  # a call passing `st` costs its refcount
def _user_stop_may_act_nb(st, open_px, high_px, low_px, sl_stop, tp_stop, sl_trail, inverse):
    """Step 3's per-bar test: True if the bar reaches a level of the open position (then
    `_user_stops_nb` resolves it: `user_stop_exit_nb` finds a stop exactly then), else
    the trailing reference moves to the bar's best price. The `stop_level_nb` levels are
    cached in ``SL_PX``/``TP_PX`` per fill and when the reference moves (off = NaN)."""
    pos = st[POS]
    if st[LV_OK] == 0.0:
        st[SL_PX] = stop_level_nb(st[SL_REF], sl_stop, pos > 0.0, inverse)
        st[TP_PX] = stop_level_nb(st[E_PX], tp_stop, pos < 0.0, inverse)
        st[LV_OK] = 1.0
    sl_px, tp_px = st[SL_PX], st[TP_PX]
    if pos > 0.0:
        if open_px <= sl_px or low_px <= sl_px or open_px >= tp_px or high_px >= tp_px:
            return True
        if sl_trail and high_px > st[SL_REF]:
            st[SL_REF] = high_px
            st[SL_PX] = stop_level_nb(high_px, sl_stop, True, inverse)
        return False
    if open_px >= sl_px or high_px >= sl_px or open_px <= tp_px or low_px <= tp_px:
        return True
    if sl_trail and low_px < st[SL_REF]:
        st[SL_REF] = low_px
        st[SL_PX] = stop_level_nb(low_px, sl_stop, False, inverse)
    return False


@njit(cache=True)
def _bar_stops_nb(st, orders, trades, i, open_px, high_px, low_px, close_px, stops, stop_px,
                  user_hit, sl_stop, tp_stop, sl_trail, liq_on, mmr, fee_rate, slip,
                  leverage, lot, inverse):
    """Steps 3 and 4 of `simulate_nb` for the open position in bar `i` (`user_hit`: a
    user stop is reached); returns the liquidation/ruin price to keep (NaN = to compute)."""
    if user_hit:
        _user_stops_nb(st, orders, trades, i, open_px, high_px, low_px, sl_stop, tp_stop,
                       sl_trail, fee_rate, slip, leverage, lot, liq_on, mmr, inverse)
        if st[POS] == 0.0:
            return np.nan
    if not stops:
        return stop_px
    pos = st[POS]
    if np.isnan(stop_px):
        stop_px = stop_price_nb(st, mmr, liq_on)
    if liq_on:
        hit = low_px <= stop_px if pos > 0.0 else high_px >= stop_px
    else:
        hit = close_px <= stop_px if pos > 0.0 else close_px >= stop_px
    if hit:
        _apply_stop_nb(st, orders, trades, i, stop_px if liq_on else close_px, liq_on,
                       fee_rate, leverage, lot, inverse)
    return stop_px


@njit(cache=True)
def _charge_funding_nb(st, rate_x_mark):
    charge = st[POS] * rate_x_mark
    st[FUND] += charge
    st[T_FUND] += charge


@njit(cache=True)
def book_slip_nb(st, sig, direction, buy_slip, sell_slip, inverse):
    """The slippage of the fills a signal makes now: every order of one signal (a close
    and the reversal's open) is on one side, a buy when the target side is above the
    current one; on an inverse mirror a mirrored buy is a real sell."""
    pos = st[POS]
    cur = 1 if pos > 0.0 else (-1 if pos < 0.0 else 0)
    buy = target_side_nb(sig, direction, cur) > cur
    return buy_slip if buy != inverse else sell_slip


@njit(cache=True)
def simulate_nb(open_, high, low, close, sig, fund_at_open, fund_intra, direction, fill_close,
                init_cash, size_frac, leverage, fee_rate, slip, mmr, qty_step, min_qty,
                min_notional, equity_out, pos_out, cash_out, fees_out, fund_out, orders,
                trades, sl_stop=np.nan, tp_stop=np.nan, sl_trail=False, inverse=False,
                slip_buy=None, slip_sell=None):
    """Simulate one strategy; fills the *_out arrays and the record buffers.

    Returns ``(status, n_orders, n_trades, fees_paid, funding_paid, ruin_idx)``. `mmr`
    NaN disables liquidation. ``qty_step``/``min_qty``/``min_notional`` are the
    exchange's filters (0 = off, see `backtest.filters`). Zero-length
    ``cash_out``/``fees_out``/``fund_out`` skip those per-bar series (sweeps need only
    equity and position). ``fund_at_open``/``fund_intra`` hold, per bar, the sum of
    ``rate * mark_price`` of the funding events mapped to that bar (see
    `backtest.funding.align_funding`). An `orders` buffer with zero rows disables order
    recording (used by sweeps). `inverse`: the inputs are an inverse contract's linear
    mirror (`backtest.inverse`: prices ``1 / price``); slippage and the stop levels then
    act on the real price (`slipped_price_nb`, `stop_level_nb`). `slip_buy`/`slip_sell`
    (None = the scalar `slip`): per-bar slippage fractions of a signal fill's reference
    price for a real buy / sell (`backtest.spread`: the book ticker's ask and bid); the
    stops then use `slip`.

    Stops (step 3; `sl_stop`/`tp_stop` NaN = off, fractions of the entry fill price,
    i.e. after slippage) resolve as `backtest.stops` documents with worked numbers;
    here an exit signal filled at this bar's open (step 2) comes before them, and a
    stop whose fill lies beyond the liquidation price (step 4) is not taken: the
    liquidation came first on the way there.

    Ruin: when the account is flat after a close or a liquidation with no equity left
    or too little to place the exchange's minimum order, or when equity marked at a
    bar's close is <= 0 with a position open (step 4; closed there as a liquidation),
    trading stops for good; ``ruin_idx`` is that bar (-1 if never). The close check is
    skipped while it cannot trigger (an unlevered long that has paid no funding), which
    keeps the common loop as fast as without it.
    """
    n = close.shape[0]
    st = np.zeros(N_SLOTS)
    st[CASH] = init_cash
    st[RUIN] = -1.0
    if (open_.shape[0] != n or high.shape[0] != n or low.shape[0] != n or sig.shape[0] != n
            or fund_at_open.shape[0] != n or fund_intra.shape[0] != n or equity_out.shape[0] != n):
        return STATUS_BAD_INPUT, 0, 0, 0.0, 0.0, -1
    if slip_buy is not None:  # noqa: SIM102 (Numba prunes a bare `is None` test only)
        if slip_buy.shape[0] != n or slip_sell.shape[0] != n:
            return STATUS_BAD_INPUT, 0, 0, 0.0, 0.0, -1
    full = cash_out.shape[0] == n and fees_out.shape[0] == n and fund_out.shape[0] == n
    liq_on = not np.isnan(mmr)
    lot = (qty_step, min_qty, min_notional)
    # equity can reach 0 with a position held unless liquidation comes first or the
    # position is an unlevered long (then only funding could drain it: watched once paid)
    stops = liq_on or not (direction == LONG and leverage * size_frac <= 1.0)
    stop_px = np.nan  # of the open position; NaN = to compute (after a fill or funding)
    user_stops = not (np.isnan(sl_stop) and np.isnan(tp_stop))
    watch = stops or user_stops  # steps 3-4 can act: one test per bar when neither can
    # hot loop: helpers are only called on bars where something happens
    for i in range(n):
        if st[POS] != 0.0 and fund_at_open[i] != 0.0:
            _charge_funding_nb(st, fund_at_open[i])
            stops, watch, stop_px = True, True, np.nan
        if not fill_close and i > 0 and sig[i - 1] != 0 and st[RUIN] < 0.0:
            s = slip
            if slip_buy is not None:
                s = book_slip_nb(st, sig[i - 1], direction, slip_buy[i], slip_sell[i], inverse)
            apply_signal_nb(st, orders, trades, i, sig[i - 1], open_[i], direction, fee_rate,
                            s, size_frac, leverage, lot, inverse)
            stop_px = np.nan
        if watch and st[POS] != 0.0:
            hit = user_stops and st[E_IDX] < i and _user_stop_may_act_nb(
                st, open_[i], high[i], low[i], sl_stop, tp_stop, sl_trail, inverse)
            if hit or stops:
                stop_px = _bar_stops_nb(st, orders, trades, i, open_[i], high[i], low[i],
                                        close[i], stops, stop_px, hit, sl_stop, tp_stop,
                                        sl_trail, liq_on, mmr, fee_rate, slip, leverage, lot,
                                        inverse)
        if st[POS] != 0.0 and fund_intra[i] != 0.0:
            _charge_funding_nb(st, fund_intra[i])
            stops, watch, stop_px = True, True, np.nan
        if fill_close and sig[i] != 0 and st[RUIN] < 0.0:
            s = slip
            if slip_buy is not None:
                s = book_slip_nb(st, sig[i], direction, slip_buy[i], slip_sell[i], inverse)
            apply_signal_nb(st, orders, trades, i, sig[i], close[i], direction, fee_rate,
                            s, size_frac, leverage, lot, inverse)
            stop_px = np.nan
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
        _record_trade_nb(st, trades, n - 1, side, abs(st[POS]), close[n - 1], 0.0, TRADE_OPEN,
                         REASON_NONE)
    return int(st[STATUS]), int(st[N_ORD]), int(st[N_TR]), st[FEES], st[FUND], int(st[RUIN])


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
