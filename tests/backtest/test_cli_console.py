"""Console output of `backtest run/sweep` (issue 12 item 13): strategy, parameters used
(defaults marked), the real range and bar count, percentages, aligned sweep tables sorted
best first (ascending where lower is better), --top 0 = every row, --version, a note for a
window longer than the data, and trade counts that agree with the win rate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from backtest.cli import main
from tests.support.backtest import iso, make_bars, write_klines


def _args(root: Path, bars, *extra: str) -> list[str]:
    return ["--lake", str(root), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(bars.open_time_us[0]), "--end", iso(bars.open_time_us[-1] + 1),
            "--no-funding", "--no-exchange-filters", *extra]


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def _value(out: str, name: str) -> str:
    match = re.search(rf"^\s*{name}: (.*)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def _table(out: str) -> list[list[str]]:
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if re.match(r"^(top \d+ of|all) ", line)) + 1
    table = lines[start:]
    end = next(k for k, line in enumerate(table) if line.startswith("("))
    return [line for line in table[:end]]


def test_run_shows_strategy_params_range_and_percentages(lake, tmp_path, capsys):
    root, bars = lake  # 3000 hourly bars from 2024-01-01 00:00: they end 2024-05-05 00:00
    out_json = tmp_path / "r.json"
    assert _exit_code(["run", *_args(root, bars, "--param", "fast=12", "--json",
                                     str(out_json))]) == 0
    out = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    assert out.splitlines()[0] == "sma_cross on um BTCUSDT 1h"
    assert "params:   fast=12, slow=50 (default)" in out
    assert "range:    2024-01-01 00:00 -> 2024-05-05 00:00 UTC, 3,000 bars of 1h\n" in out
    assert _value(out, "total_return") == f"{100 * data['total_return']:.2f}%"
    assert _value(out, "max_drawdown") == f"{100 * data['max_drawdown']:.2f}%"
    assert _value(out, "final_equity") == f"{data['final_equity']:,.2f}"
    assert "fee 0.05%" in out and "funding off" in out


def test_trade_counts_agree_with_the_win_rate(lake, tmp_path, capsys):
    root, bars = lake
    out_json = tmp_path / "h.json"
    # hold: one trade, still open at the end, so no closed trade to win or lose
    assert _exit_code(["run", *_args(root, bars, "--strategy", "hold", "--json",
                                     str(out_json))]) == 0
    out = capsys.readouterr().out
    assert _value(out, "n_trades") == "1 (0 closed, 1 open)"
    assert _value(out, "win_rate") == "n/a"
    assert json.loads(out_json.read_text())["n_trades"] == 1
    # a crossover run: closed + open = n_trades, the win rate's base is the closed count
    assert _exit_code(["run", *_args(root, bars, "--param", "fast=5", "--param", "slow=20",
                                     "--json", str(out_json))]) == 0
    out = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    n_closed = sum(t["status"] != "open" for t in data["trades"])
    n_open = sum(t["status"] == "open" for t in data["trades"])
    wins = sum(t["pnl"] > 0 for t in data["trades"] if t["status"] != "open")
    assert _value(out, "n_trades") == f"{data['n_trades']} ({n_closed} closed, {n_open} open)"
    assert _value(out, "win_rate") == f"{100 * wins / n_closed:.2f}% (of {n_closed} closed)"


def test_requested_range_shown_when_the_bars_cover_less(tmp_path, capsys):
    bars = make_bars(48, seed=3)  # 2024-01-01 .. 2024-01-03
    write_klines(tmp_path, bars)
    argv = ["run", "--lake", str(tmp_path), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", "2024-01-01", "--end", "2024-01-05", "--no-funding",
            "--no-exchange-filters", "--allow-gaps", "--strategy", "hold"]
    assert _exit_code(argv) == 0
    out = capsys.readouterr().out
    assert ("2024-01-01 00:00 -> 2024-01-03 00:00 UTC, 48 bars of 1h (requested "
            "2024-01-01 00:00 -> 2024-01-05 00:00)") in out


@pytest.mark.parametrize("metric, ascending", [
    ("max_drawdown", True), ("fees_paid", True), ("max_drawdown_duration", True),
    ("sharpe", False), ("total_return", False),
])
def test_sweep_table_is_aligned_and_sorted_best_first(lake, tmp_path, capsys, metric,
                                                      ascending):
    root, bars = lake
    out_json = tmp_path / "s.json"
    assert _exit_code(["sweep", *_args(root, bars, "--param", "fast=5:30:5", "--param",
                                       "slow=20:80:20", "--sort", metric, "--top", "0",
                                       "--json", str(out_json))]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out_json.read_text())
    table = _table(out)
    assert len(table) == 1 + len(rows) == 14  # --top 0: every row
    assert len({len(line) for line in table}) == 1  # aligned: right edges line up
    header = table[0].split()
    assert header[:2] == ["fast", "slow"] and metric in header
    col = header.index(metric)
    printed = [float(line.split()[col].rstrip("%").replace(",", "")) for line in table[1:]]
    assert printed == sorted(printed, reverse=not ascending)
    best = (min if ascending else max)(r[metric] for r in rows)
    scale = 100 if metric in ("max_drawdown", "total_return") else 1
    shown_decimals = 0.05 if metric == "max_drawdown_duration" else 0.005  # 1 or 2 printed
    assert printed[0] == pytest.approx(best * scale, abs=shown_decimals)
    assert f"by {metric} ({'lowest' if ascending else 'highest'} first)" in out
    assert "n_trades counts a position still open at the end" in out


def test_top_limits_rows_and_a_negative_top_is_one_line(lake, capsys):
    root, bars = lake
    grid = ["--param", "fast=5:30:5", "--param", "slow=20:80:20"]
    assert _exit_code(["sweep", *_args(root, bars, *grid, "--top", "3")]) == 0
    out = capsys.readouterr().out
    assert len(_table(out)) == 4 and "top 3 of 13 combinations by sharpe" in out
    assert _exit_code(["sweep", *_args(root, bars, *grid, "--top", "-1")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--top must be >= 0 (0 prints every row)" in err


def test_a_window_longer_than_the_data_is_noted(lake, capsys):
    root, bars = lake
    assert _exit_code(["run", *_args(root, bars, "--strategy", "donchian", "--param",
                                     "window=5000")]) == 0
    err = capsys.readouterr().err
    assert "note: window=5000 is not shorter than the 3,000 bars of data" in err
    assert _exit_code(["sweep", *_args(root, bars, "--param", "fast=5,10", "--param",
                                       "slow=50,3000,4000")]) == 0
    err = capsys.readouterr().err
    assert "note: 4 of 6 combinations have slow >= the 3,000 bars of data (up to 4000)" in err


def test_version(capsys):
    assert _exit_code(["--version"]) == 0
    assert re.fullmatch(r"backtest, version \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_best_of_a_lower_is_better_metric_is_the_smallest():
    import backtest

    res = backtest.sweep("sma_cross", {"fast": [3, 5, 8], "slow": [20, 40]},
                         bars=make_bars(600, seed=5), funding=False)
    frame = res.to_frame()
    assert res.best("max_drawdown")["max_drawdown"] == frame["max_drawdown"].min()
    assert res.best("fees_paid")["fees_paid"] == frame["fees_paid"].min()
    assert res.best("sharpe")["sharpe"] == frame["sharpe"].fill_nan(None).max()
    assert res.best("max_drawdown", maximize=True)["max_drawdown"] == frame["max_drawdown"].max()
