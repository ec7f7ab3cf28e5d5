"""backtest.walk_forward on lakes written by the lake's own writer (synthetic klines).

Oracles: each fold's choice is an independent `backtest.sweep` of its training window
read from the lake; each fold's out-of-sample equity is an independent `backtest.run`
of the test window given the chosen strategy's signals computed from the range start;
the boundary close is checked against hand-computed fills; the DSR and the PBO equal
`backtest.overfitting` applied to a return matrix built from one `backtest.run` per
combination over the whole range.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.data import load_bars
from backtest.metrics import returns
from backtest.overfitting import deflated_sharpe_ratio, probability_of_backtest_overfitting
from backtest.params import grid_product
from backtest.strategies import REGISTRY
from backtest.walkforward import fold_windows, parse_duration_us
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import to_us
from kline_lake.errors import InputError
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
KEY = SeriesKey("um", "klines", "BTCUSDT", "1h")
GRID = {"fast": [5, 10, 20], "slow": [30, 60]}
RANGE = {"start": "2024-01-01", "end": "2024-07-19"}  # 200 days
SETTINGS = {"fee": 0.0005, "slippage_bps": 2.0, "funding": False, "exchange_filters": False}
DAY_US = 86_400_000_000


def write_lake(root: Path, n_bars: int = 200 * 24, seed: int = 3) -> Path:
    LakeWriter(root).commit(KEY, synthetic_klines(T0_MS, n_bars, "1h", seed=seed))
    return root


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    return write_lake(tmp_path_factory.mktemp("wf-lake"))


@pytest.fixture(scope="module")
def result(lake):
    return backtest.walk_forward("sma_cross", GRID, lake=lake, symbol="BTCUSDT",
                                 interval="1h", train="60d", test="20d", **RANGE, **SETTINGS)


def _best_row(frame, objective: str) -> dict:
    values = np.nan_to_num(frame[objective].to_numpy().astype(float), nan=-np.inf)
    return frame.row(int(np.argmax(values)), named=True)


def test_windows_rolling_and_anchored_by_hand():
    s, d = 0, DAY_US
    rolling = fold_windows(s, 100 * d, 50 * d, 20 * d)
    assert rolling == [(0, 50 * d, 50 * d, 70 * d), (20 * d, 70 * d, 70 * d, 90 * d)]
    anchored = fold_windows(s, 100 * d, 50 * d, 20 * d, anchored=True)
    assert anchored == [(0, 50 * d, 50 * d, 70 * d), (0, 70 * d, 70 * d, 90 * d)]
    assert parse_duration_us("180d", "train") == 180 * d
    assert parse_duration_us("12h", "t") == 12 * 3_600_000_000
    assert parse_duration_us("90m", "t") == 90 * 60_000_000
    assert parse_duration_us("2w", "t") == 14 * d


@pytest.mark.parametrize(("call", "message"), [
    (lambda: fold_windows(0, 60 * DAY_US, 50 * DAY_US, 20 * DAY_US), "longer than the range"),
    (lambda: fold_windows(0, 80 * DAY_US, 50 * DAY_US, 20 * DAY_US), "at least two folds"),
    (lambda: parse_duration_us("180x", "train"), "not a duration"),
    (lambda: parse_duration_us("0d", "test"), "positive"),
])
def test_window_bad_input(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_unknown_objective_is_input_error(lake):
    with pytest.raises(InputError, match="unknown objective 'sortino'"):
        backtest.walk_forward("sma_cross", GRID, lake=lake, train="60d", test="20d",
                              objective="sortino", **RANGE)


def test_json_shape_and_windows(result):
    d = result.to_dict()
    assert list(d) == ["folds", "out_of_sample", "deflated_sharpe", "pbo"]
    assert len(d["folds"]) == 7  # (200 - 60) / 20
    for k, fold in enumerate(d["folds"]):
        assert set(fold) == {"train", "test", "params", "in_sample", "out_of_sample"}
        assert fold["train"] == [_iso_day(20 * k), _iso_day(60 + 20 * k)]
        assert fold["test"] == [_iso_day(60 + 20 * k), _iso_day(80 + 20 * k)]
        assert set(fold["params"]) == {"fast", "slow"}
    assert d["out_of_sample"]["n_bars"] == 140 * 24
    assert result.equity.height == 140 * 24
    assert math.isfinite(d["deflated_sharpe"]["dsr"]) and 0.0 <= d["pbo"]["pbo"] <= 1.0
    assert result.warnings == []  # 200 days = 60 + 7 * 20: no untested tail


def _iso_day(days: int) -> str:
    return np.datetime_as_string(np.datetime64("2024-01-01") + np.timedelta64(days, "D")) \
        + "T00:00:00Z"


def test_choices_equal_an_independent_sweep_of_each_training_window(lake, result):
    for fold in result.folds:
        sw = backtest.sweep("sma_cross", GRID, lake=lake, start=fold.train[0],
                            end=fold.train[1], **SETTINGS).to_frame()
        best = _best_row(sw, "sharpe")
        assert fold.params == {"fast": best["fast"], "slow": best["slow"]}
        assert fold.in_sample["sharpe"] == pytest.approx(best["sharpe"], rel=1e-12)
        assert fold.in_sample["final_equity"] == pytest.approx(best["final_equity"], rel=1e-12)


def _closed_value(run_result, fee: float, slip: float) -> float:
    """Hand close of the run's last position at its last close (long or flat here)."""
    eq = run_result.equity
    qty, close = float(eq["position"][-1]), float(eq["close"][-1])
    cash = float(eq["cash"][-1])
    return cash + qty * close * (1 - slip) * (1 - fee) if qty else float(eq["equity"][-1])


