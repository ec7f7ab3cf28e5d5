"""Result objects of `backtest.run` and `backtest.sweep`.

They carry everything a report needs: the per-bar frame (prices, signal, entries,
exits, position, cash, equity, buy-and-hold equity, drawdown, cumulative fees and
funding), trades, orders, metrics and, for sweeps, the grid as a frame. Frames are
Polars; ``to_pandas()`` converts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backtest.names import LOWER_IS_BETTER
from backtest.records import (
    KIND_NAMES,
    ORDER_DT,
    TRADE_CLOSED,
    TRADE_DT,
    TRADE_LIQUIDATED,
    TRADE_OPEN,
)

_TRADE_STATUS = {TRADE_CLOSED: "closed", TRADE_OPEN: "open", TRADE_LIQUIDATED: "liquidated"}


def json_safe(value: Any) -> Any:
    """NaN/inf -> None, NumPy scalars -> Python, recursively; JSON has no NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _ts(open_time_us: np.ndarray) -> pl.Series:
    return pl.Series("t", open_time_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))


def _records(arr: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    if arr.dtype != dtype:
        raise ValueError(f"{what} must be a backtest.records array of {dtype}, not {arr.dtype}")
    return arr


def trades_frame(trades: np.ndarray, open_time_us: np.ndarray) -> pl.DataFrame:
    """Trade records (`backtest.records.TRADE_DT`) -> a frame with times and labels."""
    t = _records(trades, TRADE_DT, "trades")
    entry, exit_ = t["entry_idx"], t["exit_idx"]
    qty, entry_px, pnl = t["qty"], t["entry_price"], t["pnl"]
    return pl.DataFrame({
        "entry_idx": entry,
        "exit_idx": exit_,
        "entry_time": _ts(open_time_us[entry]),
        "exit_time": _ts(open_time_us[exit_]),
        "side": np.where(t["side"] > 0, "long", "short"),
        "qty": qty,
        "entry_price": entry_px,
        "exit_price": t["exit_price"],
        "entry_fee": t["entry_fee"],
        "exit_fee": t["exit_fee"],
        "funding_paid": t["funding_paid"],
        "pnl": pnl,
        "return": pnl / (qty * entry_px) if t.shape[0] else pnl,
        "status": pl.Series([_TRADE_STATUS[int(s)] for s in t["status"]], dtype=pl.String),
        "liquidated": t["status"] == TRADE_LIQUIDATED,
        "reason": pl.Series([KIND_NAMES.get(int(r)) for r in t["reason"]], dtype=pl.String),
    })


def orders_frame(orders: np.ndarray, open_time_us: np.ndarray) -> pl.DataFrame:
    """Order records (`backtest.records.ORDER_DT`) -> a frame (side buy/sell, kind
    signal/liquidation)."""
    o = _records(orders, ORDER_DT, "orders")
    return pl.DataFrame({
        "idx": o["idx"],
        "time": _ts(open_time_us[o["idx"]]),
        "side": np.where(o["side"] > 0, "buy", "sell"),
        "qty": o["qty"],
        "price": o["price"],
        "fee": o["fee"],
        "kind": pl.Series([KIND_NAMES[int(k)] for k in o["kind"]], dtype=pl.String),
    })


@dataclass
class RunResult:
    """One backtest: ``.metrics`` dict, ``.equity`` per-bar frame, ``.trades``, ``.orders``.

    ``metrics`` holds every name of `backtest.metrics.METRIC_NAMES` and ``ruin_time``
    (ISO time of the ruin bar, None if the account survived).

    ``equity`` columns: open_time, open, high, low, close, signal, entry, exit, position,
    cash, equity, buy_hold_equity, drawdown, cum_fees, cum_funding.
    """

    metrics: dict[str, float]
    equity: pl.DataFrame
    trades: pl.DataFrame
    orders: pl.DataFrame
    strategy: str
    params: dict[str, Any]
    config: dict[str, Any]
    status: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def equity_curve(self) -> np.ndarray:
        return self.equity.get_column("equity").to_numpy()

    def to_pandas(self):
        """The per-bar frame as a pandas DataFrame indexed by open_time."""
        return self.equity.to_pandas().set_index("open_time")

    def to_vectorbt(self, freq: Any = None):
        """These fills as a ``vectorbt.Portfolio`` (its stats, trades and plots apply);
        with funding off its value equals ``equity`` bar for bar. See
        `backtest.vectorbt_export`."""
        from backtest.vectorbt_export import to_vectorbt

        return to_vectorbt(self, freq)

    def to_dict(self, with_trades: bool = True) -> dict[str, Any]:
        """Every metric by name at the top level, plus strategy, params and config."""
        out: dict[str, Any] = dict(self.metrics)  # METRIC_NAMES, then ruin_time
        out.update(strategy=self.strategy, params=self.params, config=self.config,
                   status=self.status, warnings=self.warnings)
        if with_trades:
            trades = self.trades.with_columns(
                pl.col("entry_time").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"),
                pl.col("exit_time").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ"),
            )
            out["trades"] = trades.to_dicts()
        return json_safe(out)

    def to_json(self, path: str | Path | None = None, with_trades: bool = True) -> str:
        """JSON text (NaN -> null); also written to `path` when given."""
        text = json.dumps(self.to_dict(with_trades), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


@dataclass
class SweepResult:
    """A parameter grid: one row per combination with its params and every metric."""

    grid: pl.DataFrame
    strategy: str
    param_names: list[str]
    config: dict[str, Any]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_skipped: int | None = None  # every skipped point; `skipped` keeps the first 1,000

    def __post_init__(self) -> None:
        if self.n_skipped is None:
            self.n_skipped = len(self.skipped)

    def to_frame(self) -> pl.DataFrame:
        """The grid as a Polars frame (``.to_pandas()`` for pandas)."""
        return self.grid

    def to_pandas(self):
        return self.grid.to_pandas()

    def best(self, metric: str = "sharpe", maximize: bool | None = None) -> dict[str, Any]:
        """The row with the best `metric` (NaN rows last): the largest, or the smallest
        for `LOWER_IS_BETTER` metrics unless `maximize` says otherwise."""
        if maximize is None:
            maximize = metric not in LOWER_IS_BETTER
        col = pl.col(metric).fill_nan(None)
        row = self.grid.sort(col, descending=maximize, nulls_last=True).row(0, named=True)
        return row

    def to_records(self) -> list[dict[str, Any]]:
        return json_safe(self.grid.to_dicts())

    def to_json(self, path: str | Path | None = None) -> str:
        """A JSON list: one object per combination, params by name and every metric."""
        text = json.dumps(self.to_records(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text
