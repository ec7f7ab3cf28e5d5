"""REST JSON pages -> lake tables. Pure: decoded JSON in, Arrow out.

Equal, range for range, to what the archive CSVs give (`kline_lake.archive.csv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from kline_lake.core import schemas
from kline_lake.core.schemas import klines_table, ts_column
from kline_lake.errors import InputError


def parse_rest_klines(rows: Sequence[Sequence[Any]], dataset: str = "klines") -> pa.Table:
    """`/klines`-shaped JSON (list of 12-element arrays, prices as strings) -> table."""
    if not rows:
        return schemas.schema_for(dataset).empty_table()
    try:
        arr = np.array(rows, dtype=object)
        if arr.ndim != 2 or arr.shape[1] < 11:
            raise ValueError(f"expected rows of 12 fields, got shape {arr.shape}")
        cols: dict[str, Any] = {
            "open_time": arr[:, 0].astype(np.int64),
            "close_time": arr[:, 6].astype(np.int64),
            "trades": arr[:, 8].astype(np.int64),
        }
        for i, name in ((1, "open"), (2, "high"), (3, "low"), (4, "close"), (5, "volume"),
                        (7, "quote_volume"), (9, "taker_buy_volume"), (10, "taker_buy_quote_volume")):
            cols[name] = arr[:, i].astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"malformed klines response: {exc}") from exc
    return klines_table(cols, dataset)


def parse_rest_agg_trades(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """`/aggTrades` JSON objects (a, p, q, f, l, T, m[, M]) -> table."""
    if not rows:
        return schemas.AGG_TRADES.empty_table()
    try:
        table = pa.table(
            {
                "agg_id": np.fromiter((r["a"] for r in rows), np.int64, len(rows)),
                "price": np.array([r["p"] for r in rows], dtype=np.float64),
                "quantity": np.array([r["q"] for r in rows], dtype=np.float64),
                "first_trade_id": np.fromiter((r["f"] for r in rows), np.int64, len(rows)),
                "last_trade_id": np.fromiter((r["l"] for r in rows), np.int64, len(rows)),
                "transact_time": ts_column(np.fromiter((r["T"] for r in rows), np.int64, len(rows))),
                "is_buyer_maker": pa.array([bool(r["m"]) for r in rows], pa.bool_()),
                "is_best_match": pa.array([r.get("M") for r in rows], pa.bool_()),
            }
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed aggTrades response: {exc!r}") from exc
    return schemas.conform(table, "agg_trades")


def parse_rest_trades(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """`/historicalTrades` JSON objects (id, price, qty, quoteQty, time, isBuyerMaker[,
    isBestMatch]) -> table. COIN-M prints `baseQty` for `quoteQty` (its quote_quantity is
    the base-asset quantity, as its klines' quote volume is)."""
    if not rows:
        return schemas.TRADES.empty_table()
    try:
        n = len(rows)
        quote = "baseQty" if "baseQty" in rows[0] else "quoteQty"
        table = pa.table(
            {
                "trade_id": np.fromiter((r["id"] for r in rows), np.int64, n),
                "price": np.array([r["price"] for r in rows], dtype=np.float64),
                "quantity": np.array([r["qty"] for r in rows], dtype=np.float64),
                "quote_quantity": np.array([r[quote] for r in rows], dtype=np.float64),
                "time": ts_column(np.fromiter((r["time"] for r in rows), np.int64, n)),
                "is_buyer_maker": pa.array([bool(r["isBuyerMaker"]) for r in rows], pa.bool_()),
                "is_best_match": pa.array([r.get("isBestMatch") for r in rows], pa.bool_()),
            }
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed historicalTrades response: {exc!r}") from exc
    return schemas.conform(table, "trades")


def parse_rest_funding(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """`/fundingRate` JSON objects -> table. An empty `markPrice` (old records) is null.

    `fundingTime` is kept exactly as the exchange reports it, including the few ms of
    jitter some records carry (e.g. 16:00:00.001): it is the key the exchange uses.
    """
    if not rows:
        return schemas.FUNDING.empty_table()
    try:
        table = pa.table(
            {
                "funding_time": ts_column(np.fromiter((r["fundingTime"] for r in rows), np.int64, len(rows))),
                "funding_rate": np.array([r["fundingRate"] for r in rows], dtype=np.float64),
                "mark_price": pa.array(
                    [float(r["markPrice"]) if r.get("markPrice") not in (None, "") else None for r in rows],
                    pa.float64(),
                ),
            }
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed fundingRate response: {exc!r}") from exc
    return schemas.conform(table, "funding")