def test_out_of_sample_equals_independent_runs_with_warm_signals(lake, result):
    bars = load_bars(lake, "um", "BTCUSDT", "1h", to_us(RANGE["start"]), to_us(RANGE["end"]))
    capital = 10_000.0
    closes = 0
    for k, fold in enumerate(result.folds):
        c, d = to_us(fold.test[0]), to_us(fold.test[1])
        hi = int(np.searchsorted(bars.open_time_us, d))
        lo = int(np.searchsorted(bars.open_time_us, c))
        prefix = backtest.Bars("um", "BTCUSDT", "1h", *(a[:hi] for a in (
            bars.open_time_us, bars.open, bars.high, bars.low, bars.close, bars.volume)))
        sig = REGISTRY["sma_cross"].signals(prefix, fold.params)[lo:]

        def given(b, _sig=sig):
            return _sig

        independent = backtest.run(given, lake=lake, start=fold.test[0], end=fold.test[1],
                                   cash=capital, **SETTINGS)
        expect = _closed_value(independent, 0.0005, 2e-4)
        closes += independent.equity["position"][-1] != 0
        assert fold.out_of_sample["final_equity"] == pytest.approx(expect, rel=1e-12)
        stitched = result.equity.filter(result.equity["fold"] == k)["equity"].to_numpy()
        np.testing.assert_allclose(stitched[:-1], independent.equity_curve[:-1], rtol=1e-12)
        capital = expect  # capital carried forward
    assert result.out_of_sample["final_equity"] == pytest.approx(capital, rel=1e-12)
    assert closes >= 1  # the boundary close was exercised


def test_dsr_and_pbo_equal_overfitting_on_full_range_runs(lake, result):
    cols, sharpes, finals = [], [], []
    for point in grid_product(GRID):
        if point["fast"] >= point["slow"]:
            continue
        r = backtest.run("sma_cross", point, lake=lake, **RANGE, **SETTINGS)
        cols.append(returns(r.equity_curve, 10_000.0))
        sharpes.append(r.metrics["sharpe"])
        finals.append(point)
    matrix = np.column_stack(cols)
    k = int(np.nanargmax(sharpes))
    col_sr = matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)
    dsr = deflated_sharpe_ratio(matrix[:, k], col_sr)
    got = result.deflated_sharpe
    assert got["params"] == finals[k]
    assert got["n_trials"] == 6
    assert got["dsr"] == pytest.approx(dsr.dsr, rel=1e-9)
    assert got["expected_max_sharpe"] == pytest.approx(dsr.expected_max_sharpe, rel=1e-9)
    pbo = probability_of_backtest_overfitting(matrix, 16)
    assert result.pbo["pbo"] == pytest.approx(pbo.pbo, abs=1e-12)
    assert result.pbo["n_splits"] == 12870
    # the hindsight curve is the full-sample best, rebased at the first test bar
    best = backtest.run("sma_cross", finals[k], lake=lake, **RANGE, **SETTINGS).equity_curve
    lo = 60 * 24
    np.testing.assert_allclose(result.equity["in_sample_best"].to_numpy(),
                               best[lo:] / best[lo - 1] * 10_000.0, rtol=1e-12)


