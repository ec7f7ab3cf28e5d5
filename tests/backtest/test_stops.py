"""Stops by hand: the worked numbers of `backtest.kernels.simulate_nb`'s docstring.

Also the rule vectorbt resolves differently (an exit signal filled at a bar's open
comes before that bar's stops; vectorbt lets the bar's stop win), bad input, the CLI
options and the batched sweep kernel against single runs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import backtest
from backtest.cli import main
from backtest.data import Bars
from kline_lake.errors import InputError
from tests.support.backtest import iso, make_bars


def _bars(rows: list[tuple[float, float, float, float]]) -> Bars:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    n = len(rows)
    return Bars("um", "X", "1h", np.arange(n, dtype=np.int64) * 3_600_000_000, o, h, lo, c,
                np.ones(n))


def _run(rows, sig, direction="long", **kw):
    kw = {"fee": 0.0, "cash": 1000.0} | kw
    raw = np.array(sig, dtype=np.int8)
    return backtest.run(lambda b: raw, bars=_bars(rows), direction=direction, funding=False,
                        exchange_filters=False, **kw)


def _only_trade(res):
    assert res.trades.height == 1
    return res.trades.row(0, named=True)


def test_gap_through_the_stop_fills_at_the_open():
    # long filled at bar 1's open, 100: stop-loss 98. Bar 1's low 97 is the fill's own
    # bar (not checked); bar 2 opens at 97, below the stop: exit at 97, not 98.
    rows = [(100, 101, 99, 100), (100, 101, 97, 100), (97, 99, 96, 98), (98, 99, 97, 98)]
    res = _run(rows, [1, 0, 0, 0], sl_stop=0.02)
    t = _only_trade(res)
    assert (t["entry_idx"], t["exit_idx"], t["exit_price"], t["reason"]) == (1, 2, 97.0, "sl")
    assert res.metrics["final_equity"] == pytest.approx(970.0, rel=1e-12)
    assert res.orders["kind"].to_list() == ["signal", "sl"]
    assert (res.metrics["n_sl_exits"], res.metrics["n_tp_exits"]) == (1, 0)


def test_take_profit_inside_the_bar_and_through_a_gap():
    inside = [(100, 101, 99, 100), (100, 101, 99, 100), (101, 106, 100, 103), (103,) * 4]
    t = _only_trade(_run(inside, [1, 0, 0, 0], sl_stop=0.02, tp_stop=0.05))
    assert (t["exit_idx"], t["exit_price"], t["reason"]) == (2, 105.0, "tp")
    gap = [(100, 101, 99, 100), (100, 101, 99, 100), (106, 108, 105, 107), (107,) * 4]
    t = _only_trade(_run(gap, [1, 0, 0, 0], sl_stop=0.02, tp_stop=0.05))
    assert (t["exit_idx"], t["exit_price"], t["reason"]) == (2, 106.0, "tp")


def test_stop_loss_and_take_profit_in_one_bar_assume_the_stop_loss():
    # open 100, low 97, high 106 reaches both 98 and 105: the stop-loss, 98, is taken
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (100, 106, 97, 104), (104,) * 4]
    res = _run(rows, [1, 0, 0, 0], sl_stop=0.02, tp_stop=0.05)
    t = _only_trade(res)
    assert (t["exit_idx"], t["exit_price"], t["reason"]) == (2, 98.0, "sl")
    assert (res.metrics["n_sl_exits"], res.metrics["n_tp_exits"]) == (1, 0)
    # a short at 100: stop-loss 102, take-profit 95; high 103 and low 94 -> 102
    t = _only_trade(_run([(100, 101, 99, 100), (100, 101, 99, 100), (100, 103, 94, 96),
                          (96,) * 4], [-1, 0, 0, 0], "short", sl_stop=0.02, tp_stop=0.05))
    assert (t["side"], t["exit_price"], t["reason"]) == ("short", 102.0, "sl")


def test_trailing_stop_worked_numbers():
    # long at 100, sl 0.1: the fill's bar (high 130) does not move it; bar 2 (high 120,
    # low 101) does not reach 90, then moves it to 108; bar 3 (open 115, low 107) exits
    # at 108. Had bar 1's high counted, bar 2 would have exited at 110 instead.
    rows = [(100, 101, 99, 100), (100, 130, 100, 110), (110, 120, 101, 115),
            (115, 116, 107, 110), (110,) * 4]
    res = _run(rows, [1, 0, 0, 0, 0], sl_stop=0.1, sl_trail=True)
    t = _only_trade(res)
    assert (t["exit_idx"], t["exit_price"], t["reason"]) == (3, pytest.approx(108.0), "trail")
    assert (res.metrics["n_trail_exits"], res.metrics["n_sl_exits"]) == (1, 0)
    # short at 100, sl 0.1: bar 2's low 80 moves the stop to 88; bar 3 reaches 90 -> 88
    rows = [(100, 101, 99, 100), (100, 101, 70, 90), (90, 99, 80, 85), (85, 90, 84, 89),
            (89,) * 4]
    t = _only_trade(_run(rows, [-1, 0, 0, 0, 0], "short", sl_stop=0.1, sl_trail=True))
    assert (t["exit_idx"], t["exit_price"], t["reason"]) == (3, pytest.approx(88.0), "trail")


def test_stop_fill_pays_slippage_and_fee():
    # 10 bps: the long fills at 100.1; its stop is 100.1 * 0.98 = 98.098, sold at
    # 98.098 * 0.999; fee 0.1 % of each fill's notional
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (99, 100, 97, 99), (99,) * 4]
    res = _run(rows, [1, 0, 0, 0], sl_stop=0.02, fee=0.001, slippage_bps=10)
    t = _only_trade(res)
    entry = 100.0 * 1.001
    exit_px = entry * (1.0 - 0.02) * (1.0 - 0.001)
    qty = 1000.0 / 1.001 / entry
    assert t["entry_price"] == pytest.approx(entry, rel=1e-12)
    assert t["exit_price"] == pytest.approx(exit_px, rel=1e-12)
    assert t["exit_fee"] == pytest.approx(qty * exit_px * 0.001, rel=1e-12)
    assert res.metrics["final_equity"] == pytest.approx(qty * exit_px * 0.999, rel=1e-12)


def test_exit_signal_at_the_open_comes_before_the_stop():
    # Differs from vectorbt (hence by hand): the exit signal of bar 1 fills at bar 2's
    # open, 99, before bar 2's low (97) reaches the stop at 98; vectorbt would exit at 98.
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (99, 100, 97, 98), (98,) * 4]
    res = _run(rows, [1, -1, 0, 0], sl_stop=0.02)
    t = _only_trade(res)
    assert (t["exit_idx"], t["exit_price"], t["reason"]) == (2, 99.0, "signal")
    assert res.metrics["n_sl_exits"] == 0


def test_jit_and_python_kernels_agree_with_stops():
    bars = make_bars(800, seed=5)
    raw = np.random.default_rng(5).choice(np.array([-1, 0, 0, 0, 1], dtype=np.int8), 800)
    kw = dict(bars=bars, direction="both", fee=0.0005, slippage_bps=2, funding=False,
              exchange_filters=False, sl_stop=0.01, tp_stop=0.02, sl_trail=True)
    a = backtest.run(lambda b: raw, jit=True, **kw)
    b = backtest.run(lambda b: raw, jit=False, **kw)
    np.testing.assert_array_equal(a.equity_curve, b.equity_curve)
    assert a.trades.equals(b.trades) and a.metrics["n_trail_exits"] > 0


def test_sweep_with_stops_equals_single_runs():
    bars = make_bars(1500, seed=8)
    kw = dict(bars=bars, fee=0.0005, slippage_bps=1, funding=False, exchange_filters=False,
              sl_stop=0.015, tp_stop=0.03)
    res = backtest.sweep("sma_cross", {"fast": [5, 10], "slow": [30, 60]}, **kw)
    for row in res.to_frame().iter_rows(named=True):
        one = backtest.run("sma_cross", {"fast": row["fast"], "slow": row["slow"]}, **kw)
        for name in ("final_equity", "n_trades", "n_sl_exits", "n_tp_exits", "sharpe"):
            assert row[name] == pytest.approx(one.metrics[name], rel=1e-12)
        assert one.metrics["n_sl_exits"] + one.metrics["n_tp_exits"] > 0


@pytest.mark.parametrize("kw, message", [
    ({"sl_stop": 0.0}, "sl stop must be in (0, 1)"),
    ({"sl_stop": 1.0}, "sl stop must be in (0, 1)"),
    ({"sl_stop": -0.02}, "sl stop must be in (0, 1)"),
    ({"tp_stop": 0.0}, "tp stop must be positive"),
    ({"tp_stop": -0.05}, "tp stop must be positive"),
    ({"sl_trail": True}, "sl trail needs an sl stop"),
])
def test_bad_stops_raise_input_error(kw, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _run([(100, 101, 99, 100)] * 3, [1, 0, 0], **kw)


def _cli(root, bars, cmd, *extra):
    argv = [cmd, "--lake", str(root), "--market", "um", "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(bars.open_time_us[0]), "--end", iso(bars.open_time_us[-1] + 1),
            *extra]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


@pytest.mark.parametrize("cmd", ["run", "sweep"])
@pytest.mark.parametrize("extra", [("--sl-stop", "1.5"), ("--sl-stop", "0"),
                                   ("--tp-stop", "-1")])
def test_cli_bad_stop_is_one_line_exit_2(lake, capsys, cmd, extra):
    root, bars = lake
    assert _cli(root, bars, cmd, "--param", "fast=5", "--param", "slow=20", *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stop must be" in err


def test_cli_run_with_stops_counts_exits(lake, tmp_path):
    root, bars = lake
    out = tmp_path / "run.json"
    assert _cli(root, bars, "run", "--param", "fast=5", "--param", "slow=20", "--no-funding",
                "--no-exchange-filters", "--sl-stop", "0.01", "--tp-stop", "0.02",
                "--sl-trail", "--json", str(out)) == 0
    data = json.loads(out.read_text())
    ours = backtest.run("sma_cross", {"fast": 5, "slow": 20}, bars=bars, funding=False,
                        exchange_filters=False, sl_stop=0.01, tp_stop=0.02, sl_trail=True)
    assert data["n_trail_exits"] == ours.metrics["n_trail_exits"] > 0
    assert data["n_tp_exits"] == ours.metrics["n_tp_exits"]
    assert data["final_equity"] == pytest.approx(ours.metrics["final_equity"], rel=1e-12)


def test_sweep_over_stop_levels_equals_single_runs_per_level():
    bars = make_bars(1200, seed=12)
    kw = dict(bars=bars, fee=0.0005, funding=False, exchange_filters=False)
    res = backtest.sweep("sma_cross", {"fast": [5, 10], "slow": [30]}, sl_stop=[0.01, 0.02],
                         tp_stop=[0.03], sl_trail=True, **kw)
    frame = res.to_frame()
    assert frame.columns[:4] == ["fast", "slow", "sl_stop", "tp_stop"]
    assert frame.height == 4 and res.config["grid_shape"]["sl_stop"] == 2
    assert sorted(set(frame["sl_stop"].to_list())) == [0.01, 0.02]
    for row in frame.iter_rows(named=True):
        one = backtest.run("sma_cross", {"fast": row["fast"], "slow": row["slow"]},
                           sl_stop=row["sl_stop"], tp_stop=row["tp_stop"], sl_trail=True, **kw)
        for name in ("final_equity", "n_trades", "n_trail_exits", "n_tp_exits"):
            assert row[name] == pytest.approx(one.metrics[name], rel=1e-12)
    assert frame["n_trail_exits"].min() > 0


def test_cli_sweep_over_stop_levels(lake, tmp_path):
    root, bars = lake
    out = tmp_path / "sweep.json"
    assert _cli(root, bars, "sweep", "--param", "fast=5", "--param", "slow=20,40",
                "--no-funding", "--no-exchange-filters", "--sl-stop", "0.01:0.04:0.01",
                "--json", str(out)) == 0
    rows = json.loads(out.read_text())  # one object per combination and level
    levels = sorted((r["slow"], r["sl_stop"]) for r in rows)
    assert levels == [(s, pytest.approx(v)) for s in (20, 40) for v in (0.01, 0.02, 0.03)]
    assert _cli(root, bars, "run", "--sl-stop", "0.01:0.04:0.01") == 2
