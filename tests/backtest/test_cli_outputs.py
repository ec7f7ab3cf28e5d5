"""--json and --report (issue 12 item 9): checked before the run (one line, exit 2),
missing folders created for both, ``-`` is standard output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from backtest.cli import main
from tests.support.backtest import iso


def _args(root: Path, bars, *extra: str) -> list[str]:
    return ["--lake", str(root), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(bars.open_time_us[0]), "--end", iso(bars.open_time_us[-1] + 1),
            "--no-funding", "--no-exchange-filters", *extra]


def _empty_lake_args(root: Path, *extra: str) -> list[str]:
    """A lake without data: an error about an output path proves it came before loading."""
    return ["--lake", str(root), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", "2024-01-01", "--end", "2024-02-01", *extra]


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def _one_line_error(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("backtest: error:"), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody (root included) can create files in, or skip."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        undo = ["chmod", "755", str(folder)]
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)],
                                                   capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(folder)]  # root ignores modes, not the immutable flag
    else:
        pytest.skip("cannot make a read-only folder here")
    try:
        (folder / "probe").write_text("x")
    except OSError:
        pass
    else:
        subprocess.run(undo, check=True)
        pytest.skip("the folder is still writable")
    yield folder
    subprocess.run(undo, check=True)


def test_json_into_missing_folders_creates_them_like_report(lake, tmp_path, capsys):
    root, bars = lake
    out, report = tmp_path / "a" / "b" / "run.json", tmp_path / "c" / "d" / "run.html"
    assert _exit_code(["run", *_args(root, bars, "--json", str(out), "--report",
                                     str(report))]) == 0
    data = json.loads(out.read_text())
    assert data["strategy"] == "sma_cross" and data["n_trades"] > 0
    assert report.read_text().startswith("<!DOCTYPE html>")
    assert f"report: {report}" in capsys.readouterr().err


def test_json_dash_is_stdout_and_the_summary_goes_to_stderr(lake, tmp_path, monkeypatch,
                                                             capsys):
    root, bars = lake
    monkeypatch.chdir(tmp_path)
    assert _exit_code(["run", *_args(root, bars, "--json", "-")]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # nothing but the JSON on stdout
    assert data["params"] == {"fast": 10, "slow": 50}
    assert "final" in captured.err and "sharpe" in captured.err
    assert not (tmp_path / "-").exists()


def test_sweep_json_dash_and_report_dash(lake, tmp_path, monkeypatch, capsys):
    root, bars = lake
    monkeypatch.chdir(tmp_path)
    grid = ["--param", "fast=5,10", "--param", "slow=30,60"]
    assert _exit_code(["sweep", *_args(root, bars, *grid, "--json", "-")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["fast"], r["slow"]) for r in rows] == [(5, 30), (5, 60), (10, 30), (10, 60)]
    assert _exit_code(["sweep", *_args(root, bars, *grid, "--report", "-")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("<!DOCTYPE html>") and "fig-sweep" in captured.out
    assert "report: standard output" in captured.err
    assert not (tmp_path / "-").exists()


@pytest.mark.parametrize("option", ["--json", "--report"])
def test_a_file_in_the_way_is_one_line_before_running(tmp_path, capsys, option):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "sub" / "out.json"
    for command in ("run", "sweep"):
        extra = ["--param", "fast=5,10"] if command == "sweep" else []
        code = _exit_code([command, *_empty_lake_args(tmp_path, *extra, option, str(target))])
        assert code == 2
        _one_line_error(capsys, option, "cannot write", "is a file")


@pytest.mark.parametrize("option", ["--json", "--report"])
def test_a_read_only_folder_is_one_line_before_running(tmp_path, capsys, read_only_dir,
                                                       option):
    target = read_only_dir / "new" / "out.html"
    assert _exit_code(["run", *_empty_lake_args(tmp_path, option, str(target))]) == 2
    _one_line_error(capsys, option, "cannot write in", str(read_only_dir))


def test_a_directory_is_not_an_output_file(tmp_path, capsys):
    assert _exit_code(["run", *_empty_lake_args(tmp_path, "--json", str(tmp_path))]) == 2
    _one_line_error(capsys, "--json", "is a directory")


def test_both_outputs_cannot_share_stdout_or_a_file(tmp_path, capsys):
    assert _exit_code(["run", *_empty_lake_args(tmp_path, "--json", "-", "--report",
                                                "-")]) == 2
    _one_line_error(capsys, "cannot both be -")
    same = str(tmp_path / "x.json")
    assert _exit_code(["run", *_empty_lake_args(tmp_path, "--json", same, "--report",
                                                same)]) == 2
    _one_line_error(capsys, "name the same file")
