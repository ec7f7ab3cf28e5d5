"""Test helpers: synthetic bars and small lakes written with pyarrow in the real layout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from backtest.data import Bars
from kline_lake.core.intervals import INTERVAL_MS
from kline_lake.core.schemas import FUNDING, KLINES, PRICE_KLINES
from kline_lake.fake_exchange.exchange_info import exchange_info
from kline_lake.fake_exchange.universe import UNIVERSE
from kline_lake.lake.writer import LakeWriter

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def make_bars(n: int = 500, seed: int = 0, interval: str = "1h", market: str = "um",
              t0_ms: int = T0_MS, vol: float = 0.01) -> Bars:
    """Seeded random-walk OHLC bars; open differs from the previous close (gaps)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.r_[close[0], close[:-1]] * (1.0 + rng.normal(0.0, vol / 10, n))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0, vol, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0, vol, n))
    t_us = (t0_ms + np.arange(n, dtype=np.int64) * INTERVAL_MS[interval]) * 1000
    return Bars(market, "BTCUSDT", interval, t_us, open_, high, low, close,
                rng.uniform(1, 10, n))


def _ym(ts_us: np.ndarray) -> np.ndarray:
    months = ts_us.astype("datetime64[us]").astype("datetime64[M]").astype(np.int64)
    return months  # months since 1970-01


def _write_partitioned(base: Path, table: pa.Table, time_col: str) -> None:
    t_us = table.column(time_col).cast(pa.int64()).to_numpy()
    months = _ym(t_us)
    for m in np.unique(months):
        year, month = 1970 + int(m) // 12, int(m) % 12 + 1
        d = base / f"year={year}" / f"month={month:02d}"
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.filter(pa.array(months == m)), d / "part-0.parquet")


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(us, dtype=np.int64)).cast(pa.timestamp("us", tz="UTC"))


def write_klines(root: Path, bars: Bars, symbol: str | None = None) -> None:
    """Write `bars` as a klines dataset of the lake at `root`."""
    n = len(bars)
    close_us = bars.open_time_us + INTERVAL_MS[bars.interval] * 1000 - 1000
    table = pa.Table.from_arrays([
        _ts(bars.open_time_us), pa.array(bars.open), pa.array(bars.high), pa.array(bars.low),
        pa.array(bars.close), pa.array(bars.volume), _ts(close_us),
        pa.array(bars.volume * bars.close), pa.array(np.full(n, 10, dtype=np.int64)),
        pa.array(bars.volume / 2), pa.array(bars.volume * bars.close / 2),
    ], schema=KLINES)
    base = (Path(root) / bars.market / "klines" / f"symbol={symbol or bars.symbol}"
            / f"interval={bars.interval}")
    _write_partitioned(base, table, "open_time")


def write_funding(root: Path, market: str, symbol: str, time_us, rate, mark=None) -> None:
    """Write funding records (mark None/NaN -> null, as in the archive)."""
    time_us = np.asarray(time_us, dtype=np.int64)
    if mark is None:
        mark_arr = pa.nulls(time_us.shape[0], pa.float64())
    else:
        m = np.asarray(mark, dtype=np.float64)
        mark_arr = pa.array(m, mask=np.isnan(m))
    table = pa.Table.from_arrays([_ts(time_us), pa.array(np.asarray(rate, float)), mark_arr],
                                 schema=FUNDING)
    _write_partitioned(Path(root) / market / "funding" / f"symbol={symbol}", table,
                       "funding_time")


def write_mark_klines(root: Path, market: str, symbol: str, interval: str, open_time_us,
                      open_) -> None:
    """Write mark-price klines (only open matters to the backtester)."""
    t = np.asarray(open_time_us, dtype=np.int64)
    o = np.asarray(open_, dtype=np.float64)
    table = pa.Table.from_arrays([
        _ts(t), pa.array(o), pa.array(o), pa.array(o), pa.array(o),
        _ts(t + INTERVAL_MS[interval] * 1000 - 1000)], schema=PRICE_KLINES)
    base = Path(root) / market / "mark_klines" / f"symbol={symbol}" / f"interval={interval}"
    _write_partitioned(base, table, "open_time")


def cache_exchange_info(root: Path, market: str) -> dict:
    """Cache the fake exchange's exchangeInfo of `market` in the lake, as a download does."""
    info = exchange_info(market, [s for s in UNIVERSE if s.market == market], T0_MS, 2400, 60)
    LakeWriter(root).save_exchange_info(market, info)
    return info


def iso(ts_us: int) -> str:
    return datetime.fromtimestamp(ts_us / 1e6, tz=UTC).isoformat()
