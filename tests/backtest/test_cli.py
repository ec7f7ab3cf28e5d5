"""The `backtest` command line, run in-process and as the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from backtest.cli import main
from backtest.metrics import METRIC_NAMES
from tests.support.backtest import iso


def _args(root: Path, bars, *extra: str) -> list[str]:
    return ["--lake", str(root), "--market", "um", "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(bars.open_time_us[0]), "--end", iso(bars.open_time_us[-1] + 1),
            *extra]


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def test_run_writes_every_metric(lake, tmp_path, capsys):
    root, bars = lake
    out = tmp_path / "out.json"
    assert _exit_code(["run", *_args(root, bars, "--strategy", "sma_cross", "--param",
                                      "fast=10", "--param", "slow=50", "--fee", "0.0005",
                                      "--slippage-bps", "1", "--json", str(out))]) == 0
    data = json.loads(out.read_text())
    for name in METRIC_NAMES:
        assert name in data
    assert data["params"] == {"fast": 10, "slow": 50}
    assert data["n_trades"] == len(data["trades"]) > 0
    assert "final_equity" in capsys.readouterr().out


def test_sweep_json_is_a_list_of_param_and_metric_objects(lake, tmp_path):
    root, bars = lake
    out = tmp_path / "sweep.json"
    code = _exit_code(["sweep", *_args(root, bars, "--param", "fast=5:50:5", "--param",
                                       "slow=50:300:25", "--no-funding", "--json", str(out))])
    assert code == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 9 * 10
    assert {r["fast"] for r in rows} == set(range(5, 50, 5))
    assert {r["slow"] for r in rows} == set(range(50, 300, 25))
    assert isinstance(rows[0]["fast"], int)
    for name in METRIC_NAMES:
        assert name in rows[0]


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--param", "fast=10", "--param", "slower=3"], "has no parameter slower"),
    (["--param", "fast=60", "--param", "slow=50"], "fast must be < slow"),
    (["--fee", "-0.1"], "fee must not be negative"),
    (["--param", "fast=abc"], "not a number"),
    (["--direction", "short", "--market", "spot"], "spot"),
])
def test_bad_input_is_one_line_and_exit_2(lake, capsys, extra, message):
    root, bars = lake
    assert _exit_code(["run", *_args(root, bars, *extra)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and err.startswith("backtest: error:")


def test_empty_range_exit_2(lake, capsys):
    root, _ = lake
    code = _exit_code(["run", "--lake", str(root), "--market", "um", "--symbol", "BTCUSDT",
                       "--interval", "1h", "--start", "2030-01-01", "--end", "2030-02-01"])
    assert code == 2
    assert "no um BTCUSDT 1h klines" in capsys.readouterr().err


def test_console_script_entry_point(lake, tmp_path):
    root, bars = lake
    script = Path(sys.executable).parent / "backtest"
    proc = subprocess.run([str(script), "run", *_args(root, bars, "--strategy", "hold",
                                                        "--json", str(tmp_path / "h.json"))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "h.json").read_text())["n_trades"] == 1
    bad = subprocess.run([str(script), "sweep", *_args(root, bars, "--param", "fast=9:5")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "empty" in bad.stderr
