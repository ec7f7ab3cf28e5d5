"""Fixtures for the backtester tests (helpers live in bt_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bt_helpers import make_bars, write_klines

from backtest.data import Bars


@pytest.fixture
def bars() -> Bars:
    return make_bars()


@pytest.fixture
def lake(tmp_path: Path) -> tuple[Path, Bars]:
    """A lake with 3000 hourly um BTCUSDT bars (4+ months, several partitions)."""
    b = make_bars(3000, seed=7)
    write_klines(tmp_path, b)
    return tmp_path, b
