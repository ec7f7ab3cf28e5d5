"""Walk-forwards on a real Dask LocalCluster (2 worker processes) equal local runs, value
for value: folds (parameters and stop levels chosen), every metric, the stitched curve,
the DSR and the PBO. The workers read the lake themselves; bars given in memory are
scattered."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import backtest
from tests.support.backtest import iso, make_bars

GRID = {"fast": [4, 8, 16], "slow": [24, 48]}
OPTS = {"train": "40d", "test": "20d", "fee": 0.0004, "slippage_bps": 1.0,
        "direction": "both", "exchange_filters": False, "n_blocks": 4}


def _same(a, b) -> None:
    assert a.to_json() == b.to_json()
    assert a.equity.equals(b.equity)
    assert a.param_names == b.param_names and a.config == b.config
    for fa, fb in zip(a.folds, b.folds, strict=True):
        assert fa.params == fb.params and fa.in_sample == fb.in_sample
        assert fa.out_of_sample == fb.out_of_sample


def test_lake_walk_forward_on_dask_equals_the_local_run(cluster, lake):
    root, b = lake  # 3000 hourly bars (125 days) with funding
    kw = dict(lake=root, symbol="BTCUSDT", interval="1h", start=iso(b.open_time_us[0]),
              end=iso(b.open_time_us[-1] + 3_600_000_000), sl_stop=[0.01, 0.03], **OPTS)
    local = backtest.walk_forward("sma_cross", GRID, **kw)
    remote = backtest.walk_forward("sma_cross", GRID, dask=cluster.scheduler_address,
                                   progress=False, **kw)
    _same(remote, local)
    assert len(local.folds) == 4 and "sl_stop" in local.folds[0].params
    assert local.out_of_sample["funding_paid"] != 0.0  # workers loaded the funding too
    assert local.out_of_sample["n_sl_exits"] > 0
    note = remote.warnings[-1]
    assert note == (f"ran on Dask ({cluster.scheduler_address}, 2 workers) in 11 tasks "
                    "(window sweeps, then full-sample blocks)")  # 4 + 1 sweeps, 6 blocks of 2 of the 12 points
    assert remote.warnings[:-1] == local.warnings


def test_bars_in_memory_are_scattered_and_equal(cluster):
    bars = make_bars(24 * 90, seed=5)
    kw = dict(bars=bars, funding=False, tp_stop=[0.02, 0.05], **OPTS)
    local = backtest.walk_forward("ema_cross", GRID, **kw)
    remote = backtest.walk_forward("ema_cross", GRID, dask=cluster.scheduler_address,
                                   progress=False, **kw)
    _same(remote, local)
    assert np.isfinite(local.deflated_sharpe["dsr"]) and len(local.folds) == 2


def _cli(argv: list[str]) -> int:
    from backtest.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def test_cli_dask_writes_the_same_json_and_an_unreachable_scheduler_exits_2(
        cluster, lake, tmp_path, capsys):
    root, b = lake
    argv = ["walk-forward", "--lake", str(root), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(b.open_time_us[0]), "--end", iso(b.open_time_us[-1] + 1),
            "--no-exchange-filters", "--param", "fast=4,8", "--param", "slow=24,48",
            "--sl-stop", "0.01,0.02", "--train", "40d", "--test", "20d", "--pbo-blocks", "4"]
    plain, dist = tmp_path / "plain.json", tmp_path / "dask.json"
    assert _cli([*argv, "--json", str(plain)]) == 0
    capsys.readouterr()
    assert _cli([*argv, "--json", str(dist), "--dask", cluster.scheduler_address]) == 0
    assert dist.read_text() == plain.read_text()
    assert f"note: ran on Dask ({cluster.scheduler_address}, 2 workers)" in \
        capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _cli([*argv, "--dask", f"tcp://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("backtest: error: cannot reach the Dask scheduler at tcp://127.0.0.1:")
