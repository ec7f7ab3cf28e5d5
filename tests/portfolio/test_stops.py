"""Stops in `backtest.portfolio`, by hand: worked numbers for the rules where vectorbt's
`from_signals` cannot follow a portfolio (re-entry at the next rebalance, a resize that
keeps the levels, several assets in one account), and the rules shared with `run`
(gap, stop-loss before take-profit, trailing from the bar's high/low, the entry bar not
checked, fill="close", COIN-M levels in USD). The random comparisons with vectorbt and
`backtest.run` are in `test_stops_oracle.py`."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from backtest.multi_asset.panel import AssetInfo, panel_from_arrays
from kline_lake.errors import InputError

T0_US = 1_704_067_200_000_000
BTC = AssetInfo(status="TRADING", contract_size=100.0, margin_asset="BTC", base_asset="BTC")


def _panel(bars, assets=("um:AUSDT",), info=None):
    """`bars`: per bar, one (open, high, low, close) per asset."""
    a = np.asarray(bars, dtype=float).reshape(len(bars), len(assets), 4)
    t = T0_US + np.arange(a.shape[0], dtype=np.int64) * 3_600_000_000
    return panel_from_arrays(list(assets), "1h", t, a[..., 0], a[..., 3], high=a[..., 1],
                             low=a[..., 2], info=info)


def _rows(n, m, rows):
    """Weights NaN (leave as is) except the rows given: {bar: [w per asset]}."""
    w = np.full((n, m), np.nan)
    for t, value in rows.items():
        w[t] = value
    return lambda panel: w


def _orders(res):
    o = res.orders
    return list(zip(o["asset"], o["side"], o["kind"], strict=True)), o["price"].to_numpy(), \
        o["qty"].to_numpy()


FLAT = (100, 100, 100, 100)


def test_gap_exit_then_flat_until_the_next_rebalance_re_enters_with_new_levels():
    # long 10 at 100 (sl 98); the entry bar's low 97 is not checked; bar 2 opens at 97,
    # beyond the stop: exit at the open (a gap); flat on bar 3 (weights NaN); row 3
    # re-enters at bar 4's open 100 with 970 / 100 = 9.7, new stop 98; bar 5 low 97.9
    bars = [FLAT, (100, 101, 97, 100), (97, 99, 96, 98), (99, 100, 98, 99),
            (100, 101, 99, 100), (99, 99.5, 97.9, 98.5)]
    res = backtest.portfolio(_rows(6, 1, {0: 1.0, 3: 1.0}), panel=_panel(bars), cash=1000.0,
                             fee=0.0, funding=False, sl_stop=0.02)
    np.testing.assert_allclose(res.equity_curve, [1000, 1000, 970, 970, 970, 950.6],
                               rtol=1e-12)
    kinds, price, qty = _orders(res)
    assert [k[2] for k in kinds] == ["rebalance", "sl", "rebalance", "sl"]
    np.testing.assert_allclose(price, [100, 97, 100, 98], rtol=1e-12)
    np.testing.assert_allclose(qty, [10, 10, 9.7, 9.7], rtol=1e-12)
    assert res.orders["time"].dt.hour().to_list() == [1, 2, 4, 5]
    assert res.positions[:, 0].tolist() == [0, 10, 0, 0, 9.7, 0]
    assert res.metrics["n_sl_exits"] == 2 and res.metrics["n_tp_exits"] == 0
    assert res.assets["um:AUSDT"]["n_sl_exits"] == 2
    assert res.config["sl_stop"] == 0.02 and res.config["tp_stop"] is None


def test_rebalancing_every_bar_re_enters_right_after_a_stop():
    # the same bars, weight 1 on every bar: the stop at bar 2 (97) is followed by the
    # rebalance of bar 2 filling at bar 3's open 99 (970 / 99 units)
    bars = [FLAT, (100, 101, 97, 100), (97, 99, 96, 98), (99, 100, 98, 99)]
    res = backtest.portfolio(lambda p: np.ones((4, 1)), panel=_panel(bars), cash=1000.0,
                             fee=0.0, funding=False, sl_stop=0.02)
    kinds, price, qty = _orders(res)
    assert [k[2] for k in kinds] == ["rebalance", "sl", "rebalance"]
    np.testing.assert_allclose(price, [100, 97, 99], rtol=1e-12)
    np.testing.assert_allclose(qty[2], 970 / 99, rtol=1e-12)


def test_two_assets_sl_before_tp_in_one_bar_and_a_short_take_profit_with_costs():
    # cash 10,000, fee 0.1 %, slippage 10 bps; row 0: A +0.5, B -0.5 at bar 1's open 100:
    # B sells 50 at 99.9 (first: sells before buys), A buys 50 at 100.1. Levels (sl 2 %,
    # tp 5 % of the fills): A 98.098 / 105.105, B 101.898 / 94.905.
    # bar 2: A's range 97..106 reaches both: the stop-loss, sold at 98.098 x 0.999;
    # bar 3: B's low 94 reaches its take-profit: bought back at 94.905 x 1.001.
    bars = [[FLAT, FLAT], [FLAT, FLAT], [(100, 106, 97, 101), (100, 101, 99, 100)],
            [(101, 101, 101, 101), (100, 100.5, 94, 95)]]
    res = backtest.portfolio(_rows(4, 2, {0: [0.5, -0.5]}),
                             panel=_panel(bars, ("um:AUSDT", "um:BUSDT")), cash=10_000.0,
                             fee=0.001, slippage_bps=10.0, funding=False, sl_stop=0.02,
                             tp_stop=0.05)
    kinds, price, qty = _orders(res)
    assert kinds == [("um:BUSDT", -1, "rebalance"), ("um:AUSDT", 1, "rebalance"),
                     ("um:AUSDT", -1, "sl"), ("um:BUSDT", 1, "tp")]
    a_exit, b_exit = 98.098 * 0.999, 94.905 * 1.001
    np.testing.assert_allclose(price, [99.9, 100.1, a_exit, b_exit], rtol=1e-12)
    cash = 10_000 + 50 * 99.9 * 0.999 - 50 * 100.1 * 1.001  # 9,980 after both entries
    cash += 50 * a_exit * 0.999
    np.testing.assert_allclose(res.equity_curve[2], cash - 50 * 100, rtol=1e-12)
    cash -= 50 * b_exit * 1.001
    np.testing.assert_allclose(res.equity_curve[3], cash, rtol=1e-12)
    np.testing.assert_allclose(res.orders["fee"][2], 50 * a_exit * 0.001, rtol=1e-12)
    m = res.metrics
    assert (m["n_sl_exits"], m["n_tp_exits"], m["n_trail_exits"]) == (1, 1, 0)
    assert res.assets["um:BUSDT"]["n_tp_exits"] == 1


@pytest.mark.parametrize(("weight", "bars", "exit_px"), [
    # long at 100, sl 10 %: bar 2 high 120 (low 101) moves the stop to 108 after its
    # check; bar 3 opens 115, low 107: exit at 108
    (1.0, [FLAT, FLAT, (101, 120, 101, 119), (115, 116, 107, 110)], 108.0),
    # short at 100: bar 2 low 80 moves the stop to 88; bar 3 opens 85, high 89: exit 88
    (-1.0, [FLAT, FLAT, (99, 99, 80, 81), (85, 89, 84, 86)], 88.0),
])
def test_trailing_stop_follows_the_bar_high_or_low_after_the_check(weight, bars, exit_px):
    res = backtest.portfolio(_rows(4, 1, {0: weight}), panel=_panel(bars), cash=1000.0,
                             fee=0.0, funding=False, sl_stop=0.1, sl_trail=True)
    kinds, price, _ = _orders(res)
    assert [k[2] for k in kinds] == ["rebalance", "trail"]
    np.testing.assert_allclose(price[1], exit_px, rtol=1e-12)
    assert res.orders["time"].dt.hour()[1] == 3
    assert res.metrics["n_trail_exits"] == 1 and res.metrics["n_sl_exits"] == 0


def test_a_same_side_resize_keeps_the_levels_of_the_opening_fill():
    # long at 100 (w 0.5, sl 98); row 2 raises it to w 0.8 at bar 3's open 110: the stop
    # stays at 98 (re-anchored at 110 it would be 107.8, and bar 4, opening at 105, would
    # exit); bar 5's low 97.5 exits the whole position at 98
    bars = [FLAT, FLAT, (105, 111, 104, 110), (110, 112, 108, 111), (105, 106, 99, 100),
            (99, 100, 97.5, 98)]
    res = backtest.portfolio(_rows(6, 1, {0: 0.5, 2: 0.8}), panel=_panel(bars),
                             cash=1000.0, fee=0.0, funding=False, sl_stop=0.02)
    kinds, price, qty = _orders(res)
    assert [k[2] for k in kinds] == ["rebalance", "rebalance", "sl"]
    assert res.orders["time"].dt.hour().to_list() == [1, 3, 5]
    value = 1000 + 5 * (110 - 100)  # the account at bar 3's open
    np.testing.assert_allclose(qty, [5, 0.8 * value / 110 - 5, 0.8 * value / 110],
                               rtol=1e-12)
    np.testing.assert_allclose(price[2], 98.0, rtol=1e-12)
    assert res.positions[-1, 0] == 0.0


def test_fill_at_close_checks_from_the_next_bar():
    # w 1 fills at bar 0's close 100 (sl 98, tp 103); bar 1: high 103.5 -> tp at 103
    bars = [FLAT, (100.5, 103.5, 99, 101), (101, 101, 90, 95)]
    res = backtest.portfolio(_rows(3, 1, {0: 1.0}), panel=_panel(bars), cash=1000.0,
                             fee=0.0, funding=False, fill="close", sl_stop=0.02,
                             tp_stop=0.03)
    kinds, price, _ = _orders(res)
    assert [k[2] for k in kinds] == ["rebalance", "tp"]
    assert res.orders["time"].dt.hour().to_list() == [0, 1]
    np.testing.assert_allclose(price[1], 103.0, rtol=1e-12)


def test_coin_m_levels_are_usd_prices_and_pnl_is_in_coin():
    # 1 BTC, w 0.5 at 40,000: 200 contracts of 100 USD; sl 2 % -> 39,200 USD, reached by
    # bar 2's low 39,000 (open 39,900): sold at 39,200 x (1 - 5 bps); fee 0.05 % of the
    # coin notional; PnL 200 x 100 x (1/40,000 - 1/exit) BTC
    bars = [(40_000,) * 4, (40_000, 40_100, 39_950, 40_000), (39_900, 40_000, 39_000, 39_500)]
    res = backtest.portfolio(_rows(3, 1, {0: 0.5}),
                             panel=_panel(bars, ("cm:BTCUSD_PERP",), (BTC,)), cash=1.0,
                             fee=0.0005, slippage_bps=5.0, funding=False, sl_stop=0.02)
    kinds, price, qty = _orders(res)
    assert kinds == [("cm:BTCUSD_PERP", 1, "rebalance"), ("cm:BTCUSD_PERP", -1, "sl")]
    entry = 40_000 * 1.0005
    exit_px = entry * 0.98 * (1 - 0.0005)
    np.testing.assert_allclose(price, [entry, exit_px], rtol=1e-12)
    assert qty.tolist() == [200.0, 200.0]
    usd = 200 * 100
    equity = 1.0 - 0.0005 * usd / entry + usd * (1 / entry - 1 / exit_px) \
        - 0.0005 * usd / exit_px
    np.testing.assert_allclose(res.equity_curve[-1], equity, rtol=1e-12)
    assert res.metrics["n_sl_exits"] == 1


def test_coin_m_short_take_profit_and_trailing_in_usd():
    # short 200 contracts at 40,000: tp 5 % -> 38,000 USD; a trailing sl 3 % moves with
    # the real low (39,000 on bar 2 -> 40,170); bar 3 high 40,500 reaches it first
    bars = [(40_000,) * 4, (40_000,) * 4, (39_900, 39_950, 39_000, 39_200),
            (39_500, 40_500, 39_400, 40_400)]
    res = backtest.portfolio(_rows(4, 1, {0: -0.5}),
                             panel=_panel(bars, ("cm:BTCUSD_PERP",), (BTC,)), cash=1.0,
                             fee=0.0, funding=False, sl_stop=0.03, tp_stop=0.05,
                             sl_trail=True)
    kinds, price, _ = _orders(res)
    assert kinds == [("cm:BTCUSD_PERP", -1, "rebalance"), ("cm:BTCUSD_PERP", 1, "trail")]
    np.testing.assert_allclose(price[1], 39_000 * 1.03, rtol=1e-12)
    res_tp = backtest.portfolio(_rows(4, 1, {0: -0.5}),
                                panel=_panel([*bars[:2], (39_900, 39_950, 37_500, 37_800),
                                              bars[3]], ("cm:BTCUSD_PERP",), (BTC,)),
                                cash=1.0, fee=0.0, funding=False, sl_stop=0.03,
                                tp_stop=0.05)
    assert res_tp.orders["kind"].to_list() == ["rebalance", "tp"]
    np.testing.assert_allclose(res_tp.orders["price"][1], 38_000.0, rtol=1e-12)


def test_stops_never_reached_leave_the_run_as_without_stops():
    rng = np.random.default_rng(4)
    n, m = 300, 4
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    t = T0_US + np.arange(n, dtype=np.int64) * 3_600_000_000
    panel = panel_from_arrays([f"um:A{k}USDT" for k in range(m)], "1h", t, open_, close)
    w = rng.uniform(-0.25, 0.25, (n, m))
    kw = dict(panel=panel, fee=0.0005, slippage_bps=2.0, funding=False, rebalance="8h")
    plain = backtest.portfolio(lambda p: w, **kw)
    far = backtest.portfolio(lambda p: w, **kw, sl_stop=0.9, tp_stop=50.0, sl_trail=True)
    assert np.array_equal(plain.equity_curve, far.equity_curve)
    assert plain.orders.equals(far.orders)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(sl_stop=0.0), "sl stop must be in (0, 1)"),
    (dict(sl_stop=1.0), "sl stop must be in (0, 1)"),
    (dict(sl_stop=-0.01), "sl stop must be in (0, 1)"),
    (dict(tp_stop=0.0), "tp stop must be positive"),
    (dict(sl_trail=True), "sl trail needs an sl stop"),
    (dict(sl_stop=[0.01, 0.02]), "takes one value here"),
])
def test_bad_stops_raise_input_error(kwargs, message):
    panel = _panel([FLAT, FLAT])
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        backtest.portfolio(_rows(2, 1, {0: 1.0}), panel=panel, funding=False, **kwargs)
