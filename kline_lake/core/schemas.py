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

# Best bid/ask updates, USD-M and COIN-M archive `bookTicker` files
# (`update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time`,
# times in ms; https://github.com/binance/binance-public-data, the futures
# `<symbol>@bookTicker` stream fields u,b,B,a,A,T,E:
# https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Individual-Symbol-Book-Ticker-Streams).
# No REST history exists. Key `update_id`, partitioned by `transaction_time`.
BOOK_TICKER = pa.schema(
    [
        pa.field("update_id", pa.int64(), nullable=False),
        pa.field("best_bid_price", pa.float64(), nullable=False),
        pa.field("best_bid_qty", pa.float64(), nullable=False),
        pa.field("best_ask_price", pa.float64(), nullable=False),
        pa.field("best_ask_qty", pa.float64(), nullable=False),
        pa.field("transaction_time", TS, nullable=False),
        pa.field("event_time", TS, nullable=False),
    ]
)

# 5-minute open interest and long/short ratios, archive `metrics` files
# (`create_time,symbol,sum_open_interest,sum_open_interest_value,
# count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,
# sum_taker_long_short_vol_ratio`, create_time as text `YYYY-MM-DD HH:MM:SS` UTC). The
# archive's column names are kept; their REST sources (USD-M `/futures/data/...`,
# `kline_lake.download.rest_metrics`): openInterestHist sumOpenInterest/sumOpenInterestValue,
# topLongShortAccountRatio, topLongShortPositionRatio, globalLongShortAccountRatio
# (`longShortRatio` of each) and takerlongshortRatio (`buySellRatio`). The ratios may be
# empty in a file (null).
METRICS = pa.schema(
    [
        pa.field("create_time", TS, nullable=False),
        pa.field("sum_open_interest", pa.float64(), nullable=True),
        pa.field("sum_open_interest_value", pa.float64(), nullable=True),
        pa.field("count_toptrader_long_short_ratio", pa.float64(), nullable=True),
        pa.field("sum_toptrader_long_short_ratio", pa.float64(), nullable=True),
        pa.field("count_long_short_ratio", pa.float64(), nullable=True),
        pa.field("sum_taker_long_short_vol_ratio", pa.float64(), nullable=True),
    ]
)

# Depth at +-1..5 % of the mid, archive `bookDepth` files (`timestamp,percentage,depth,notional`,
# timestamp as text at second resolution; negative percentage = bid side, positive = ask;
# depth and notional cumulative from the mid out to that band). The key is the pair
# (timestamp, percentage), held in one int64 column `depth_key` (see `book_depth_key`) so
# that every part of the lake that keys rows on one column (merge, sort, verify) works
# unchanged.
BOOK_DEPTH = pa.schema(
    [
        pa.field("depth_key", pa.int64(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("percentage", pa.float64(), nullable=False),
        pa.field("depth", pa.float64(), nullable=False),
        pa.field("notional", pa.float64(), nullable=False),
    ]
)

# Mark price, index price, estimated settle price, funding rate and next funding time
# from the `<symbol>@markPrice@1s` stream (event `markPriceUpdate`: E, p, i, P, r, T;
# https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Mark-Price-Stream),
# one row per update. Recorded by `kline-lake follow --data mark_price` only: the exchange
# has no archive and no REST history of it. Key `event_time` (the update's `E`).
MARK_PRICE = pa.schema(
    [
        pa.field("event_time", TS, nullable=False),
        pa.field("mark_price", pa.float64(), nullable=False),
        pa.field("index_price", pa.float64(), nullable=False),
        pa.field("estimated_settle_price", pa.float64(), nullable=False),
        pa.field("funding_rate", pa.float64(), nullable=False),
        pa.field("next_funding_time", TS, nullable=False),
    ]
)

# Spot and Binance.US best bid/ask from the `<symbol>@bookTicker` stream, whose payload is
# only `u` (order book update id), `s`, `b`/`B`, `a`/`A`: no event or transaction time
# (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#individual-symbol-book-ticker-streams).
# Recorded by `kline-lake follow --data book_ticker` on spot/us only (no archive, no REST
# history). Key `update_id`; `recv_time` is the follower's own clock (UTC, us) when the
# update arrived, never an exchange time, and picks the partition.
SPOT_BOOK_TICKER = pa.schema(
    [
        pa.field("update_id", pa.int64(), nullable=False),
        pa.field("best_bid_price", pa.float64(), nullable=False),
        pa.field("best_bid_qty", pa.float64(), nullable=False),
        pa.field("best_ask_price", pa.float64(), nullable=False),
        pa.field("best_ask_qty", pa.float64(), nullable=False),
        pa.field("recv_time", TS, nullable=False),
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
    "book_ticker": BOOK_TICKER,
    "metrics": METRICS,
    "book_depth": BOOK_DEPTH,
    "mark_price": MARK_PRICE,
    "spot_book_ticker": SPOT_BOOK_TICKER,
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
    "book_ticker": "update_id",
    "metrics": "create_time",
    "book_depth": "depth_key",  # (timestamp, percentage): see book_depth_key
    "mark_price": "event_time",
    "spot_book_ticker": "update_id",
}
TIME_COLUMNS: dict[str, str] = {
    "klines": "open_time",
    "mark_klines": "open_time",
    "index_klines": "open_time",
    "premium_klines": "open_time",
    "agg_trades": "transact_time",
    "trades": "time",
    "funding": "funding_time",
    "book_ticker": "transaction_time",
    "metrics": "create_time",
    "book_depth": "timestamp",
    "mark_price": "event_time",
    "spot_book_ticker": "recv_time",
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


# book_depth_key: (timestamp in ms) * 10_000 + (percentage in hundredths + 5_000), so the
# key sorts by time, then by band, and both parts can be read back. Holds any band within
# +-49.99 % at 0.01 % steps, and times to the year 2262.
_DEPTH_PCT_SCALE = 100
_DEPTH_PCT_OFFSET = 5_000
_DEPTH_SLOTS = 10_000


def book_depth_key(timestamp_us: np.ndarray, percentage: np.ndarray) -> np.ndarray:
    """The `depth_key` of book_depth rows (see BOOK_DEPTH). InputError for a time that is
    not a whole millisecond or a band outside +-49.99 % or off the 0.01 % grid."""
    ts = np.asarray(timestamp_us, dtype=np.int64)
    pct = np.asarray(percentage, dtype=np.float64)
    hundredths = np.rint(pct * _DEPTH_PCT_SCALE)
    bad = ~np.isfinite(pct) | (np.abs(hundredths) >= _DEPTH_PCT_OFFSET) \
        | (np.abs(hundredths - pct * _DEPTH_PCT_SCALE) > 1e-6)
    if bad.any():
        raise InputError(f"book_depth: percentage {pct[bad][0]!r} is not a band within "
                         f"+-49.99 % at 0.01 % steps")
    if (ts % 1000).any():
        raise InputError("book_depth: timestamps must be whole milliseconds")
    return (ts // 1000) * _DEPTH_SLOTS + hundredths.astype(np.int64) + _DEPTH_PCT_OFFSET
