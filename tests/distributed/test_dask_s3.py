"""Dask against an object-store lake (a real S3-compatible server on loopback, moto): the
workers read and write `s3://` themselves, with the credentials and endpoint of their own
environment (the standard AWS variables), never shipped through the scheduler.

- `download --dask` into `s3://` builds the lake a local download into a local folder
  builds, object for object and row for row;
- `backtest sweep --dask` and `backtest portfolio-sweep --dask` over an `s3://` lake give
  the local lake's rows, value for value.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import backtest
from kline_lake import Lake
from kline_lake.download.distributed import run_distributed_download
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.storage import open_storage
from tests.lake.test_storage_backtest import _fill
from tests.support.fetch import NOW_MS
from tests.support.storage import bucket, s3_env, s3_server  # noqa: F401 (fixtures)

AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def s3_cluster(s3_server):  # noqa: F811
    """2 worker processes whose environment points at the loopback S3 server, as a
    worker machine's would point at the team's store."""
    from distributed import LocalCluster

    env = {"NUMBA_NUM_THREADS": "1", "AWS_ENDPOINT_URL": s3_server, **AWS_TEST_ENV}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0", silence_logs=logging.CRITICAL,
                      env=env) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=13, now_ms=NOW_MS) as server:
        yield server


def test_download_on_dask_into_s3_equals_a_local_download(fx, s3_cluster, bucket, tmp_path,  # noqa: F811
                                                          monkeypatch):
    def request(lake):
        return validate_request(market="um", dataset="klines", symbols="BTCUSDT,ETHUSDT",
                                interval="1h,4h", start="2024-05-30", source="auto",
                                archive_url=fx.base_url, lake=lake, base_url=fx.base_url)

    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path / "state"))
    local_root, url = tmp_path / "local", f"s3://{bucket}/team/lake"
    local = asyncio.run(run_download(request(local_root)))
    got = run_distributed_download(request(url), s3_cluster.scheduler_address,
                                   show_progress=False, ledger_dir=str(tmp_path / "ledger"))
    assert got.series == local.series == 4
    assert got.rows_written == local.rows_written > 0
    assert got.extra.get("rows from archive") == local.extra.get("rows from archive") > 0
    remote, oracle = Lake(url), Lake(local_root)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for interval in ("1h", "4h"):
            a = oracle.klines("um", symbol, interval)
            b = remote.klines("um", symbol, interval)
            assert b.height == a.height > 0 and b.equals(a)
            assert remote.covered("um", "klines", symbol, interval) == \
                oracle.covered("um", "klines", symbol, interval) != []
    keys = open_storage(url).list_files()
    assert not [k for k in keys if k.endswith((".tmp", ".lock"))]  # nothing half-written
    assert sorted(k for k in keys if k.endswith(".parquet")) == \
        sorted(p.relative_to(local_root).as_posix() for p in local_root.rglob("*.parquet"))


def test_sweeps_on_dask_over_an_s3_lake_equal_the_local_lake(s3_cluster, bucket, tmp_path):  # noqa: F811
    local, url = tmp_path / "lake", f"s3://{bucket}/research/lake"
    _fill(local)
    _fill(url)
    window = dict(start="2024-01-02", end="2024-01-29", interval="1h")
    grid = {"fast": [2, 3, 5], "slow": [8, 12, 20]}
    kw = dict(symbol="BTCUSDT", market="um", fee=0.0004, slippage_bps=1, **window)
    rows_local = backtest.sweep("sma_cross", grid, lake=local, **kw).to_frame()
    rows_remote = backtest.sweep("sma_cross", grid, lake=url, progress=False,
                                 dask=s3_cluster.scheduler_address, **kw).to_frame()
    assert rows_local.height == 9 and rows_local["n_trades"].sum() > 0
    assert rows_remote.equals(rows_local)

    universe = "spot:BTCUSDT,um:BTCUSDT"
    pgrid = {"lookback": [24, 48], "k": [1]}
    pkw = dict(universe=universe, rebalance="1d", **window)
    p_local = backtest.portfolio_sweep("momentum_rank", pgrid, lake=local, **pkw)
    p_remote = backtest.portfolio_sweep("momentum_rank", pgrid, lake=url, progress=False,
                                        dask=s3_cluster.scheduler_address, **pkw)
    assert p_local.height == 2 and (p_local["n_orders"] > 0).all()
    assert p_remote.equals(p_local)
