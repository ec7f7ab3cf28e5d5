"""Stop-loss, take-profit and trailing stops: the levels and their resolution in a bar (Numba, pure).

One resolution for every kernel that has stops: `backtest.kernels.simulate_nb` (``run``,
``sweep``, walk-forward) and `backtest.multi_asset.kernel` (``portfolio``, per asset).

Stops (`sl_stop`/`tp_stop` NaN = off) are fractions of the entry fill price, i.e. after
slippage: a long filled at 100 with ``sl_stop=0.02, tp_stop=0.05`` has its stop-loss at
98 and its take-profit at 105, a short at 102 and 95. They are looked at from the bar
after the fill (the fill's own bar is neither checked nor used by the trailing stop):

- a bar opening beyond a level exits at the open (a gap): open 97 -> exit at 97,
  open 106 -> exit at 106;
- else a bar whose range reaches the level exits at the level: open 99, low 97.5
  -> exit at 98; open 101, high 106 -> exit at 105;
- a bar reaching both (open 100, low 97, high 106) exits at the stop-loss, 98: the
  path inside a bar is unknown, so the conservative order is assumed;
- the exit is an order like any other: slippage moves it against the trader (98
  with 10 bps sells at 97.902) and pays the fee rate; its order kind (and a trade's
  ``reason``) is ``KIND_SL``, ``KIND_TP`` or ``KIND_TRAIL`` of `backtest.records`;
- ``sl_trail``: the stop-loss follows the best price seen since the fill, updated
  from each bar's high (long) / low (short) *after* that bar's check; long at 100,
  ``sl_stop=0.1``: bar high 120 (low 101) -> no exit, stop moves to 108; next bar
  open 115, low 107 -> exit at 108 (``KIND_TRAIL``); the take-profit stays
  anchored at the entry.

Inverse (COIN-M) contracts run as a linear mirror (`backtest.inverse`: prices ``1 /
price``); their levels are set in real USD price space (`stop_level_nb`). What comes
before the stops in a bar (a signal or rebalance filled at the open) and after them
(liquidation) is the kernel's order of events, documented in each kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.records import KIND_SL, KIND_TP, KIND_TRAIL


@njit(cache=True)
def stop_level_nb(ref_px, frac, below, inverse):
    """A stop level `frac` below (`below`) or above `ref_px`: ``ref_px * (1 -/+ frac)``;
    on an inverse mirror (prices ``1 / price``) the level is set in real price space,
    where below the real price is above the mirrored one: ``ref_px / (1 +/- frac)``
    (`below` then means below the *mirrored* price, i.e. above the real one). A level a
    real price cannot reach (a real take-profit at or below 0) is inf; an off one (`frac`
    NaN) is NaN, which no price reaches."""
    if not inverse or np.isnan(frac):
        return ref_px * (1.0 - frac) if below else ref_px * (1.0 + frac)
    if below:
        return ref_px / (1.0 + frac)
    return ref_px / (1.0 - frac) if frac < 1.0 else np.inf


@njit(cache=True)
def user_stop_exit_nb(pos, ref_px, entry_px, sl_stop, tp_stop, sl_trail, open_px, high_px,
                      low_px, inverse=False):
    """``(price, kind)`` at which one bar exits a position of signed `pos` through its
    stops, or ``(NaN, -1)``: the stop-loss at ``ref_px * (1 -/+ sl_stop)`` (`ref_px` is
    the entry fill price, or the best price seen when trailing) is looked at first, then
    the take-profit at ``entry_px * (1 +/- tp_stop)``; a bar opening beyond a level fills
    at its open (worked numbers in the module docstring). `inverse`: the levels of
    `stop_level_nb` on a mirror."""
    sl_kind = KIND_TRAIL if sl_trail else KIND_SL
    if pos > 0.0:
        if not np.isnan(sl_stop):
            px = stop_level_nb(ref_px, sl_stop, True, inverse)
            if open_px <= px:
                return open_px, sl_kind
            if low_px <= px:
                return px, sl_kind
        if not np.isnan(tp_stop):
            px = stop_level_nb(entry_px, tp_stop, False, inverse)
            if open_px >= px:
                return open_px, KIND_TP
            if high_px >= px:
                return px, KIND_TP
    else:
        if not np.isnan(sl_stop):
            px = stop_level_nb(ref_px, sl_stop, False, inverse)
            if open_px >= px:
                return open_px, sl_kind
            if high_px >= px:
                return px, sl_kind
        if not np.isnan(tp_stop):
            px = stop_level_nb(entry_px, tp_stop, True, inverse)
            if open_px <= px:
                return open_px, KIND_TP
            if low_px <= px:
                return px, KIND_TP
    return np.nan, -1


@njit(cache=True)
def trail_ref_nb(pos, ref_px, high_px, low_px):
    """The trailing reference after a bar without a stop exit: the best price seen, the
    bar's high for a long (signed `pos` > 0), its low for a short."""
    if pos > 0.0:
        return high_px if high_px > ref_px else ref_px
    return low_px if low_px < ref_px else ref_px
