"""Funding model: map funding events onto bars (pure functions).

At each funding time T while a position is open, ``cash += -qty * mark_price * rate``:
a long pays a positive rate, a short receives it. ``mark_price`` is the funding
record's markPrice when present, else the open of the mark-price kline containing T,
else the open of the trading bar containing T.

Mapping rule (funding times need not sit on bar opens: the exchange stamps some with a
few ms of jitter, e.g. ``16:00:00.001``, and 8h funding falls inside 1d bars):

- an event belongs to the bar containing it: the last bar with ``open_time <= T``;
- it is an *at-open* event when ``T - open_time < jitter_us`` (default 1 s): it is
  charged on the position carried into the bar, before that bar's open fill, so an
  entry filled at that open is not charged and an exit filled there is;
- otherwise it is an *intra-bar* event, charged on the position held after the open
  fill (and after a liquidation in that bar, before a fill at the close);
- an event in a gap between bars (missing bars; T at or after the containing bar's
  end) moves to the next available bar as an at-open event; events before the first
  bar or after the last bar's end are outside the backtest and ignored.

A bar's charge is ``qty * sum(rate * mark_price)`` over its events of each kind. An
inverse (COIN-M) position pays ``contracts * contractSize / mark_price * rate`` coin, so
its sums are ``sum(rate / mark_price)`` (``inverse=True``; see `backtest.inverse`).
"""

from __future__ import annotations

import numpy as np

from backtest.data import Bars, FundingEvents, MarkOpens

DEFAULT_JITTER_US = 1_000_000


def event_mark_prices(events: FundingEvents, marks: MarkOpens, bars: Bars) -> np.ndarray:
    """The mark price each funding event is charged at (see the module docstring)."""
    mark = events.mark_price.astype(np.float64, copy=True)
    missing = np.isnan(mark)
    if not missing.any():
        return mark
    t = events.time_us[missing]
    fill = np.full(t.shape[0], np.nan)
    if marks.open_time_us.shape[0]:
        k = np.searchsorted(marks.open_time_us, t, side="right") - 1
        ok = (k >= 0) & (t < marks.open_time_us[np.maximum(k, 0)] + marks.bar_ms * 1000)
        fill[ok] = marks.open[k[ok]]
    still = np.isnan(fill)
    if still.any():
        bar_idx, _ = event_bars(bars.open_time_us, bars.bar_ms * 1000, t[still])
        good = bar_idx >= 0
        vals = np.full(bar_idx.shape[0], np.nan)
        vals[good] = bars.open[bar_idx[good]]
        fill[still] = vals
    mark[missing] = fill
    return mark


def event_bars(open_time_us: np.ndarray, bar_us: int, time_us: np.ndarray,
               jitter_us: int = DEFAULT_JITTER_US) -> tuple[np.ndarray, np.ndarray]:
    """(bar index or -1 if outside the bars, at_open flag) for each event time."""
    n = open_time_us.shape[0]
    k = np.searchsorted(open_time_us, time_us, side="right") - 1
    idx = np.full(time_us.shape[0], -1, dtype=np.int64)
    at_open = np.zeros(time_us.shape[0], dtype=np.bool_)
    if n == 0:
        return idx, at_open
    inside = k >= 0
    kk = np.maximum(k, 0)
    offset = time_us - open_time_us[kk]
    in_bar = inside & (offset < bar_us)
    idx[in_bar] = k[in_bar]
    at_open[in_bar] = offset[in_bar] < jitter_us
    in_gap = inside & ~in_bar & (k + 1 < n)
    idx[in_gap] = k[in_gap] + 1
    at_open[in_gap] = True
    return idx, at_open


def align_funding(bars: Bars, events: FundingEvents, marks: MarkOpens | None = None,
                  jitter_us: int = DEFAULT_JITTER_US, *, inverse: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar ``sum(rate * mark_price)`` of at-open and of intra-bar funding events
    (``sum(rate / mark_price)`` with `inverse`: coin per USD of contracts)."""
    n = len(bars)
    at_open_sum = np.zeros(n)
    intra_sum = np.zeros(n)
    if events.time_us.shape[0] == 0:
        return at_open_sum, intra_sum
    mark = event_mark_prices(events, marks or MarkOpens.empty(bars.bar_ms), bars)
    idx, at_open = event_bars(bars.open_time_us, bars.bar_ms * 1000, events.time_us, jitter_us)
    amount = events.rate / mark if inverse else events.rate * mark
    use = idx >= 0
    np.add.at(at_open_sum, idx[use & at_open], amount[use & at_open])
    np.add.at(intra_sum, idx[use & ~at_open], amount[use & ~at_open])
    return at_open_sum, intra_sum
