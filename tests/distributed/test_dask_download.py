"""`kline-lake download --dask`: series sharded over a real LocalCluster of 2 worker
processes against the fake exchange (real HTTP on loopback) give the lake a local
download gives, row for row; an unreachable scheduler is one line, exit 2."""

from __future__ import annotations

import asyncio
import socket

import pytest

from kline_lake.download.distributed import parse_address, run_distributed_download, shard_requests
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from tests.support.fetch import NOW_MS, assert_same_lake, cli, lake_snapshot


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=11, now_ms=NOW_MS) as server:
        yield server


def _request(fx_url: str, lake, **kw):
    args = {"market": "spot", "dataset": "klines", "symbols": "BTCUSDT,ETHUSDT",
            "interval": "1m,1h", "start": "2024-05-30", "source": "auto",
            "archive_url": fx_url, **kw}
    return validate_request(lake=lake, base_url=fx_url, **args)


def test_sharded_download_equals_local_download(fx, cluster, tmp_path, monkeypatch) -> None:
    """Two symbols x two intervals from the archive (the daily files of May 30 and 31)
    and REST (June 1 so far): the lake the 2 workers build equals a local run's."""
    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path / "state-local"))
    local = asyncio.run(run_download(_request(fx.base_url, tmp_path / "local")))
    ledger = tmp_path / "state-workers"
    got = run_distributed_download(_request(fx.base_url, tmp_path / "dask"),
                                   cluster.scheduler_address, show_progress=False,
                                   ledger_dir=str(ledger))
    assert_same_lake(tmp_path / "local", tmp_path / "dask")
    assert len(lake_snapshot(tmp_path / "dask")) > 4  # data files and coverage records
    assert got.rows_written == local.rows_written > 2 * 3_500
    assert got.series == local.series == 4
    assert got.extra.get("rows from archive") == local.extra.get("rows from archive") > 0
    # the workers reserved their weight in the ledger directory they were given
    assert list((ledger / "weight").glob("*.json"))


def test_shards_pin_the_resolved_range_and_an_absolute_lake(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", "http://archive.invalid")  # the client's only
    request = validate_request(market="spot", dataset="klines", symbols="BTC*", quote="USDT",
                               interval="1h", days=3, lake="rel-lake", base_url="http://x.invalid")
    shards = shard_requests(request, ["BTCUSDT", "BTCUSDC"], 1_000, 2_000)
    assert [s.symbols for s in shards] == [("BTCUSDT",), ("BTCUSDC",)]
    assert {(s.start_ms, s.end_ms, s.days, s.quote) for s in shards} == {(1_000, 2_000, None, None)}
    assert {s.lake for s in shards} == {tmp_path / "rel-lake"}
    assert {s.archive_url for s in shards} == {"http://archive.invalid"}


@pytest.mark.parametrize("bad", ["local:0", "local", "tcp://host", "http://h:8786", ""])
def test_bad_addresses_are_input_errors(bad: str) -> None:
    with pytest.raises(InputError, match="--dask"):
        parse_address(bad)


def test_unreachable_scheduler_is_one_line_exit_2(fx, tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    lake = tmp_path / "lake"
    out = cli("download", "--market", "spot", "--data", "klines", "--symbols", "BTCUSDT",
              "--start", "2024-05-30", "--lake", str(lake), "--base-url", fx.base_url,
              "--dask", f"tcp://127.0.0.1:{port}", "--quiet")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}" in lines[0]
    assert not lake.exists()  # refused before the exchange was asked or the lake touched
