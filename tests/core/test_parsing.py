"""Archive CSVs and REST bodies parse into identical lake rows (real exchange files)."""

import json
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from kline_lake.archive.csv import parse_archive_csv
from kline_lake.core import schemas
from kline_lake.download.rest_rows import (
    parse_rest_agg_trades,
    parse_rest_funding,
    parse_rest_klines,
)
from kline_lake.errors import InputError

REAL = Path(__file__).resolve().parents[1] / "data" / "real_data"
KLINES_DIR = REAL / "spot" / "daily" / "klines" / "BTCUSDT" / "1m"


def test_microsecond_and_millisecond_days_share_one_canonical_form():
    ms_day = parse_archive_csv((KLINES_DIR / "BTCUSDT-1m-2024-12-31.csv").read_bytes(), "klines")
    us_day = parse_archive_csv((KLINES_DIR / "BTCUSDT-1m-2025-01-01.csv").read_bytes(), "klines")
    for day in (ms_day, us_day):
        assert day.schema == schemas.KLINES
        assert day.num_rows == 1440
        open_us = day.column("open_time").cast(pa.int64()).to_numpy()
        close_us = day.column("close_time").cast(pa.int64()).to_numpy()
        # canonical close: the REST millisecond value in us, open + 59_999 ms
        assert (close_us - open_us == 59_999_000).all()
    assert us_day.column("open_time")[0].value == 1_735_689_600_000_000
    assert us_day.column("trades")[0].as_py() == 2631


def test_archive_and_rest_rows_are_identical():
    rest = json.loads((REAL / "spot" / "rest_responses" / "nautilus_http_spot_market_klines.json").read_text())
    archive = parse_archive_csv((KLINES_DIR / "BTCUSDT-1m-2021-10-22.csv").read_bytes(), "klines")
    rest_table = parse_rest_klines(rest[:-1])  # the last REST kline was still open
    first_open = rest_table.column("open_time")[0]
    idx = archive.column("open_time").index(first_open).as_py()
    assert archive.slice(idx, rest_table.num_rows).equals(rest_table)
    # ...and the open one differs from the final archive row for that minute
    last = parse_rest_klines(rest[-1:])
    j = archive.column("open_time").index(last.column("open_time")[0]).as_py()
    assert not archive.slice(j, 1).equals(last)


def test_zipped_archive_day_parses():
    with zipfile.ZipFile(KLINES_DIR / "BTCUSDT-1m-2020-01-01.zip") as zf:
        (name,) = zf.namelist()
        table = parse_archive_csv(zf.read(name), "klines")
    assert table.num_rows == 1440
    assert table.column("open").to_pylist()[0] == pytest.approx(7195.24)


def test_futures_csv_with_and_without_header():
    row = b"1640995200000,46216.93,46271.08,46208.37,46250.00,40.057,1640995259999,1852000.6,446,20.1,929000.5,0\n"
    header = b"open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
    assert parse_archive_csv(header + row, "klines").equals(parse_archive_csv(row, "klines"))
    price = parse_archive_csv(header + row, "mark_klines")
    assert price.schema == schemas.PRICE_KLINES


def test_agg_trades_spot_eight_columns_and_futures_seven():
    spot = parse_archive_csv(b"5,0.1,2,7,8,1735689600123456,True,True\n", "agg_trades")
    assert spot.column("transact_time")[0].value == 1_735_689_600_123_456
    assert spot.column("is_best_match").to_pylist() == [True]
    fut = parse_archive_csv(
        b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        b"5,0.1,2,7,8,1640995200000,false\n",
        "agg_trades",
    )
    assert fut.column("is_best_match").null_count == 1
    assert fut.column("is_buyer_maker").to_pylist() == [False]


def test_rest_agg_trades_and_funding_real_bodies():
    raw = json.loads((REAL / "spot" / "aggtrades" / "freqtrade_XRPETH_aggTrades_raw_2019-10-11_2019-10-13.json").read_text())
    table = parse_rest_agg_trades(raw)
    ids = table.column("agg_id").to_numpy()
    assert len(ids) == 12_477 and (ids[1:] - ids[:-1] == 1).all()
    funding = parse_rest_funding(
        [{"symbol": "BTCUSDT", "fundingTime": 1568102400000, "fundingRate": "0.00010000", "markPrice": ""},
         {"symbol": "BTCUSDT", "fundingTime": 1568131200001, "fundingRate": "-0.0003", "markPrice": "10000.5"}]
    )
    assert funding.column("mark_price").to_pylist() == [None, 10000.5]
    assert funding.column("funding_time")[1].value == 1_568_131_200_001_000  # jitter kept


def test_malformed_bodies_are_input_errors():
    with pytest.raises(InputError, match="malformed klines"):
        parse_rest_klines([[1, "x"]])
    with pytest.raises(InputError, match="malformed aggTrades"):
        parse_rest_agg_trades([{"a": 1}])


def test_blank_input_header_and_missing_final_newline():
    assert parse_archive_csv(b" \r\n\t\x0b\x0c\n", "klines").num_rows == 0
    row = b"1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6,0\n"
    header = b"open_time,open,high,low,close,volume,close_time,quote_volume,count," \
             b"taker_buy_volume,taker_buy_quote_volume,ignore\n"
    plain = parse_archive_csv(row, "klines")
    assert plain.num_rows == 1
    assert parse_archive_csv(header + row, "klines").equals(plain)
    assert parse_archive_csv(row.rstrip(b"\n"), "klines").equals(plain)  # no newline


def test_archive_csv_with_the_wrong_number_of_columns_is_refused():
    row = b"1704067200000,1,2,0.5,1.5,10,1704067259999,15,3,4,6,0"
    with pytest.raises(InputError, match="klines archive CSV has 6 columns, expected 11 to 12"):
        parse_archive_csv(b",".join(row.split(b",")[:6]) + b"\n", "klines")
    with pytest.raises(InputError, match="has 13 columns, expected 11 to 12"):
        parse_archive_csv(row + b",7\n", "mark_klines")
    with pytest.raises(InputError, match="funding archive CSV has 2 columns, expected 3"):
        parse_archive_csv(b"1704067200000,8\n", "funding")
    # 11 columns (no trailing "ignore") is a complete kline row
    assert parse_archive_csv(row.rsplit(b",", 1)[0] + b"\n", "klines").num_rows == 1
    # a later row with a different width names its line
    with pytest.raises(InputError, match="line 2 has 11 field"):
        parse_archive_csv(row + b"\n" + row.rsplit(b",", 1)[0] + b"\n", "klines")


def test_price_klines_skip_the_zero_volume_columns():
    row = b"1704067200000,1,2,0.5,1.5,0,1704067259999,0,0,0,0,0\n"
    table = parse_archive_csv(row, "mark_klines")
    assert table.column_names == ["open_time", "open", "high", "low", "close", "close_time"]
    assert table.column("close").to_pylist() == [1.5]
