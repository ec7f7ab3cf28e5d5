"""Lake reads through Polars and DuckDB: round trips, pruning, views, time arguments."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from kline_lake import Lake
from kline_lake.core.schemas import conform
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import to_us
from kline_lake.errors import InputError
from kline_lake.lake.scan import series_files
from kline_lake.lake.synthetic import synthetic_agg_trades, synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS, MINUTE_MS

DAY_MS = 86_400_000


@pytest.fixture
def lake(lake_root):
    w = LakeWriter(lake_root)
    # 1m klines for 2023-11-01 .. 2024-02-29 (4 months), two markets
    start = JAN_2024_MS - 61 * DAY_MS
    w.commit(SeriesKey("um", "klines", "BTCUSDT", "1m"), synthetic_klines(start, 121 * 1440, seed=1))
    w.commit(SeriesKey("spot", "klines", "BTCUSDT", "1m"), synthetic_klines(JAN_2024_MS, 1440, seed=2))
    w.commit(SeriesKey("um", "agg_trades", "BTCUSDT"),
             synthetic_agg_trades(JAN_2024_MS, 3 * 86_400, first_id=10, spacing_ms=1000))
    w.commit(SeriesKey("um", "funding", "BTCUSDT"), synthetic_funding(JAN_2024_MS, 30))
    w.commit(SeriesKey("um", "mark_klines", "BTCUSDT", "1h"),
             synthetic_klines(JAN_2024_MS, 48, "1h", price_only=True))
    return Lake(lake_root)


def test_klines_round_trip_and_slice(lake):
    frame = lake.klines("um", "BTCUSDT", "1m", "2024-01-15", "2024-01-16")
    assert frame.height == 1440
    assert frame["open_time"].dtype == pl.Datetime("us", "UTC")
    assert frame["open_time"][0] == datetime(2024, 1, 15, tzinfo=UTC)
    assert frame["open_time"].is_sorted()
    expected = synthetic_klines(JAN_2024_MS - 61 * DAY_MS, 121 * 1440, seed=1)
    offset = (61 + 14) * 1440
    assert conform(frame.to_arrow(), "klines").equals(conform(expected.slice(offset, 1440), "klines"))
    everything = lake.klines("um", "BTCUSDT", "1m")
    assert everything.height == 121 * 1440
    lazy = lake.klines("um", "BTCUSDT", "1m", start=date(2024, 2, 1), lazy=True)
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.select(pl.len()).collect().item() == 29 * 1440


def test_partition_pruning_opens_only_overlapping_files(lake):
    key = SeriesKey("um", "klines", "BTCUSDT", "1m")
    one_day = series_files(lake.root, key, to_us("2024-01-15"), to_us("2024-01-16"))
    assert [p.parent.name for p in one_day] == ["month=01"]
    assert len(series_files(lake.root, key)) == 4
    trades = SeriesKey("um", "agg_trades", "BTCUSDT")
    assert [p.name for p in series_files(lake.root, trades, to_us("2024-01-02T05:00"),
                                         to_us("2024-01-02T06:00"))] == ["2024-01-02.parquet"]


def test_other_datasets(lake):
    trades = lake.agg_trades("um", "BTCUSDT", "2024-01-02", "2024-01-03")
    assert trades.height == 86_400 and trades["agg_id"].is_sorted()
    assert trades["agg_id"][0] == 10 + 86_400
    funding = lake.funding("um", "BTCUSDT")
    assert funding.height == 30 and funding.columns == ["funding_time", "funding_rate", "mark_price"]
    mark = lake.mark_klines("um", "BTCUSDT", "1h")
    assert mark.height == 48 and "volume" not in mark.columns
    empty = lake.mark_klines("um", "BTCUSDT", "1h", "2025-01-01", "2025-02-01")
    assert empty.height == 0 and empty.columns == mark.columns
    assert lake.mark_klines("um", "BTCUSDT", "1h", "2025-01-01", lazy=True).collect().height == 0
    with pytest.raises(InputError, match="no um index_klines for BTCUSDT in the lake"):
        lake.index_klines("um", "BTCUSDT", "1h")


def test_sql_views(lake):
    counts = lake.sql("SELECT market, symbol, interval, year, month, count(*) AS n FROM klines "
                      "GROUP BY ALL ORDER BY ALL")
    assert counts.rows()[:2] == [("spot", "BTCUSDT", "1m", 2024, 1, 1440),
                                 ("um", "BTCUSDT", "1m", 2023, 11, 30 * 1440)]
    arrow = lake.sql("SELECT open_time, close FROM klines WHERE market = 'um' "
                     "AND open_time >= TIMESTAMPTZ '2024-01-15 00:00:00+00' "
                     "AND open_time < TIMESTAMPTZ '2024-01-15 01:00:00+00' ORDER BY 1", format="arrow")
    assert isinstance(arrow, pa.Table) and arrow.num_rows == 60
    assert arrow.schema.field("open_time").type == pa.timestamp("us", tz="UTC")
    polars_slice = lake.klines("um", "BTCUSDT", "1m", "2024-01-15", "2024-01-15T01:00")
    assert arrow.column("close").to_pylist() == polars_slice["close"].to_list()
    # every view exists, even with no files, and has the declared columns
    empty = lake.sql("SELECT * FROM index_klines")
    assert empty.height == 0
    assert empty.columns == ["market", "open_time", "open", "high", "low", "close", "close_time",
                             "symbol", "interval", "year", "month"]
    assert empty.schema["open_time"] == pl.Datetime("us", "UTC")
    assert lake.sql("SELECT count(*) FROM agg_trades").item() == 3 * 86_400
    assert lake.sql("SELECT count(*) FROM funding").item() == 30
    assert lake.sql("SELECT count(*) FROM premium_klines").item() == 0


def test_sql_sees_new_files(lake):
    before = lake.sql("SELECT count(*) FROM klines WHERE market = 'cm'").item()
    LakeWriter(lake.root).commit(SeriesKey("cm", "klines", "BTCUSD_PERP", "1d"),
                                 synthetic_klines(JAN_2024_MS, 3, "1d"))
    assert (before, lake.sql("SELECT count(*) FROM klines WHERE market = 'cm'").item()) == (0, 3)


def test_bad_sql_and_missing_lake(lake, tmp_path):
    with pytest.raises(InputError, match="SQL error"):
        lake.sql("SELEC nonsense")
    with pytest.raises(InputError, match="SQL error"):
        lake.sql("SELECT * FROM no_such_table")
    with pytest.raises(InputError):
        lake.sql("SELECT 1", format="xml")
    with pytest.raises(InputError, match="does not exist"):
        Lake(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError):
        Lake(tmp_path / "f")
    with pytest.raises(InputError):
        lake.klines("um", "../etc", "1m")
    with pytest.raises(InputError):
        lake.klines("um", "BTCUSDT", "1m", "2024-02-01", "2024-01-01")


def test_time_arguments():
    us = 1_704_067_200_000_000
    assert to_us("2024-01-01") == us
    assert to_us("2024-01-01T00:00:00Z") == us
    assert to_us(datetime(2024, 1, 1)) == us  # naive = UTC
    assert to_us(date(2024, 1, 1)) == us
    assert to_us(JAN_2024_MS) == us  # ms epoch
    assert to_us(us) == us  # us epoch
    assert to_us(None) is None
    assert to_us(np.datetime64("2024-01-01T00:00")) == us
    assert to_us(pd.Timestamp("2024-01-01", tz="UTC")) == us
    with pytest.raises(InputError):
        to_us("yesterday")
    with pytest.raises(InputError):
        to_us(1.5)


def test_inventory(lake):
    inv = lake.inventory()
    row = inv.filter((pl.col("market") == "um") & (pl.col("dataset") == "klines")).row(0, named=True)
    assert row["rows"] == 121 * 1440 and row["files"] == 4 and row["bytes"] > 0
    assert row["first_time"] == datetime(2023, 11, 1, tzinfo=UTC)
    assert row["last_time"] == datetime(2024, 2, 29, 23, 59, tzinfo=UTC)
    trades = inv.filter(pl.col("dataset") == "agg_trades").row(0, named=True)
    assert trades["interval"] is None and trades["files"] == 3 and trades["rows"] == 3 * 86_400
    assert set(inv["dataset"]) == {"klines", "agg_trades", "funding", "mark_klines"}


def test_inventory_of_empty_lake(tmp_path):
    inv = Lake(tmp_path).inventory()
    assert inv.height == 0 and "first_time" in inv.columns


def test_one_minute_step(lake):
    frame = lake.klines("um", "BTCUSDT", "1m", JAN_2024_MS, JAN_2024_MS + 10 * MINUTE_MS)
    assert frame.height == 10


def test_sql_is_read_only_unless_allowed(lake, tmp_path):
    with pytest.raises(InputError, match="^refusing a CREATE statement: queries are read-only"):
        lake.sql("CREATE TABLE t AS SELECT * FROM funding")
    with pytest.raises(InputError, match="refusing a COPY statement"):
        lake.sql(f"COPY funding TO '{tmp_path / 'f.parquet'}'")
    assert not (tmp_path / "f.parquet").exists()
    lake.sql("CREATE TEMP TABLE t AS SELECT * FROM funding", allow_writes=True)
    assert lake.sql("SELECT count(*) FROM t").item() == 30
