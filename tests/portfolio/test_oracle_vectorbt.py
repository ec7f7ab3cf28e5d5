"""Oracle: with funding off and linear assets, `backtest.portfolio` matches
vectorbt `Portfolio.from_orders` (targetpercent, cash sharing, auto call sequence) on
the same weights, to 1e-9 relative (settings: `tests.support.portfolio.vbt_portfolio`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.multi_asset.panel import load_panel, panel_from_arrays
from backtest.multi_asset.strategies import PORTFOLIO_STRATEGIES
from tests.support.portfolio import T0_MS, assert_matches_vbt, vbt_portfolio, write_asset

N_BARS = 600


def _random_panel(seed: int, n: int = 400, m: int = 6):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1 + rng.normal(0, 0.002, (n, m)))
    t = (T0_MS + np.arange(n, dtype=np.int64) * 3_600_000) * 1000
    return panel_from_arrays([f"um:A{k}USDT" for k in range(m)], "1h", t, open_, close), rng


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_random_long_short_weights(seed, fill):
    panel, rng = _random_panel(seed)
    w = rng.uniform(-1, 1, (panel.n_bars, panel.n_assets))
    w /= np.abs(w).sum(axis=1, keepdims=True)
    w[rng.random(panel.n_bars) < 0.6] = np.nan  # rebalance on ~40 % of bars
    w[rng.random(w.shape) < 0.1] = np.nan  # and leave some assets alone
    res = backtest.portfolio(lambda p: w, panel=panel, cash=10_000.0, fee=0.0007,
                             slippage_bps=4.0, funding=False, fill=fill)
    assert res.orders.height > 100
    pf = vbt_portfolio(res, panel, fee_rates=[0.0007] * panel.n_assets, slippage_bps=4.0,
                       cash=10_000.0, fill=fill)
    assert_matches_vbt(res, pf)


@pytest.mark.parametrize("seed", [3, 4])
def test_random_long_only_fully_invested_hits_the_cash_limit(seed):
    """Weights summing to 1 with fees: the last buys are cut to the cash left, in both."""
    panel, rng = _random_panel(seed)
    w = rng.uniform(0, 1, (panel.n_bars, panel.n_assets))
    w /= w.sum(axis=1, keepdims=True)
    w[rng.random(panel.n_bars) < 0.5] = np.nan
    res = backtest.portfolio(lambda p: w, panel=panel, fee=0.001, slippage_bps=10.0,
                             funding=False)
    assert any("reduced" in note for note in res.warnings)
    pf = vbt_portfolio(res, panel, fee_rates=[0.001] * panel.n_assets, slippage_bps=10.0,
                       cash=10_000.0)
    assert_matches_vbt(res, pf)


@pytest.fixture(scope="module")
def mixed_lake(tmp_path_factory) -> Path:
    """spot BTC/ETH/SOL and um BTC/ETH/SOL/XRP, 600 gapless hourly bars, with funding."""
    root = tmp_path_factory.mktemp("pf_lake")
    for k, sym in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT")):
        write_asset(root, "spot", sym, N_BARS, seed=10 + k)
    for k, sym in enumerate(("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")):
        write_asset(root, "um", sym, N_BARS, seed=20 + k, funding_rate=1e-4 * (k - 1.5))
    return root


UNIVERSE = "spot:BTCUSDT,spot:ETHUSDT,spot:SOLUSDT,um:ALL"


@pytest.mark.parametrize("name", sorted(PORTFOLIO_STRATEGIES))
@pytest.mark.parametrize("rebalance", [None, "8h"])
def test_every_builtin_strategy_matches(mixed_lake, name, rebalance):
    start, end = "2024-01-01", "2024-01-26"
    panel = load_panel(mixed_lake, UNIVERSE, "1h", start, end, funding=False)
    assert panel.n_assets == 7 and panel.tradable.all()
    params = {"lookback": 12} if name in ("momentum_rank", "inverse_vol", "funding_carry") else {}
    res = backtest.portfolio(name, params, lake=mixed_lake, universe=UNIVERSE, interval="1h",
                             start=start, end=end, funding=False, slippage_bps=2.0,
                             rebalance=rebalance)
    if name != "funding_carry":  # funding off: no funding to rank, no trades is right
        assert res.orders.height > 0
    fee_rates = res.config["fee_rates"]
    assert fee_rates[0] == 0.001 and fee_rates[-1] == 0.0005  # spot / um base tiers
    pf = vbt_portfolio(res, panel, fee_rates=fee_rates, slippage_bps=2.0, cash=10_000.0)
    assert_matches_vbt(res, pf)


def test_funding_carry_with_funding_matches_vbt_equity_plus_funding(mixed_lake):
    """funding_carry ranks by funding: run it with funding loaded, then compare vectorbt
    on its weights with the funding-free equity (same weights, funding off)."""
    start, end = "2024-01-01", "2024-01-26"
    with_f = backtest.portfolio("funding_carry", {"lookback": 6}, lake=mixed_lake,
                                universe="um:ALL", start=start, end=end, rebalance="8h")
    assert with_f.orders.height > 0 and with_f.metrics["funding_paid"] != 0.0
    panel = load_panel(mixed_lake, "um:ALL", "1h", start, end, funding=True)
    w = with_f.target_weights
    no_f = backtest.portfolio(lambda p: w, panel=panel, funding=False)
    pf = vbt_portfolio(no_f, panel, fee_rates=no_f.config["fee_rates"], slippage_bps=0.0,
                       cash=10_000.0)
    assert_matches_vbt(no_f, pf)
