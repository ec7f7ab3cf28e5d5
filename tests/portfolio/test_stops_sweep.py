"""Stop levels swept in `portfolio_sweep` / `backtest portfolio --sl-stop a:b:s`: grid
dimensions of the one batched kernel call, every row equal to the single
`backtest.portfolio` run of its parameters and levels, value for value (``==``, NaN with
NaN); linear and COIN-M, in weight blocks, on Dask; bad levels are one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.multi_asset import engine, sweep
from backtest.multi_asset.panel import AssetInfo, panel_from_arrays
from backtest.params import grid_product
from kline_lake.errors import InputError
from tests.portfolio.test_sweep_batched import _counting, _same, tilt
from tests.support.portfolio import write_asset

T0_US = 1_704_067_200_000_000
N = 500


def _bars(rng, n, m, level):
    close = level * np.exp(np.cumsum(rng.normal(0.0, 0.01, (n, m)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1.0 + rng.normal(0.0, 0.004, (n, m)))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0, 0.008, (n, m)))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0, 0.008, (n, m)))
    return open_, high, low, close


def _linear_panel():
    rng = np.random.default_rng(11)
    assets = ["um:AUSDT", "um:BUSDT", "um:CUSDT", "spot:AUSDT", "spot:DUSDT"]
    o, h, lo, c = _bars(rng, N, len(assets), np.array([100, 20, 3, 100, 7.0]))
    for a in (o, h, lo, c):
        a[:120, 2] = np.nan  # um:CUSDT listed at bar 120
        a[380:, 1] = np.nan  # um:BUSDT delisted after bar 379
        a[[200, 201], 4] = np.nan  # missing spot bars
    fao = np.where((np.arange(N) % 8 == 0)[:, None] & np.isfinite(c)
                   & np.array([True, True, True, False, False]), 1e-4 * c, 0.0)
    t = T0_US + np.arange(N, dtype=np.int64) * 3_600_000_000
    return panel_from_arrays(assets, "1h", t, o, c, high=h, low=lo, fund_at_open=fao,
                             delist_idx=[-1, 379, -1, -1, -1])


def _inverse_panel():
    rng = np.random.default_rng(12)
    o, h, lo, c = _bars(rng, N, 2, np.array([40_000.0, 2_000.0]))
    info = (AssetInfo(status="TRADING", contract_size=100.0, margin_asset="BTC",
                      base_asset="BTC"),
            AssetInfo(status="TRADING", contract_size=10.0, margin_asset="BTC",
                      base_asset="ETH"))
    t = T0_US + np.arange(N, dtype=np.int64) * 3_600_000_000
    return panel_from_arrays(["cm:BTCUSD_PERP", "cm:ETHUSD_PERP"], "1h", t, o, c, high=h,
                             low=lo, info=info)


def _check_rows(frame, strategy, grid, stops, panel, settings):
    """Row order: parameter combinations (first slowest), each one's stop levels."""
    points = grid_product({**grid, **stops})
    assert frame.height == len(points)
    for point, row in zip(points, frame.iter_rows(named=True), strict=True):
        params = {k: point[k] for k in grid}
        levels = {k: point[k] for k in stops}
        single = backtest.portfolio(strategy, params, panel=panel, **settings, **levels)
        _same(row, {**params, **levels, **single.metrics})


CASES = [
    (tilt, {"lookback": [4, 24], "scale": [0.5, 1.5]},
     {"sl_stop": [0.01, 0.02, 0.04], "tp_stop": [0.02, 0.06]},
     dict(rebalance="8h", fee=0.0005, slippage_bps=2.0, leverage=2.0)),
    ("momentum_rank", {"lookback": [6, 24], "k": [1]}, {"sl_stop": [0.01, 0.03]},
     dict(rebalance="1d", fill="close", tp_stop=0.03, sl_trail=True, threshold=0.01)),
    ("equal_weight", {}, {"tp_stop": [0.01, 0.02, 0.05]},
     dict(rebalance="4h", sl_stop=0.02, fee=0.001)),
]


@pytest.mark.parametrize(("strategy", "grid", "stops", "settings"), CASES)
def test_rows_equal_single_runs_and_the_kernel_runs_once(monkeypatch, strategy, grid, stops,
                                                         settings):
    panel = _linear_panel()
    calls = _counting(monkeypatch)
    frame = backtest.portfolio_sweep(strategy, grid, panel=panel, **settings, **stops)
    assert calls == {"sweep": 1, "single": 0}
    monkeypatch.undo()
    _check_rows(frame, strategy, grid, stops, panel, settings)
    exits = frame["n_sl_exits"] + frame["n_tp_exits"] + frame["n_trail_exits"]
    assert exits.min() > 0
    assert frame["final_equity"].n_unique() == frame.height  # every level matters


def test_coin_m_rows_equal_single_runs():
    panel = _inverse_panel()
    grid = {"lookback": [3, 12], "scale": [1.0]}
    stops = {"sl_stop": [0.005, 0.02], "tp_stop": [0.01, 0.03]}
    settings = dict(cash=1.0, fee=0.0005, slippage_bps=1.0, leverage=2.0, rebalance="8h",
                    sl_trail=True)
    frame = backtest.portfolio_sweep(tilt, grid, panel=panel, **settings, **stops)
    _check_rows(frame, tilt, grid, stops, panel, settings)
    assert frame["n_trail_exits"].min() > 0 and frame["n_tp_exits"].min() > 0


