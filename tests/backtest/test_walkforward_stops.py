"""Stop levels inside a walk-forward's grid, and exits per reason out of sample.

Oracles: each fold's choice (parameters and stop levels together) is the best row of an
independent `backtest.sweep` of its training window with the same levels; each fold's
out-of-sample result is an independent `backtest.run` of its test window with the
chosen scalar stops and the strategy's signals computed from the range start, its
boundary close done by hand; exit counts per reason are counted from that run's trades.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.cli import main
from backtest.data import load_bars
from backtest.strategies import REGISTRY
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import to_us
from kline_lake.errors import InputError
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
GRID = {"fast": [5, 10, 20], "slow": [30, 60]}
STOPS = {"sl_stop": [0.002, 0.005, 0.01], "tp_stop": [0.004, 0.02]}
RANGE = {"start": "2024-01-01", "end": "2024-05-10"}  # 130 days
WINDOWS = {"train": "40d", "test": "30d"}
SETTINGS = {"fee": 0.0005, "slippage_bps": 2.0, "funding": False, "exchange_filters": False}
REASONS = (("sl", "n_sl_exits"), ("tp", "n_tp_exits"), ("trail", "n_trail_exits"))


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wf-stops-lake")
    LakeWriter(root).commit(SeriesKey("um", "klines", "BTCUSDT", "1h"),
                            synthetic_klines(T0_MS, 130 * 24, "1h", seed=11))
    return root


@pytest.fixture(scope="module")
def result(lake):
    return backtest.walk_forward("sma_cross", GRID, lake=lake, **RANGE, **WINDOWS,
                                 **SETTINGS, **STOPS)


def _best(frame, objective="sharpe") -> dict:
    values = np.nan_to_num(frame[objective].to_numpy().astype(float), nan=-np.inf)
    return frame.row(int(np.argmax(values)), named=True)


def test_each_fold_chooses_params_and_levels_like_an_independent_sweep(lake, result):
    assert result.param_names == ["fast", "slow", "sl_stop", "tp_stop"]
    assert len(result.folds) == 3  # (130 - 40) / 30
    for fold in result.folds:
        sw = backtest.sweep("sma_cross", GRID, lake=lake, start=fold.train[0],
                            end=fold.train[1], **SETTINGS, **STOPS).to_frame()
        assert sw.height == 6 * 6  # 6 valid (fast, slow) x 3 sl x 2 tp
        best = _best(sw)
        assert fold.params == {k: best[k] for k in ("fast", "slow", "sl_stop", "tp_stop")}
        assert fold.in_sample["sharpe"] == pytest.approx(best["sharpe"], rel=1e-12)
    d = result.to_dict()
    assert set(d["folds"][0]["params"]) == {"fast", "slow", "sl_stop", "tp_stop"}
    assert d["deflated_sharpe"]["n_trials"] == 36  # every (params, levels) point


def test_out_of_sample_runs_the_chosen_levels_and_counts_exits(lake, result):
    bars = load_bars(lake, "um", "BTCUSDT", "1h", to_us(RANGE["start"]), to_us(RANGE["end"]))
    capital, totals = 10_000.0, dict.fromkeys([k for _, k in REASONS], 0)
    for k, fold in enumerate(result.folds):
        lo, hi = (int(np.searchsorted(bars.open_time_us, to_us(x))) for x in fold.test)
        prefix = backtest.Bars("um", "BTCUSDT", "1h", *(a[:hi] for a in (
            bars.open_time_us, bars.open, bars.high, bars.low, bars.close, bars.volume)))
        params = {n: fold.params[n] for n in ("fast", "slow")}
        sig = REGISTRY["sma_cross"].signals(prefix, params)[lo:]
        ind = backtest.run(lambda b, _s=sig: _s, lake=lake, start=fold.test[0],
                           end=fold.test[1], cash=capital, sl_stop=fold.params["sl_stop"],
                           tp_stop=fold.params["tp_stop"], **SETTINGS)
        eq = ind.equity
        qty, close, cash = (float(eq[c][-1]) for c in ("position", "close", "cash"))
        expect = cash + qty * close * (1 - 2e-4) * (1 - 0.0005) if qty else ind.equity_curve[-1]
        oos = fold.out_of_sample
        assert oos["final_equity"] == pytest.approx(expect, rel=1e-12)
        stitched = result.equity.filter(result.equity["fold"] == k)["equity"].to_numpy()
        np.testing.assert_allclose(stitched[:-1], ind.equity_curve[:-1], rtol=1e-12)
        closed = ind.trades.filter(ind.trades["status"] != "open")
        for reason, key in REASONS:
            assert oos[key] == (closed["reason"] == reason).sum() == ind.metrics[key]
            totals[key] += oos[key]
        capital = expect
    assert result.out_of_sample["final_equity"] == pytest.approx(capital, rel=1e-12)
    for _, key in REASONS:
        assert result.out_of_sample[key] == totals[key]
    assert totals["n_sl_exits"] > 0 and totals["n_tp_exits"] > 0  # both stops exercised


def test_trailing_flag_and_single_levels(lake):
    res = backtest.walk_forward("sma_cross", GRID, lake=lake, **RANGE, **WINDOWS,
                                **SETTINGS, sl_stop=[0.003, 0.006], sl_trail=True)
    assert all(set(f.params) == {"fast", "slow", "sl_stop"} for f in res.folds)
    assert res.out_of_sample["n_trail_exits"] > 0 and res.out_of_sample["n_sl_exits"] == 0
    one = backtest.walk_forward("sma_cross", GRID, lake=lake, **RANGE, **WINDOWS,
                                **SETTINGS, sl_stop=0.004)  # one value: a setting
    assert all(set(f.params) == {"fast", "slow"} for f in one.folds)
    assert one.out_of_sample["n_sl_exits"] > 0


@pytest.mark.parametrize(("stops", "message"), [
    ({"sl_stop": [0.01, 0.0]}, "sl stop must be in (0, 1)"),
    ({"sl_stop": [1.0]}, "sl stop must be in (0, 1)"),
    ({"sl_stop": -0.02}, "sl stop must be in (0, 1)"),
    ({"tp_stop": [0.02, -1.0]}, "tp stop must be positive"),
    ({"sl_stop": []}, "at least one level"),
    ({"sl_trail": True}, "sl trail needs an sl stop"),
])
def test_bad_stop_levels_are_input_errors_before_loading(stops, message):
    # no lake at all: the check comes before any data is read
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        backtest.walk_forward("sma_cross", GRID, lake="/nonexistent-lake", **RANGE,
                              **WINDOWS, **stops)


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


BASE = ["walk-forward", "--market", "um", "--symbol", "BTCUSDT", "--interval", "1h",
        "--start", RANGE["start"], "--end", RANGE["end"], "--no-funding",
        "--no-exchange-filters", "--param", "fast=5,10,20", "--param", "slow=30,60",
        "--train", "40d", "--test", "30d", "--fee", "0.0005", "--slippage-bps", "2"]


def test_cli_stop_levels_match_the_library(lake, result, tmp_path, capsys):
    out = tmp_path / "wf.json"
    argv = [*BASE, "--lake", str(lake), "--sl-stop", "0.002,0.005,0.01", "--tp-stop",
            "0.004,0.02", "--json", str(out)]
    assert _exit_code(argv) == 0
    data = json.loads(out.read_text())
    assert [f["params"] for f in data["folds"]] == [f.params for f in result.folds]
    assert data["out_of_sample"]["n_sl_exits"] == result.out_of_sample["n_sl_exits"]
    text = capsys.readouterr().out
    assert "oos_n_sl_exits" in text and "sl_stop=" in text and "n_tp_exits" in text


@pytest.mark.parametrize(("extra", "message"), [
    (["--sl-stop", "0"], "sl stop must be in (0, 1)"),
    (["--sl-stop", "1.5"], "sl stop must be in (0, 1)"),
    (["--sl-stop", "0.01,1"], "sl stop must be in (0, 1)"),
    (["--sl-stop", "0:0.02:0.01"], "sl stop must be in (0, 1)"),
    (["--sl-trail"], "sl trail needs an sl stop"),
    (["--dask", "local:zero"], "--dask must be local:N"),
])
def test_cli_bad_stops_and_dask_are_one_line_exit_2(lake, capsys, extra, message):
    assert _exit_code([*BASE, "--lake", str(lake), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("backtest: error:") and message in err


def test_report_shows_stop_levels_and_exits(result, tmp_path):
    from backtest.report.walkforward import folds_table, walk_forward_report_html

    table = folds_table(result)
    for header in ("sl_stop", "tp_stop", "out of sample n_sl_exits",
                   "out of sample n_tp_exits", "out of sample n_trail_exits"):
        assert f"<th>{header}</th>" in table
    for fold in result.folds:
        assert f'data-key="n_sl_exits" data-value="{fold.out_of_sample["n_sl_exits"]}"' \
            in table
    html = walk_forward_report_html(result)
    assert "sl_stop" in html and "n_tp_exits" in html
