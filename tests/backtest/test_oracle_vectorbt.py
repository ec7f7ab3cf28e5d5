"""Oracle: with funding off our engine matches vectorbt.Portfolio.from_signals.

vectorbt gets the same signals shifted by one bar and ``price=open`` (our default
``fill="next_open"``), the same fee rate and slippage; equity and trades must agree to
1e-9 relative. Exchange filters are off (vectorbt sizes on a continuous grid).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

import backtest
from backtest.indicators import sma_nb
from tests.support.backtest import iso, make_bars

REL = 1e-9


def _vbt(bars, long_sig, short_sig, direction, fee, slip_bps, fill="next_open", size=1.0):
    """vectorbt with our conventions; long_sig/short_sig are bullish/bearish bools."""
    idx = pd.date_range("2024-01-01", periods=len(bars), freq="h")
    if fill == "next_open":
        long_sig = np.r_[False, long_sig[:-1]]
        short_sig = np.r_[False, short_sig[:-1]]
        price = bars.open
    else:
        price = bars.close
    entries, exits = (long_sig, short_sig) if direction == "long" else (short_sig, long_sig)
    return vbt.Portfolio.from_signals(
        pd.Series(bars.close, idx), entries=pd.Series(entries, idx),
        exits=pd.Series(exits, idx), price=pd.Series(price, idx), fees=fee,
        slippage=slip_bps / 1e4, init_cash=10_000.0, size=size, size_type="percent",
        direction="longonly" if direction == "long" else "shortonly", freq="1h")


def _assert_match(ours, pf):
    value = pf.value().to_numpy()
    np.testing.assert_allclose(ours.equity_curve, value, rtol=REL, atol=0)
    vt = pf.trades.records_readable
    tr = ours.trades
    assert tr.height == len(vt)
    assert tr.height > 5
    np.testing.assert_allclose(tr["qty"].to_numpy(), vt["Size"].to_numpy(), rtol=REL)
    np.testing.assert_allclose(tr["entry_price"].to_numpy(), vt["Avg Entry Price"].to_numpy(),
                               rtol=REL)
    np.testing.assert_allclose(tr["exit_price"].to_numpy(), vt["Avg Exit Price"].to_numpy(),
                               rtol=REL)
    np.testing.assert_allclose(tr["entry_fee"].to_numpy(), vt["Entry Fees"].to_numpy(), rtol=REL)
    np.testing.assert_allclose(tr["exit_fee"].to_numpy(), vt["Exit Fees"].to_numpy(),
                               rtol=REL, atol=1e-12)
    np.testing.assert_allclose(tr["pnl"].to_numpy(), vt["PnL"].to_numpy(), rtol=REL)
    assert list(tr["status"].str.replace("closed", "Closed").str.replace("open", "Open")) == \
        list(vt["Status"])
    index = pf.wrapper.index
    assert tr["entry_idx"].to_list() == list(index.get_indexer(vt["Entry Timestamp"]))
    assert tr["exit_idx"].to_list() == list(index.get_indexer(vt["Exit Timestamp"]))
    assert ours.metrics["n_trades"] == len(vt)
    assert ours.metrics["max_drawdown"] == pytest.approx(-pf.max_drawdown(), rel=REL)
    assert ours.metrics["total_return"] == pytest.approx(pf.total_return(), rel=REL)


@pytest.mark.parametrize("direction", ["long", "short"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_signals_match_vectorbt(direction, seed):
    bars = make_bars(1500, seed=seed)
    rng = np.random.default_rng(100 + seed)
    raw = rng.choice(np.array([-1, 0, 0, 0, 0, 0, 1], dtype=np.int8), len(bars))

    def random_strategy(b):
        return raw

    fee = [0.0, 0.0005, 0.001][seed - 1]
    slip = [0.0, 1.0, 5.0][seed - 1]
    ours = backtest.run(random_strategy, bars=bars, direction=direction, fee=fee,
                        slippage_bps=slip, funding=False, exchange_filters=False)
    _assert_match(ours, _vbt(bars, raw == 1, raw == -1, direction, fee, slip))


def test_fill_at_close_and_partial_size_match_vectorbt():
    bars = make_bars(1200, seed=11)
    raw = np.random.default_rng(5).choice(np.array([-1, 0, 0, 0, 1], dtype=np.int8), len(bars))
    ours = backtest.run(lambda b: raw, bars=bars, fee=0.0007, slippage_bps=3, fill="close",
                        size=0.5, funding=False, exchange_filters=False)
    _assert_match(ours, _vbt(bars, raw == 1, raw == -1, "long", 0.0007, 3, "close", 0.5))


def test_sma_cross_over_lake_matches_vectorbt(lake):
    root, bars = lake
    start, end = iso(bars.open_time_us[0]), iso(bars.open_time_us[-1] + 3_600_000_000)
    ours = backtest.run("sma_cross", {"fast": 12, "slow": 48}, lake=root, market="um",
                        symbol="BTCUSDT", interval="1h", start=start, end=end, fee=0.0005,
                        slippage_bps=2, funding=False, exchange_filters=False)
    assert ours.config["n_bars"] == len(bars)
    close = pd.Series(bars.close)
    fast = vbt.MA.run(close, 12).ma.to_numpy()
    slow = vbt.MA.run(close, 48).ma.to_numpy()
    np.testing.assert_array_equal(fast, sma_nb(bars.close, 12))  # same indicator, bit for bit
    f, s = pd.Series(fast), pd.Series(slow)
    up = f.vbt.crossed_above(s).to_numpy()
    down = f.vbt.crossed_below(s).to_numpy()
    sig = ours.equity["signal"].to_numpy()
    np.testing.assert_array_equal(sig == 1, up)
    np.testing.assert_array_equal(sig == -1, down)
    _assert_match(ours, _vbt(bars, up, down, "long", 0.0005, 2))


def test_sweep_rows_match_vectorbt_columns():
    bars = make_bars(2000, seed=4)
    res = backtest.sweep("sma_cross", {"fast": [5, 10, 15], "slow": [30, 60]}, bars=bars,
                         fee=0.001, slippage_bps=1, funding=False, exchange_filters=False)
    close = pd.Series(bars.close)
    for row in res.to_frame().iter_rows(named=True):
        f = vbt.MA.run(close, row["fast"]).ma
        s = vbt.MA.run(close, row["slow"]).ma
        pf = _vbt(bars, f.vbt.crossed_above(s).to_numpy(), f.vbt.crossed_below(s).to_numpy(),
                  "long", 0.001, 1)
        assert row["final_equity"] == pytest.approx(pf.final_value(), rel=REL)
        assert row["n_trades"] == pf.trades.count()
        assert row["max_drawdown"] == pytest.approx(-pf.max_drawdown(), rel=REL)