def test_sharpe_gap_is_in_sample_minus_out_of_sample(result):
    oos = result.out_of_sample
    mean_is = np.mean([f.in_sample["sharpe"] for f in result.folds])
    assert oos["in_sample_sharpe"] == pytest.approx(mean_is, rel=1e-12)
    assert oos["sharpe_gap"] == pytest.approx(mean_is - oos["sharpe"], rel=1e-12)


def test_anchored_and_objectives(lake):
    res = backtest.walk_forward("sma_cross", GRID, lake=lake, train="60d", test="20d",
                                anchored=True, objective="total_return", **RANGE, **SETTINGS)
    assert all(f.train[0] == "2024-01-01T00:00:00Z" for f in res.folds)
    last = res.folds[-1]
    sw = backtest.sweep("sma_cross", GRID, lake=lake, start=last.train[0], end=last.train[1],
                        **SETTINGS).to_frame()
    best = _best_row(sw, "total_return")
    assert last.params == {"fast": best["fast"], "slow": best["slow"]}
    assert res.deflated_sharpe["objective"] == "total_return"


def test_boundary_close_and_carry_by_hand(tmp_path):
    # 10 days, train 4d, test 3d -> 2 folds; a strategy long from 03:00 each day enters
    # at the 04:00 open of each test window and holds to its last bar, where it closes.
    root = write_lake(tmp_path, n_bars=10 * 24, seed=9)
    fee, slip = 0.001, 0.001

    def at_hour(bars, hour=3):
        h = (bars.open_time_us // 3_600_000_000) % 24
        return np.where(h == hour, 1, 0)

    res = backtest.walk_forward(at_hour, {"hour": [3]}, lake=root, start="2024-01-01",
                                end="2024-01-11", train="4d", test="3d", fee=fee,
                                slippage_bps=10.0, funding=False, exchange_filters=False)
    bars = load_bars(root, "um", "BTCUSDT", "1h", to_us("2024-01-01"), to_us("2024-01-11"))
    t_us, open_, close = bars.open_time_us, bars.open, bars.close
    capital = 10_000.0
    for day in (4, 7):
        entry = int(np.searchsorted(t_us, to_us(f"2024-01-{day + 1:02d}") + 4 * 3_600_000_000))
        last = int(np.searchsorted(t_us, to_us(f"2024-01-{day + 4:02d}"))) - 1
        adj = open_[entry] * (1 + slip)
        qty = capital / (1 + fee) / adj  # all-in: notional plus fee = capital
        capital = qty * close[last] * (1 - slip) * (1 - fee)
    assert res.out_of_sample["final_equity"] == pytest.approx(capital, rel=1e-12)
    assert res.folds[1].out_of_sample["total_return"] == pytest.approx(
        capital / res.folds[0].out_of_sample["final_equity"] - 1.0, rel=1e-12)
    # both trades were closed at their boundary, so the closed-trade statistics exist
    assert res.out_of_sample["n_trades"] == 2 and math.isfinite(res.out_of_sample["win_rate"])
    assert res.equity["equity"][-1] == pytest.approx(capital, rel=1e-12)
    assert res.pbo is None and "no PBO" in " ".join(res.warnings)


def test_pick_ranks_nan_last_and_inf_first():
    import polars as pl

    from backtest.walkforward import _pick

    frame = pl.DataFrame({"calmar": [1.0, np.nan, np.inf, 2.0, np.inf]})
    assert _pick(frame, "calmar") == (2, True)  # +inf (no drawdown) is best; first of ties
    assert _pick(pl.DataFrame({"sharpe": [np.nan, np.nan]}), "sharpe") == (0, False)
    assert _pick(pl.DataFrame({"sharpe": [np.nan, -1.0, 0.5]}), "sharpe") == (2, True)


def test_boundary_close_of_a_short_by_hand(tmp_path):
    # as above, short: sells at the 04:00 open, buys back at the test window's last close
    root = write_lake(tmp_path, n_bars=10 * 24, seed=9)
    fee, slip = 0.001, 0.001

    def short_at_hour(bars, hour=3):
        h = (bars.open_time_us // 3_600_000_000) % 24
        return np.where(h == hour, -1, 0)

    res = backtest.walk_forward(short_at_hour, {"hour": [3]}, lake=root, start="2024-01-01",
                                end="2024-01-11", train="4d", test="3d", fee=fee,
                                slippage_bps=10.0, funding=False, exchange_filters=False,
                                direction="short")
    bars = load_bars(root, "um", "BTCUSDT", "1h", to_us("2024-01-01"), to_us("2024-01-11"))
    t_us, open_, close = bars.open_time_us, bars.open, bars.close
    capital = 10_000.0
    for day in (4, 7):
        entry = int(np.searchsorted(t_us, to_us(f"2024-01-{day + 1:02d}") + 4 * 3_600_000_000))
        last = int(np.searchsorted(t_us, to_us(f"2024-01-{day + 4:02d}"))) - 1
        adj = open_[entry] * (1 - slip)
        qty = capital / (adj * (1 + fee))  # short all-in: proceeds net of fee
        cash = capital + qty * adj * (1 - fee)
        capital = cash - qty * close[last] * (1 + slip) * (1 + fee)
    assert res.out_of_sample["final_equity"] == pytest.approx(capital, rel=1e-12)
    assert res.out_of_sample["n_trades"] == 2 and math.isfinite(res.out_of_sample["win_rate"])


def test_funding_reaches_every_test_window_with_bars_given():
    # In-memory bars and funding events (every 8 h at a bar open): each fold's
    # out-of-sample funding equals an independent run of its window with the same events.
    from backtest.data import FundingEvents

    n = 120 * 24
    rng = np.random.default_rng(2)
    t_us = (T0_MS + np.arange(n, dtype=np.int64) * 3_600_000) * 1000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    open_ = np.r_[100.0, close[:-1]]
    bars = backtest.Bars("um", "BTCUSDT", "1h", t_us, open_, np.maximum(open_, close) * 1.001,
                         np.minimum(open_, close) * 0.999, close, np.ones(n))
    events = FundingEvents(t_us[::8], np.full(n // 8, 0.0003), close[::8])
    opts = {"fee": 0.0005, "exchange_filters": False, "direction": "both"}
    res = backtest.walk_forward("sma_cross", GRID, bars=bars, funding_events=events,
                                train="40d", test="20d", **opts)
    assert len(res.folds) == 4
    capital = 10_000.0
    for fold in res.folds:
        lo, hi = (int(np.searchsorted(t_us, to_us(x))) for x in fold.test)
        prefix = backtest.Bars("um", "BTCUSDT", "1h", t_us[:hi], open_[:hi], bars.high[:hi],
                               bars.low[:hi], close[:hi], np.ones(hi))
        sig = REGISTRY["sma_cross"].signals(prefix, fold.params)[lo:]
        window = backtest.Bars("um", "BTCUSDT", "1h", t_us[lo:hi], open_[lo:hi],
                               bars.high[lo:hi], bars.low[lo:hi], close[lo:hi], np.ones(hi - lo))

        def given(b, _sig=sig):
            return _sig

        ind = backtest.run(given, bars=window, funding_events=events, cash=capital, **opts)
        assert ind.metrics["funding_paid"] != 0.0
        assert fold.out_of_sample["funding_paid"] == pytest.approx(
            ind.metrics["funding_paid"], rel=1e-12)
        capital = fold.out_of_sample["final_equity"]
