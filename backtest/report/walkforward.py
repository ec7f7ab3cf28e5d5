"""The walk-forward report: one self-contained HTML page (see `backtest.report.html`).

``write_walk_forward_report(result, "wf.html")`` writes the stitched out-of-sample
equity against the in-sample best (the combination that is best over the whole range,
i.e. what hindsight would have picked, rebased to the same capital at the first test
bar), with the fold boundaries marked; the parameters chosen per fold (one step chart
per parameter, stop levels included when they are swept); the out-of-sample metrics
(exits per reason among them), the Deflated Sharpe Ratio and the PBO; a table of the
folds with their out-of-sample stop-loss, take-profit and trailing-stop exits; the
settings. A path ending in ``.json`` gets the result's JSON.
Curves longer than 20,000 bars are thinned with the M4 rule, as in the run report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backtest.report import _write_text
from backtest.report.downsample import MAX_PLOT_POINTS, m4_indices
from backtest.report.figures import BLUE, GREY, ORANGE, _layout, _thinned_title
from backtest.report.html import page, section, warnings_block
from backtest.report.tables import cell, metrics_table, settings_table, table
from backtest.walkforward import WalkForwardResult

FOLD_COLUMNS = (("in_sample", "sharpe"), ("in_sample", "total_return"),
                ("out_of_sample", "total_return"), ("out_of_sample", "sharpe"),
                ("out_of_sample", "max_drawdown"), ("out_of_sample", "n_trades"),
                ("out_of_sample", "n_sl_exits"), ("out_of_sample", "n_tp_exits"),
                ("out_of_sample", "n_trail_exits"))


def _iso_ms(text: str) -> float:
    return float(np.datetime64(text.rstrip("Z"), "ms").astype(np.int64))


def equity_figure(result: WalkForwardResult, max_points: int = MAX_PLOT_POINTS) -> go.Figure:
    """Stitched out-of-sample equity vs the in-sample best, fold starts as dotted lines."""
    eq = result.equity
    x_all = eq.get_column("open_time").dt.epoch("ms").to_numpy().astype(np.float64)
    oos = eq.get_column("equity").to_numpy().astype(np.float64)
    best = eq.get_column("in_sample_best").to_numpy().astype(np.float64)
    idx = m4_indices([oos, np.nan_to_num(best)], max_points)
    fig = go.Figure([
        go.Scatter(x=x_all[idx], y=oos[idx], mode="lines", line={"color": BLUE},
                   name="walk-forward (out of sample, stitched)"),
        go.Scatter(x=x_all[idx], y=best[idx], mode="lines", line={"color": GREY, "dash": "dot"},
                   name=f"in-sample best {_params_text(result.deflated_sharpe['params'])}"),
    ])
    for fold in result.folds[1:]:
        fig.add_vline(x=_iso_ms(fold.test[0]), line={"color": ORANGE, "width": 1, "dash": "dot"})
    title = _thinned_title("Out-of-sample equity vs the in-sample best", len(idx), eq.height)
    return _layout(fig, title, "equity (quote)", height=380)


def params_figure(result: WalkForwardResult) -> go.Figure:
    """The value each parameter took per fold, against the fold's test start."""
    names = result.param_names
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=names)
    x = [_iso_ms(f.test[0]) for f in result.folds]
    for row, name in enumerate(names, start=1):
        y = [f.params.get(name) for f in result.folds]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line_shape="hv", name=name,
                                 text=[f"fold {k}" for k in range(len(x))]), row=row, col=1)
    fig = _layout(fig, "Parameters chosen per fold (at each test window's start)", "",
                  height=max(260, 170 * len(names)))
    fig.update_layout(showlegend=False)
    return fig


def _params_text(params: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"


def folds_table(result: WalkForwardResult) -> str:
    """One row per fold: windows, chosen parameters, in- and out-of-sample metrics."""
    headers = ["fold", "train start", "train end", "test start", "test end",
               *result.param_names, *(f"{side.replace('_', ' ')} {m}" for side, m in FOLD_COLUMNS)]
    rows = []
    for k, fold in enumerate(result.folds):
        row = [cell("fold", k), *(cell("time", t) for t in (*fold.train, *fold.test))]
        row += [cell(n, fold.params.get(n)) for n in result.param_names]
        for side, metric in FOLD_COLUMNS:
            values = getattr(fold, side) or {}
            row.append(cell(metric, values.get(metric)))
        rows.append(row)
    return table(headers, rows, "folds", f"{len(result.folds)} folds (windows are [start, end))")


def walk_forward_report_html(result: WalkForwardResult,
                             max_points: int = MAX_PLOT_POINTS) -> str:
    """The HTML text of a walk-forward report (see the module docstring)."""
    if result.equity.height == 0:
        raise ValueError("the walk-forward has no out-of-sample bars: nothing to report")
    cfg = result.config
    title = (f"{result.strategy} walk-forward on {cfg.get('symbol', '?')} "
             f"{cfg.get('interval', '')} ({cfg.get('market', '?')})")
    oos = result.out_of_sample
    subtitle = (f"{len(result.folds)} folds, train {cfg.get('train')}, test {cfg.get('test')}"
                f" ({'anchored' if cfg.get('anchored') else 'rolling'}), objective "
                f"{result.objective}; out of sample {oos.get('start')} to {oos.get('end')}")
    dsr, pbo = result.deflated_sharpe, result.pbo or {}
    overfit = {"deflated Sharpe ratio": dsr.get("dsr"),
               "trials (combinations)": dsr.get("n_trials"),
               "best full-sample params": _params_text(dsr.get("params", {})),
               "its Sharpe per bar": dsr.get("sharpe"),
               "expected max Sharpe per bar": dsr.get("expected_max_sharpe"),
               "PBO (CSCV)": pbo.get("pbo"), "CSCV blocks": pbo.get("n_blocks"),
               "CSCV splits": pbo.get("n_splits"),
               "in-sample Sharpe (mean of folds)": oos.get("in_sample_sharpe"),
               "Sharpe gap (in - out of sample)": oos.get("sharpe_gap")}
    metrics = {k: v for k, v in oos.items()
               if k not in ("start", "end", "in_sample_sharpe", "sharpe_gap")}
    summary = (f'<div class="grid"><div>{metrics_table(metrics)}</div>'
               f"<div>{settings_table(overfit, 'overfitting')}</div></div>")
    sections = [
        warnings_block(result.warnings),
        section("Out of sample, deflated Sharpe and PBO", summary),
        "{figure:fig-wf-equity}", "{figure:fig-wf-params}",
        section("Folds", folds_table(result), scroll=True),
        section("Settings", settings_table(cfg, "config")),
    ]
    figs = {"fig-wf-equity": equity_figure(result, max_points),
            "fig-wf-params": params_figure(result)}
    return page(title, subtitle, sections, figs, result.to_dict())


def write_walk_forward_report(result: WalkForwardResult, path: str | os.PathLike,
                              max_points: int = MAX_PLOT_POINTS) -> Path:
    """Write the report to `path`: HTML, or the result's JSON if it ends in .json."""
    if str(path).lower().endswith(".json"):
        return _write_text(path, result.to_json() + "\n")
    return _write_text(path, walk_forward_report_html(result, max_points))
