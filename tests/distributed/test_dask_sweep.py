"""Sweeps on a real Dask LocalCluster (2 worker processes) equal local runs, value for
value, including when a worker is SIGKILLed mid-sweep."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import backtest
from backtest.engine import load_market_data
from backtest.strategies import get_strategy
from backtest.sweep import plan_memory
from backtest.sweep_memory import Budget
from tests.support.backtest import iso, make_bars
from tests.support.distributed import new_cluster

GRIDS = [
    ("sma_cross", {"fast": [3, 5, 8, 13, 40], "slow": [10, 20, 35, 60]}),  # 5 invalid
    ("rsi", {"window": [7, 14, 21], "lower": [20, 25.5, 30], "upper": [70.0, 80.0]}),
    ("donchian", {"window": [5, 10, 20, 40, 80, 120, 200]}),
]


def _kw(lake):
    root, b = lake
    return dict(lake=root, symbol="BTCUSDT", interval="1h", start=iso(b.open_time_us[0]),
                end=iso(b.open_time_us[-1] + 1), fee=0.0004, slippage_bps=1,
                direction="both", exchange_filters=False)


def _same(a, b):
    assert a.to_frame().equals(b.to_frame())
    assert a.to_frame().schema == b.to_frame().schema
    assert a.n_skipped == b.n_skipped and a.skipped == b.skipped
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize(("strategy", "grid"), GRIDS)
def test_lake_sweep_on_dask_equals_the_local_run(cluster, lake, strategy, grid):
    local = backtest.sweep(strategy, grid, **_kw(lake))
    remote = backtest.sweep(strategy, grid, dask=cluster.scheduler_address, progress=False,
                            **_kw(lake))
    _same(remote, local)
    note = remote.warnings[-1]
    assert note.startswith(f"ran on Dask ({cluster.scheduler_address}, 2 workers) in ")
    assert local.to_frame()["funding_paid"].abs().sum() > 0  # funding reached the kernel


def test_bars_given_in_memory_are_scattered_and_equal(cluster):
    bars = make_bars(700, seed=11)
    grid = {"fast": list(range(2, 20, 3)), "slow": list(range(10, 80, 7))}
    kw = dict(bars=bars, funding=False, fee=0.0002)
    local = backtest.sweep("ema_cross", grid, **kw)
    _same(backtest.sweep("ema_cross", grid, dask=cluster.scheduler_address, progress=False,
                         **kw), local)


def test_memory_chunks_bound_the_tasks(cluster, lake):
    grid = {"fast": list(range(2, 30)), "slow": list(range(30, 60, 3))}  # 280 points
    local = backtest.sweep("sma_cross", grid, **_kw(lake))
    plan = plan_memory(get_strategy("sma_cross"), grid,
                       load_market_data(lake[0], "um", "BTCUSDT", "1h", _kw(lake)["start"],
                                        _kw(lake)["end"]), Budget(None, "test"))
    budget = plan.total_bytes(plan.chunk_points) - 1  # forces the memory plan to chunk
    remote = backtest.sweep("sma_cross", grid, dask=cluster.scheduler_address,
                            progress=False, memory_budget=budget, **_kw(lake))
    chunked = backtest.sweep("sma_cross", grid, memory_budget=budget, **_kw(lake))
    assert chunked.config["n_chunks"] > 1
    per = int(remote.warnings[-1].split("chunks of up to ")[1].split()[0].replace(",", ""))
    n_plan = -(-280 // chunked.config["n_chunks"])
    assert per <= n_plan
    _same(remote, local)


def test_a_worker_killed_mid_sweep_is_retried_with_identical_results(lake):
    from distributed import Client

    grid = {"window": list(range(3, 200, 2)), "lower": [20, 30], "upper": [70.0, 80.0]}
    local = backtest.sweep("rsi", grid, **_kw(lake))
    with new_cluster() as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)  # cold workers: each first task loads the lake
        out: dict = {}

        def go():
            out["result"] = backtest.sweep("rsi", grid, dask=cluster.scheduler_address,
                                           progress=False, **_kw(lake))

        runner = threading.Thread(target=go)
        runner.start()
        deadline = time.monotonic() + 60
        busy: list[str] = []
        while not busy and time.monotonic() < deadline:
            busy = [w for w, tasks in client.processing().items() if tasks]
            time.sleep(0.01)
        assert busy, "no task ever started"
        victim = pids[busy[0]]
        os.kill(victim, signal.SIGKILL)
        killed_mid_sweep = runner.is_alive()
        runner.join(120)
        assert not runner.is_alive()
        assert killed_mid_sweep
        with pytest.raises(ProcessLookupError):
            os.kill(victim, 0)
        assert victim not in client.run(os.getpid).values()
    _same(out["result"], local)
