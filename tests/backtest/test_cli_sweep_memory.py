"""Sweep memory (issue 12 item 7): estimated before running, chunked when the estimate
exceeds the budget (rows identical to one call), refused with one line when even the
results cannot fit. The budget is injected (argument, --memory-budget, environment), never
the machine's real memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.cli import main
from backtest.engine import load_market_data
from backtest.records import METRICS_DT, TRADE_DT
from backtest.strategies import get_strategy
from backtest.sweep import plan_memory
from backtest.sweep_memory import (
    BUDGET_ENV,
    MAX_SKIPPED_KEPT,
    POINT_PY_BYTES,
    SKIPPED_POINT_BYTES,
    STRATEGY_TEMP_ARRAYS,
    Budget,
    MemoryPlan,
    available_memory_bytes,
    check_results_fit,
    parse_size,
    plan_chunks,
    resolve_budget,
)
from kline_lake.errors import InputError
from tests.support.backtest import iso, make_bars

N_METRICS = len(METRICS_DT.names)
# per combination: its metric record, its 2 parameters, its frame row, a column in transit
RESULT_BYTES_2_PARAMS = METRICS_DT.itemsize + 8 * 2 + 8 * (2 + N_METRICS) + 8


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def _args(root: Path, bars, *extra: str) -> list[str]:
    return ["--lake", str(root), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(bars.open_time_us[0]), "--end", iso(bars.open_time_us[-1] + 1),
            "--no-funding", "--no-exchange-filters", *extra]


def _unchunked_need(strategy: str, grid: dict, bars) -> int:
    """The estimate of the whole grid in one chunk (no budget)."""
    data = load_market_data(None, "um", "BTCUSDT", "1h", None, None, bars=bars, funding=False)
    plan = plan_memory(get_strategy(strategy), grid, data, Budget(None, "test"))
    assert plan.n_chunks == 1
    return plan.total_bytes(plan.chunk_points)


def test_estimate_is_bars_times_combinations_times_bytes_by_hand():
    # 2 swept params, 1000 combinations, 500 bars, 2 threads, 30 crossover windows
    plan = MemoryPlan(1000, 500, 2, 2, 30, 8 * 8 * 500, Budget(None, "test"))
    # + 3 int64 exit counts per record and 3 more metric columns (the stops of issue 14)
    assert RESULT_BYTES_2_PARAMS == (129 + 24) + 16 + (152 + 24) + 8
    assert plan.results_bytes == 1000 * RESULT_BYTES_2_PARAMS
    per_thread = 16 * 500 + TRADE_DT.itemsize * 501 + 500
    assert plan.fixed_bytes == (2 * per_thread + STRATEGY_TEMP_ARRAYS * 8 * 500
                                + MAX_SKIPPED_KEPT * SKIPPED_POINT_BYTES)
    point = POINT_PY_BYTES + METRICS_DT.itemsize + 8 + 16 * 2 + 16
    # 10 points need at most 20 of the 30 indicator rows; 100 points all 30
    assert plan.working_bytes(10) == plan.fixed_bytes + 10 * point + 20 * 8 * 500
    assert plan.working_bytes(100) == plan.fixed_bytes + 100 * point + 30 * 8 * 500
    generic = MemoryPlan(1000, 500, 2, 2, 0, 0, Budget(None, "test"))
    assert generic.point_bytes == POINT_PY_BYTES + METRICS_DT.itemsize + 8 + 32 + 500

    limit = plan.total_bytes(37)
    chunked = plan_chunks(MemoryPlan(1000, 500, 2, 2, 30, 32_000, Budget(limit, "t")), "s")
    assert chunked.chunk_points == 37 and chunked.n_chunks == 28  # the largest that fits
    assert chunked.total_bytes(38) > limit


def test_results_that_cannot_fit_are_refused_with_the_grid_size():
    grid = {"fast": list(range(10_000)), "slow": list(range(10_000))}
    need = 10**8 * RESULT_BYTES_2_PARAMS
    with pytest.raises(InputError) as exc:
        check_results_fit(grid, Budget(need - 1, "test budget"))
    text = str(exc.value)
    assert "100,000,000 combinations (fast 10,000 x slow 10,000)" in text
    assert "32.9 GiB" in text and "(353 bytes each)" in text and "test budget" in text
    check_results_fit(grid, Budget(need, "test budget"))  # exactly enough: no error


@pytest.mark.parametrize("strategy, grid", [
    ("sma_cross", {"fast": [3, 5, 8, 13, 40], "slow": [10, 20, 35, 60]}),  # 5 invalid
    ("rsi", {"window": [7, 14, 21], "lower": [20, 25.5, 30], "upper": [70.0, 80.0]}),
    ("donchian", {"window": [5, 10, 20, 40, 80, 120, 200]}),
])
def test_a_grid_over_the_budget_runs_in_chunks_with_identical_rows(strategy, grid):
    bars = make_bars(700, seed=11)
    kw = dict(bars=bars, fee=0.0004, slippage_bps=1, direction="both", funding=False)
    whole = backtest.sweep(strategy, grid, **kw)
    assert whole.config["n_chunks"] == 1
    budget = _unchunked_need(strategy, grid, bars) - 1
    chunked = backtest.sweep(strategy, grid, memory_budget=budget, **kw)
    assert chunked.config["n_chunks"] > 1
    assert any("chunks of up to" in note for note in chunked.warnings)
    assert chunked.to_frame().equals(whole.to_frame())
    assert chunked.to_frame().schema == whole.to_frame().schema
    assert chunked.n_skipped == whole.n_skipped and chunked.skipped == whole.skipped


def test_mixed_int_and_float_values_make_a_float_column():
    res = backtest.sweep("rsi", {"lower": [20, 25.5]}, bars=make_bars(300, seed=1),
                         funding=False)
    assert res.to_frame()["lower"].to_list() == [20.0, 25.5]


def test_skipped_points_are_all_counted_but_only_the_first_kept():
    bars = make_bars(200, seed=4)
    res = backtest.sweep("sma_cross", {"fast": list(range(2, 62)), "slow": list(range(2, 62))},
                         bars=bars, funding=False)
    assert res.n_skipped == 60 * 61 // 2 > MAX_SKIPPED_KEPT  # fast >= slow
    assert len(res.skipped) == MAX_SKIPPED_KEPT
    assert res.skipped[0] == {"fast": 2, "slow": 2,
                              "reason": "fast must be < slow, got fast=2 slow=2"}
    assert res.to_frame().height == 60 * 59 // 2


def test_cli_memory_budget_chunks_and_env_budget_chunks(lake, tmp_path, monkeypatch, capsys):
    root, bars = lake
    params = ["--param", "fast=5:30:5", "--param", "slow=20:80:20"]
    plain, small, env = (tmp_path / f"{n}.json" for n in ("plain", "small", "env"))
    assert _exit_code(["sweep", *_args(root, bars, *params, "--json", str(plain))]) == 0
    capsys.readouterr()
    grid = {"fast": list(range(5, 30, 5)), "slow": list(range(20, 80, 20))}
    need = _unchunked_need("sma_cross", grid, bars)
    assert _exit_code(["sweep", *_args(root, bars, *params, "--memory-budget", str(need - 1),
                                       "--json", str(small))]) == 0
    assert "chunks of up to" in capsys.readouterr().err
    monkeypatch.setenv(BUDGET_ENV, str(need - 1))
    assert _exit_code(["sweep", *_args(root, bars, *params, "--json", str(env))]) == 0
    rows = json.loads(plain.read_text())
    assert len(rows) == 13 and json.loads(small.read_text()) == rows  # 2 fast >= slow
    assert json.loads(env.read_text()) == rows


def test_cli_refuses_a_grid_whose_results_cannot_fit_before_loading(tmp_path, capsys):
    # the lake is empty: the refusal comes before any data is read
    code = _exit_code(["sweep", "--lake", str(tmp_path), "--symbol", "BTCUSDT", "--interval",
                       "1h", "--start", "2024-01-01", "--end", "2024-02-01", "--param",
                       "fast=1:2001", "--param", "slow=1:2001", "--memory-budget", "100MB"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "4,000,000 combinations (fast 2,000 x slow 2,000)" in err
    assert "1.3 GiB" in err and "95.4 MiB" in err  # 4e6 x 353 bytes; the budget


def test_cli_refuses_when_one_combination_at_a_time_does_not_fit(lake, capsys):
    root, bars = lake  # results of 2 rows fit in 4 kB, the bars (3000 x 64 B) do not
    code = _exit_code(["sweep", *_args(root, bars, "--param", "fast=5,10", "--param",
                                       "slow=50", "--memory-budget", "4kB")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "even one combination at a time" in err and "3,000 bars" in err


@pytest.mark.parametrize("text, value", [
    ("2GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1e9", 10**9), ("1.5 kb", 1500),
    ("4096", 4096), (123, 123),
])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["lots", "-5", "0", "5XB", ""])
def test_parse_size_rejects(text):
    with pytest.raises(InputError):
        parse_size(text)


def test_available_memory_is_the_smaller_of_meminfo_and_the_cgroup_room(tmp_path,
                                                                        monkeypatch):
    proc, cg = tmp_path / "proc", tmp_path / "cg"
    proc.mkdir()
    cg.mkdir()
    (proc / "meminfo").write_text("MemTotal:  8000000 kB\nMemAvailable:  4000000 kB\n")
    assert available_memory_bytes(proc, cg) == 4_000_000 * 1024
    (cg / "memory.max").write_text(f"{3 * 2**30}\n")
    (cg / "memory.current").write_text(f"{2**30}\n")
    assert available_memory_bytes(proc, cg) == 2 * 2**30
    (cg / "memory.max").write_text("max\n")  # no cgroup limit
    assert available_memory_bytes(proc, cg) == 4_000_000 * 1024
    assert available_memory_bytes(tmp_path / "none", tmp_path / "none") is None
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert resolve_budget("1GB") == Budget(10**9, "--memory-budget")
    monkeypatch.setenv(BUDGET_ENV, "2GB")
    assert resolve_budget() == Budget(2 * 10**9, BUDGET_ENV)
    monkeypatch.setenv(BUDGET_ENV, "x")
    with pytest.raises(InputError, match=BUDGET_ENV):
        resolve_budget()


def test_default_budget_is_a_fraction_of_available_memory(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    monkeypatch.setattr("backtest.sweep_memory.available_memory_bytes", lambda: 10 * 2**30)
    budget = resolve_budget()
    assert budget.bytes == int(10 * 2**30 * 0.8) and "80%" in budget.source
    assert np.isclose(budget.bytes / 2**30, 8.0)
