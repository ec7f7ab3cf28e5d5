"""Hand-computed fills: fees, slippage and funding over a few bars, from a real lake."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from backtest.data import Bars, FundingEvents
from tests.support.backtest import (
    T0_MS,
    iso,
    make_bars,
    write_funding,
    write_klines,
    write_mark_klines,
)

H_US = 3_600_000_000
T0_US = T0_MS * 1000


def _five_bars() -> Bars:
    open_ = np.array([100.0, 110.0, 120.0, 130.0, 125.0])
    close = np.array([105.0, 115.0, 125.0, 128.0, 126.0])
    t = T0_US + np.arange(5) * H_US
    return Bars("um", "BTCUSDT", "1h", t, open_, np.maximum(open_, close) + 1,
                np.minimum(open_, close) - 1, close, np.ones(5))


def _signal_long_bar0_exit_bar2(b):
    return np.array([1, 0, -1, 0, 0], dtype=np.int8)


def test_fees_slippage_and_funding_by_hand(tmp_path):
    bars = _five_bars()
    write_klines(tmp_path, bars)
    # funding at every bar open; only bars 2 and 3 may be charged (held across them)
    times = T0_US + np.arange(5) * H_US
    times[2] += 1_000  # 1 ms of exchange jitter: still bar 2's open event
    write_funding(tmp_path, "um", "BTCUSDT", times, [0.5, 0.01, 0.0001, -0.0002, 0.3],
                  [np.nan, np.nan, 118.0, np.nan, np.nan])
    write_mark_klines(tmp_path, "um", "BTCUSDT", "1h", [times[0], T0_US + 3 * H_US], [99.0, 131.0])
    res = backtest.run(_signal_long_bar0_exit_bar2, lake=tmp_path, market="um",
                       symbol="BTCUSDT", interval="1h", start=iso(T0_US),
                       end=iso(T0_US + 5 * H_US), cash=1000.0, fee=0.001, slippage_bps=10)

    entry_px = 110.0 * 1.001  # bar 1 open, slipped up
    qty = (1000.0 / 1.001) / entry_px  # all-in: notional + fee = equity
    entry_fee = 1000.0 - 1000.0 / 1.001
    fund_bar2 = qty * 118.0 * 0.0001  # record's mark price
    fund_bar3 = qty * 131.0 * -0.0002  # no record mark: mark kline open at T; exit at T pays
    exit_px = 130.0 * 0.999  # bar 3 open, slipped down
    exit_fee = qty * exit_px * 0.001
    final = qty * exit_px - exit_fee - fund_bar2 - fund_bar3

    eq = res.equity_curve
    assert eq[0] == pytest.approx(1000.0, rel=1e-12)
    assert eq[1] == pytest.approx(qty * 115.0, rel=1e-12)
    assert eq[2] == pytest.approx(qty * 125.0 - fund_bar2, rel=1e-12)
    assert eq[3] == pytest.approx(final, rel=1e-12)
    assert eq[4] == pytest.approx(final, rel=1e-12)
    m = res.metrics
    assert m["fees_paid"] == pytest.approx(entry_fee + exit_fee, rel=1e-12)
    assert m["funding_paid"] == pytest.approx(fund_bar2 + fund_bar3, rel=1e-12)
    assert m["final_equity"] == pytest.approx(final, rel=1e-12)
    (trade,) = res.trades.iter_rows(named=True)
    assert trade["entry_price"] == pytest.approx(entry_px)
    assert trade["exit_price"] == pytest.approx(exit_px)
    assert trade["funding_paid"] == pytest.approx(fund_bar2 + fund_bar3, rel=1e-12)
    assert trade["pnl"] == pytest.approx(final - 1000.0, rel=1e-12)
    assert trade["status"] == "closed"
    orders = res.orders
    assert orders["side"].to_list() == ["buy", "sell"]
    assert orders["idx"].to_list() == [1, 3]
    assert res.equity["entry"].to_list() == [False, True, False, False, False]
    assert res.equity["exit"].to_list() == [False, False, False, True, False]


def test_funding_falls_back_to_bar_open_without_any_mark():
    bars = _five_bars()
    ev = FundingEvents(np.array([T0_US + 2 * H_US]), np.array([0.001]), np.array([np.nan]))
    res = backtest.run(_signal_long_bar0_exit_bar2, bars=bars, funding_events=ev, cash=1000.0,
                       fee=0.0)
    qty = 1000.0 / 110.0
    assert res.metrics["funding_paid"] == pytest.approx(qty * 120.0 * 0.001, rel=1e-12)


def test_short_receives_positive_funding_and_fill_at_close():
    bars = _five_bars()
    ev = FundingEvents(np.array([T0_US + 2 * H_US]), np.array([0.001]), np.array([200.0]))

    def sig(b):
        return np.array([-1, 0, 0, 1, 0], dtype=np.int8)

    res = backtest.run(sig, bars=bars, funding_events=ev, cash=1000.0, fee=0.0,
                       direction="short", fill="close")
    qty = 1000.0 / 105.0  # sold short at bar 0's close
    assert res.metrics["funding_paid"] == pytest.approx(-qty * 200.0 * 0.001, rel=1e-12)
    final = 1000.0 + qty * (105.0 - 128.0) + qty * 200.0 * 0.001  # covered at bar 3's close
    assert res.metrics["final_equity"] == pytest.approx(final, rel=1e-12)


def test_one_held_position_funding_identity_is_exact():
    bars = make_bars(24 * 60, seed=3)
    rng = np.random.default_rng(9)
    times = bars.open_time_us[::8] + rng.integers(0, 3, bars.open_time_us[::8].shape[0]) * 1000
    ev = FundingEvents(times, rng.normal(1e-4, 3e-4, times.shape[0]),
                       np.where(rng.random(times.shape[0]) < 0.5, np.nan, 101.0))
    for direction in ("long", "short"):
        kw = dict(bars=bars, fee=0.0004, slippage_bps=2, direction=direction, leverage=3)
        with_f = backtest.run("hold", funding_events=ev, **kw)
        without = backtest.run("hold", funding=False, **kw)
        paid = with_f.metrics["funding_paid"]
        assert paid != 0.0
        assert with_f.metrics["final_equity"] == without.metrics["final_equity"] - paid
        assert with_f.trades["funding_paid"][0] == paid


def test_leveraged_long_is_liquidated_at_the_liquidation_price():
    t = T0_US + np.arange(6) * H_US
    open_ = np.array([100.0, 100.0, 99.0, 97.0, 80.0, 81.0])
    close = np.array([100.0, 99.0, 97.0, 96.0, 81.0, 82.0])
    low = np.array([99.0, 98.0, 96.0, 95.0, 79.0, 80.0])
    bars = Bars("um", "X", "1h", t, open_, np.maximum(open_, close) + 0.5, low, close,
                np.ones(6))
    res = backtest.run("hold", bars=bars, cash=1000.0, fee=0.0, leverage=10,
                       maintenance_margin_rate=0.005)
    qty = 10_000.0 / 100.0  # entry at bar 1's open, 10x
    margin = qty * 100.0 / 10
    liq = (qty * 100.0 - margin) / (qty * (1 - 0.005))  # ~90.45
    (trade,) = res.trades.iter_rows(named=True)
    assert trade["liquidated"] and trade["status"] == "liquidated"
    assert trade["exit_idx"] == 4  # bar 4's low (79) is the first below ~90.45
    assert trade["exit_price"] == pytest.approx(liq, rel=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(1000.0 + qty * (liq - 100.0), rel=1e-12)
    assert res.orders["kind"].to_list() == ["signal", "liquidation"]
    assert any("liquidated" in w for w in res.warnings)
    assert not res.metrics["ruined"]  # 45.2 of margin is left: still tradable
    # without a maintenance margin rate there is no liquidation price, but at bar 4's
    # close (81) equity is 1000 + 100 * (81 - 100) = -900: the account is ruined, the
    # position closed at that close and trading stops
    ruined = backtest.run("hold", bars=bars, cash=1000.0, fee=0.0, leverage=10)
    (trade,) = ruined.trades.iter_rows(named=True)
    assert trade["status"] == "liquidated" and trade["exit_idx"] == 4
    assert trade["exit_price"] == 81.0
    assert ruined.metrics["ruined"] and ruined.metrics["ruin_idx"] == 4
    assert ruined.metrics["ruin_time"] == "2024-01-01T04:00:00.000000Z"
    np.testing.assert_allclose(ruined.equity_curve[4:], -900.0, rtol=1e-12)
    assert ruined.equity["position"].to_list()[4:] == [0.0, 0.0]
    assert np.isnan(ruined.metrics["sharpe"])
    assert ruined.metrics["total_return"] == pytest.approx(-1.9, rel=1e-12)


def test_both_direction_reverses_with_two_fills():
    bars = _five_bars()

    def sig(b):
        return np.array([1, -1, 0, 1, 0], dtype=np.int8)

    res = backtest.run(sig, bars=bars, cash=1000.0, fee=0.001, direction="both",
                       funding=False)
    assert res.orders["side"].to_list() == ["buy", "sell", "sell", "buy", "buy"]
    assert res.trades["side"].to_list() == ["long", "short", "long"]
    q1 = (1000.0 / 1.001) / 110.0
    cash1 = q1 * 120.0 * (1 - 0.001)  # long closed at bar 2's open
    q2 = cash1 / (120.0 * 1.001)  # short opened at the same open with what is left
    cash2 = cash1 + q2 * 120.0 * (1 - 0.001)
    cash3 = cash2 - q2 * 125.0 * (1 + 0.001)  # covered at bar 4's open
    q3 = (cash3 / 1.001) / 125.0
    assert res.metrics["final_equity"] == pytest.approx(q3 * 126.0, rel=1e-12)


def test_short_liquidation_and_funding_eats_isolated_margin():
    t = T0_US + np.arange(5) * H_US
    open_ = np.array([100.0, 100.0, 101.0, 103.0, 104.0])
    close = np.array([100.0, 101.0, 103.0, 104.0, 104.0])
    high = np.array([100.5, 101.5, 103.5, 109.0, 105.0])
    bars = Bars("um", "X", "1h", t, open_, high, np.minimum(open_, close) - 0.5, close,
                np.ones(5))
    kw = dict(bars=bars, cash=1000.0, fee=0.0, leverage=20, direction="short",
              maintenance_margin_rate=0.01)
    qty = 20_000.0 / 100.0
    margin = qty * 100.0 / 20
    liq = (qty * 100.0 + margin) / (qty * 1.01)  # ~103.96: bar 3's high (109) reaches it
    res = backtest.run("hold", **kw)
    (trade,) = res.trades.iter_rows(named=True)
    assert trade["side"] == "short" and trade["liquidated"] and trade["exit_idx"] == 3
    assert trade["exit_price"] == pytest.approx(liq, rel=1e-12)
    # a short pays a negative rate: 1 % at bar 2's open shrinks the margin and the
    # liquidation price (~102.97), so bar 2's high (103.5) already reaches it
    ev = FundingEvents(np.array([t[2]]), np.array([-0.01]), np.array([100.0]))
    paid = qty * 100.0 * 0.01
    liq2 = (qty * 100.0 + margin - paid) / (qty * 1.01)
    res2 = backtest.run("hold", funding_events=ev, **kw)
    (trade2,) = res2.trades.iter_rows(named=True)
    assert trade2["exit_idx"] == 2 and trade2["exit_price"] == pytest.approx(liq2, rel=1e-12)
    assert trade2["funding_paid"] == pytest.approx(paid, rel=1e-12)
