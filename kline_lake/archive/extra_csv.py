"""Archive CSVs of the futures-only extra datasets -> lake tables. Pure: bytes in, Arrow out.

Formats (data.binance.vision, https://github.com/binance/binance-public-data; USD-M and
COIN-M only, below ``data/futures/{um,cm}/``):

- ``bookTicker`` (daily and monthly): ``update_id,best_bid_price,best_bid_qty,
  best_ask_price,best_ask_qty,transaction_time,event_time``, times in ms. Newer files
  carry that header row, older ones none (detected by the first field: digits = data).
  Rows are not guaranteed to be in ``transaction_time`` order; the lake sorts on
  ``update_id``.
- ``metrics`` (daily): ``create_time,symbol,sum_open_interest,sum_open_interest_value,
  count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,
  sum_taker_long_short_vol_ratio``; ``create_time`` is text, ``YYYY-MM-DD HH:MM:SS`` UTC, one
  row per 5 minutes (288 a day), rows not in time order; ratio fields may be empty (null).
- ``bookDepth`` (daily): ``timestamp,percentage,depth,notional``; ``timestamp`` text at
  second resolution, ``percentage`` the band (-5..-1 bids, 1..5 asks; printed ``-5`` or
  ``-5.00``), ``depth``/``notional`` cumulative base quantity and quote value to that band.

metrics and bookDepth files have always had their header; a file without it is read by
position all the same. The symbol column of metrics is dropped (it is the partition).
"""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from kline_lake.archive.numeric_csv import FLOAT, INT, read_numeric_csv
from kline_lake.core import schemas
from kline_lake.core.schemas import TS, book_depth_key, ts_column
from kline_lake.errors import InputError

EXTRA_CSV_DATASETS = frozenset({"book_ticker", "metrics", "book_depth"})
BOOK_TICKER_COLUMNS = ("update_id", "best_bid_price", "best_bid_qty", "best_ask_price",
                       "best_ask_qty", "transaction_time", "event_time")
METRICS_COLUMNS = ("create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
                   "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio",
                   "count_long_short_ratio", "sum_taker_long_short_vol_ratio")
BOOK_DEPTH_COLUMNS = ("timestamp", "percentage", "depth", "notional")
_BOOK_TICKER_KINDS = (INT, FLOAT, FLOAT, FLOAT, FLOAT, INT, INT)
_NON_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")


def _first_line(data: bytes) -> bytes:
    start = _NON_SPACE.search(data)
    body = data[start.start():] if start else b""
    end = body.find(b"\n")
    return (body if end < 0 else body[:end]).rstrip(b"\r")


def _has_header(first: bytes, names: tuple[str, ...]) -> bool:
    return first.split(b",")[0].strip().decode("ascii", "replace") == names[0]


def _check_columns(first: bytes, names: tuple[str, ...], what: str) -> None:
    n = first.count(b",") + 1
    if n != len(names):
        raise InputError(f"{what} archive CSV has {n} columns, expected {len(names)}")


def parse_extra_csv(data: bytes, dataset: str) -> pa.Table:
    """Parse one archive CSV (already unzipped) of book_ticker, metrics or book_depth."""
    if dataset not in EXTRA_CSV_DATASETS:
        raise InputError(f"unknown dataset {dataset!r}")
    if _NON_SPACE.search(data) is None:
        return schemas.schema_for(dataset).empty_table()
    if dataset == "book_ticker":
        return _book_ticker(data)
    if dataset == "metrics":
        return _metrics(data)
    return _book_depth(data)


def _book_ticker(data: bytes) -> pa.Table:
    start = _NON_SPACE.search(data).start()
    body = data[start:] if start else data  # no copy of the usual file
    first = _first_line(body)
    _check_columns(first, BOOK_TICKER_COLUMNS, "bookTicker")
    cols = read_numeric_csv(body, _BOOK_TICKER_KINDS,
                            skip_first_line=_has_header(first, BOOK_TICKER_COLUMNS),
                            what="bookTicker archive CSV")
    by_name = dict(zip(BOOK_TICKER_COLUMNS, cols, strict=True))
    table = pa.table({
        **{n: by_name[n] for n in BOOK_TICKER_COLUMNS[:5]},
        "transaction_time": ts_column(by_name["transaction_time"]),
        "event_time": ts_column(by_name["event_time"]),
    })
    return schemas.conform(table, "book_ticker")


def _read_text_csv(data: bytes, names: tuple[str, ...], types: dict[str, pa.DataType],
                   what: str) -> pa.Table:
    first = _first_line(data)
    _check_columns(first, names, what)
    read = pacsv.ReadOptions(column_names=list(names),
                             skip_rows=1 if _has_header(first, names) else 0)
    convert = pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    try:
        return pacsv.read_csv(io.BytesIO(data), read_options=read, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{what} archive CSV: {exc}") from None


def _utc(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """Naive text times (UTC by the archive's convention) -> timestamp[us, UTC]."""
    return col.cast(pa.timestamp("us")).cast(pa.int64()).cast(TS) if len(col) else col.cast(TS)


def _metrics(data: bytes) -> pa.Table:
    types = {"create_time": pa.timestamp("s"), "symbol": pa.string(),
             **{n: pa.float64() for n in METRICS_COLUMNS[2:]}}
    raw = _read_text_csv(data, METRICS_COLUMNS, types, "metrics")
    table = pa.table({"create_time": _utc(raw.column("create_time")),
                      **{n: raw.column(n) for n in METRICS_COLUMNS[2:]}})
    return schemas.conform(table, "metrics")


def _book_depth(data: bytes) -> pa.Table:
    types = {"timestamp": pa.timestamp("s"), "percentage": pa.float64(),
             "depth": pa.float64(), "notional": pa.float64()}
    raw = _read_text_csv(data, BOOK_DEPTH_COLUMNS, types, "bookDepth")
    ts = _utc(raw.column("timestamp"))
    ts_us = np.asarray(ts.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    pct = np.asarray(raw.column("percentage").to_numpy(zero_copy_only=False), dtype=np.float64)
    table = pa.table({"depth_key": book_depth_key(ts_us, pct), "timestamp": ts,
                      "percentage": pct, "depth": raw.column("depth"),
                      "notional": raw.column("notional")})
    return schemas.conform(table, "book_depth")
