"""``backtest walk-forward``: JSON equal to the library's result, and bad input -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import backtest
from backtest.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
BASE = ["walk-forward", "--market", "um", "--symbol", "BTCUSDT", "--interval", "1h",
        "--start", "2024-01-01", "--end", "2024-07-19", "--no-funding",
        "--no-exchange-filters", "--param", "fast=5:25:5", "--param", "slow=30:90:30"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wf-cli-lake")
    LakeWriter(root).commit(SeriesKey("um", "klines", "BTCUSDT", "1h"),
                            synthetic_klines(T0_MS, 200 * 24, "1h", seed=4))
    return root


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def test_walk_forward_json_matches_the_library(lake, tmp_path, capsys):
    out = tmp_path / "wf.json"
    argv = [*BASE, "--lake", str(lake), "--train", "60d", "--test", "20d", "--objective",
            "calmar", "--json", str(out)]
    assert _exit_code(argv) == 0
    data = json.loads(out.read_text())
    assert list(data) == ["folds", "out_of_sample", "deflated_sharpe", "pbo"]
    lib = backtest.walk_forward("sma_cross", {"fast": [5, 10, 15, 20], "slow": [30, 60]},
                                lake=lake, start="2024-01-01", end="2024-07-19", train="60d",
                                test="20d", objective="calmar", funding=False,
                                exchange_filters=False)
    assert [f["params"] for f in data["folds"]] == [f.params for f in lib.folds]
    assert [f["test"] for f in data["folds"]] == [list(f.test) for f in lib.folds]
    assert data["out_of_sample"]["final_equity"] == pytest.approx(
        lib.out_of_sample["final_equity"], rel=1e-12)
    assert data["pbo"]["pbo"] == pytest.approx(lib.pbo["pbo"])
    text = capsys.readouterr().out
    assert "7 folds, objective calmar" in text and "deflated sharpe" in text


@pytest.mark.parametrize(("extra", "message"), [
    (["--train", "190d", "--test", "20d"], "longer than the range"),
    (["--train", "150d", "--test", "30d"], "at least two folds"),
    (["--train", "60d", "--test", "20d", "--objective", "sortino"], "unknown objective"),
    (["--train", "6 months", "--test", "20d"], "not a duration"),
    (["--train", "60d", "--test", "20x"], "not a duration"),
    (["--train", "60d", "--test", "20d", "--pbo-blocks", "5"], "even integer"),
])
def test_bad_input_is_one_line_and_exit_2(lake, capsys, extra, message):
    assert _exit_code([*BASE, "--lake", str(lake), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("backtest: error:") and message in err


def test_outputs_checked_before_the_run_and_dash_is_stdout(lake, tmp_path, capsys) -> None:
    """--json into a folder is one line before any work; --json - is clean JSON on stdout."""
    argv = [*BASE, "--lake", str(lake), "--train", "60d", "--test", "20d"]
    assert _exit_code([*argv, "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a directory" in err[0]
    assert _exit_code([*argv, "--json", "-"]) == 0
    captured = capsys.readouterr()
    assert list(json.loads(captured.out)) == ["folds", "out_of_sample", "deflated_sharpe", "pbo"]
    assert "folds, objective sharpe" in captured.err
