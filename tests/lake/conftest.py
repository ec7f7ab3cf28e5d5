"""Shared fixtures for the lake tests: real directories, real Parquet."""

from __future__ import annotations

import pytest

from kline_lake.lake_writer import LakeWriter, SeriesKey

JAN_2024_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
MINUTE_MS = 60_000
MINUTE_US = 60_000_000


@pytest.fixture
def lake_root(tmp_path):
    return tmp_path / "lake"


@pytest.fixture
def writer(lake_root):
    return LakeWriter(lake_root)


@pytest.fixture
def btc_1m():
    return SeriesKey("um", "klines", "BTCUSDT", "1m")
