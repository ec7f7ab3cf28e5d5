"""No look-ahead, proven: changing the lake after fold k's training window leaves fold k's
choice (and every earlier fold's) unchanged.

Lakes are written with the lake's writer: identical up to the end of fold 2's training
window, different from there on (another, ten times more volatile walk; or only the
test window's first day 30 % higher). A control shows the change is big enough to
matter: a sweep that peeks one test window past the boundary picks different
parameters on the two lakes, so a walk-forward that looked ahead would fail this test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import backtest
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import to_us
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
N_BARS = 200 * 24
KEY = SeriesKey("um", "klines", "BTCUSDT", "1h")
GRID = {"fast": [3, 5, 8, 12, 20], "slow": [24, 36, 48, 72]}
OPTS = {"start": "2024-01-01", "end": "2024-07-19", "train": "60d", "test": "20d",
        "fee": 0.0005, "funding": False, "exchange_filters": False}
FOLD = 2
BOUNDARY = "2024-04-10"  # fold 2 trains on [day 40, day 100): day 100 is 2024-04-10
PRICES = ("open", "high", "low", "close")


def _after(table: pa.Table) -> np.ndarray:
    t_ms = pc.cast(table["open_time"], pa.int64()).to_numpy()
    unit = table.schema.field("open_time").type.unit
    scale = {"s": 1_000_000, "ms": 1000, "us": 1, "ns": 0.001}[unit]
    return t_ms * scale >= to_us(BOUNDARY)


def _replace_prices(table: pa.Table, mask: np.ndarray, new: dict[str, np.ndarray]) -> pa.Table:
    for name in PRICES:
        values = np.where(mask, new[name], table[name].to_numpy())
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(values))
    return table


def _lake(root: Path, table: pa.Table) -> Path:
    LakeWriter(root).commit(KEY, table)
    return root


def _walk(seed: int, n: int, start: float, vol: float) -> dict[str, np.ndarray]:
    """A seeded random walk of `n` bars from `start` with consistent OHLC."""
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.r_[start, close[:-1]]
    spread = np.abs(rng.normal(0.0, vol / 2, n))
    return {"open": open_, "close": close, "high": np.maximum(open_, close) * (1 + spread),
            "low": np.minimum(open_, close) * (1 - spread)}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory) -> dict[str, Path]:
    base = synthetic_klines(T0_MS, N_BARS, "1h", seed=3)
    after = _after(base)
    first = int(np.argmax(after))
    # from the boundary on: another walk, ten times as volatile, from the last close
    walk = _walk(77, N_BARS - first, float(base["close"][first - 1].as_py()), 0.01)
    tail = {n: np.r_[np.zeros(first), v] for n, v in walk.items()}
    spike = {n: base[n].to_numpy() * 1.3 for n in PRICES}
    one_day = np.zeros_like(after)
    one_day[first:first + 24] = True  # only the test window's first day: 30 % higher
    make = tmp_path_factory.mktemp
    return {
        "base": _lake(make("base"), base),
        "tail": _lake(make("tail"), _replace_prices(base, after, tail)),
        "spike": _lake(make("spike"), _replace_prices(base, one_day, spike)),
    }


@pytest.fixture(scope="module")
def results(lakes) -> dict[str, backtest.walkforward.WalkForwardResult]:
    return {name: backtest.walk_forward("sma_cross", GRID, lake=root, **OPTS)
            for name, root in lakes.items()}


@pytest.mark.parametrize("perturbed", ["tail", "spike"])
def test_choice_of_fold_does_not_see_data_after_its_training_window(results, perturbed):
    base, other = results["base"], results[perturbed]
    assert base.folds[FOLD].train[1] == "2024-04-10T00:00:00Z"
    for k in range(FOLD + 1):  # this fold and every earlier one
        assert other.folds[k].params == base.folds[k].params
        assert other.folds[k].in_sample == base.folds[k].in_sample
    for k in range(FOLD):  # earlier folds' tests end before the change
        assert other.folds[k].out_of_sample == base.folds[k].out_of_sample
    # the change is real: the folds that may read it (fold 2's test, later folds'
    # training and tests) see it somewhere
    later = [(f.params, f.in_sample, f.out_of_sample) for f in base.folds[FOLD:]]
    assert [(f.params, f.in_sample, f.out_of_sample) for f in other.folds[FOLD:]] != later
    assert other.folds[FOLD + 1].in_sample != base.folds[FOLD + 1].in_sample


def test_the_tail_change_would_catch_look_ahead(lakes, results):
    # Control: training on fold 2's window *plus* its test window (a look-ahead) picks
    # different parameters on the two lakes; a leaky walk-forward would differ too.
    fold = results["base"].folds[FOLD]
    picks = []
    for name in ("base", "tail"):
        sw = backtest.sweep("sma_cross", GRID, lake=lakes[name], start=fold.train[0],
                            end=fold.test[1], fee=0.0005, funding=False,
                            exchange_filters=False).to_frame()
        row = sw.row(int(np.nanargmax(sw["sharpe"].to_numpy())), named=True)
        picks.append((row["fast"], row["slow"]))
    assert picks[0] != picks[1]
