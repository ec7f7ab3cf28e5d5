"""Resampled lake klines equal the fake exchange's own higher intervals (over loopback)."""

from __future__ import annotations

import httpx
import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from kline_lake import Lake
from kline_lake.core.series import SeriesKey
from kline_lake.download.rest_rows import parse_rest_klines
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.writer import LakeWriter

NOW_MS = 1_735_689_600_000  # 2025-01-01: everything below is closed
MAY_13_MS = 1_715_558_400_000  # 2024-05-13, a Monday; um maintenance 2024-05-15 03:00-05:00
WEEK_MS = 7 * 86_400_000
APR_1_MS = 1_711_929_600_000
JUL_1_MS = 1_719_792_000_000


def _fetch(client: httpx.Client, interval: str, start_ms: int, end_ms: int) -> pa.Table:
    tables, cursor = [], start_ms
    while cursor < end_ms:
        resp = client.get("/fapi/v1/klines", params={
            "symbol": "BTCUSDT", "interval": interval, "startTime": cursor,
            "endTime": end_ms - 1, "limit": 1500})
        resp.raise_for_status()
        rows = resp.json()
        if not rows:
            break
        tables.append(parse_rest_klines(rows, "klines"))
        cursor = rows[-1][0] + 1
    return pa.concat_tables(tables)


def _assert_same(ours: pl.DataFrame, served: pa.Table) -> None:
    theirs = pl.from_arrow(served)
    assert ours["open_time"].to_list() == theirs["open_time"].to_list()
    for col in ("open", "high", "low", "close", "trades", "close_time"):
        assert ours[col].to_list() == theirs[col].to_list(), col
    for col in ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume"):
        # sums of decimal strings parsed to float: equal up to float rounding
        np.testing.assert_allclose(ours[col].to_numpy(), theirs[col].to_numpy(), rtol=1e-12)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("lake")
    with FakeExchange(seed=1, now_ms=NOW_MS) as fx, httpx.Client(base_url=fx.base_url,
                                                                  timeout=30) as client:
        writer = LakeWriter(root)
        week_end = MAY_13_MS + WEEK_MS
        writer.commit(SeriesKey("um", "klines", "BTCUSDT", "1m"),
                      _fetch(client, "1m", MAY_13_MS, week_end),
                      covered=[(MAY_13_MS * 1000, week_end * 1000)])
        writer.commit(SeriesKey("um", "klines", "BTCUSDT", "1h"),
                      _fetch(client, "1h", APR_1_MS, JUL_1_MS),
                      covered=[(APR_1_MS * 1000, JUL_1_MS * 1000)])
        higher = {iv: _fetch(client, iv, MAY_13_MS, week_end) for iv in ("15m", "1h", "4h", "1d", "1w")}
        higher["1M"] = _fetch(client, "1M", APR_1_MS, JUL_1_MS)
    return Lake(root), higher


@pytest.mark.parametrize("interval", ["15m", "1h", "4h", "1d", "1w"])
def test_resample_1m_equals_served(served, interval):
    lake, higher = served
    ours = lake.resample("um", "BTCUSDT", "1m", interval)
    assert ours.height == higher[interval].num_rows > 0
    _assert_same(ours, higher[interval])


def test_maintenance_gap_is_confirmed_and_bars_still_match(served):
    lake, higher = served
    gaps = lake.gaps("um", "BTCUSDT", "1m")
    assert gaps.rows(named=True)[0]["status"] == "confirmed"
    assert gaps["missing"].sum() == 120  # 2024-05-15 03:00-05:00
    assert higher["1h"].num_rows == 7 * 24 - 2


def test_resample_1h_to_calendar_months(served):
    lake, higher = served
    ours = lake.resample("um", "BTCUSDT", "1h", "1M")
    assert ours.height == 3
    _assert_same(ours, higher["1M"])
