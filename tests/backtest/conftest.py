"""Fixtures for the backtester tests (helpers live in tests/support/backtest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtest.data import Bars
from tests.support.backtest import make_bars, write_funding, write_klines


@pytest.fixture
def bars() -> Bars:
    return make_bars()


@pytest.fixture
def lake(tmp_path: Path) -> tuple[Path, Bars]:
    """A lake with 3000 hourly um BTCUSDT bars (4+ months, several partitions) and
    8-hourly funding records at rate 0 over them: runs with funding on pass the funding
    coverage check (`backtest.coverage`) and charge nothing."""
    b = make_bars(3000, seed=7)
    write_klines(tmp_path, b)
    times = np.arange(b.open_time_us[0], b.open_time_us[-1] + 3_600_000_000, 8 * 3_600_000_000)
    write_funding(tmp_path, "um", "BTCUSDT", times, np.zeros(len(times)))
    return tmp_path, b
