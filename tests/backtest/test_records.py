"""Named records: orders, trades and metrics are structured arrays read by field name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.engine import load_market_data, make_config, simulate
from backtest.metrics import METRIC_NAMES, compute_metrics
from backtest.records import (
    KIND_SIGNAL,
    METRICS_DT,
    ORDER_DT,
    TRADE_CLOSED,
    TRADE_DT,
    TRADE_OPEN,
)
from tests.support.backtest import make_bars

ROOT = Path(__file__).resolve().parents[2]


def test_simulate_fills_named_records_by_hand():
    # long at bar 1's open (110), reversed to short at bar 2's open (120), flat at the end
    open_ = np.array([100.0, 110.0, 120.0, 130.0])
    close = np.array([105.0, 115.0, 125.0, 128.0])
    bars = backtest.Bars("um", "X", "1h", np.arange(4, dtype=np.int64) * 3_600_000_000,
                         open_, open_ + 10, open_ - 10, close, np.ones(4))
    cfg = make_config(cash=1000.0, fee=0.001, direction="both", funding=False)
    data = load_market_data(None, "um", "X", "1h", None, None, bars=bars, funding=False)
    sim = simulate(data, np.array([1, -1, 0, 0], dtype=np.int8), cfg)
    orders, trades = sim["orders"], sim["trades"]
    assert orders.dtype == ORDER_DT and trades.dtype == TRADE_DT
    q1 = (1000.0 / 1.001) / 110.0
    cash1 = q1 * 120.0 * 0.999
    q2 = cash1 / (120.0 * 1.001)
    assert orders["idx"].tolist() == [1, 2, 2]
    assert orders["side"].tolist() == [1, -1, -1]
    assert orders["kind"].tolist() == [KIND_SIGNAL] * 3
    np.testing.assert_allclose(orders["qty"], [q1, q1, q2], rtol=1e-12)
    np.testing.assert_allclose(orders["price"], [110.0, 120.0, 120.0], rtol=0)
    first, last = trades
    assert (first["entry_idx"], first["exit_idx"], first["side"]) == (1, 2, 1)
    assert first["status"] == TRADE_CLOSED
    assert first["pnl"] == pytest.approx(cash1 - 1000.0, rel=1e-12)
    assert (last["entry_idx"], last["exit_idx"], last["side"]) == (2, 3, -1)
    assert last["status"] == TRADE_OPEN and last["exit_price"] == 128.0
    assert last["exit_fee"] == 0.0


def test_metric_record_fields_are_the_reported_metrics():
    assert METRICS_DT["n_trades"] == np.int64  # counts stay integers in every record
    # the exits per stop reason (issue 14), after the funding paid, before the ruin
    names = list(METRICS_DT.names)
    exits = ["n_sl_exits", "n_tp_exits", "n_trail_exits"]
    assert names[names.index("funding_paid") + 1:names.index("ruined")] == exits
    assert all(METRICS_DT[name] == np.int64 for name in exits)
    assert TRADE_DT["reason"] == np.int64
    bars = make_bars(600, seed=3)
    run = backtest.run("sma_cross", {"fast": 5, "slow": 20}, bars=bars, funding=False)
    grid = backtest.sweep("sma_cross", {"fast": [5], "slow": [20]}, bars=bars, funding=False)
    row = grid.to_frame().row(0, named=True)
    assert list(run.metrics)[:len(METRIC_NAMES)] == list(METRIC_NAMES)
    assert "ruin_time" in run.metrics
    for name in METRIC_NAMES:
        assert row[name] == pytest.approx(run.metrics[name], rel=1e-12, nan_ok=True), name
    assert isinstance(run.metrics["n_trades"], int)
    assert isinstance(run.metrics["n_sl_exits"], int) and run.metrics["n_sl_exits"] == 0


def test_a_float_matrix_is_not_a_trade_record_array():
    with pytest.raises(ValueError, match="TRADE_DT"):
        compute_metrics([1.0], [0.0], np.zeros((1, 11)), 1.0, 0.0, 0.0, 1.0)


def test_no_reader_counts_columns():
    """Records are read by field name: no column-number indexing (a slice then an
    integer) in any module or test that handles the kernels' records."""
    pattern = re.compile(r"\[\s*:\s*,\s*-?\d+\s*\]")
    readers = re.compile(r"backtest\.(records|kernels|batch|metrics|results|engine)\b"
                         r"|\bsimulate\(")
    offenders, checked = [], 0
    for folder in ("backtest", "tests/backtest", "tests/report"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text()
            if not readers.search(text):
                continue
            checked += 1
            for no, line in enumerate(text.splitlines(), 1):
                if pattern.search(line) and "re.compile" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{no}: {line.strip()}")
    assert checked >= 10 and offenders == []
