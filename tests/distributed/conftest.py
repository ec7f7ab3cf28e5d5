"""Fixtures for the Dask tests: a lake. The real LocalCluster of 2 worker processes is
tests/conftest.py's session-wide `cluster`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.backtest import make_bars, write_funding, write_klines


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory):
    """3000 hourly um BTCUSDT bars with 8-hourly funding (small non-zero rates)."""
    root = tmp_path_factory.mktemp("lake")
    b = make_bars(3000, seed=7)
    write_klines(root, b)
    times = np.arange(b.open_time_us[0], b.open_time_us[-1] + 3_600_000_000,
                      8 * 3_600_000_000)
    rates = np.random.default_rng(3).normal(1e-4, 1e-4, len(times))
    write_funding(root, "um", "BTCUSDT", times, rates)
    return root, b
