"""Built-in weight functions and engine settings on hand-made panels (worked numbers)."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from backtest.multi_asset.engine import rebalance_mask
from backtest.multi_asset.panel import panel_from_arrays
from backtest.multi_asset.strategies import (
    basis,
    equal_weight,
    funding_carry,
    inverse_vol,
    momentum_rank,
)
from kline_lake.errors import InputError

T0_US = 1_704_067_200_000_000


def _panel(close, assets, **kw):
    close = np.asarray(close, float)
    t = T0_US + np.arange(close.shape[0], dtype=np.int64) * 3_600_000_000
    return panel_from_arrays(assets, "1h", t, close, close, **kw)


def test_momentum_rank_longs_the_best_shorts_the_worst_perp():
    # returns over 1 bar at bar 1: A +10 %, B -20 %, C +5 %, S (spot) +30 %
    close = [[100, 100, 100, 100], [110, 80, 105, 130]]
    p = _panel(close, ["um:AUSDT", "um:BUSDT", "um:CUSDT", "spot:SUSDT"])
    w = momentum_rank(p, lookback=1, k=1)
    assert np.isnan(w[0]).all()  # no return yet
    assert w[1].tolist() == [0.0, -0.5, 0.0, 0.5]  # long spot S (best), short perp B


def test_funding_carry_shorts_the_highest_trailing_funding():
    rates = np.array([[1e-4, -2e-4, 5e-4], [1e-4, -1e-4, 1e-4]])
    p = _panel(np.full((2, 3), 10.0), ["um:AUSDT", "um:BUSDT", "um:CUSDT"], funding_rate=rates)
    w = funding_carry(p, lookback=2, k=1)
    assert np.isnan(w[0]).all()
    assert w[1].tolist() == [0.0, 0.5, -0.5]  # C 6e-4 highest, B -3e-4 lowest


def test_basis_half_long_spot_half_short_perp_per_pair():
    p = _panel(np.full((3, 3), 10.0), ["spot:BTCUSDT", "um:BTCUSDT", "um:ETHUSDT"])
    assert basis(p).tolist() == [[0.5, -0.5, 0.0]] * 3
    with pytest.raises(InputError, match="basis needs"):
        basis(_panel(np.full((3, 1), 10.0), ["um:ETHUSDT"]))


def test_inverse_vol_and_equal_weight():
    # A moves +-1 %, B +-2 %: weights 2/3 and 1/3 (1/vol normalised)
    a = 100 * np.cumprod([1, 1.01, 0.99, 1.01, 0.99])
    b = 100 * np.cumprod([1, 1.02, 0.98, 1.02, 0.98])
    p = _panel(np.c_[a, b], ["um:AUSDT", "um:BUSDT"])
    w = inverse_vol(p, lookback=4)
    vol = [np.std(np.diff(np.log(x)), ddof=1) for x in (a, b)]
    inv = 1 / np.array(vol)
    np.testing.assert_allclose(w[4], inv / inv.sum(), rtol=1e-12)
    assert np.isnan(w[:4]).all()
    tradable = np.array([[True, False], [True, True]])
    q = _panel(np.full((2, 2), 5.0), ["um:AUSDT", "um:BUSDT"], tradable=tradable)
    assert equal_weight(q).tolist() == [[1.0, 0.0], [0.5, 0.5]]


def test_rebalance_grid_and_threshold():
    n = 48
    p = _panel(np.full((n, 2), 100.0), ["um:AUSDT", "um:BUSDT"])
    mask = rebalance_mask(p, "8h")
    assert np.flatnonzero(mask).tolist() == [7, 15, 23, 31, 39, 47]  # bars closing at 8h
    # B's weight rises 0.015 per rebalance (A stays 0.5): with a 0.02 threshold B trades
    # at the first fill (bar 8), skips bar 16 (drift 0.015), trades at 24 (drift 0.03),
    # skips 32, trades at 40; the last rebalance bar (47) has no next open
    w = np.tile([0.5, 0.4], (n, 1)) + np.arange(n)[:, None] * np.array([0.0, 0.015 / 8])
    res = backtest.portfolio(lambda p: w, panel=p, rebalance="8h", threshold=0.02, fee=0.0)
    idx = {a: (res.orders.filter(res.orders["asset"] == a)["time"].dt.epoch("us").to_numpy()
               - T0_US) // 3_600_000_000 for a in res.asset_names}
    assert idx["um:AUSDT"].tolist() == [8]
    assert idx["um:BUSDT"].tolist() == [8, 24, 40]
    np.testing.assert_allclose(res.weights[41, 1], 0.4 + 39 * 0.015 / 8, rtol=1e-12)
    res0 = backtest.portfolio(lambda p: w, panel=p, rebalance="8h", fee=0.0)
    assert res0.orders.filter(res0.orders["asset"] == "um:BUSDT").height == 5


def test_leverage_two_long_short_worked_numbers():
    # equity 10,000; long A 1.0, short B 1.0 at price 100 (no fees): +100 A, -100 B;
    # A to 110, B to 95: PnL 100 x 10 + 100 x 5 = 1,500
    close = [[100, 100], [100, 100], [110, 95]]
    p = _panel(close, ["um:AUSDT", "um:BUSDT"])

    def w(panel):
        out = np.full((3, 2), np.nan)
        out[0] = [1.0, -1.0]
        return out

    res = backtest.portfolio(w, panel=p, leverage=2.0, fee=0.0)
    assert res.positions[-1].tolist() == [100.0, -100.0]
    assert res.equity_curve.tolist() == [10_000.0, 10_000.0, 11_500.0]
    assert res.equity["gross_exposure"][-1] == 110 * 100 + 95 * 100
    with pytest.raises(InputError, match="leverage exceeded"):
        backtest.portfolio(w, panel=p, leverage=1.5)


def test_portfolio_sweep_rows_equal_single_runs():
    from backtest.multi_asset.sweep import portfolio_sweep

    rng = np.random.default_rng(9)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (300, 4)), axis=0))
    p = _panel(close, ["um:AUSDT", "um:BUSDT", "um:CUSDT", "um:DUSDT"])
    grid = {"lookback": [6, 12, 24], "k": [1, 2]}
    frame = portfolio_sweep("momentum_rank", grid, panel=p, rebalance="8h", fee=0.0004)
    assert frame.height == 6 and frame["lookback"].to_list() == [6, 6, 12, 12, 24, 24]
    for row in frame.iter_rows(named=True):
        one = backtest.portfolio("momentum_rank", {"lookback": row["lookback"], "k": row["k"]},
                                 panel=p, rebalance="8h", fee=0.0004)
        assert row["final_equity"] == one.metrics["final_equity"]
        assert row["turnover"] == one.metrics["turnover"]
    assert frame["final_equity"].n_unique() > 1


def _rank_reference(score, tradable, long_ok, short_ok, k, longs_high):
    """The ranking rule spelled out with a stable argsort (ties: lower column first)."""
    n, m = score.shape
    ok = tradable & np.isfinite(score)
    key = np.where(ok, -score if longs_high else score, 0.0)
    side = 0.5 / k if short_ok.any() else 1.0 / k
    w = np.zeros((n, m))
    for t in range(n):
        longs = [a for a in np.argsort(np.where(ok[t] & long_ok, key[t], np.inf),
                                       kind="stable") if ok[t, a] and long_ok[a]][:k]
        shorts = [a for a in np.argsort(np.where(ok[t] & short_ok, -key[t], np.inf),
                                        kind="stable")
                  if ok[t, a] and short_ok[a] and a not in longs][:k]
        if len(longs) < k or (short_ok.any() and len(shorts) < k):
            w[t] = np.nan
            continue
        w[t, longs] = side
        w[t, shorts] = -side
    return w


@pytest.mark.parametrize("longs_high", [True, False])
def test_rank_weights_equal_a_stable_argsort_reference(longs_high):
    from backtest.multi_asset.strategies import _rank_weights

    rng = np.random.default_rng(3)
    score = rng.integers(-3, 4, (300, 9)).astype(float)  # many ties
    score[rng.random(score.shape) < 0.1] = np.nan
    score[rng.random(score.shape) < 0.05] *= -0.0
    tradable = rng.random(score.shape) < 0.8
    perp = np.array([True, True, False, True, True, False, True, True, True])
    unranked = 0
    for long_ok, short_ok in ((np.ones(9, bool), perp), (perp, perp),
                              (np.ones(9, bool), np.zeros(9, bool))):
        for k in (1, 2, 3):
            got = _rank_weights(score, tradable, long_ok, short_ok, k, longs_high)
            ref = _rank_reference(score, tradable, long_ok, short_ok, k, longs_high)
            np.testing.assert_array_equal(got, ref)
            assert np.isfinite(got).all(axis=1).sum() > 50  # ranked rows exist
            unranked += int(np.isnan(got).all(axis=1).sum())
    assert unranked > 0  # and rows with too few candidates
