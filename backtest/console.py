"""Console text of `backtest run` and `backtest sweep` (pure: results in, lines out).

What the summary shows, and the decisions behind it (the issue was silent on details):

- a header: the strategy, market, symbol and interval; the parameters actually used,
  each marked ``(default)`` when it was not given; the range the bars really cover
  (first bar open to the end of the last bar, UTC, half-open like ``--start/--end``),
  the bar count and the requested range when it differs; the cost settings.
- metrics under their JSON names (so they read like ``--sort`` and the JSON keys),
  fractions as percentages (``-47.24%``), money with thousands separators, undefined
  values as ``n/a``.
- trades: ``n_trades`` counts a position still open at the end (valued at the last close,
  as in the JSON); ``win_rate``, ``profit_factor`` and ``expectancy`` are over closed
  trades only (liquidations count as closed). A run prints both counts
  (``10 (9 closed, 1 open)``, ``44.44% of 9 closed``); a sweep table, whose rows carry
  only ``n_trades``, says so under the table.
- sweep tables are aligned (numbers right-aligned) and sorted best first: descending,
  but ascending for metrics where lower is better (`LOWER_IS_BETTER`: drawdown, its
  duration, fees and funding paid); undefined values last. ``--top 0`` prints every row.
- a note when a lookback parameter (`is_window_param`) is not shorter than the data: the
  strategy then cannot signal at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from backtest.results import LOWER_IS_BETTER, RunResult, SweepResult
from kline_lake.core.intervals import next_open_ms

PERCENT = frozenset({"total_return", "cagr", "max_drawdown", "win_rate", "exposure"})
MONEY = frozenset({"final_equity", "fees_paid", "funding_paid", "expectancy"})
RUN_METRICS = ("final_equity", "total_return", "cagr", "sharpe", "sortino", "calmar",
               "max_drawdown", "max_drawdown_duration", "n_trades", "win_rate",
               "profit_factor", "expectancy", "exposure", "fees_paid", "funding_paid")
SWEEP_METRICS = ("final_equity", "total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                 "n_trades", "win_rate", "fees_paid", "funding_paid")
WINDOW_NAMES = frozenset({"window", "fast", "slow", "lookback", "period", "span"})
TRADES_LEGEND = ("n_trades counts a position still open at the end; win_rate is over "
                 "closed trades only")


def is_window_param(name: str) -> bool:
    """Lookback parameters, by name: window, fast, slow, lookback, period, span, or a
    name ending in _window, _period, _lookback or _span."""
    return name in WINDOW_NAMES or name.endswith(("_window", "_period", "_lookback", "_span"))


def fmt_value(name: str, value: Any) -> str:
    """One metric or parameter value as the console shows it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}" if name != "n_trades" and not is_window_param(name) \
            else str(int(value))
    if not isinstance(value, float | np.floating):
        return str(value)
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if name in PERCENT:
        return f"{100 * value:.2f}%"
    if name in MONEY:
        return f"{value:,.2f}"
    if name == "max_drawdown_duration":
        return f"{value:,.1f} days"
    if name in ("sharpe", "sortino", "calmar", "profit_factor"):
        return f"{value:.2f}"
    return f"{value:.6g}"


def _utc(ts_us: int) -> str:
    text = str(np.datetime64(int(ts_us), "us").astype("datetime64[s]")).replace("T", " ")
    return text[:-3] if text.endswith(":00") else text


def _us(iso: str) -> int:
    return int(np.datetime64(iso.rstrip("Z"), "us").astype(np.int64))


