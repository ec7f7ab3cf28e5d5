"""`portfolio_sweep` runs the whole grid in one batched kernel call, and every row equals
the single `backtest.portfolio` run of its combination, value for value (compared with
``==``, NaN with NaN): spot and perpetuals, funding at the open and inside bars, a
listing mid-range, a delisting, missing bars, both fill modes, leverage, threshold,
per-market fees, COIN-M contracts and a user function."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from backtest.multi_asset import engine, sweep
from backtest.multi_asset.panel import AssetInfo, panel_from_arrays
from backtest.params import grid_product

T0_US = 1_704_067_200_000_000
N = 600


def _walk(rng, n, m, level):
    close = level * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1.0 + rng.normal(0, 0.001, (n, m)))
    return open_, close


def _linear_panel():
    rng = np.random.default_rng(5)
    assets = ["um:AUSDT", "um:BUSDT", "um:CUSDT", "um:DUSDT", "spot:AUSDT", "spot:EUSDT"]
    open_, close = _walk(rng, N, len(assets), np.array([100, 20, 3, 0.5, 100, 7.0]))
    close[:150, 3] = open_[:150, 3] = np.nan  # um:DUSDT listed at bar 150
    close[400:, 2] = open_[400:, 2] = np.nan  # um:CUSDT delisted after bar 399
    close[[220, 221, 350], 5] = open_[[220, 221, 350], 5] = np.nan  # missing spot bars
    perp = np.array([True, True, True, True, False, False])
    rate = np.where(perp, rng.normal(1e-4, 2e-4, (N, len(assets))), 0.0)
    settle = (np.arange(N) % 8 == 0)[:, None]
    fao = np.where(settle & np.isfinite(close), rate * close, 0.0)
    intra = np.where((np.arange(N) % 8 == 3)[:, None] & np.isfinite(close), rate * close, 0.0)
    t = T0_US + np.arange(N, dtype=np.int64) * 3_600_000_000
    return panel_from_arrays(assets, "1h", t, open_, close, fund_at_open=fao, fund_intra=intra,
                             funding_rate=np.where(settle, rate, 0.0),
                             delist_idx=[-1, -1, 399, -1, -1, -1])


def _inverse_panel():
    rng = np.random.default_rng(9)
    open_, close = _walk(rng, N, 2, np.array([40_000.0, 2_000.0]))
    t = T0_US + np.arange(N, dtype=np.int64) * 3_600_000_000
    info = (AssetInfo(status="TRADING", contract_size=100.0, margin_asset="BTC",
                      base_asset="BTC"),
            AssetInfo(status="TRADING", contract_size=10.0, margin_asset="BTC",
                      base_asset="ETH"))
    fao = np.where((np.arange(N) % 8 == 0)[:, None], 1e-4 / close, 0.0)
    return panel_from_arrays(["cm:BTCUSD_PERP", "cm:ETHUSD_PERP"], "1h", t, open_, close,
                             fund_at_open=fao, info=info)


def tilt(panel, lookback=10, scale=1.0):
    """A user strategy: weights from the sign of the trailing return, NaN at warm-up."""
    w = np.full((panel.n_bars, panel.n_assets), np.nan)
    ret = panel.close[lookback:] / panel.close[:-lookback] - 1.0
    w[lookback:] = np.nan_to_num(np.sign(ret)) * scale / panel.n_assets
    return np.where(panel.is_perp[None, :], w, np.abs(w))


LINEAR_CASES = [
    ("momentum_rank", {"lookback": [3, 12, 48], "k": [1, 2]},
     dict(rebalance="8h", fee=None, slippage_bps=2.0, leverage=1.0)),
    ("momentum_rank", {"lookback": [6, 24], "k": [1, 2]},
     dict(fill="close", fee=0.0004, threshold=0.01, leverage=2.0, funding=False)),
    ("funding_carry", {"lookback": [8, 24], "k": [1]}, dict(rebalance="1d", leverage=1.5)),
    ("inverse_vol", {"lookback": [5, 20]}, dict(rebalance="4h", slippage_bps=1.0)),
    ("equal_weight", {"exposure": [0.5, 1.0]}, dict(rebalance="2h", cash=123.0)),
    (tilt, {"lookback": [4, 30], "scale": [0.5, 1.5]}, dict(leverage=2.0, fee=0.001)),
]


def _same(row: dict, single: dict) -> None:
    assert list(row) == list(single)
    for key, value in single.items():
        got = row[key]
        assert got == value or (got != got and value != value), (key, got, value)


def _check_rows(frame, strategy, grid, panel, settings):
    combos = grid_product(grid)
    assert frame.height == len(combos)
    for params, row in zip(combos, frame.iter_rows(named=True), strict=True):
        single = backtest.portfolio(strategy, params, panel=panel, **settings)
        _same(row, {**params, **single.metrics})


def _counting(monkeypatch):
    calls = {"sweep": 0, "single": 0}
    batched, single = sweep.sweep_portfolio_nb, engine.simulate_portfolio_nb

    def count_sweep(*args):
        calls["sweep"] += 1
        return batched(*args)

    def count_single(*args):
        calls["single"] += 1
        return single(*args)

    monkeypatch.setattr(sweep, "sweep_portfolio_nb", count_sweep)
    monkeypatch.setattr(engine, "simulate_portfolio_nb", count_single)
    return calls


@pytest.mark.parametrize(("strategy", "grid", "settings"), LINEAR_CASES)
def test_every_row_equals_its_single_run_and_the_kernel_runs_once(monkeypatch, strategy,
                                                                   grid, settings):
    panel = _linear_panel()
    calls = _counting(monkeypatch)
    frame = backtest.portfolio_sweep(strategy, grid, panel=panel, **settings)
    assert calls == {"sweep": 1, "single": 0}
    monkeypatch.undo()
    _check_rows(frame, strategy, grid, panel, settings)
    assert frame["n_orders"].min() > 0  # every combination traded


def test_coin_m_rows_equal_single_runs():
    panel = _inverse_panel()
    grid = {"lookback": [2, 12], "scale": [0.5, 2.0]}
    settings = dict(cash=1.0, fee=0.0005, slippage_bps=1.0, leverage=2.0, rebalance="8h")
    frame = backtest.portfolio_sweep(tilt, grid, panel=panel, **settings)
    _check_rows(frame, tilt, grid, panel, settings)
    assert frame["funding_paid"].abs().min() > 0


def test_weight_budget_splits_the_grid_into_blocks_with_the_same_rows(monkeypatch):
    panel = _linear_panel()
    grid = {"lookback": [3, 6, 12, 24, 48], "k": [1, 2]}
    settings = dict(rebalance="8h", slippage_bps=1.0)
    whole = backtest.portfolio_sweep("momentum_rank", grid, panel=panel, **settings)
    calls = _counting(monkeypatch)
    n_rows = int(engine.rebalance_mask(panel, "8h").sum())
    monkeypatch.setattr(sweep, "WEIGHT_BUDGET_BYTES", 3 * n_rows * panel.n_assets * 8)
    blocks = backtest.portfolio_sweep("momentum_rank", grid, panel=panel, **settings)
    assert calls["sweep"] == 4  # 10 combinations, 3 per call
    assert blocks.equals(whole)


def test_bad_sweep_input_is_one_line():
    panel = _linear_panel()
    from kline_lake.errors import InputError

    with pytest.raises(InputError, match="unknown parameter"):
        backtest.portfolio_sweep("momentum_rank", {"window": [1, 2]}, panel=panel)
    with pytest.raises(InputError, match="grid is empty"):
        backtest.portfolio_sweep("momentum_rank", {"k": []}, panel=panel)
    with pytest.raises(InputError, match="leverage exceeded"):
        backtest.portfolio_sweep("equal_weight", {"exposure": [1.0, 3.0]}, panel=panel)
    with pytest.raises(TypeError, match="unexpected"):
        backtest.portfolio_sweep("equal_weight", {"exposure": [1.0]}, panel=panel, cahs=1)
