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