def bar_range(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """(first bar open, end of the last bar) in UTC microseconds, from a result's config."""
    if not config.get("start") or not config.get("end"):
        return None
    last_open_us = _us(config["end"])
    end_ms = next_open_ms(last_open_us // 1000, config["interval"])
    return _us(config["start"]), end_ms * 1000


def range_line(config: Mapping[str, Any], requested: tuple[Any, Any] | None = None) -> str:
    """'2024-01-01 00:00 -> 2024-05-06 00:00 UTC, 3,000 bars of 1h', plus the requested
    ``(start, end)`` when the bars cover less of it."""
    n_bars = int(config.get("n_bars", 0))
    span = bar_range(config)
    text = f"{n_bars:,} bars of {config.get('interval', '?')}"
    if span is not None:
        text = f"{_utc(span[0])} -> {_utc(span[1])} UTC, {text}"
        asked = _requested_us(requested)
        bar_us = next_open_ms(span[0] // 1000, config["interval"]) * 1000 - span[0]
        if asked is not None and (span[0] - asked[0] >= bar_us or asked[1] > span[1]):
            # the bars start a whole bar late or end early: say what was asked for
            text += f" (requested {_utc(asked[0])} -> {_utc(asked[1])})"
    return text


def _requested_us(requested: tuple[Any, Any] | None) -> tuple[int, int] | None:
    if requested is None:
        return None
    from backtest.data import parse_time_us  # the parser the run itself used

    return parse_time_us(requested[0], "start"), parse_time_us(requested[1], "end")


def settings_line(config: Mapping[str, Any]) -> str:
    """Cash, direction, fill and every cost setting, in one line."""
    filters = config.get("exchange_filters") or {}
    active = any(filters.get(k) for k in ("qty_step", "min_qty", "min_notional"))
    mmr = config.get("maintenance_margin_rate")
    cash = f"cash {config.get('cash', 0):,.2f}"
    if config.get("account") == "coin":  # cm: an inverse contract, the account in coin
        cash = (f"cash {config.get('cash', 0):g} {config.get('margin_coin')} (account in "
                f"coin, contracts of {config.get('contract_size', 0):g} USD)")
    parts = [
        cash, f"direction {config.get('direction')}",
        f"fill {config.get('fill')}", f"fee {100 * config.get('fee_rate', 0):.4g}%",
        f"slippage {config.get('slippage_bps', 0):g} bps",
        f"funding {'on' if config.get('funding') else 'off'}",
        f"leverage {config.get('leverage', 1):g}x", f"size {100 * config.get('size', 1):g}%",
        f"mmr {'-' if mmr is None else f'{100 * mmr:g}%'}",
        f"exchange filters {'on' if active else 'off'}",
    ]
    return ", ".join(parts)


def params_line(params: Mapping[str, Any], given: Sequence[str]) -> str:
    if not params:
        return "none"
    return ", ".join(f"{k}={v}" + ("" if k in given else " (default)")
                     for k, v in params.items())


def _trade_counts(result: RunResult) -> tuple[int, int, int]:
    status = result.trades.get_column("status")
    n_open = int((status == "open").sum())
    return n_open, int((status == "liquidated").sum()), result.trades.height - n_open


def run_lines(result: RunResult, given: Sequence[str] = (),
              requested: tuple[Any, Any] | None = None) -> list[str]:
    """The summary of one run (see the module docstring)."""
    cfg = result.config
    lines = [f"{result.strategy} on {cfg.get('market')} {cfg.get('symbol')} "
             f"{cfg.get('interval')}",
             f"  params:   {params_line(result.params, given)}",
             f"  range:    {range_line(cfg, requested)}",
             f"  settings: {settings_line(cfg)}"]
    if result.metrics.get("ruined"):
        lines.append(f"  RUINED at {result.metrics.get('ruin_time')}: trading stopped there")
    n_open, n_liq, n_closed = _trade_counts(result)
    width = max(len(n) for n in RUN_METRICS)
    for name in RUN_METRICS:
        text = fmt_value(name, result.metrics.get(name))
        if name == "n_trades":
            liq = f", {n_liq} liquidated" if n_liq else ""
            text += f" ({n_closed} closed{liq}, {n_open} open)"
        elif name in ("win_rate", "profit_factor", "expectancy") and text != "n/a":
            text += f" (of {n_closed} closed)"
        lines.append(f"  {name:>{width}}: {text}")
    return lines


def window_notes(params: Mapping[str, Any], n_bars: int, strategy: str) -> list[str]:
    """Notes for lookback parameters not shorter than the data (one run)."""
    out = []
    for name, value in params.items():
        if is_window_param(name) and isinstance(value, int | float) and value >= n_bars:
            out.append(f"{name}={value} is not shorter than the {n_bars:,} bars of data: "
                       f"{strategy} cannot signal (no trades); widen the range")
    return out


def sweep_window_notes(result: SweepResult) -> list[str]:
    """Notes for sweep rows whose lookback parameter is not shorter than the data."""
    n_bars = int(result.config.get("n_bars", 0))
    frame = result.to_frame()
    out = []
    for name in result.param_names:
        if not is_window_param(name) or not frame.schema[name].is_numeric():
            continue
        too_long = int((frame.get_column(name) >= n_bars).sum())
        if too_long:
            out.append(f"{too_long:,} of {frame.height:,} combinations have {name} >= the "
                       f"{n_bars:,} bars of data (up to {frame.get_column(name).max()}): "
                       f"they cannot signal (no trades)")
    return out


def sorted_rows(frame: pl.DataFrame, metric: str, top: int) -> pl.DataFrame:
    """Best `top` rows by `metric` (0: all): ascending for `LOWER_IS_BETTER`, NaN last."""
    if top < 0:
        raise ValueError(f"--top must be >= 0 (0 prints every row), got {top}")
    col = pl.col(metric).fill_nan(None)
    shown = frame.sort(col, descending=metric not in LOWER_IS_BETTER, nulls_last=True,
                       maintain_order=True)
    return shown if top == 0 else shown.head(top)


def table_lines(rows: pl.DataFrame, columns: Sequence[str]) -> list[str]:
    """An aligned text table: a header, then one line per row; numbers right-aligned."""
    cells = [[fmt_value(c, v) for c, v in zip(columns, row, strict=True)]
             for row in rows.select(columns).iter_rows()]
    widths = [max([len(c), *(len(r[k]) for r in cells)]) for k, c in enumerate(columns)]
    numeric = [rows.schema[c].is_numeric() or rows.schema[c] == pl.Boolean for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return [line(columns), *(line(r) for r in cells)]


def sweep_lines(result: SweepResult, metric: str, top: int,
                requested: tuple[Any, Any] | None = None) -> list[str]:
    """The summary of a sweep: header, grid, the best rows as an aligned table."""
    cfg = result.config
    frame = result.to_frame()
    n_grid = frame.height + int(result.n_skipped or 0)
    shape = cfg.get("grid_shape") or {name: frame.get_column(name).n_unique()
                                      for name in result.param_names}
    grid = " x ".join(f"{name} {count:,}" for name, count in shape.items())
    skipped = ""
    if result.n_skipped:
        skipped = f", {result.n_skipped:,} skipped ({result.skipped[0]['reason']}, ...)"
    order = "lowest first" if metric in LOWER_IS_BETTER else "highest first"
    which = "all" if top == 0 or top >= frame.height else f"top {top} of"
    columns = [*result.param_names, *SWEEP_METRICS]
    if metric not in columns:
        columns.append(metric)
    return [
        f"{result.strategy} sweep on {cfg.get('market')} {cfg.get('symbol')} "
        f"{cfg.get('interval')}",
        f"  grid:     {grid}: {n_grid:,} combinations, {frame.height:,} run{skipped}",
        f"  range:    {range_line(cfg, requested)}",
        f"  settings: {settings_line(cfg)}",
        f"{which} {frame.height:,} combinations by {metric} ({order}):",
        *table_lines(sorted_rows(frame, metric, top), columns),
        f"({TRADES_LEGEND})",
    ]


def strategy_lines(registry: Mapping[str, Any]) -> list[str]:
    """`backtest strategies`: name, parameters with defaults, the signal's description
    (the function's docstring, first paragraph), aligned."""
    rows = []
    for name, strat in registry.items():
        params = " ".join(f"{k}={v}" for k, v in strat.defaults.items()) or "(none)"
        doc = (strat.func.__doc__ or "").strip().split("\n\n")[0]
        rows.append((name, params, " ".join(doc.split())))
    w_name = max(len("strategy"), *(len(r[0]) for r in rows))
    w_par = max(len("parameters (defaults)"), *(len(r[1]) for r in rows))
    head = f"{'strategy':<{w_name}}  {'parameters (defaults)':<{w_par}}  signal"
    return [head, *(f"{n:<{w_name}}  {p:<{w_par}}  {d}" for n, p, d in rows),
            "Set a parameter with --param NAME=VALUE; sweep one with NAME=START:STOP:STEP "
            "or NAME=A,B,C."]
