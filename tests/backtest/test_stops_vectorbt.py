"""Oracle: stop-loss, take-profit and trailing stops match vectorbt.Portfolio.from_signals.

vectorbt gets our signals shifted by one bar with ``price=open`` (our default
``fill="next_open"``), ``open/high/low`` for the stops, ``stop_entry_price="fillprice"``
(stops are fractions of the entry fill, after slippage, as ours) and
``stop_exit_price="stopmarket"`` (the stop fill pays slippage like any fill; vectorbt's
default "stoplimit" fills without it). Equity, trades and exit prices must agree to
1e-9 relative, long and short, with random entries and random stop levels.

Where the rules differ the case is tested by hand in `test_stops.py` instead: an
exit *signal* filled at a bar's open comes before that bar's stops here, while vectorbt
lets a stop hit anywhere in the bar win over the bar's signal. So the random signals
here are entries only (every exit is a stop), which both engines resolve alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

import backtest
from backtest.data import Bars
from tests.support.backtest import iso, make_bars

REL = 1e-9


def _gappy_bars(n: int, seed: int) -> Bars:
    """Random-walk bars whose opens jump up to ~1.5 % off the previous close, so stops
    are also crossed by gaps (filled at the open)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]] * (1.0 + rng.normal(0.0, 0.006, n))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0, 0.01, n))
    t_us = (1_704_067_200_000 + np.arange(n, dtype=np.int64) * 3_600_000) * 1000
    return Bars("um", "BTCUSDT", "1h", t_us, open_, high, low, close, np.ones(n))


def _vbt(bars, entries, direction, fee, slip, sl, tp, trail):
    idx = pd.date_range("2024-01-01", periods=len(bars), freq="h")
    shifted = np.r_[False, entries[:-1]]

    def s(a):
        return pd.Series(a, idx)

    return vbt.Portfolio.from_signals(
        s(bars.close), entries=s(shifted), exits=s(np.zeros(len(bars), bool)),
        price=s(bars.open), open=s(bars.open), high=s(bars.high), low=s(bars.low),
        sl_stop=np.nan if sl is None else sl, sl_trail=trail,
        tp_stop=np.nan if tp is None else tp, stop_entry_price="fillprice",
        stop_exit_price="stopmarket", fees=fee, slippage=slip / 1e4, init_cash=10_000.0,
        size=1.0, size_type="percent",
        direction="longonly" if direction == "long" else "shortonly", freq="1h")


def _assert_match(ours, pf, min_trades=5):
    np.testing.assert_allclose(ours.equity_curve, pf.value().to_numpy(), rtol=REL, atol=0)
    vt = pf.trades.records_readable
    tr = ours.trades
    assert tr.height == len(vt) > min_trades
    for col, vcol in (("qty", "Size"), ("entry_price", "Avg Entry Price"),
                      ("exit_price", "Avg Exit Price"), ("entry_fee", "Entry Fees"),
                      ("pnl", "PnL")):
        np.testing.assert_allclose(tr[col].to_numpy(), vt[vcol].to_numpy(), rtol=REL)
    np.testing.assert_allclose(tr["exit_fee"].to_numpy(), vt["Exit Fees"].to_numpy(),
                               rtol=REL, atol=1e-12)
    index = pf.wrapper.index
    assert tr["entry_idx"].to_list() == list(index.get_indexer(vt["Entry Timestamp"]))
    assert tr["exit_idx"].to_list() == list(index.get_indexer(vt["Exit Timestamp"]))
    assert ours.metrics["total_return"] == pytest.approx(pf.total_return(), rel=REL)


def _counts_cover_closed_trades(ours):
    m = ours.metrics
    closed = ours.trades.filter(ours.trades["status"] != "open")
    # entries only: every closed trade left through a stop, counted by its reason
    assert m["n_sl_exits"] + m["n_tp_exits"] + m["n_trail_exits"] == closed.height
    for reason, key in (("sl", "n_sl_exits"), ("tp", "n_tp_exits"), ("trail", "n_trail_exits")):
        assert (closed["reason"] == reason).sum() == m[key]
        assert (ours.orders["kind"] == reason).sum() == m[key]


@pytest.mark.parametrize("direction", ["long", "short"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_entries_and_stops_match_vectorbt(direction, seed):
    rng = np.random.default_rng(200 + seed)
    bars = _gappy_bars(1500, seed) if seed % 2 else make_bars(1500, seed=seed)
    want = 1 if direction == "long" else -1
    raw = np.where(rng.random(len(bars)) < 0.15, want, 0).astype(np.int8)
    sl = float(rng.uniform(0.005, 0.04))
    tp = [None, float(rng.uniform(0.005, 0.05))][seed % 2 if seed < 3 else 1]
    trail = seed >= 3
    fee = [0.0, 0.0005, 0.001, 0.0004][seed - 1]
    slip = [0.0, 2.0, 5.0, 1.0][seed - 1]
    ours = backtest.run(lambda b: raw, bars=bars, direction=direction, fee=fee,
                        slippage_bps=slip, funding=False, exchange_filters=False,
                        sl_stop=sl, tp_stop=tp, sl_trail=trail)
    _assert_match(ours, _vbt(bars, raw == want, direction, fee, slip, sl, tp, trail))
    _counts_cover_closed_trades(ours)
    m = ours.metrics
    if trail:
        assert m["n_trail_exits"] > 0 and m["n_sl_exits"] == 0
    else:
        assert m["n_sl_exits"] > 0 and m["n_trail_exits"] == 0
    assert (m["n_tp_exits"] > 0) == (tp is not None)


@pytest.mark.parametrize("direction", ["long", "short"])
def test_take_profit_only_matches_vectorbt(direction):
    bars = _gappy_bars(1200, 9)
    want = 1 if direction == "long" else -1
    raw = np.where(np.random.default_rng(9).random(len(bars)) < 0.1, want, 0).astype(np.int8)
    ours = backtest.run(lambda b: raw, bars=bars, direction=direction, fee=0.0005,
                        slippage_bps=3, funding=False, exchange_filters=False, tp_stop=0.012)
    _assert_match(ours, _vbt(bars, raw == want, direction, 0.0005, 3, None, 0.012, False))
    assert ours.metrics["n_tp_exits"] >= 3 and ours.metrics["n_sl_exits"] == 0


def test_stops_over_lake_match_vectorbt(lake):
    root, bars = lake
    start, end = iso(bars.open_time_us[0]), iso(bars.open_time_us[-1] + 3_600_000_000)
    raw = np.where(np.random.default_rng(3).random(len(bars)) < 0.1, 1, 0).astype(np.int8)
    ours = backtest.run(lambda b: raw, lake=root, market="um", symbol="BTCUSDT",
                        interval="1h", start=start, end=end, fee=0.0005, slippage_bps=2,
                        funding=False, exchange_filters=False, sl_stop=0.01, tp_stop=0.015,
                        sl_trail=True)
    assert ours.config["n_bars"] == len(bars)
    _assert_match(ours, _vbt(bars, raw == 1, "long", 0.0005, 2, 0.01, 0.015, True), 1)
