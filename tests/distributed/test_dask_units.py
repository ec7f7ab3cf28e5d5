"""backtest.distributed without a cluster: addresses, task sizes, grid slices."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from backtest.distributed import grid_slice, parse_address, task_points
from backtest.params import grid_product
from kline_lake.errors import InputError


@pytest.mark.parametrize(("text", "want"), [
    ("local:2", ("local", 2)), (" local:16 ", ("local", 16)),
    ("tcp://127.0.0.1:8786", ("remote", "tcp://127.0.0.1:8786")),
    ("tls://scheduler.example:8786", ("remote", "tls://scheduler.example:8786")),
    ("tcp://[::1]:8786", ("remote", "tcp://[::1]:8786")),
])
def test_parse_address_accepts(text, want):
    assert parse_address(text) == want


@pytest.mark.parametrize("text", ["local:0", "local:x", "local", "127.0.0.1:8786",
                                  "http://h:8786", "tcp://h", "tcp://h:0", "tcp://h:70000",
                                  "", "local:-1"])
def test_parse_address_refuses_in_one_line(text):
    with pytest.raises(InputError) as exc:
        parse_address(text)
    assert "\n" not in str(exc.value) and repr(text.strip()) in str(exc.value)


def test_grid_slice_is_grid_product_in_pieces():
    grid = {"a": [1, 2, 3], "b": [10.5, 20], "c": ["x", "y", "z", "w"]}
    whole = grid_product(grid)
    assert len(whole) == 24
    for lo, hi in itertools.combinations(range(0, 26, 3), 2):
        assert grid_slice(grid, lo, hi) == whole[lo:hi]
    pieces = [grid_slice(grid, k * 5, (k + 1) * 5) for k in range(5)]
    assert [p for piece in pieces for p in piece] == whole


@pytest.mark.parametrize(("n_points", "chunk", "workers", "want"), [
    (400, 10**6, 2, 50),   # 4 tasks per worker: ceil(400 / 8)
    (400, 30, 2, 30),      # the memory plan's chunk caps it
    (3, 10**6, 2, 1),
    (1, 1, 64, 1),
])
def test_task_points(n_points, chunk, workers, want):
    assert task_points(n_points, chunk, workers) == want


def test_plain_runs_do_not_import_dask():
    code = ("import sys, backtest, backtest.sweep, backtest.cli; "
            "print(any(m == 'dask' or m.startswith(('dask.', 'distributed')) "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_long_lived_worker_does_not_serve_an_earlier_sweeps_bars(tmp_path):
    """A worker caches the bars of a sweep's `LakeSource`; a later sweep of the same
    range (on a lake that has grown since) gets a fresh token and reads the lake again."""
    from backtest.engine import make_config
    from backtest.sweep import _lake_data, _lake_source
    from kline_lake.core.series import SeriesKey
    from kline_lake.lake.synthetic import synthetic_klines
    from kline_lake.lake.writer import LakeWriter
    from tests.support.lake import JAN_2024_MS

    day_ms, key = 86_400_000, SeriesKey("um", "klines", "BTCUSDT", "1h")
    bars = synthetic_klines(JAN_2024_MS, 4 * 24, seed=5, interval="1h")
    writer = LakeWriter(tmp_path)
    writer.commit(key, bars.slice(0, 2 * 24),
                  covered=[(JAN_2024_MS * 1000, (JAN_2024_MS + 2 * day_ms) * 1000)])
    config = make_config(market="um", funding=False)
    args = (tmp_path, config, "BTCUSDT", "1h", "2024-01-01", "2024-01-05", True)
    first = _lake_data(_lake_source(*args))
    writer.commit(key, bars.slice(2 * 24),
                  covered=[(JAN_2024_MS * 1000, (JAN_2024_MS + 4 * day_ms) * 1000)])
    again = _lake_data(_lake_source(*args))
    assert len(first.bars.close) == 2 * 24 and len(again.bars.close) == 4 * 24
