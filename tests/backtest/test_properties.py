"""Property tests (Hypothesis) of the simulation kernel."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import backtest
from backtest.data import Bars, FundingEvents
from backtest.engine import load_market_data, make_config, simulate
from backtest.filters import ExchangeFilters
from tests.support.backtest import make_bars

SETTINGS = settings(max_examples=40, deadline=None)

signals = st.lists(st.sampled_from([-1, 0, 0, 1]), min_size=5, max_size=80)


@SETTINGS
@given(sig=signals, seed=st.integers(0, 10_000), fee=st.floats(0, 0.01),
       slip=st.floats(0, 50), direction=st.sampled_from(["long", "short", "both"]),
       fill=st.sampled_from(["next_open", "close"]), leverage=st.floats(1, 5),
       size=st.floats(0.1, 1.0))
def test_equity_is_cash_plus_position_value_every_bar(sig, seed, fee, slip, direction, fill,
                                                      leverage, size):
    bars = make_bars(len(sig), seed=seed)
    rng = np.random.default_rng(seed)
    times = bars.open_time_us[::3] + 5_000
    ev = FundingEvents(times, rng.normal(0, 1e-3, times.shape[0]),
                       np.full(times.shape[0], np.nan))
    cfg = make_config(fee=fee, slippage_bps=slip, direction=direction, fill=fill,
                      leverage=leverage, size=size)
    data = load_market_data(None, "um", "X", "1h", None, None, bars=bars, funding_events=ev)
    out = simulate(data, np.array(sig, dtype=np.int8), cfg)
    recon = out["cash"] + out["position"] * bars.close
    np.testing.assert_allclose(out["equity"], recon, rtol=1e-9, atol=1e-9)
    # fees only grow; the trade PnLs add up to the change in equity
    assert np.all(np.diff(out["cum_fees"]) >= 0)
    total_pnl = out["trades"]["pnl"].sum()
    np.testing.assert_allclose(total_pnl, out["equity"][-1] - 10_000.0, rtol=1e-9, atol=1e-6)


@SETTINGS
@given(sig=signals, price=st.floats(0.01, 1e6),
       direction=st.sampled_from(["long", "short", "both"]),
       fill=st.sampled_from(["next_open", "close"]), leverage=st.floats(1, 20))
def test_zero_fee_round_trips_at_one_price_conserve_value(sig, price, direction, fill,
                                                          leverage):
    n = len(sig)
    flat = np.full(n, price)
    bars = Bars("um", "X", "1h", np.arange(n, dtype=np.int64) * 3_600_000_000, flat, flat,
                flat, flat, np.ones(n))
    res = backtest.run(lambda b: np.array(sig, dtype=np.int8), bars=bars, fee=0.0,
                       slippage_bps=0.0, funding=False, direction=direction, fill=fill,
                       leverage=leverage, cash=1234.5)
    np.testing.assert_allclose(res.equity_curve, 1234.5, rtol=1e-12)
    closed = res.trades.filter(res.trades["status"] == "closed")
    assert np.all(np.abs(closed["pnl"].to_numpy()) <= 1e-9 * 1234.5)


@settings(max_examples=10, deadline=None)
@given(sig=signals, seed=st.integers(0, 1000))
def test_pure_python_mode_matches_jit(sig, seed):
    bars = make_bars(len(sig), seed=seed)
    kw = dict(bars=bars, fee=0.001, slippage_bps=3, direction="both", funding=False)
    a = backtest.run(lambda b: np.array(sig, dtype=np.int8), jit=True, **kw)
    b = backtest.run(lambda b: np.array(sig, dtype=np.int8), jit=False, **kw)
    np.testing.assert_array_equal(a.equity_curve, b.equity_curve)
    assert list(a.metrics) == list(b.metrics)
    for name, value in a.metrics.items():
        other = b.metrics[name]
        assert value == other or (value != value and other != other), name  # NaN == NaN


@SETTINGS
@given(sig=signals, seed=st.integers(0, 10_000), fee=st.floats(0, 0.01),
       direction=st.sampled_from(["long", "short", "both"]), leverage=st.floats(1, 25),
       mmr=st.sampled_from([None, 0.005, 0.02]), step=st.sampled_from([0.001, 0.01, 1.0]),
       min_notional=st.floats(0, 5000), cash=st.floats(50, 20_000))
def test_filtered_orders_sit_on_the_grid_and_nothing_trades_after_ruin(
        sig, seed, fee, direction, leverage, mmr, step, min_notional, cash):
    bars = make_bars(len(sig), seed=seed, vol=0.05)
    filters = ExchangeFilters(step, step, min_notional)
    res = backtest.run(lambda b: np.array(sig, dtype=np.int8), bars=bars, fee=fee,
                       direction=direction, leverage=leverage, maintenance_margin_rate=mmr,
                       funding=False, cash=cash, exchange_filters=filters)
    qty = res.orders["qty"].to_numpy()
    np.testing.assert_allclose(qty / step, np.round(qty / step), rtol=0, atol=1e-6)
    assert np.all(qty >= step)
    entry_notional = res.trades["qty"].to_numpy() * res.trades["entry_price"].to_numpy()
    assert np.all(entry_notional >= min_notional * (1 - 1e-12))
    eq = res.equity_curve
    recon = res.equity["cash"].to_numpy() + res.equity["position"].to_numpy() * bars.close
    np.testing.assert_allclose(eq, recon, rtol=1e-9, atol=1e-9 * cash)
    if res.metrics["ruined"]:
        k = res.metrics["ruin_idx"]
        assert res.orders.height == 0 or res.orders["idx"].max() <= k
        np.testing.assert_array_equal(eq[k:], eq[k])  # flat and frozen after the ruin
        assert np.isnan(res.metrics["sharpe"])
