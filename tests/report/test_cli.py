"""`backtest run/sweep --report` over a real lake (LakeWriter, Parquet) write the pages."""

from __future__ import annotations

import json

import pytest

from backtest.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.fake_exchange.exchange_info import exchange_info
from kline_lake.fake_exchange.universe import UNIVERSE
from kline_lake.lake.synthetic import synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.report import parse_report

JAN_2024_MS = 1_704_067_200_000
N_HOURS = 24 * 40


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    writer = LakeWriter(root)
    writer.commit(SeriesKey("um", "klines", "BTCUSDT", "1h"),
                  synthetic_klines(JAN_2024_MS, N_HOURS, "1h", seed=3))
    writer.commit(SeriesKey("um", "funding", "BTCUSDT"),
                  synthetic_funding(JAN_2024_MS, N_HOURS // 8, seed=3))
    # what a download caches: the exchange filters the backtest applies by default
    um = [s for s in UNIVERSE if s.market == "um"]
    writer.save_exchange_info("um", exchange_info("um", um, JAN_2024_MS, 2400, 60))
    return root


def _args(root, *extra):
    return ["--lake", str(root), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", "2024-01-01", "--end", "2024-02-10", *extra]


def _main(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def test_run_report_and_json_agree(lake, tmp_path, capsys):
    report, out = tmp_path / "run.html", tmp_path / "run.json"
    code = _main(["run", *_args(lake, "--param", "fast=5", "--param", "slow=20",
                                "--json", str(out), "--report", str(report))])
    assert code == 0
    assert f"report: {report}" in capsys.readouterr().err
    parsed = parse_report(report.read_text())
    data = json.loads(out.read_text())
    assert parsed.data["final_equity"] == data["final_equity"]
    assert data["n_trades"] > 0 and data["funding_paid"] != 0
    cells = {r[1]["data-key"]: r[1].get("data-value") for r in parsed.tables["metrics"][1:]}
    assert float(cells["final_equity"]) == data["final_equity"]
    assert len(parsed.tables["trades"]) - 1 == data["n_trades"]
    assert parsed.script_srcs == []


def test_sweep_report_heatmap_of_the_sort_metric(lake, tmp_path):
    report = tmp_path / "sweep.html"
    code = _main(["sweep", *_args(lake, "--param", "fast=3,5,8", "--param", "slow=20:50:10",
                                  "--sort", "total_return", "--report", str(report))])
    assert code == 0
    heat = parse_report(report.read_text()).figures["fig-sweep"]
    assert heat["data"][0]["x"] == ["3", "5", "8"]
    assert heat["data"][0]["y"] == ["20", "30", "40"]
    assert "total_return over fast x slow" in heat["layout"]["title"]["text"]


def test_bad_report_path_is_exit_2_not_a_traceback(lake, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = _main(["run", *_args(lake, "--report", str(blocker / "sub" / "r.html"))])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "cannot write" in err and err.count("\n") == 1
