"""The backtester reads an object-store lake (a real S3-compatible server on loopback):
`backtest run`, `backtest sweep` and `backtest portfolio --lake s3://...` give exactly the
local lake's results."""

from __future__ import annotations

import json

import pytest

from backtest.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.lake.synthetic import synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.conftest import REAL_DATA
from tests.support.lake import JAN_2024_MS

DAY_MS = 86_400_000
DAYS = 30


def _fill(root) -> None:
    w = LakeWriter(root)
    span = [(JAN_2024_MS * 1000, (JAN_2024_MS + DAYS * DAY_MS) * 1000)]
    w.commit(SeriesKey("um", "klines", "BTCUSDT", "1h"),
             synthetic_klines(JAN_2024_MS, DAYS * 24, seed=11, interval="1h"), covered=span)
    w.commit(SeriesKey("um", "funding", "BTCUSDT"), synthetic_funding(JAN_2024_MS, DAYS * 3),
             covered=span)
    w.commit(SeriesKey("spot", "klines", "BTCUSDT", "1h"),
             synthetic_klines(JAN_2024_MS, DAYS * 24, seed=12, interval="1h"), covered=span)
    info = json.loads((REAL_DATA / "exchange_info" / "usdm_exchangeInfo_2024-10-20.json")
                      .read_text())
    w.save_exchange_info("um", info)  # the lot-size filters a run applies


def _run(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    return captured.out


def test_backtest_run_and_sweep_on_s3_equal_the_local_lake(tmp_path, bucket, capsys):
    local, url = tmp_path / "lake", f"s3://{bucket}/lake"
    _fill(local)
    _fill(url)
    common = ["--market", "um", "--symbol", "BTCUSDT", "--interval", "4h",  # resampled from 1h
              "--start", "2024-01-02", "--end", "2024-01-29"]
    results = {}
    for name, root in (("local", str(local)), ("s3", url)):
        run_json, sweep_json = tmp_path / f"{name}-run.json", tmp_path / f"{name}-sweep.json"
        _run(["run", "--lake", root, *common, "--strategy", "sma_cross", "--param", "fast=3",
              "--param", "slow=12", "--json", str(run_json)], capsys)
        _run(["sweep", "--lake", root, *common, "--param", "fast=2:6:1", "--param",
              "slow=8:20:4", "--json", str(sweep_json)], capsys)
        results[name] = (json.loads(run_json.read_text()), json.loads(sweep_json.read_text()))
    (run_local, sweep_local), (run_s3, sweep_s3) = results["local"], results["s3"]
    assert run_local["n_trades"] > 0 and len(sweep_local) == 4 * 3
    assert run_s3 == run_local
    assert sweep_s3 == sweep_local


def test_backtest_portfolio_on_s3_equals_the_local_lake(tmp_path, bucket, capsys):
    local, url = tmp_path / "lake", f"s3://{bucket}/portfolio-lake"
    _fill(local)
    _fill(url)
    results = {}
    for name, root in (("local", str(local)), ("s3", url)):
        out = tmp_path / f"{name}-portfolio.json"
        _run(["portfolio", "--lake", root, "--universe", "spot:BTCUSDT,um:BTCUSDT",
              "--interval", "1h", "--start", "2024-01-02", "--end", "2024-01-29",
              "--strategy", "basis", "--rebalance", "1d", "--json", str(out)], capsys)
        results[name] = json.loads(out.read_text())
    assert results["local"]["n_orders"] > 0 and results["local"]["funding_paid"] != 0.0
    assert results["s3"] == results["local"]
