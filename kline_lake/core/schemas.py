"""The lake's schemas, declared once.

Every time column is `timestamp[us, tz=UTC]`: lossless for both the millisecond REST/archive
sources and the microsecond spot archive from 2025-01-01. Prices and quantities are
float64. Partition values (symbol, interval, year, month) live in the Hive path only.

Canonical close time (a decision the sources force on us): REST reports close times in
ms (`...59999` ms), the 2025+ spot archive in us (`...59999999` us). Both sides are
normalised to the millisecond value the REST API reports, expressed in microseconds:
`close_time_us = close_time_ms * 1000`, i.e. a 1m kline closes at open + 59_999_000 us.
`canonical_close_us` applies it, so a range from either source lands identically.
Open times and trade times are exact multiples of 1 ms in both sources and need no
such care beyond the unit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from kline_lake.errors import InputError

TS = pa.timestamp("us", tz="UTC")

KLINES = pa.schema(
    [
        pa.field("open_time", TS, nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("close_time", TS, nullable=False),
        pa.field("quote_volume", pa.float64(), nullable=False),
        pa.field("trades", pa.int64(), nullable=False),
        pa.field("taker_buy_volume", pa.float64(), nullable=False),
        pa.field("taker_buy_quote_volume", pa.float64(), nullable=False),
    ]
)

# mark/index/premium price klines: the exchange fills the volume columns with zeros,
# so only the prices and times are kept.
PRICE_KLINES = pa.schema(
    [
        pa.field("open_time", TS, nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("close_time", TS, nullable=False),
    ]
)

AGG_TRADES = pa.schema(
    [
        pa.field("agg_id", pa.int64(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("quantity", pa.float64(), nullable=False),
        pa.field("first_trade_id", pa.int64(), nullable=False),
        pa.field("last_trade_id", pa.int64(), nullable=False),
        pa.field("transact_time", TS, nullable=False),
        pa.field("is_buyer_maker", pa.bool_(), nullable=False),
        # spot only ("M" in REST, 8th archive column); null on futures
        pa.field("is_best_match", pa.bool_(), nullable=True),
    ]
)

# Every trade (not aggregated): spot/us `/api/v3/historicalTrades`, futures
# `/fapi|dapi/v1/historicalTrades` (id, price, qty, quoteQty, time, isBuyerMaker[, isBestMatch])
# and the archive's `trades` files (https://github.com/binance/binance-public-data).
TRADES = pa.schema(
    [
        pa.field("trade_id", pa.int64(), nullable=False),
        pa.field("price", pa.float64(), nullable=False),
        pa.field("quantity", pa.float64(), nullable=False),
        pa.field("quote_quantity", pa.float64(), nullable=False),
        pa.field("time", TS, nullable=False),
        pa.field("is_buyer_maker", pa.bool_(), nullable=False),
        # spot/us only ("isBestMatch" in REST, 7th archive column); null on futures
        pa.field("is_best_match", pa.bool_(), nullable=True),
    ]
)

FUNDING = pa.schema(
    [
        pa.field("funding_time", TS, nullable=False),
        pa.field("funding_rate", pa.float64(), nullable=False),
        # REST fundingRate carries markPrice; the archive's fundingRate files do not (null)
        pa.field("mark_price", pa.float64(), nullable=True),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "klines": KLINES,
    "mark_klines": PRICE_KLINES,
    "index_klines": PRICE_KLINES,
    "premium_klines": PRICE_KLINES,
    "agg_trades": AGG_TRADES,
    "trades": TRADES,
    "funding": FUNDING,
}

# The unique, sorted key of each dataset; also the column that picks the year/month partition.
KEYS: dict[str, str] = {
    "klines": "open_time",
    "mark_klines": "open_time",
    "index_klines": "open_time",
    "premium_klines": "open_time",
    "agg_trades": "agg_id",
    "trades": "trade_id",
    "funding": "funding_time",
}
TIME_COLUMNS: dict[str, str] = {
    "klines": "open_time",
    "mark_klines": "open_time",
    "index_klines": "open_time",
    "premium_klines": "open_time",
    "agg_trades": "transact_time",
    "trades": "time",
    "funding": "funding_time",
}


def schema_for(dataset: str) -> pa.Schema:
    try:
        return SCHEMAS[dataset]
    except KeyError:
        raise InputError(f"unknown dataset {dataset!r}") from None


def conform(table: pa.Table, dataset: str) -> pa.Table:
    """Cast `table` to the dataset's schema (column order, types, nullability).

    Raises InputError naming the column when a column is missing or cannot be cast.
    """
    schema = schema_for(dataset)
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise InputError(f"{dataset}: missing column(s) {', '.join(missing)}")
    columns = []
    for field in schema:
        col = table.column(field.name)
        if not field.nullable and col.null_count:
            raise InputError(f"{dataset}: column {field.name!r} has {col.null_count} null value(s)")
        try:
            columns.append(col.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputError(f"{dataset}: column {field.name!r} cannot be cast to {field.type}: {exc}") from exc
    return pa.Table.from_arrays(columns, schema=schema)


def ms_to_ts(ms: np.ndarray) -> pa.Array:
    """int64 milliseconds since the epoch -> timestamp[us, UTC] array."""
    return pa.array(np.asarray(ms, dtype=np.int64) * 1000, type=pa.int64()).view(TS)


def canonical_close_us(close_time_raw: np.ndarray) -> np.ndarray:
    """Close times in either unit (ms: 13 digits, us: 16 digits) -> canonical us.

    A us close time `...59_999_999` is truncated to the ms the REST API reports
    (`...59_999`) and scaled back: `...59_999_000`. See the module docstring.
    """
    raw = np.asarray(close_time_raw, dtype=np.int64)
    return np.where(raw >= 10**15, (raw // 1000) * 1000, raw * 1000)


def to_us(ts_raw: np.ndarray) -> np.ndarray:
    """Open/trade/funding times in ms or us (detected per value by magnitude) -> us.

    Millisecond epochs are < 1e13 until the year 2286; microsecond epochs after 2001
    are > 1e15. Values between the two never occur in exchange data.
    """
    raw = np.asarray(ts_raw, dtype=np.int64)
    return np.where(raw >= 10**15, raw, raw * 1000)


def ts_column(raw: pa.ChunkedArray | np.ndarray, *, close: bool = False) -> pa.Array:
    """Raw epoch times (ms or us, told apart per value) -> a `timestamp[us, UTC]` array;
    `close=True` applies the canonical close-time rule."""
    arr = np.asarray(raw, dtype=np.int64)
    us = canonical_close_us(arr) if close else to_us(arr)
    return pa.array(us, type=pa.int64()).view(TS)


def klines_table(cols: dict[str, Any], dataset: str) -> pa.Table:
    """Kline columns by name (raw ms or us times) -> the dataset's lake table."""
    out = {
        "open_time": ts_column(cols["open_time"]),
        "open": cols["open"],
        "high": cols["high"],
        "low": cols["low"],
        "close": cols["close"],
        "close_time": ts_column(cols["close_time"], close=True),
    }
    if dataset == "klines":
        for name in ("volume", "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote_volume"):
            out[name] = cols[name]
    return conform(pa.table(out), dataset)
