"""Helpers for the portfolio tests: small lakes written through the lake writer, and the
vectorbt oracle with our conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import vectorbt as vbt

from kline_lake.core.intervals import INTERVAL_MS
from kline_lake.core.schemas import ms_to_ts
from kline_lake.core.series import SeriesKey
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def write_asset(root: Path, market: str, symbol: str, n: int, seed: int, interval: str = "1h",
                start_ms: int = T0_MS, funding_rate: float | None = None) -> None:
    """`n` synthetic klines (and 8-hourly funding for perps when `funding_rate` is set,
    records without markPrice so the mark fallback is exercised)."""
    writer = LakeWriter(root)
    table = synthetic_klines(start_ms, n, interval, seed=seed)
    # a wider walk than the 1m default, so weights and PnL move
    scale = np.exp(np.cumsum(np.random.default_rng(seed + 1000).normal(0, 0.01, n)))
    cols = {name: table.column(name) for name in table.column_names}
    for name in ("open", "high", "low", "close"):
        cols[name] = pa.array(table.column(name).to_numpy() * scale)
    writer.commit(SeriesKey(market, "klines", symbol, interval), pa.table(cols))
    if funding_rate is not None:
        end_ms = start_ms + n * INTERVAL_MS[interval]
        times = np.arange(start_ms, end_ms, 8 * 3_600_000, dtype=np.int64)
        rng = np.random.default_rng(seed + 7)
        rates = funding_rate + rng.normal(0, abs(funding_rate) / 2 + 1e-6, times.shape[0])
        fund = pa.table({"funding_time": ms_to_ts(times), "funding_rate": rates,
                         "mark_price": pa.nulls(times.shape[0], pa.float64())})
        writer.commit(SeriesKey(market, "funding", symbol), fund)


def vbt_portfolio(result, panel, *, fee_rates, slippage_bps: float, cash: float,
                  fill: str = "next_open"):
    """vectorbt `from_orders` on the weights our kernel was given.

    Settings the equivalence needs: ``size_type="targetpercent"``, ``direction="both"``,
    ``cash_sharing=True``, ``group_by=True``, ``call_seq="auto"`` (sells first, in
    ascending order of order value); ``price = val_price`` = the fill price before
    slippage: with ``fill="next_open"`` the weights of bar t are vectorbt's size at row
    t+1 with ``price=open`` (vectorbt fills a row at that row's price); with
    ``fill="close"`` row t with ``price=close``. ``fees`` per asset, ``slippage`` as a
    fraction; defaults ``lock_cash=False`` and ``allow_partial=True`` (a buy the cash
    cannot pay is reduced, as in our kernel at leverage 1); ``update_value=False`` (the
    account value is taken once per bar, before its orders). Every asset must have a bar
    on every row (vectorbt carries a missing open forward, we value at the last close).
    """
    w = result.target_weights
    n, m = w.shape
    idx = pd.date_range("2024-01-01", periods=n, freq="h")
    if fill == "next_open":
        size = np.vstack([np.full((1, m), np.nan), w[:-1]])
        price = panel.open
    else:
        size, price = w, panel.close
    frame = lambda a: pd.DataFrame(a, index=idx)  # noqa: E731
    return vbt.Portfolio.from_orders(
        frame(panel.close), size=frame(size), size_type="targetpercent", direction="both",
        price=frame(price), val_price=frame(price), fees=np.asarray(fee_rates)[None, :],
        slippage=slippage_bps / 1e4, init_cash=cash, cash_sharing=True, group_by=True,
        call_seq="auto", freq="1h")


def assert_matches_vbt(result, pf, rel: float = 1e-9) -> None:
    """Equity per bar and total fees agree to `rel` relative."""
    ve = pf.value().to_numpy()
    ours = result.equity_curve
    assert ours.shape == ve.shape
    np.testing.assert_allclose(ours, ve, rtol=rel, atol=0)
    np.testing.assert_allclose(result.metrics["fees_paid"], pf.orders.fees.sum(), rtol=rel)
    assert result.orders.height == pf.orders.count()
