"""HTML tables of a report: metrics, trades, settings and the best sweep rows.

Every cell text is HTML-escaped. Numeric cells also carry their exact value in a
``data-value`` attribute (``repr`` of the float, ``nan``/``inf`` spelled out) so the
displayed rounding never hides the number: tests and scripts read it back.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl

PERCENT_METRICS = frozenset({"total_return", "cagr", "max_drawdown", "win_rate", "exposure",
                             "return"})
MONEY_METRICS = frozenset({"final_equity", "expectancy", "fees_paid", "funding_paid", "pnl",
                           "entry_fee", "exit_fee"})
METRIC_LABELS = {
    "final_equity": "final equity", "total_return": "total return", "cagr": "CAGR",
    "sharpe": "Sharpe (365 d)", "sortino": "Sortino (365 d)", "calmar": "Calmar",
    "max_drawdown": "max drawdown", "max_drawdown_duration": "max drawdown duration",
    "n_trades": "trades", "win_rate": "win rate", "profit_factor": "profit factor",
    "expectancy": "expectancy per trade", "exposure": "exposure",
    "fees_paid": "fees paid", "funding_paid": "funding paid",
    "ruined": "ruined (trading stopped)", "ruin_idx": "ruin bar (-1: none)",
    "ruin_time": "ruined at",
}
MAX_TRADE_ROWS = 1_000


def format_value(name: str, value: Any) -> str:
    """Display text of one value: percents, money with 2 decimals, days, counts."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, int):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if name in PERCENT_METRICS:
        return f"{value:.2%}"
    if name in MONEY_METRICS:
        return f"{value:,.2f}"
    if name == "max_drawdown_duration":
        return f"{value:,.2f} d"
    if name == "n_trades":
        return f"{int(value):,}"
    return f"{value:.6g}"


def exact_value(value: Any) -> str | None:
    """The machine-readable ``data-value`` of a numeric cell (None for other cells)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return repr(float(value)) if isinstance(value, float) else str(value)


def cell(name: str, value: Any, tag: str = "td") -> str:
    """One escaped cell with its exact value attached."""
    exact = exact_value(value)
    attrs = f' data-key="{html.escape(name)}"'
    if exact is not None:
        attrs += f' data-value="{html.escape(exact)}" class="num"'
    return f"<{tag}{attrs}>{html.escape(format_value(name, value))}</{tag}>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], table_id: str,
          caption: str | None = None) -> str:
    """A ``<table>`` from escaped header names and rows of ready-made cells."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "\n".join(f"<tr>{''.join(r)}</tr>" for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<table id="{html.escape(table_id)}">{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table>")


def metrics_table(metrics: Mapping[str, float]) -> str:
    """Metric name, displayed value (``data-value`` exact), one row per metric."""
    rows = []
    for name, value in metrics.items():
        label = METRIC_LABELS.get(name, name)
        rows.append([f"<th scope=\"row\">{html.escape(label)}</th>", cell(name, value)])
    return table(["metric", "value"], rows, "metrics")


def settings_table(settings: Mapping[str, Any], table_id: str = "settings") -> str:
    """Key/value rows: strategy parameters or the run configuration."""
    rows = [[f"<th scope=\"row\">{html.escape(str(k))}</th>", cell(str(k), v)]
            for k, v in settings.items()]
    return table(["setting", "value"], rows, table_id)


def frame_rows(frame: pl.DataFrame) -> list[list[str]]:
    """Cells of every row of `frame`, column names as the format keys."""
    names = frame.columns
    return [[cell(n, v) for n, v in zip(names, row, strict=True)] for row in frame.iter_rows()]


def trades_table(trades: pl.DataFrame, max_rows: int = MAX_TRADE_ROWS) -> str:
    """The trades; beyond `max_rows` the first and last halves with a note between."""
    shown = trades.drop("entry_idx", "exit_idx", strict=False)
    if shown.height <= max_rows:
        return table(shown.columns, frame_rows(shown), "trades", f"{shown.height:,} trades")
    half = max_rows // 2
    omitted = shown.height - 2 * half
    gap = [f'<td colspan="{len(shown.columns)}" class="gap">{omitted:,} trades not shown '
           "(all of them are in the JSON output)</td>"]
    rows = frame_rows(shown.head(half)) + [gap] + frame_rows(shown.tail(half))
    caption = f"{shown.height:,} trades (first and last {half:,} shown)"
    return table(shown.columns, rows, "trades", caption)


def best_rows_table(grid: pl.DataFrame, metric: str, maximize: bool, n_rows: int = 20) -> str:
    """The `n_rows` best grid points by `metric` (NaN last), every column."""
    order = pl.col(metric).fill_nan(None)
    best = grid.sort(order, descending=maximize, nulls_last=True).head(n_rows)
    direction = "highest" if maximize else "lowest"
    caption = f"best {best.height} of {grid.height:,} combinations by {metric} ({direction} first)"
    return table(best.columns, frame_rows(best), "best-rows", caption)
