"""Portfolio sweeps on a real Dask LocalCluster (2 worker processes) equal the local run,
value for value; the workers read the lake themselves (the client never loads the panel);
a panel given in memory is scattered; `backtest portfolio --param ... --dask` writes the
same rows."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import backtest
from backtest.multi_asset import sweep
from backtest.multi_asset.panel import load_panel
from tests.support.portfolio import write_asset

UNIVERSE = "um:AUSDT,um:BUSDT,um:CUSDT,spot:AUSDT"
RANGE = dict(interval="1h", start="2024-01-01", end="2024-01-26")  # 600 bars
SETTINGS = dict(rebalance="8h", fee=0.0004, slippage_bps=1.0, leverage=1.5)
GRID = {"lookback": [2, 4, 8, 16, 32], "k": [1, 2]}  # 10 combinations


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pf_dask")
    for k, sym in enumerate(("AUSDT", "BUSDT", "CUSDT")):
        write_asset(root, "um", sym, 600, seed=20 + k, funding_rate=2e-4)
    write_asset(root, "spot", "AUSDT", 600, seed=30)
    return root


def test_lake_sweep_on_dask_equals_local_and_workers_load_the_lake(cluster, lake,
                                                                    monkeypatch):
    local = backtest.portfolio_sweep("momentum_rank", GRID, lake=lake, universe=UNIVERSE,
                                     **RANGE, **SETTINGS)
    assert local["funding_paid"].abs().min() > 0

    def no_local_load(*args, **kwargs):
        raise AssertionError("the client loaded the panel")

    monkeypatch.setattr(sweep, "load_panel", no_local_load)
    remote = backtest.portfolio_sweep("momentum_rank", GRID, lake=lake, universe=UNIVERSE,
                                      dask=cluster.scheduler_address, progress=False,
                                      **RANGE, **SETTINGS)
    assert remote.equals(local) and remote.schema == local.schema


def test_panel_in_memory_is_scattered_and_equal(cluster, lake):
    panel = load_panel(lake, UNIVERSE, RANGE["interval"], RANGE["start"], RANGE["end"])
    grid = {"lookback": [3, 9, 27]}
    local = backtest.portfolio_sweep("inverse_vol", grid, panel=panel, rebalance="1d")
    remote = backtest.portfolio_sweep("inverse_vol", grid, panel=panel, rebalance="1d",
                                      dask=cluster.scheduler_address, progress=False)
    assert remote.equals(local)


def test_cli_dask_writes_the_same_rows(cluster, lake, tmp_path, capsys):
    from backtest.cli import main

    args = ["portfolio", "--lake", str(lake), "--universe", UNIVERSE, "--interval", "1h",
            "--start", RANGE["start"], "--end", RANGE["end"], "--strategy", "momentum_rank",
            "--param", "lookback=2:20:6", "--param", "k=1,2", "--rebalance", "8h"]
    for name, extra in (("plain", []), ("dask", ["--dask", cluster.scheduler_address])):
        with pytest.raises(SystemExit) as exc:
            main([*args, *extra, "--json", str(tmp_path / f"{name}.json")])
        assert exc.value.code in (0, None)
    err = capsys.readouterr().err
    assert "dask: 2 workers, " in err and "dashboard http://" in err
    plain = json.loads((tmp_path / "plain.json").read_text())
    dist = json.loads((tmp_path / "dask.json").read_text())
    assert len(plain) == 6 and dist == plain  # lookback 2, 8, 14 x k 1, 2
    assert pl.DataFrame(plain)["n_orders"].min() > 0


def test_cli_bad_dask_address_is_one_line_exit_2(lake, capsys):
    from backtest.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["portfolio", "--lake", str(lake), "--universe", UNIVERSE, "--interval", "1h",
              "--start", RANGE["start"], "--end", RANGE["end"], "--param", "exposure=0.5,1",
              "--dask", "localhost:8786"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "--dask must be local:N" in err[0]
