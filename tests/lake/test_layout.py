"""Pure path arithmetic of the lake layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from kline_lake.core import timeutil
from kline_lake.core.markets import validate_symbol
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake import layout


def test_partition_dir_and_file_names():
    key = SeriesKey("um", "klines", "BTCUSDT", "1m")
    assert layout.partition_dir(Path("/r"), key, 2024, 3) == Path(
        "/r/um/klines/symbol=BTCUSDT/interval=1m/year=2024/month=03")
    trades = SeriesKey("spot", "agg_trades", "ETHUSDT")
    assert layout.partition_dir(Path("/r"), trades, 2025, 12) == Path(
        "/r/spot/agg_trades/symbol=ETHUSDT/year=2025/month=12")
    ts_us = 1_709_251_200_000_000  # 2024-03-01T00:00Z
    assert timeutil.year_month(ts_us) == (2024, 3)
    assert timeutil.year_month(ts_us - 1) == (2024, 2)
    assert layout.file_name("klines", ts_us) == "data.parquet"
    assert layout.file_name("agg_trades", ts_us) == "2024-03-01.parquet"
    assert timeutil.month_end_us(2024, 2) == ts_us
    assert timeutil.month_end_us(2024, 12) == timeutil.month_start_us(2025, 1)


@pytest.mark.parametrize("symbol", ["../x", "a/b", "BTC USDT", "", "x=y", ".hidden", "a\\b", "A" * 65])
def test_unsafe_symbols_rejected(symbol):
    with pytest.raises(InputError):
        validate_symbol(symbol)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTCUSD_PERP", "BTCUSD_250328", "1000PEPEUSDT"])
def test_real_symbols_accepted(symbol):
    assert validate_symbol(symbol) == symbol


def test_series_key_validation():
    with pytest.raises(InputError):
        SeriesKey("um", "klines", "BTCUSDT")  # kline dataset needs an interval
    with pytest.raises(InputError):
        SeriesKey("um", "funding", "BTCUSDT", "1m")
    with pytest.raises(InputError):
        SeriesKey("um", "klines", "BTCUSDT", "1s")  # 1s is spot only
    with pytest.raises(InputError):
        SeriesKey("xx", "klines", "BTCUSDT", "1m")


def test_series_key_of_file_round_trip():
    root = Path("/r")
    key = SeriesKey("cm", "mark_klines", "BTCUSD_PERP", "1h")
    path = layout.partition_dir(root, key, 2023, 7) / "data.parquet"
    assert layout.series_key_of_file(root, path) == (key, 2023, 7)
    assert layout.series_key_of_file(root, root / "um" / "klines" / "x.parquet") is None
    bad_month = root / "um/funding/symbol=BTCUSDT/year=2023/month=13/data.parquet"
    assert layout.series_key_of_file(root, bad_month) is None


def test_months_overlapping():
    months = [(2024, 1), (2024, 2), (2024, 3)]
    feb = timeutil.month_start_us(2024, 2)
    assert layout.months_overlapping(feb, feb + 1, months) == [(2024, 2)]
    assert layout.months_overlapping(None, feb, months) == [(2024, 1)]
    assert layout.months_overlapping(None, None, months) == months
