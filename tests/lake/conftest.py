"""Shared fixtures for the lake tests: real directories, real Parquet."""

from __future__ import annotations

import pytest

from kline_lake.core.series import SeriesKey
from kline_lake.lake.writer import LakeWriter
from tests.support.storage import bucket, s3_env, s3_server

__all__ = ["bucket", "s3_env", "s3_server"]  # the object-store fixtures, one server a session


@pytest.fixture
def lake_root(tmp_path):
    return tmp_path / "lake"


@pytest.fixture
def writer(lake_root):
    return LakeWriter(lake_root)


@pytest.fixture
def btc_1m():
    return SeriesKey("um", "klines", "BTCUSDT", "1m")
