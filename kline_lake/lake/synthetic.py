"""Deterministic synthetic tables in the lake schemas, for tests and benchmarks.

Not market data: a seeded random walk shaped like it, with internally consistent OHLC
(low <= open, close <= high) and volumes, so resampling and round trips can be checked
without a network or the fake exchange.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kline_lake.core.intervals import INTERVAL_MS
from kline_lake.core.schemas import ms_to_ts


def synthetic_klines(start_ms: int, n: int, interval: str = "1m", seed: int = 0,
                     price_only: bool = False) -> pa.Table:
    """`n` consecutive klines of a fixed-length `interval` opening at `start_ms`."""
    step_ms = INTERVAL_MS[interval]
    rng = np.random.default_rng(seed)
    open_ms = start_ms + np.arange(n, dtype=np.int64) * step_ms
    steps = rng.normal(0.0, 0.001, size=n)
    close = 100.0 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[100.0], close[:-1]])[:n]
    spread = np.abs(rng.normal(0.0, 0.0005, size=n)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    columns = {
        "open_time": ms_to_ts(open_ms),
        "open": open_,
        "high": high,
        "low": low,
        "close": close,
    }
    if not price_only:
        volume = rng.integers(1, 1000, size=n).astype(np.float64) / 10.0
        columns["volume"] = volume
    columns["close_time"] = ms_to_ts(open_ms + step_ms - 1)
    if not price_only:
        columns["quote_volume"] = volume * close
        columns["trades"] = rng.integers(1, 500, size=n).astype(np.int64)
        columns["taker_buy_volume"] = volume / 2.0
        columns["taker_buy_quote_volume"] = volume * close / 2.0
    return pa.table(columns)


def synthetic_agg_trades(start_ms: int, n: int, first_id: int = 0, spacing_ms: int = 250,
                         seed: int = 0) -> pa.Table:
    """`n` aggregate trades with contiguous ids from `first_id`, one every `spacing_ms`."""
    rng = np.random.default_rng(seed)
    ids = first_id + np.arange(n, dtype=np.int64)
    first_trade = ids * 3
    return pa.table({
        "agg_id": ids,
        "price": 100.0 + np.cumsum(rng.normal(0, 0.01, size=n)),
        "quantity": rng.integers(1, 100, size=n) / 10.0,
        "first_trade_id": first_trade,
        "last_trade_id": first_trade + 2,
        "transact_time": ms_to_ts(start_ms + np.arange(n, dtype=np.int64) * spacing_ms),
        "is_buyer_maker": rng.integers(0, 2, size=n).astype(bool),
        "is_best_match": pa.nulls(n, pa.bool_()),
    })


def synthetic_funding(start_ms: int, n: int, seed: int = 0) -> pa.Table:
    """`n` funding events every 8 hours from `start_ms`."""
    rng = np.random.default_rng(seed)
    times = start_ms + np.arange(n, dtype=np.int64) * 8 * 3_600_000
    return pa.table({
        "funding_time": ms_to_ts(times),
        "funding_rate": rng.normal(0.0001, 0.0001, size=n),
        "mark_price": 100.0 + rng.normal(0, 1, size=n),
    })