def test_weight_blocks_give_the_same_rows(monkeypatch):
    panel = _linear_panel()
    grid = {"lookback": [3, 6, 12, 24, 48]}
    kw = dict(rebalance="8h", sl_stop=[0.01, 0.02], tp_stop=0.05)
    whole = backtest.portfolio_sweep(tilt, grid, panel=panel, **kw)
    calls = _counting(monkeypatch)
    n_rows = int(engine.rebalance_mask(panel, "8h").sum())
    monkeypatch.setattr(sweep, "WEIGHT_BUDGET_BYTES", 2 * n_rows * panel.n_assets * 8)
    blocks = backtest.portfolio_sweep(tilt, grid, panel=panel, **kw)
    assert calls["sweep"] == 3  # 5 weight combinations, 2 per call, each under 2 levels
    assert blocks.equals(whole)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(sl_stop=[0.01, 1.0]), r"sl stop must be in \(0, 1\)"),
    (dict(sl_stop=[0.0, 0.02]), r"sl stop must be in \(0, 1\)"),
    (dict(tp_stop=[0.02, -0.1]), "tp stop must be positive"),
    (dict(tp_stop=[0.02], sl_trail=True), "sl trail needs an sl stop"),
    (dict(sl_stop=[]), "at least one level"),
    (dict(sl_stop=["x"]), "levels must be numbers"),
])
def test_bad_levels_raise_before_any_work(kwargs, message):
    with pytest.raises(InputError, match=message):
        backtest.portfolio_sweep(tilt, {"lookback": [3]}, panel=_linear_panel(), **kwargs)


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pf_stops")
    for k, sym in enumerate(("AUSDT", "BUSDT")):
        write_asset(root, "um", sym, 300, seed=40 + k, funding_rate=1e-4)
    write_asset(root, "spot", "AUSDT", 300, seed=50)
    return root


UNIVERSE = "um:AUSDT,um:BUSDT,spot:AUSDT"


def _main(lake: Path, *args: str, capsys) -> tuple[int, str, str]:
    from backtest.cli import main

    base = ["portfolio", "--lake", str(lake), "--universe", UNIVERSE, "--interval", "1h",
            "--start", "2024-01-01", "--end", "2024-01-13"]
    with pytest.raises(SystemExit) as exc:
        main([*base, *args])
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_cli_sweeps_stop_levels_and_runs_single_stops(lake, capsys):
    code, out, err = _main(lake, "--strategy", "momentum_rank", "--param", "lookback=6,12",
                           "--rebalance", "8h", "--sl-stop", "0.01:0.04:0.01", "--tp-stop",
                           "0.03", "--json", "-", capsys=capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["lookback"], r["sl_stop"]) for r in rows] == [
        (lb, sl) for lb in (6, 12) for sl in (0.01, 0.02, 0.03)]
    assert "sl_stop" in err.splitlines()[1]  # the table shows the swept column
    single = backtest.portfolio("momentum_rank", {"lookback": 12}, lake=lake,
                                universe=UNIVERSE, interval="1h", start="2024-01-01",
                                end="2024-01-13", rebalance="8h", sl_stop=0.02, tp_stop=0.03)
    assert rows[4]["final_equity"] == single.metrics["final_equity"]
    assert rows[4]["n_sl_exits"] == single.metrics["n_sl_exits"] > 0
    code, out, err = _main(lake, "--strategy", "momentum_rank", "--param", "lookback=12",
                           "--rebalance", "8h", "--sl-stop", "0.02", "--tp-stop", "0.03",
                           "--json", "-", capsys=capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["final_equity"] == single.metrics["final_equity"]
    assert got["config"]["sl_stop"] == 0.02 and got["n_sl_exits"] > 0
    assert "n_sl_exits" in err


@pytest.mark.parametrize(("args", "message"), [
    (("--sl-stop", "0"), "sl stop must be in (0, 1)"),
    (("--sl-stop", "1"), "sl stop must be in (0, 1)"),
    (("--sl-stop", "1.5"), "sl stop must be in (0, 1)"),
    (("--sl-stop", "0.01,1.0"), "sl stop must be in (0, 1)"),
    (("--tp-stop", "0"), "tp stop must be positive"),
    (("--sl-trail",), "sl trail needs an sl stop"),
    (("--sl-stop", "abc"), "sl_stop"),
])
def test_cli_bad_stops_are_one_line_exit_2(lake, capsys, args, message):
    code, _, err = _main(lake, *args, capsys=capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_dask_sweep_with_stop_levels_equals_local(lake, cluster):
    grid = {"lookback": [4, 8, 16]}
    kw = dict(lake=lake, universe=UNIVERSE, interval="1h", start="2024-01-01",
              end="2024-01-13", rebalance="8h", sl_stop=[0.01, 0.02], tp_stop=[0.03, 0.05])
    local = backtest.portfolio_sweep("momentum_rank", grid, **kw)
    remote = backtest.portfolio_sweep("momentum_rank", grid, **kw, progress=False,
                                      dask=cluster.scheduler_address)
    assert remote.equals(local) and local.height == 12
