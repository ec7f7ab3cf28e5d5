"""Backtest reports: one self-contained HTML file (Plotly, inlined) or JSON.

``write_run_report(result, "run.html")`` writes the price with entries and exits,
equity against buy-and-hold, drawdown, cumulative fees and funding, the metrics, the
settings and the trades. ``write_sweep_report(sweep, "sweep.html", metric="sharpe")``
writes a heatmap of one metric over two swept parameters and the best rows. A path
ending in ``.json`` gets the result's own JSON instead (`RunResult.to_json`,
`SweepResult.to_json`).

Decisions (the issue was silent):

- Per-bar series longer than 20,000 bars are thinned for plotting with the M4 rule
  (first, last, min and max per bucket; see `backtest.report.downsample`): a year of
  1m bars makes a report of a few MB that opens in about a second, with every peak and
  trough kept. Metrics and tables always use every bar.
- More than 5,000 trades: every k-th trade is marked on the price chart; more than
  1,000 trades: the table shows the first and last 500 (the JSON has them all).
- A sweep over more than two parameters shows, per heatmap cell, the best value over
  the other parameters (max, or min for drawdown, fees and funding); one swept
  parameter gives a line chart instead of a heatmap.
- The report embeds ``result.to_dict(with_trades=False)`` (run) or the grid records
  (sweep) as ``<script type="application/json" id="report-data">``.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import Any

from backtest.report import figures, tables
from backtest.report.downsample import MAX_PLOT_POINTS, m4_indices, thin_markers
from backtest.report.html import page, section, warnings_block
from backtest.results import LOWER_IS_BETTER, RunResult, SweepResult, json_safe
from kline_lake.errors import InputError
from kline_lake.lake.atomic import atomic_write_bytes

__all__ = [
    "MAX_PLOT_POINTS", "m4_indices", "run_report_html", "sweep_report_html", "thin_markers",
    "write_report", "write_run_report", "write_sweep_report",
]


def _describe_run(result: RunResult) -> tuple[str, str]:
    cfg = result.config
    title = (f"{result.strategy} on {cfg.get('symbol', '?')} {cfg.get('interval', '')} "
             f"({cfg.get('market', '?')})")
    start, end = (str(cfg.get(k, "?")).replace(".000000Z", "Z") for k in ("start", "end"))
    subtitle = (f"{start} to {end} (bar opens, UTC), "
                f"{cfg.get('n_bars', result.equity.height):,} bars; "
                f"funding {'on' if cfg.get('funding') else 'off'}, "
                f"fee rate {cfg.get('fee_rate')}, slippage {cfg.get('slippage_bps')} bps")
    return title, subtitle


def run_report_html(result: RunResult, max_points: int = MAX_PLOT_POINTS,
                    max_trade_rows: int = tables.MAX_TRADE_ROWS) -> str:
    """The HTML text of a run report (see the module docstring)."""
    if result.equity.height == 0:
        raise ValueError("the result has no bars: nothing to report")
    title, subtitle = _describe_run(result)
    figs = figures.run_figures(result, max_points)
    settings = {k: v for k, v in result.config.items() if k not in ("start", "end")}
    summary = (f'<div class="grid"><div>{tables.metrics_table(result.metrics)}</div>'
               f"<div>{tables.settings_table(result.params, 'params')}</div>"
               f"<div>{tables.settings_table(settings, 'config')}</div></div>")
    sections = [
        warnings_block(result.warnings),
        section("Metrics, parameters and settings", summary),
        "{figure:fig-price}", "{figure:fig-equity}", "{figure:fig-drawdown}",
        "{figure:fig-costs}",
        section("Trades", tables.trades_table(result.trades, max_trade_rows), scroll=True),
    ]
    return page(title, subtitle, sections, figs, result.to_dict(with_trades=False))


def sweep_report_html(sweep: SweepResult, metric: str = "sharpe", x: str | None = None,
                      y: str | None = None, n_best: int = 20) -> str:
    """The HTML text of a sweep report: heatmap of `metric` over `x` and `y`, best rows."""
    grid = sweep.to_frame()
    if grid.height == 0:
        raise ValueError("the sweep has no valid combination: nothing to report")
    fig = figures.sweep_figure(sweep, metric, x, y)
    maximize = metric not in LOWER_IS_BETTER
    cfg = sweep.config
    title = (f"{sweep.strategy} sweep on {cfg.get('symbol', '?')} {cfg.get('interval', '')} "
             f"({cfg.get('market', '?')})")
    subtitle = (f"{grid.height:,} combinations of {', '.join(sweep.param_names)}, "
                f"{sweep.n_skipped or 0:,} skipped as invalid; {cfg.get('n_bars', '?')} bars")
    skipped = ""
    if sweep.skipped:
        reasons = sorted({str(s.get("reason", "")) for s in sweep.skipped})
        skipped = section("Skipped combinations", "<ul>" + "".join(
            f"<li>{escape(r)}</li>" for r in reasons[:20]) + "</ul>")
    sections = [
        "{figure:fig-sweep}",
        section("Best combinations", tables.best_rows_table(grid, metric, maximize, n_best),
                scroll=True),
        section("Settings", tables.settings_table(cfg, "config")),
        skipped,
    ]
    data = {"strategy": sweep.strategy, "params": sweep.param_names, "metric": metric,
            "config": cfg, "grid": sweep.to_records()}
    return page(title, subtitle, sections, {"fig-sweep": fig}, json_safe(data))


def _write_text(path: str | os.PathLike, text: str) -> Path:
    """Write atomically through the lake's one atomic-file writer (temp file beside
    `path`, fsync, rename). An unwritable path is the caller's input: InputError (exit 2).
    """
    target = Path(path)
    try:
        atomic_write_bytes(target, text.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"cannot write report {target}: {exc.strerror or exc}") from exc
    return target


def write_run_report(result: RunResult, path: str | os.PathLike,
                     max_points: int = MAX_PLOT_POINTS) -> Path:
    """Write a run report to `path`: HTML, or the result's JSON if it ends in .json."""
    if str(path).lower().endswith(".json"):
        return _write_text(path, result.to_json() + "\n")
    return _write_text(path, run_report_html(result, max_points))


def write_sweep_report(sweep: SweepResult, path: str | os.PathLike, metric: str = "sharpe",
                       x: str | None = None, y: str | None = None) -> Path:
    """Write a sweep report to `path`: HTML, or the grid's JSON if it ends in .json."""
    if str(path).lower().endswith(".json"):
        return _write_text(path, sweep.to_json() + "\n")
    return _write_text(path, sweep_report_html(sweep, metric, x, y))


def write_report(result: RunResult | SweepResult, path: str | os.PathLike,
                 **options: Any) -> Path:
    """`write_run_report` or `write_sweep_report`, chosen by the result's type."""
    if isinstance(result, SweepResult):
        return write_sweep_report(result, path, **options)
    if isinstance(result, RunResult):
        return write_run_report(result, path, **options)
    raise TypeError(f"expected a RunResult or SweepResult, got {type(result).__name__}")
