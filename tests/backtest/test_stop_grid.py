"""Stop levels as grid dimensions of one batched kernel call (issue 14).

A sweep over parameters x stop levels runs the batch kernel once over every
(point, level) pair, loading the data once; its rows equal, value for value, separate
single-level sweeps and single `backtest.run` calls.
"""

from __future__ import annotations

import importlib

import numpy as np
import polars as pl
import pytest

import backtest
import backtest.engine as engine
from backtest.stop_grid import stop_grid, stop_levels
from kline_lake.errors import InputError
from tests.support.backtest import make_bars

sweep_mod = importlib.import_module("backtest.sweep")  # the package exports the function

KW = dict(fee=0.0005, slippage_bps=2.0, funding=False, exchange_filters=False,
          direction="both")


def _counting(monkeypatch, name):
    calls = []
    real = getattr(sweep_mod, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, name, wrapper)
    return calls


@pytest.mark.parametrize("strategy,params,kernel", [
    ("sma_cross", {"fast": [5, 8, 40], "slow": [20, 30]}, "sweep_cross_nb"),
    ("donchian", {"window": [10, 20]}, "sweep_signals_nb"),
])
def test_stop_levels_are_one_kernel_call_equal_to_single_level_sweeps(
        monkeypatch, strategy, params, kernel):
    bars = make_bars(900, seed=21)
    loads = _counting(monkeypatch, "load_market_data")
    calls = _counting(monkeypatch, kernel)
    sl, tp = [0.01, 0.02, 0.04], [0.03, 0.06]
    res = backtest.sweep(strategy, params, bars=bars, sl_stop=sl, tp_stop=tp, sl_trail=True,
                         jit=True, **KW)
    assert len(loads) == 1 and len(calls) == 1
    frame = res.to_frame()
    n_params = frame.height // (len(sl) * len(tp))
    # one kernel call over every (point, level): stop arrays per point, signal inputs
    # indexed, not copied (generic: one signal row per parameter point)
    args = calls[0]
    sl_arr, tp_arr = args[-4], args[-3]  # then sl_trail, inverse
    assert sl_arr.shape == tp_arr.shape == (frame.height,)
    if kernel == "sweep_signals_nb":
        assert args[4].shape[0] == n_params and args[5].shape == (frame.height,)
    names = list(params)
    assert frame.columns[:len(names) + 2] == names + ["sl_stop", "tp_stop"]
    assert res.config["grid_shape"] == {k: len(v) for k, v in params.items()} | {
        "sl_stop": 3, "tp_stop": 2}
    parts = []
    for s in sl:
        for t in tp:
            one = backtest.sweep(strategy, params, bars=bars, sl_stop=s, tp_stop=t,
                                 sl_trail=True, **KW).to_frame()
            parts.append(one.with_columns(sl_stop=pl.lit(s), tp_stop=pl.lit(t)))
    expected = pl.concat(parts).select(frame.columns)
    assert frame.equals(expected)  # same rows, same order, bit for bit
    assert frame["n_trail_exits"].sum() > 0 and frame["n_tp_exits"].sum() > 0
    for row in frame.sample(4, seed=3).iter_rows(named=True):
        one = backtest.run(strategy, {k: row[k] for k in names}, bars=bars,
                           sl_stop=row["sl_stop"], tp_stop=row["tp_stop"], sl_trail=True, **KW)
        for name in ("final_equity", "sharpe", "n_trades", "n_trail_exits", "n_tp_exits",
                     "fees_paid"):
            assert row[name] == pytest.approx(one.metrics[name], rel=1e-12, nan_ok=True)


def test_chunked_stop_grid_equals_one_chunk():
    bars = make_bars(600, seed=5)
    strat = backtest.strategies.get_strategy("sma_cross")
    data = engine.load_market_data(None, "um", "", "1h", None, None, bars=bars, funding=False)
    config = engine.make_config(fee=0.0005, slippage_bps=2.0, funding=False, direction="both")
    stops = stop_grid(config, {"sl_stop": [0.01, 0.03], "tp_stop": [0.02, 0.05, 0.1]})
    grid = {"fast": [5, 10, 30], "slow": [10, 20, 40]}  # fast >= slow points skipped
    whole = sweep_mod.run_chunks(strat, grid, data, config, 100, True, stops)
    pieces = sweep_mod.run_chunks(strat, grid, data, config, 1, True, stops)
    assert whole.frame.height == 6 * 6 and whole.n_skipped == 3
    assert whole.frame.equals(pieces.frame)


def test_stop_level_input_errors():
    bars = make_bars(200, seed=1)
    with pytest.raises(InputError, match="sl stop must be in"):
        backtest.sweep("sma_cross", {"fast": [5], "slow": [20]}, bars=bars,
                       sl_stop=[0.01, 1.5], **KW)
    with pytest.raises(InputError, match="at least one level"):
        stop_levels({"tp_stop": []})
    with pytest.raises(InputError, match="takes one value"):
        backtest.run("sma_cross", {"fast": 5, "slow": 20}, bars=bars, sl_stop=[0.01, 0.02])
    assert stop_levels({"sl_stop": np.array([0.01, 0.02]), "tp_stop": 0.1}) == {
        "sl_stop": [0.01, 0.02]}
