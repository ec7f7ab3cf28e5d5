"""Gap tagging and resampling, hand-computed and against the fake exchange."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from kline_lake import Lake
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake.grid import grid
from kline_lake.lake.resample import check_resample
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS, MINUTE_MS, MINUTE_US

KEY = SeriesKey("um", "klines", "BTCUSDT", "1m")
J_US = JAN_2024_MS * 1000


def _drop(table: pa.Table, idx: list[int]) -> pa.Table:
    keep = np.setdiff1d(np.arange(table.num_rows), idx)
    return table.take(pa.array(keep))


def test_gaps_tagged_confirmed_and_unknown(lake_root):
    w = LakeWriter(lake_root)
    table = synthetic_klines(JAN_2024_MS, 100)
    # rows 10..19 missing inside coverage (confirmed), 50..59 missing outside (unknown),
    # 70..74 missing where coverage stops half-way (split)
    stored = _drop(table, [*range(10, 20), *range(50, 60), *range(70, 75)])
    w.commit(KEY, stored, covered=[(J_US, J_US + 40 * MINUTE_US), (J_US + 65 * MINUTE_US,
                                                                 J_US + 72 * MINUTE_US)])
    gaps = Lake(lake_root).gaps("um", "BTCUSDT", "1m")
    minute = lambda m: datetime.fromtimestamp(JAN_2024_MS / 1000 + 60 * m, tz=UTC)  # noqa: E731
    assert gaps.rows() == [
        (minute(10), minute(20), 10, "confirmed"),
        (minute(50), minute(60), 10, "unknown"),
        (minute(70), minute(72), 2, "confirmed"),
        (minute(72), minute(75), 3, "unknown"),
    ]
    # an explicit range reports leading/trailing unfetched stretches too
    wider = Lake(lake_root).gaps("um", "BTCUSDT", "1m", JAN_2024_MS - 5 * MINUTE_MS,
                                 JAN_2024_MS + 105 * MINUTE_MS)
    assert wider.row(0) == (minute(-5), minute(0), 5, "unknown")
    assert wider.row(-1) == (minute(100), minute(105), 5, "unknown")
    # a series with coverage only (exchange answered empty everywhere)
    empty_key = SeriesKey("um", "klines", "ETHUSDT", "1h")
    w.commit(empty_key, synthetic_klines(JAN_2024_MS, 0, "1h"), covered=[(J_US, J_US + 3 * 3_600_000_000)])
    assert Lake(lake_root).gaps("um", "ETHUSDT", "1h").rows() == [
        (minute(0), minute(180), 3, "confirmed")]
    with pytest.raises(InputError, match="no um klines for XRPUSDT in the lake; it holds "
                                         "BTCUSDT, ETHUSDT"):
        Lake(lake_root).gaps("um", "XRPUSDT", "1m")


def test_grid_calendar_intervals():
    week = grid(J_US, J_US + 30 * 86_400_000_000, "1w")  # 2024-01-01 was a Monday
    assert [datetime.fromtimestamp(t / 1e6, tz=UTC).weekday() for t in week] == [0] * 5
    months = grid(J_US + 1, J_US + 366 * 86_400_000_000, "1M")
    assert len(months) == 11
    assert datetime.fromtimestamp(months[0] / 1e6, tz=UTC) == datetime(2024, 2, 1, tzinfo=UTC)


def _hand_resample(frame: pl.DataFrame, size: int) -> list[tuple]:
    out = []
    for i in range(0, frame.height, size):
        chunk = frame.slice(i, size)
        out.append((chunk["open"][0], chunk["high"].max(), chunk["low"].min(), chunk["close"][-1],
                    chunk["trades"].sum()))
    return out


def test_resample_hand_computed_and_1w_1M(lake_root):
    w = LakeWriter(lake_root)
    # 2023-12-25 (Monday) .. 2024-03-04: 70 days of 1h klines
    start = JAN_2024_MS - 7 * 86_400_000
    w.commit(SeriesKey("um", "klines", "BTCUSDT", "1h"), synthetic_klines(start, 70 * 24, "1h", seed=3))
    lake = Lake(lake_root)
    hourly = lake.klines("um", "BTCUSDT", "1h")
    daily = lake.resample("um", "BTCUSDT", "1h", "1d")
    assert daily.height == 70
    got = [(r["open"], r["high"], r["low"], r["close"], r["trades"]) for r in daily.iter_rows(named=True)]
    assert got == _hand_resample(hourly, 24)
    assert np.allclose(daily["volume"], [hourly["volume"][i:i + 24].sum() for i in range(0, 1680, 24)])
    assert daily["close_time"][0] == datetime(2023, 12, 25, 23, 59, 59, 999000, tzinfo=UTC)
    weekly = lake.resample("um", "BTCUSDT", "1h", "1w")
    assert weekly.height == 10
    assert all(t.weekday() == 0 for t in weekly["open_time"])
    assert [(r["open"], r["high"], r["low"], r["close"], r["trades"])
            for r in weekly.iter_rows(named=True)] == _hand_resample(hourly, 168)
    monthly = lake.resample("um", "BTCUSDT", "1h", "1M")
    # December and March are partial (not fetched) and dropped; January and February stay
    assert monthly["open_time"].to_list() == [datetime(2024, 1, 1, tzinfo=UTC),
                                              datetime(2024, 2, 1, tzinfo=UTC)]
    jan = hourly.filter(pl.col("open_time").dt.month() == 1)
    assert monthly.row(0, named=True)["high"] == jan["high"].max()
    assert monthly.row(0, named=True)["trades"] == jan["trades"].sum()
    assert monthly["close_time"][1] == datetime(2024, 2, 29, 23, 59, 59, 999000, tzinfo=UTC)
    partial = lake.resample("um", "BTCUSDT", "1h", "1M", partial=True)
    assert partial.height == 4
    ranged = lake.resample("um", "BTCUSDT", "1h", "1d", "2024-01-10T05:00", "2024-01-12")
    assert ranged["open_time"].to_list() == [datetime(2024, 1, 11, tzinfo=UTC)]


def test_resample_keeps_bars_with_confirmed_gaps(lake_root):
    w = LakeWriter(lake_root)
    table = _drop(synthetic_klines(JAN_2024_MS, 180), list(range(70, 80)))
    w.commit(KEY, table.slice(0, 120))  # no coverage record: hour 1 is incomplete
    lake = Lake(lake_root)
    assert lake.resample("um", "BTCUSDT", "1m", "1h").height == 1
    w.commit(KEY, table, covered=[(J_US, J_US + 180 * MINUTE_US)])
    hours = lake.resample("um", "BTCUSDT", "1m", "1h")
    assert hours.height == 3
    assert hours.row(1, named=True)["trades"] == sum(table.column("trades").to_pylist()[60:110])


@pytest.mark.parametrize("pair", [("1h", "1m"), ("1w", "1M"), ("3d", "1w"), ("1m", "7m"),
                                  ("1M", "1w"), ("5m", "1h")])
def test_resample_validation(pair):
    if pair == ("5m", "1h"):
        check_resample(*pair)
        return
    with pytest.raises(InputError):
        check_resample(*pair)


def test_resample_rejects_non_kline_dataset(lake_root):
    LakeWriter(lake_root).commit(KEY, synthetic_klines(JAN_2024_MS, 5))
    with pytest.raises(InputError):
        Lake(lake_root).resample("um", "BTCUSDT", "1m", "3m", dataset="funding")
