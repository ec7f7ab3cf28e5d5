"""Archive CSV bytes -> lake tables. Pure: bytes in, Arrow out.

Two sources, one result: a range parsed from the archive CSVs here and the same range
parsed from REST JSON (`kline_lake.download.rest_rows`) are equal tables (same schema,
same canonical timestamps; see `kline_lake.core.schemas` for the close-time decision).

Archive formats (https://github.com/binance/binance-public-data):
- klines and mark/index/premium klines: 12 columns, the last one ignored.
- spot aggTrades: 8 columns (..., is_buyer_maker, is_best_match); futures: 7.
- spot trades: `id,price,qty,quote_qty,time,is_buyer_maker,is_best_match` (7 columns, no
  header); futures trades: `id,price,qty,quote_qty,time,is_buyer_maker` (6, header since
  about 2022).
- futures fundingRate: `calc_time,funding_interval_hours,last_funding_rate`.
- spot files have no header; futures files have one since about 2022, none before.
- spot timestamps are microseconds from 2025-01-01, milliseconds before.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from kline_lake.archive.extra_csv import EXTRA_CSV_DATASETS, parse_extra_csv
from kline_lake.archive.numeric_csv import BOOL, FLOAT, INT, SKIP, read_numeric_csv
from kline_lake.archive.trades_csv import parse_trades_csv
from kline_lake.core import schemas
from kline_lake.core.schemas import klines_table, ts_column
from kline_lake.errors import InputError

# (column, kind) of each archive CSV, in file order. SKIP columns are checked for
# shape (one field) but not converted: klines' trailing "ignore", and the volume columns of
# mark/index/premium klines, which the exchange fills with zeros.
_KLINE_CSV = (
    ("open_time", INT), ("open", FLOAT), ("high", FLOAT), ("low", FLOAT), ("close", FLOAT),
    ("volume", FLOAT), ("close_time", INT), ("quote_volume", FLOAT), ("trades", INT),
    ("taker_buy_volume", FLOAT), ("taker_buy_quote_volume", FLOAT), ("ignore", SKIP),
)
_PRICE_KLINE_UNUSED = {"volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume"}
_PRICE_KLINE_CSV = tuple((name, SKIP if name in _PRICE_KLINE_UNUSED else kind)
                         for name, kind in _KLINE_CSV)
_AGG_CSV = (
    ("agg_id", INT), ("price", FLOAT), ("quantity", FLOAT), ("first_trade_id", INT),
    ("last_trade_id", INT), ("transact_time", INT), ("is_buyer_maker", BOOL),
    ("is_best_match", BOOL),  # spot only: futures files have 7 columns
)
_FUNDING_CSV = (("calc_time", INT), ("funding_interval_hours", INT), ("last_funding_rate", FLOAT))
_CSV_COLUMNS = {
    "klines": _KLINE_CSV, "mark_klines": _PRICE_KLINE_CSV, "index_klines": _PRICE_KLINE_CSV,
    "premium_klines": _PRICE_KLINE_CSV, "agg_trades": _AGG_CSV, "funding": _FUNDING_CSV,
}
# Columns a file must have: all but the trailing optional one (klines' "ignore", spot's
# is_best_match).
_MIN_COLUMNS = {"klines": 11, "mark_klines": 11, "index_klines": 11, "premium_klines": 11,
                "agg_trades": 7, "funding": 3}
# The first byte that bytes.strip() would keep (ASCII whitespace is " \t\n\r\v\f").
_NON_SPACE = re.compile(rb"[^ \t\n\r\x0b\x0c]")


def is_blank(data: bytes) -> bool:
    """Only ASCII whitespace: ``not data.strip()`` without the copy of the whole file."""
    return _NON_SPACE.search(data) is None


def has_header(data: bytes) -> bool:
    """Does the file start with a header row (its first non-space byte is not a digit or
    a minus sign)? Futures files have one since about 2022, spot files never."""
    match = _NON_SPACE.search(data)  # no copy of the whole file, unlike data.lstrip()
    first = match.group() if match else b""
    return bool(first) and not (first.isdigit() or first == b"-")


def _first_line(data: bytes) -> bytes:
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def _read_csv(data: bytes, dataset: str) -> dict[str, np.ndarray]:
    """The file's columns by name. A file may lack the dataset's optional last column
    (futures aggTrades have no is_best_match), nothing else."""
    columns, least = _CSV_COLUMNS[dataset], _MIN_COLUMNS[dataset]
    n_cols = _first_line(data).count(b",") + 1
    if not least <= n_cols <= len(columns):
        expected = f"{least} to {len(columns)}" if least < len(columns) else str(least)
        raise InputError(f"{dataset} archive CSV has {n_cols} columns, expected {expected}")
    columns = columns[:n_cols]
    arrays = read_numeric_csv(data, [kind for _, kind in columns],
                              skip_first_line=has_header(data), what="archive CSV")
    return dict(zip([name for name, kind in columns if kind != SKIP], arrays, strict=True))


def parse_archive_csv(data: bytes, dataset: str) -> pa.Table:
    """Parse one archive CSV (already unzipped) into the dataset's lake schema."""
    if dataset in EXTRA_CSV_DATASETS:  # book_ticker, metrics, book_depth
        return parse_extra_csv(data, dataset)
    if dataset not in _CSV_COLUMNS and dataset != "trades":
        raise InputError(f"unknown dataset {dataset!r}")
    if is_blank(data):
        return schemas.schema_for(dataset).empty_table()
    if dataset == "trades":  # every trade: its own one-layout kernel
        return parse_trades_csv(data, header=has_header(data))
    cols = _read_csv(data, dataset)
    if dataset == "agg_trades":
        n = len(cols["agg_id"])
        table = pa.table({
            **{name: cols[name] for name in ("agg_id", "price", "quantity", "first_trade_id",
                                             "last_trade_id")},
            "transact_time": ts_column(cols["transact_time"]),
            "is_buyer_maker": cols["is_buyer_maker"],
            "is_best_match": cols.get("is_best_match", pa.nulls(n, pa.bool_())),
        })
        return schemas.conform(table, dataset)
    if dataset == "funding":
        table = pa.table({
            "funding_time": ts_column(cols["calc_time"]),
            "funding_rate": cols["last_funding_rate"],
            "mark_price": pa.nulls(len(cols["calc_time"]), pa.float64()),
        })
        return schemas.conform(table, dataset)
    return klines_table(cols, dataset)
