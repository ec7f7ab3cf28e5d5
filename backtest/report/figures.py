"""Plotly figures of a backtest, as pure functions of its result.

Times are plotted as milliseconds since the epoch on ``type="date"`` axes (plotly.js
reads numbers on a date axis as UTC milliseconds), so they travel as compact base64
float64 arrays instead of ISO strings. Per-bar series longer than `max_points` are
thinned with the M4 rule of `backtest.report.downsample`; the chart title says so.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl

from backtest.report.downsample import MAX_MARKERS, MAX_PLOT_POINTS, m4_indices, thin_markers
from backtest.results import LOWER_IS_BETTER, RunResult, SweepResult

TEMPLATE = "plotly_white"
MAX_LABELLED_CELLS = 400  # heatmaps up to 20 x 20 print each cell's value
GREEN, RED, GREY, BLUE, ORANGE = "#2ca02c", "#d62728", "#555555", "#1f77b4", "#ff7f0e"


def _time_ms(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame.get_column(column).dt.epoch("ms").to_numpy().astype(np.float64)


def _col(frame: pl.DataFrame, column: str) -> np.ndarray:
    return frame.get_column(column).to_numpy().astype(np.float64)


def _layout(fig: go.Figure, title: str, y_title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE, title={"text": title, "x": 0.01}, height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40}, hovermode="x unified",
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )
    fig.update_xaxes(type="date")
    fig.update_yaxes(title_text=y_title)
    return fig


def _thinned_title(title: str, n_shown: int, n_total: int) -> str:
    if n_shown >= n_total:
        return title
    return f"{title} <sup>({n_shown:,} of {n_total:,} bars plotted, M4 downsampling)</sup>"


def _lines(result: RunResult, columns: list[str], max_points: int
           ) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
    """x (ms) and the thinned `columns`, plus the number of bars before thinning."""
    frame = result.equity
    values = {c: _col(frame, c) for c in columns}
    idx = m4_indices(list(values.values()), max_points)
    return _time_ms(frame, "open_time")[idx], {c: v[idx] for c, v in values.items()}, frame.height


def _trade_markers(trades: pl.DataFrame, max_markers: int) -> list[go.Scatter]:
    """Entry (triangles, by side), exit (circles) and liquidation (x) markers."""
    if trades.height == 0:
        return []
    keep = thin_markers(trades.height, max_markers)
    t = trades[keep.tolist()]
    side = t.get_column("side").to_numpy()
    status = t.get_column("status").to_numpy()
    pnl = _col(t, "pnl")
    size = 9 if t.height <= 500 else 5  # dense markers would hide the price line
    out = []
    for name, mask, symbol, color in (("long entry", side == "long", "triangle-up", GREEN),
                                      ("short entry", side == "short", "triangle-down", RED)):
        if mask.any():
            out.append(go.Scatter(
                x=_time_ms(t, "entry_time")[mask], y=_col(t, "entry_price")[mask],
                mode="markers", name=name, marker={"symbol": symbol, "size": size, "color": color}))
    for name, mask, symbol, color in (("exit", status == "closed", "circle-open", GREY),
                                      ("liquidation", status == "liquidated", "x", RED)):
        if mask.any():
            out.append(go.Scatter(
                x=_time_ms(t, "exit_time")[mask], y=_col(t, "exit_price")[mask],
                mode="markers", name=name, marker={"symbol": symbol, "size": size, "color": color},
                customdata=pnl[mask], hovertemplate="exit %{y}<br>trade PnL %{customdata:.2f}"))
    return out


def price_figure(result: RunResult, max_points: int = MAX_PLOT_POINTS,
                 max_markers: int = MAX_MARKERS) -> go.Figure:
    """Close price with entry and exit fills marked at their fill prices."""
    x, y, n = _lines(result, ["close"], max_points)
    fig = go.Figure(go.Scatter(x=x, y=y["close"], mode="lines", name="close",
                               line={"color": BLUE, "width": 1}))
    for trace in _trade_markers(result.trades, max_markers):
        fig.add_trace(trace)
    symbol = result.config.get("symbol", "")
    interval = result.config.get("interval", "")
    title = f"{symbol} {interval} close with entries and exits".strip()
    if result.trades.height > max_markers:
        title += f" <sup>(every k-th of {result.trades.height:,} trades marked)</sup>"
    return _layout(fig, _thinned_title(title, len(x), n), "price", height=420)


def equity_figure(result: RunResult, max_points: int = MAX_PLOT_POINTS) -> go.Figure:
    """Strategy equity against buying at the first open and holding."""
    x, y, n = _lines(result, ["equity", "buy_hold_equity"], max_points)
    fig = go.Figure([
        go.Scatter(x=x, y=y["equity"], mode="lines", name="strategy", line={"color": BLUE}),
        go.Scatter(x=x, y=y["buy_hold_equity"], mode="lines", name="buy and hold",
                   line={"color": GREY, "dash": "dot"}),
    ])
    return _layout(fig, _thinned_title("Equity vs buy-and-hold", len(x), n), "equity (quote)")


def drawdown_figure(result: RunResult, max_points: int = MAX_PLOT_POINTS) -> go.Figure:
    """Drawdown from the running equity peak, drawn below zero."""
    x, y, n = _lines(result, ["drawdown"], max_points)
    fig = go.Figure(go.Scatter(x=x, y=-y["drawdown"], mode="lines", name="drawdown",
                               fill="tozeroy", line={"color": RED, "width": 1}))
    fig = _layout(fig, _thinned_title("Drawdown", len(x), n), "drawdown")
    fig.update_yaxes(tickformat=".1%")
    return fig


def costs_figure(result: RunResult, max_points: int = MAX_PLOT_POINTS) -> go.Figure:
    """Cumulative fees and cumulative funding paid (negative funding = received)."""
    x, y, n = _lines(result, ["cum_fees", "cum_funding"], max_points)
    fig = go.Figure([
        go.Scatter(x=x, y=y["cum_fees"], mode="lines", name="fees paid",
                   line={"color": ORANGE}),
        go.Scatter(x=x, y=y["cum_funding"], mode="lines", name="funding paid (< 0: received)",
                   line={"color": BLUE}),
    ])
    title = _thinned_title("Cumulative fees and funding", len(x), n)
    return _layout(fig, title, "quote currency")


def run_figures(result: RunResult, max_points: int = MAX_PLOT_POINTS) -> dict[str, go.Figure]:
    """Every chart of a run report, by element id, in page order."""
    return {
        "fig-price": price_figure(result, max_points),
        "fig-equity": equity_figure(result, max_points),
        "fig-drawdown": drawdown_figure(result, max_points),
        "fig-costs": costs_figure(result, max_points),
    }


def sweep_axes(sweep: SweepResult, x: str | None, y: str | None) -> tuple[str, str | None]:
    """The parameters on the heatmap axes: given ones, else the first two of the grid."""
    names = list(sweep.param_names)
    for name in (x, y):
        if name is not None and name not in names:
            raise ValueError(f"{name!r} is not a swept parameter (swept: {', '.join(names)})")
    rest = [n for n in names if n not in (x, y)]
    x = x if x is not None else rest.pop(0)
    if y is None:
        y = rest.pop(0) if rest else None
    if x == y:
        raise ValueError(f"x and y must be different parameters, both are {x!r}")
    return x, y


def metric_pivot(grid: pl.DataFrame, metric: str, x: str, y: str, maximize: bool
                 ) -> tuple[list, list, np.ndarray]:
    """(x values, y values, z[y, x]): the best `metric` over any other parameters.

    Cells with no valid grid point (skipped or all-NaN) are NaN.
    """
    best = pl.col(metric).fill_nan(None)
    agg = grid.group_by([x, y]).agg((best.max() if maximize else best.min()).alias("z"))
    xs = sorted(grid.get_column(x).unique().to_list())
    ys = sorted(grid.get_column(y).unique().to_list())
    z = np.full((len(ys), len(xs)), np.nan)
    col_of = {v: k for k, v in enumerate(xs)}
    row_of = {v: k for k, v in enumerate(ys)}
    for xv, yv, zv in agg.iter_rows():
        if zv is not None:
            z[row_of[yv], col_of[xv]] = zv
    return xs, ys, z


def sweep_figure(sweep: SweepResult, metric: str = "sharpe", x: str | None = None,
                 y: str | None = None) -> go.Figure:
    """Heatmap of `metric` over parameters `x` and `y` (a line for a 1-parameter grid).

    With more than two swept parameters each cell shows the best value over the others
    (max, or min for metrics where lower is better, see `LOWER_IS_BETTER`).
    """
    grid = sweep.to_frame()
    if metric not in grid.columns:
        raise ValueError(f"unknown metric {metric!r}")
    x, y = sweep_axes(sweep, x, y)
    maximize = metric not in LOWER_IS_BETTER
    others = [n for n in sweep.param_names if n not in (x, y)]
    note = f" (best over {', '.join(others)})" if others else ""
    if y is None:
        xs, _, z = metric_pivot(grid.with_columns(pl.lit(0).alias("_row")), metric, x, "_row",
                                maximize)
        fig = go.Figure(go.Scatter(x=[str(v) for v in xs], y=z[0], mode="lines+markers",
                                   name=metric))
        fig.update_layout(template=TEMPLATE, title=f"{metric} by {x}{note}", height=420,
                          xaxis={"title": x, "type": "category"}, yaxis={"title": metric})
        return fig
    xs, ys, z = metric_pivot(grid, metric, x, y, maximize)
    scale = "RdYlGn" if maximize else "RdYlGn_r"
    fig = go.Figure(go.Heatmap(
        x=[str(v) for v in xs], y=[str(v) for v in ys], z=z, colorscale=scale,
        colorbar={"title": {"text": metric}},
        texttemplate="%{z:.3g}" if z.size <= MAX_LABELLED_CELLS else None,
        hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{z:.4g}}<extra></extra>"))
    fig.update_layout(template=TEMPLATE, title=f"{metric} over {x} x {y}{note}", height=480,
                      xaxis={"title": x, "type": "category"},
                      yaxis={"title": y, "type": "category"})
    return fig
