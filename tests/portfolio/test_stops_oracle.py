"""Oracles for stops in `backtest.portfolio`, random data, 1e-9 relative.

1. vectorbt: a portfolio whose weights enter every asset once (one rebalance row, long
   and short assets in one account) and never trade again is
   `vectorbt.Portfolio.from_signals` with ``cash_sharing=True, group_by=True``, the
   entries at the fill bar with ``price=open``, ``size = |w| * cash`` as
   ``size_type="value"`` (vectorbt divides by the unslipped price, as our target
   ``w * V / open`` does), ``stop_entry_price="fillprice"`` and
   ``stop_exit_price="stopmarket"`` (the stop fill pays slippage, as ours): equity per bar
   and every asset's exit bar and price agree, with gaps, stop-loss, take-profit and
   trailing stops.
2. `backtest.run` (itself vectorbt-verified, `tests/backtest/test_stops_vectorbt.py`):
   one asset re-entered many times: weight ``+-0.9`` on random rows with ``threshold
   0.5`` (a held position is left alone, as ``run`` ignores an entry while in one) is
   ``run`` with those rows as entry signals and ``size`` set so that both buy ``0.9 *
   equity / open`` (``0.9 (1 + slip) (1 + fee)`` long, ``0.9 (1 - slip) (1 + fee)``
   short). Equity and every order (bar, side, qty, price, kind) agree, long and short,
   and for COIN-M contracts (whole contracts, stops in USD prices) too.

Where the portfolio differs from both (re-entry at the next rebalance, a resize keeping
the levels) the worked numbers are in `test_stops.py`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

import backtest
from backtest.data import Bars
from backtest.multi_asset.panel import AssetInfo, panel_from_arrays

REL = 1e-9
T0_US = 1_704_067_200_000_000
CASH = 10_000.0


def _gappy(rng, n, m):
    """Random walks whose opens jump up to ~1.5 % off the previous close (gap exits)."""
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1.0 + rng.normal(0.0, 0.006, (n, m)))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0, 0.01, (n, m)))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0, 0.01, (n, m)))
    return open_, high, low, close


def _time(n):
    return T0_US + np.arange(n, dtype=np.int64) * 3_600_000_000


def _vbt_once(panel, w0, fee, slip_bps, sl, tp, trail):
    n, m = panel.n_bars, panel.n_assets
    idx = pd.date_range("2024-01-01", periods=n, freq="h")

    def f(a):
        return pd.DataFrame(a, index=idx)

    at_fill = np.zeros((n, m), dtype=bool)
    at_fill[1] = True
    return vbt.Portfolio.from_signals(
        f(panel.close), entries=f(at_fill & (w0 > 0)), exits=f(np.zeros((n, m), bool)),
        short_entries=f(at_fill & (w0 < 0)), short_exits=f(np.zeros((n, m), bool)),
        size=np.abs(w0)[None, :] * CASH, size_type="value", price=f(panel.open),
        open=f(panel.open), high=f(panel.high), low=f(panel.low),
        sl_stop=np.nan if sl is None else sl, tp_stop=np.nan if tp is None else tp,
        sl_trail=trail, stop_entry_price="fillprice", stop_exit_price="stopmarket",
        fees=fee, slippage=slip_bps / 1e4, init_cash=CASH, cash_sharing=True,
        group_by=True, freq="1h")


@pytest.mark.parametrize(("seed", "sl", "tp", "trail"), [
    (1, 0.02, None, False), (2, 0.015, 0.02, False), (3, 0.02, 0.03, True),
    (4, None, 0.015, False), (5, 0.03, 0.015, True),
])
def test_one_entry_per_asset_long_and_short_matches_vectorbt(seed, sl, tp, trail):
    rng = np.random.default_rng(300 + seed)
    n, m = 400, 16
    o, h, lo, c = _gappy(rng, n, m)
    panel = panel_from_arrays([f"um:A{k}USDT" for k in range(m)], "1h", _time(n), o, c,
                              high=h, low=lo)
    w0 = rng.uniform(0.2, 1.0, m) * rng.choice([-1.0, 1.0], m)
    w0 *= 0.9 / np.abs(w0).sum()
    w = np.full((n, m), np.nan)
    w[0] = w0
    fee, slip = [(0.0, 0.0), (0.0005, 2.0), (0.001, 5.0), (0.0004, 1.0), (0.0002, 3.0)][seed - 1]
    ours = backtest.portfolio(lambda p: w, panel=panel, cash=CASH, fee=fee, slippage_bps=slip,
                              funding=False, sl_stop=sl, tp_stop=tp, sl_trail=trail)
    pf = _vbt_once(panel, w0, fee, slip, sl, tp, trail)
    np.testing.assert_allclose(ours.equity_curve, pf.value().to_numpy(), rtol=REL, atol=0)
    exits = ours.orders.filter(ours.orders["kind"] != "rebalance")
    vt = pf.trades.records_readable
    closed = vt[vt["Status"] == "Closed"]
    assert exits.height == len(closed) >= m // 2
    got = {a: (t, p) for a, t, p in zip(exits["asset"], exits["time"].dt.epoch("us"),
                                        exits["price"], strict=True)}
    index = pf.wrapper.index
    for col, when, px in zip(closed["Column"], closed["Exit Timestamp"],
                             closed["Avg Exit Price"], strict=True):
        t_us, ours_px = got[f"um:A{col}USDT"]
        assert t_us == panel.time_us[index.get_loc(when)]
        assert ours_px == pytest.approx(px, rel=REL)
    m_ = ours.metrics
    assert m_["n_sl_exits"] + m_["n_tp_exits"] + m_["n_trail_exits"] == exits.height
    assert (m_["n_trail_exits"] > 0) == trail and (m_["n_tp_exits"] > 0) == (tp is not None)
    # some exits are gaps (filled at the bar's open)
    bar = np.searchsorted(panel.time_us, exits["time"].dt.epoch("us").to_numpy())
    col = np.array([int(a[4:-4]) for a in exits["asset"]])
    slip_f = slip / 1e4
    raw = exits["price"].to_numpy() / np.where(exits["side"].to_numpy() > 0, 1 + slip_f,
                                               1 - slip_f)
    assert np.isclose(raw, panel.open[bar, col], rtol=1e-12).any()


def _run_case(inverse, direction, seed, sl, tp, trail, fee, slip):
    rng = np.random.default_rng(400 + seed)
    n = 1200
    o, h, lo, c = (a[:, 0] for a in _gappy(rng, n, 1))
    if inverse:
        o, h, lo, c = (a * 400 for a in (o, h, lo, c))  # a BTC-like USD price
    sign = 1.0 if direction == "long" else -1.0
    rows = rng.random(n) < 0.15
    w = np.where(rows, 0.9 * sign, np.nan)[:, None]
    market, symbol = ("cm", "BTCUSD_PERP") if inverse else ("um", "BTCUSDT")
    info = (AssetInfo(status="TRADING", contract_size=100.0, margin_asset="BTC",
                      base_asset="BTC"),) if inverse else None
    panel = panel_from_arrays([f"{market}:{symbol}"], "1h", _time(n), o[:, None], c[:, None],
                              high=h[:, None], low=lo[:, None], info=info)
    cash = 1.0 if inverse else CASH
    stops = dict(sl_stop=sl, tp_stop=tp, sl_trail=trail)
    ours = backtest.portfolio(lambda p: w, panel=panel, cash=cash, fee=fee, slippage_bps=slip,
                              funding=False, threshold=0.5, **stops)
    s = slip / 1e4
    if inverse:  # the mirror's buy/sell of a real long/short (see backtest.inverse)
        size = 0.9 * (1 + fee) / (1 + s) if sign > 0 else 0.9 * (1 + fee) / (1 - s)
    else:
        size = 0.9 * (1 + s) * (1 + fee) if sign > 0 else 0.9 * (1 - s) * (1 + fee)
    bars = Bars(market, symbol, "1h", _time(n), o, h, lo, c, np.ones(n))
    raw = np.where(rows, int(sign), 0).astype(np.int8)
    ref = backtest.run(lambda b: raw, bars=bars, direction=direction, cash=cash, fee=fee,
                       slippage_bps=slip, funding=False, exchange_filters=False, size=size,
                       contract_size=100.0 if inverse else None, **stops)
    return ours, ref


def _assert_same_orders(ours, ref):
    np.testing.assert_allclose(ours.equity_curve, ref.equity_curve, rtol=REL, atol=0)
    a, b = ours.orders, ref.orders
    assert a.height == b.height > 20
    assert a["time"].to_list() == b["time"].to_list()
    assert [{1: "buy", -1: "sell"}[x] for x in a["side"]] == b["side"].to_list()
    kinds = [k if k != "rebalance" else "signal" for k in a["kind"]]
    assert kinds == b["kind"].to_list()
    for col in ("qty", "price", "fee"):
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=REL, atol=0)
    for key in ("n_sl_exits", "n_tp_exits", "n_trail_exits", "final_equity"):
        assert ours.metrics[key] == pytest.approx(ref.metrics[key], rel=REL)


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("direction", ["long", "short"])
@pytest.mark.parametrize(("seed", "sl", "tp", "trail", "fee", "slip"), [
    (1, 0.02, 0.03, False, 0.0005, 2.0),
    (2, 0.015, None, True, 0.001, 5.0),
    (3, 0.03, 0.02, True, 0.0004, 1.0),
])
def test_one_asset_re_entered_matches_backtest_run(inverse, direction, seed, sl, tp, trail,
                                                   fee, slip):
    ours, ref = _run_case(inverse, direction, seed, sl, tp, trail, fee, slip)
    _assert_same_orders(ours, ref)
    assert ours.metrics["n_trail_exits" if trail else "n_sl_exits"] > 3
    if tp is not None:
        assert ours.metrics["n_tp_exits"] > 3
