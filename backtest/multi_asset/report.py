"""The HTML report of a portfolio run: equity and exposure, weights over time, per-asset
PnL, metrics, settings and the per-asset table, in one self-contained file.

Built from `backtest.report`'s page, section and table helpers (same look as a run
report). Decisions: per-bar series longer than `MAX_POINTS` are plotted every k-th bar
(a stride, so weights stay aligned across assets; metrics and tables use every bar);
the weights chart shows the weights held at each close (`PortfolioResult.weights`). A
path ending in ``.json`` gets the result's JSON instead. The report embeds
``result.to_dict()`` as ``<script type="application/json" id="report-data">``.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from backtest.multi_asset.results import PortfolioResult
from backtest.report import tables
from backtest.report.figures import TEMPLATE
from backtest.report.html import page, section, warnings_block
from kline_lake.errors import InputError
from kline_lake.lake.atomic import atomic_write_bytes

MAX_POINTS = 5_000


def _layout(fig: go.Figure, title: str, y_title: str, height: int = 360) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title={"text": title, "x": 0.01}, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 40}, hovermode="x unified")
    fig.update_yaxes(title_text=y_title)
    return fig


def _stride(n: int, max_points: int) -> np.ndarray:
    step = max(1, -(-n // max_points))
    idx = np.arange(0, n, step)
    return idx if idx[-1] == n - 1 else np.r_[idx, n - 1]


def portfolio_figures(result: PortfolioResult, max_points: int = MAX_POINTS
                      ) -> dict[str, go.Figure]:
    """Equity/exposure, weights over time and per-asset PnL figures."""
    idx = _stride(result.equity.height, max_points)
    x = result.time_us[idx].astype("datetime64[us]")
    eq = _layout(go.Figure(), "Equity and exposure", "account currency")
    for col in ("equity", "gross_exposure", "net_exposure"):
        eq.add_trace(go.Scatter(x=x, y=result.equity[col].to_numpy()[idx], name=col,
                                mode="lines"))
    weights = result.weights[idx]
    wf = _layout(go.Figure(), "Weights held at each close", "fraction of equity", 420)
    for k, name in enumerate(result.asset_names):
        wf.add_trace(go.Scatter(x=x, y=weights[:, k], name=name, mode="lines",
                                stackgroup="pos" if (weights[:, k] >= 0).all() else None))
    pnl = [result.assets[n]["pnl"] for n in result.asset_names]
    pf = _layout(go.Figure(go.Bar(x=result.asset_names, y=pnl, name="pnl")),
                 "PnL per asset (net of fees and funding)", "account currency")
    pf.update_layout(hovermode="closest")
    return {"fig-equity": eq, "fig-weights": wf, "fig-pnl": pf}


def assets_table(result: PortfolioResult) -> str:
    """One row per asset: pnl, fees, funding, turnover, orders, final position."""
    cols = ["pnl", "fees_paid", "funding_paid", "turnover", "n_orders", "final_position",
            "delisted_at"]
    rows = [[f'<th scope="row">{html.escape(name)}</th>',
             *(tables.cell(c, result.assets[name][c]) for c in cols)]
            for name in result.asset_names]
    return tables.table(["asset", *cols], rows, "assets")


def portfolio_report_html(result: PortfolioResult, max_points: int = MAX_POINTS) -> str:
    """The HTML text of a portfolio report (see the module docstring)."""
    if result.equity.height == 0:
        raise ValueError("the result has no bars: nothing to report")
    cfg = result.config
    title = f"Portfolio {result.strategy}: {len(result.asset_names)} assets, {cfg['interval']}"
    subtitle = f"{cfg['start']} .. {cfg['end']}, {cfg['n_bars']} bars, account in " \
               f"{cfg['account']}"
    settings = {k: v for k, v in cfg.items() if k not in ("start", "end", "universe")}
    summary = (f'<div class="grid"><div>{tables.metrics_table(result.metrics)}</div>'
               f"<div>{tables.settings_table(result.params, 'params')}</div>"
               f"<div>{tables.settings_table(settings, 'config')}</div></div>")
    sections = [warnings_block(result.warnings),
                section("Metrics, parameters and settings", summary),
                "{figure:fig-equity}", "{figure:fig-weights}", "{figure:fig-pnl}",
                section("Assets", assets_table(result), scroll=True)]
    return page(title, subtitle, sections, portfolio_figures(result, max_points),
                result.to_dict())


def write_portfolio_report(result: PortfolioResult, path: str | os.PathLike,
                           max_points: int = MAX_POINTS) -> Path:
    """Write the report to `path` (HTML, or JSON when it ends in .json), atomically."""
    target = Path(path)
    text = (result.to_json() if str(path).lower().endswith(".json")
            else portfolio_report_html(result, max_points))
    try:
        atomic_write_bytes(target, (text + "\n").encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write report {target}: {exc.strerror or exc}") from exc
    return target
