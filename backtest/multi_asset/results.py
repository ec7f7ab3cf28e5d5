"""The result of `backtest.portfolio`: per-bar account, per-asset totals, orders, metrics.

Everything is in the account currency (quote, or the margin coin for COIN-M) and in
real units: kernel quantities of inverse contracts are mapped back to contracts, their
prices to USD (see `kernel`). Metrics are `backtest.metrics.compute_metrics` on the
portfolio's equity curve, with these portfolio meanings:

- ``exposure``: the fraction of bars that end with any position open;
- ``n_trades``: the number of orders (a portfolio has no single round-trip trade), so
  ``win_rate``, ``profit_factor`` and ``expectancy`` are NaN;
- ``turnover``: the total traded notional; ``n_orders`` the orders;
- ``n_sl_exits``/``n_tp_exits``/``n_trail_exits``: stop exits (orders of kind ``sl``,
  ``tp``, ``trail``; `backtest.stops`), also per asset.

Per asset (``assets[name]``): ``pnl`` (net of fees and funding; the assets' PnL sum to
``final_equity - cash``), ``fees_paid``, ``funding_paid``, ``turnover``, ``n_orders``,
the stop exits by reason, ``final_position`` and ``delisted_at`` (the bar whose close
ended it, or None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backtest.metrics import compute_metrics
from backtest.multi_asset.kernel import (
    A_FEES,
    A_FLOW,
    A_FUND,
    A_SL,
    A_TP,
    A_TRAIL,
    A_TURN,
    STATUS_CASH_LIMITED,
    STATUS_RECORDS_FULL,
    STATUS_RUINED,
)
from backtest.multi_asset.panel import Panel
from backtest.multi_asset.records import KIND_NAMES
from backtest.records import TRADE_DT
from backtest.results import json_safe


def _iso(ts_us: int) -> str:
    return str(np.datetime64(int(ts_us), "us")) + "Z"


def _ts(time_us: np.ndarray) -> pl.Series:
    return pl.Series("open_time", time_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))


@dataclass
class PortfolioResult:
    """One portfolio run.

    ``equity``: a frame per bar (open_time, equity, cash, gross_exposure, net_exposure,
    drawdown, cum_fees, cum_funding). ``positions``/``target_weights``/``weights`` are bars x assets arrays:
    real position units, the weights the kernel was given (NaN off rebalance bars) and
    the weights held at each close (``position * close / equity``, signed).
    """

    metrics: dict[str, Any]
    equity: pl.DataFrame
    assets: dict[str, dict[str, Any]]
    orders: pl.DataFrame
    asset_names: list[str]
    time_us: np.ndarray
    positions: np.ndarray
    weights_given: Any  # () -> the kernel's weights (see `target_weights`), lazy
    held_value: Any  # () -> bars x assets signed value held at each close (lazy)
    strategy: str
    params: dict[str, Any]
    config: dict[str, Any]
    status: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def target_weights(self) -> np.ndarray:
        """The weights the kernel was given: NaN off rebalance bars, 0 before listing."""
        return self.weights_given()

    @property
    def weights(self) -> np.ndarray:
        """Weights held at each close: signed value / equity (an asset without a bar
        counts 0); computed on access."""
        value = self.held_value()
        value /= self.equity_curve[:, None]
        return value

    @property
    def equity_curve(self) -> np.ndarray:
        return self.equity.get_column("equity").to_numpy()

    def to_dict(self) -> dict[str, Any]:
        """Every metric by name, ``assets`` by name, strategy, params, config."""
        out: dict[str, Any] = dict(self.metrics)
        out.update(assets=self.assets, strategy=self.strategy, params=self.params,
                   config=self.config, status=self.status, warnings=self.warnings)
        return json_safe(out)

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text (NaN -> null); also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def _last_finite(a: np.ndarray) -> np.ndarray:
    """The last finite value of each column (NaN if none)."""
    ok = np.isfinite(a)
    idx = np.where(ok.any(axis=0), a.shape[0] - 1 - np.argmax(ok[::-1], axis=0), 0)
    vals = a[idx, np.arange(a.shape[1])]
    return np.where(ok.any(axis=0), vals, np.nan)


def _orders_frame(orders: np.ndarray, panel: Panel, inverse: bool) -> pl.DataFrame:
    cs = panel.contract_size[orders["asset"]] if inverse else np.ones(orders.shape[0])
    side = -orders["side"] if inverse else orders["side"]
    qty = orders["qty"] / cs if inverse else orders["qty"]
    price = 1.0 / orders["price"] if inverse else orders["price"]
    return pl.DataFrame({
        "time": _ts(panel.time_us[orders["idx"]]),
        "asset": [panel.assets[a] for a in orders["asset"]],
        "side": side, "qty": qty, "price": price, "fee": orders["fee"],
        "kind": [KIND_NAMES[int(k)] for k in orders["kind"]],
    }, schema_overrides={"asset": pl.String, "kind": pl.String})


def _notes(status: int, panel: Panel) -> list[str]:
    notes = [f"{panel.assets[k]} was delisted: closed at its last bar's close "
             f"({_iso(panel.time_us[i])})" for k, i in enumerate(panel.delist_idx) if i >= 0]
    if status & STATUS_CASH_LIMITED:
        notes.append("some buys were reduced to the cash the account could spend")
    if status & STATUS_RUINED:
        notes.append("the account value reached 0: trading stopped")
    if status & STATUS_RECORDS_FULL:
        notes.append("the order buffer overflowed; orders are truncated")
    return notes


def exit_counts(acc: np.ndarray) -> dict[str, int]:
    """Stop exits by reason summed over the rows (assets) of a kernel accumulator."""
    return {name: int(acc[:, col].sum()) for name, col in
            (("n_sl_exits", A_SL), ("n_tp_exits", A_TP), ("n_trail_exits", A_TRAIL))}


def _per_asset(panel: Panel, sim: dict, orders: np.ndarray, positions: np.ndarray
               ) -> dict[str, dict[str, Any]]:
    acc, pos = sim["acc"], sim["position"]
    last_px = _last_finite(sim["close"])
    held = np.where(pos[-1] != 0.0, pos[-1] * np.nan_to_num(last_px), 0.0)
    pnl = acc[:, A_FLOW] + held - acc[:, A_FUND]
    counts = np.bincount(orders["asset"], minlength=panel.n_assets)
    out = {}
    for k, name in enumerate(panel.assets):
        d = int(panel.delist_idx[k])
        out[name] = {"pnl": float(pnl[k]), "fees_paid": float(acc[k, A_FEES]),
                     "funding_paid": float(acc[k, A_FUND]), "turnover": float(acc[k, A_TURN]),
                     "n_orders": int(counts[k]), **exit_counts(acc[k:k + 1]),
                     "final_position": float(positions[-1, k]),
                     "delisted_at": _iso(panel.time_us[d]) if d >= 0 else None}
    return out


def build_result(panel: Panel, w: Any, sim: dict, strategy: str, params: dict,
                 config: dict, inverse: bool) -> PortfolioResult:
    """Assemble a PortfolioResult from the kernel's outputs (kernel units -> real)."""
    pos_k, equity = sim["position"], sim["equity"]
    positions = -pos_k / panel.contract_size if inverse else pos_k
    close_k = sim["close"]

    def held_value() -> np.ndarray:
        value = np.nan_to_num(close_k, nan=0.0, posinf=0.0)  # no bar: shown as 0
        value *= -pos_k if inverse else pos_k
        return value

    orders = sim["orders"]
    acc = sim["acc"]
    cash0 = float(config["cash"])
    metrics = compute_metrics(equity, sim["gross"], np.empty(0, dtype=TRADE_DT), cash0,
                              float(acc[:, A_FEES].sum()), float(acc[:, A_FUND].sum()),
                              panel.bar_days)
    metrics.update(n_trades=int(orders.shape[0]), n_orders=int(orders.shape[0]),
                   turnover=float(acc[:, A_TURN].sum()), **exit_counts(acc))
    peak = np.maximum.accumulate(np.concatenate(([cash0], equity)))[1:]
    net = -sim["net"] if inverse else sim["net"]
    frame = pl.DataFrame({"open_time": _ts(panel.time_us), "equity": equity,
                          "cash": sim["cash"], "gross_exposure": sim["gross"],
                          "net_exposure": net, "drawdown": 1.0 - equity / peak,
                          "cum_fees": sim["fees"], "cum_funding": sim["funding"]})
    return PortfolioResult(metrics, frame, _per_asset(panel, sim, orders, positions),
                           _orders_frame(orders, panel, inverse), list(panel.assets),
                           panel.time_us, positions, w, held_value, strategy, dict(params),
                           {**config, "start": _iso(panel.time_us[0]),
                            "end": _iso(panel.time_us[-1])},
                           sim["status"], [*_notes(sim["status"], panel), *panel.notes])
