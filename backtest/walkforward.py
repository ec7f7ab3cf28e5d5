"""`walk_forward`: choose parameters on a training window, trade them on the next window.

``[start, end)`` is cut into consecutive folds. Rolling (default): fold k trains on
``[start + k*test, start + k*test + train)`` and tests on the `test` span right after
it; ``anchored=True`` keeps every training window starting at `start` (it grows by
`test` per fold). Only whole test windows are used: a tail shorter than `test` is left
out (the warnings say how much). On each training window `backtest.sweep` runs the
grid and the combination with the best `objective` (``sharpe``, ``total_return`` or
``calmar``; NaN ranks last, the first of ties wins) is run on the test window with
`backtest.run`. Decisions where the issue was silent:

- **No look-ahead.** A fold's choice reads only its training window's bars (the sweep
  is given exactly those bars; its indicators warm up inside the window). The test run
  reads nothing after the test window's end.
- **Warm-up of the test window.** Its signals are computed on every bar from `start` to
  the test window's end and the first ``len(test window)`` bars are dropped, so a 200-bar
  moving average is defined from the test window's first bar. Signals at bar t only read
  bars up to t, so earlier bars are history, not look-ahead. The simulation starts flat
  at the test window's first bar: a crossover strategy enters on the first crossover
  inside the window.
- **Fold boundaries.** Capital is carried forward (each test window starts with the
  equity the previous one ended with) and a position still open at a test window's last
  bar is closed at that bar's close, paying the fee and slippage the kernel charges
  any fill (`_close_at_boundary`), so no fold inherits a position chosen with other
  parameters. A ruined fold ends the walk: later folds keep their choice but are not
  traded (``out_of_sample`` None, equity held flat).
- **Overall statistics.** ``out_of_sample`` holds the metrics of the stitched
  out-of-sample curve, ``in_sample_sharpe`` (the mean over folds of the chosen
  combinations' training-window Sharpe) and ``sharpe_gap`` = in-sample minus
  out-of-sample Sharpe (annualised). The "full sample" is every combination run on the
  whole ``[start, end)``: ``deflated_sharpe`` is the DSR (`backtest.overfitting`) of its
  best combination by `objective`, deflated by the number of valid combinations and the
  variance of their per-bar Sharpe ratios; ``pbo`` is CSCV over the T x N matrix of
  their per-bar returns (a ruined account's returns after ruin count as 0).

Grid keys pass through to `backtest.sweep` and the chosen point to `backtest.run`, so
anything those accept as a swept parameter a walk-forward accepts too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backtest import fills
from backtest.data import (
    Bars,
    FundingEvents,
    MarkOpens,
    load_bars,
    load_funding,
    load_mark_opens,
    parse_time_us,
)
from backtest.engine import TimeLike, run
from backtest.metrics import compute_metrics, returns
from backtest.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from backtest.records import TRADE_CLOSED, TRADE_DT, TRADE_LIQUIDATED, TRADE_OPEN
from backtest.results import RunResult, json_safe
from backtest.strategies import SignalFunc, Strategy, get_strategy
from backtest.sweep import sweep
from kline_lake.core.markets import get_market
from kline_lake.core.timeutil import format_us
from kline_lake.errors import InputError

OBJECTIVES = ("sharpe", "total_return", "calmar")
DURATION_UNITS_US = {"m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000,
                     "w": 7 * 86_400_000_000}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
MIN_WINDOW_BARS = 2


def parse_duration_us(value: str | timedelta, name: str) -> int:
    """'180d', '12h', '90m', '2w' or a timedelta -> microseconds (> 0); InputError else."""
    if isinstance(value, timedelta):
        us = int(value / timedelta(microseconds=1))
    else:
        match = _DURATION_RE.match(str(value))
        if match is None:
            raise InputError(f"{name}: {value!r} is not a duration like 180d, 12h, 90m or 2w")
        us = int(match.group(1)) * DURATION_UNITS_US[match.group(2)]
    if us <= 0:
        raise InputError(f"{name} must be a positive duration, got {value!r}")
    return us


def fold_windows(start_us: int, end_us: int, train_us: int, test_us: int,
                 anchored: bool = False) -> list[tuple[int, int, int, int]]:
    """(train_start, train_end, test_start, test_end) per fold, all whole test windows;
    InputError when the windows do not fit or make fewer than two folds."""
    span = end_us - start_us
    if train_us + test_us > span:
        raise InputError(f"train + test windows ({_days(train_us + test_us)}) are longer "
                         f"than the range ({_days(span)})")
    folds = []
    k = 0
    while True:
        train_start = start_us if anchored else start_us + k * test_us
        train_end = start_us + train_us + k * test_us
        if train_end + test_us > end_us:
            break
        folds.append((train_start, train_end, train_end, train_end + test_us))
        k += 1
    if len(folds) < 2:
        raise InputError(f"a walk-forward needs at least two folds; train {_days(train_us)} "
                         f"+ test {_days(test_us)} fit {len(folds)} in {_days(span)}")
    return folds


def _days(us: int) -> str:
    return f"{us / DURATION_UNITS_US['d']:g} days"


@dataclass
class FoldResult:
    """One fold: its windows (ISO ``[start, end)``), the chosen params and both metrics."""

    train: tuple[str, str]
    test: tuple[str, str]
    params: dict[str, Any]
    in_sample: dict[str, Any]
    out_of_sample: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return json_safe({"train": list(self.train), "test": list(self.test),
                          "params": self.params, "in_sample": self.in_sample,
                          "out_of_sample": self.out_of_sample})


@dataclass
class WalkForwardResult:
    """Folds, the stitched out-of-sample metrics, the DSR and the PBO.

    ``equity`` has one row per out-of-sample bar: open_time, fold, equity (stitched,
    capital carried forward) and in_sample_best (the best full-sample combination over
    the same bars, rebased to the same starting capital: the curve hindsight picks).
    """

    folds: list[FoldResult]
    out_of_sample: dict[str, Any]
    deflated_sharpe: dict[str, Any]
    pbo: dict[str, Any] | None
    equity: pl.DataFrame
    strategy: str
    param_names: list[str]
    objective: str
    config: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Exactly the keys folds, out_of_sample, deflated_sharpe and pbo."""
        return {"folds": [f.to_dict() for f in self.folds],
                "out_of_sample": json_safe(self.out_of_sample),
                "deflated_sharpe": json_safe(self.deflated_sharpe),
                "pbo": json_safe(self.pbo)}

    def to_json(self, path: str | Path | None = None) -> str:
        """JSON text (NaN -> null); also written to `path` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


def warm_strategy(strat: Strategy, history: Bars, offset: int) -> Strategy:
    """`strat` whose signals for bars ``history[offset:offset + n]`` are computed on
    ``history[:offset + n]`` (the window plus every bar before it) and then cut to the
    window: indicators arrive warmed up, and nothing after the window is read."""

    def signals(bars: Bars, **params: Any) -> np.ndarray:
        stop = offset + len(bars)
        if stop > len(history) or not np.array_equal(
                history.open_time_us[offset:stop], bars.open_time_us):
            raise ValueError("warm_strategy: bars are not the window it was built for")
        return strat.signals(slice_bars(history, 0, stop), params)[offset:]

    return Strategy(strat.name, signals, strat.defaults, strat.validate, None,
                    strat.follows_direction)


def _pick(frame: pl.DataFrame, objective: str) -> tuple[int, bool]:
    """Row of the best `objective` (NaN last, +inf first, first of ties) and whether any
    row had it defined."""
    values = frame.get_column(objective).cast(pl.Float64).fill_null(np.nan).to_numpy()
    defined = ~np.isnan(values)
    if not defined.any():
        return 0, False
    return int(np.argmax(np.where(defined, values, -np.inf))), True


def _row_params(frame: pl.DataFrame, names: list[str], k: int) -> dict[str, Any]:
    row = frame.row(k, named=True)
    return {n: (v.item() if isinstance(v, np.generic) else v) for n, v in
            ((n, row[n]) for n in names)}


def _row_metrics(frame: pl.DataFrame, names: list[str], k: int) -> dict[str, Any]:
    row = frame.row(k, named=True)
    return {key: value for key, value in row.items() if key not in names}


def _close_at_boundary(res: RunResult) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The run's (equity, position, trades) with an open position closed at the last
    bar's close, as the kernel closes a position: a long sells ``qty`` at
    ``close * (1 - slip)`` and pays ``fee_rate`` of that; a short buys at
    ``close * (1 + slip)`` plus the fee. Returns also the closing fee."""
    eq = res.equity
    equity = eq.get_column("equity").to_numpy().astype(np.float64).copy()
    position = eq.get_column("position").to_numpy().astype(np.float64).copy()
    trades = _trade_records(res.trades)
    qty = position[-1]
    if qty == 0.0 or res.metrics["ruined"]:
        return equity, position, trades, 0.0
    fee_rate = float(res.config["fee_rate"])
    slip = fills.slippage_fraction(float(res.config["slippage_bps"]))
    close = float(eq.get_column("close")[-1])
    side = 1.0 if qty > 0 else -1.0
    exit_px = close * (1.0 - side * slip)
    fee = abs(qty) * exit_px * fee_rate
    # marked value qty * close -> proceeds qty * exit_px - fee
    equity[-1] -= qty * (close - exit_px) + fee
    position[-1] = 0.0
    t = trades[-1]  # the kernel writes the open trade last
    if int(t["status"]) == TRADE_OPEN:
        t["exit_price"], t["exit_fee"], t["status"] = exit_px, fee, TRADE_CLOSED
        t["pnl"] = (side * (exit_px - t["entry_price"]) * t["qty"] - t["entry_fee"] - fee
                    - t["funding_paid"])
    return equity, position, trades, fee


_STATUS_CODES = {"closed": TRADE_CLOSED, "open": TRADE_OPEN, "liquidated": TRADE_LIQUIDATED}


def _trade_records(frame: pl.DataFrame) -> np.ndarray:
    """A `RunResult.trades` frame back to TRADE_DT records (for the metric kernel)."""
    out = np.zeros(frame.height, dtype=TRADE_DT)
    for name in ("entry_idx", "exit_idx", "qty", "entry_price", "exit_price", "entry_fee",
                 "exit_fee", "funding_paid", "pnl"):
        out[name] = frame.get_column(name).to_numpy()
    out["side"] = np.where(frame.get_column("side").to_numpy() == "long", 1, -1)
    out["status"] = [_STATUS_CODES[s] for s in frame.get_column("status").to_list()]
    return out


def slice_bars(bars: Bars, lo: int, hi: int) -> Bars:
    """Bars ``lo:hi`` (views, no copy)."""
    return replace(bars, open_time_us=bars.open_time_us[lo:hi], open=bars.open[lo:hi],
                   high=bars.high[lo:hi], low=bars.low[lo:hi], close=bars.close[lo:hi],
                   volume=bars.volume[lo:hi])


@dataclass(frozen=True)
class _Data:
    bars: Bars
    start_us: int
    end_us: int
    run_kw: dict[str, Any]  # lake, funding events, mark opens, jit, filters, settings


def _load(lake: str | Path | None, market: str, symbol: str, interval: str,
          start: TimeLike | None, end: TimeLike | None, bars: Bars | None,
          funding_events: FundingEvents | None, mark_opens: MarkOpens | None,
          funding: bool) -> tuple[Bars, int, int, FundingEvents | None, MarkOpens | None]:
    """Every bar of ``[start, end)`` once (folds are slices of it) and its funding."""
    if bars is None:
        if lake is None or start is None or end is None:
            raise InputError("give lake, start and end (or bars=...)")
        start_us, end_us = parse_time_us(start, "start"), parse_time_us(end, "end")
        bars = load_bars(lake, market, symbol, interval, start_us, end_us)
        if funding and get_market(market).is_futures:
            if funding_events is None:
                funding_events = load_funding(lake, market, symbol, start_us, end_us)
            if mark_opens is None:
                mark_opens = load_mark_opens(lake, market, symbol, interval, start_us, end_us)
        return bars, start_us, end_us, funding_events, mark_opens
    if len(bars) == 0:
        raise InputError("bars are empty")
    t = bars.open_time_us
    start_us = parse_time_us(start, "start") if start is not None else int(t[0])
    end_us = (parse_time_us(end, "end") if end is not None
              else int(t[-1]) + bars.bar_ms * 1000)
    lo, hi = np.searchsorted(t, [start_us, end_us])
    return slice_bars(bars, int(lo), int(hi)), start_us, end_us, funding_events, mark_opens


def _window(data: _Data, a_us: int, b_us: int, what: str) -> tuple[int, int]:
    lo, hi = (int(i) for i in np.searchsorted(data.bars.open_time_us, [a_us, b_us]))
    if hi - lo < MIN_WINDOW_BARS:
        raise InputError(f"the {what} window [{format_us(a_us)}, {format_us(b_us)}) has "
                         f"{hi - lo} bars; at least {MIN_WINDOW_BARS} are needed")
    return lo, hi


def _train(strat: Strategy, grid: Mapping[str, Sequence[Any]], data: _Data, lo: int,
           hi: int, objective: str) -> tuple[dict, dict, bool, list[str]]:
    """Sweep the grid on bars ``lo:hi`` only: (params, in-sample metrics, defined, notes)."""
    res = sweep(strat, grid, bars=slice_bars(data.bars, lo, hi), **data.run_kw)
    frame = res.to_frame()
    k, defined = _pick(frame, objective)
    return (_row_params(frame, res.param_names, k), _row_metrics(frame, res.param_names, k),
            defined, res.warnings)


@dataclass
class _Leg:
    """One traded test window after the boundary close, in stitched form."""

    equity: np.ndarray
    position: np.ndarray
    trades: np.ndarray
    fees: float
    funding: float
    ruin_idx: int
    metrics: dict[str, Any]
    notes: list[str]


def _test(strat: Strategy, params: dict, data: _Data, lo: int, hi: int, cash: float) -> _Leg:
    """Run `params` on bars ``lo:hi`` with warmed-up signals, starting with `cash`."""
    kw = data.run_kw | {"cash": cash}
    res = run(warm_strategy(strat, data.bars, lo), params,
              bars=slice_bars(data.bars, lo, hi), **kw)
    equity, position, trades, close_fee = _close_at_boundary(res)
    fees = float(res.metrics["fees_paid"]) + close_fee
    funding = float(res.metrics["funding_paid"])
    ruin_idx = int(res.metrics["ruin_idx"])
    metrics = compute_metrics(equity, position, trades, cash, fees, funding,
                              data.bars.bar_days, ruin_idx)
    return _Leg(equity, position, trades, fees, funding, ruin_idx, metrics, res.warnings)


def _flat_leg(n: int, value: float) -> _Leg:
    return _Leg(np.full(n, value), np.zeros(n), np.zeros(0, dtype=TRADE_DT), 0.0, 0.0, -1,
                {}, [])


def _stitch(legs: list[_Leg], cash: float, bar_days: float) -> tuple[np.ndarray, dict]:
    """One out-of-sample curve from consecutive legs and its metrics."""
    offsets = np.cumsum([0] + [leg.equity.shape[0] for leg in legs[:-1]])
    trades = []
    ruin_idx = -1
    for off, leg in zip(offsets, legs, strict=True):
        t = leg.trades.copy()
        t["entry_idx"] += off
        t["exit_idx"] += off
        trades.append(t)
        if leg.ruin_idx >= 0 and ruin_idx < 0:
            ruin_idx = int(off + leg.ruin_idx)
    equity = np.concatenate([leg.equity for leg in legs])
    position = np.concatenate([leg.position for leg in legs])
    metrics = compute_metrics(equity, position, np.concatenate(trades), cash,
                              sum(leg.fees for leg in legs), sum(leg.funding for leg in legs),
                              bar_days, ruin_idx)
    return equity, metrics


def _safe_returns(equity: np.ndarray, cash: float) -> np.ndarray:
    """Per-bar returns; after an account is gone (equity <= 0) they count as 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = returns(equity, cash)
    return np.where(np.isfinite(r), r, 0.0)


def _column_sharpes(matrix: np.ndarray) -> np.ndarray:
    sd = matrix.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0.0, matrix.mean(axis=0) / np.where(sd > 0.0, sd, 1.0), np.nan)


def _full_sample(strat: Strategy, grid: Mapping[str, Sequence[Any]], data: _Data,
                 objective: str, n_blocks: int) -> tuple[dict, dict | None, np.ndarray, dict,
                                                         list[str]]:
    """Every combination over the whole range: (DSR of the best by `objective`, PBO of the
    per-bar return matrix, the best's equity, the sweep's config, notes)."""
    res = sweep(strat, grid, bars=data.bars, **data.run_kw)
    frame, names = res.to_frame(), res.param_names
    k, _ = _pick(frame, objective)
    cash = float(res.config["cash"])
    matrix = np.empty((len(data.bars), frame.height))
    best_equity = np.empty(0)
    for j in range(frame.height):
        equity = run(strat, _row_params(frame, names, j), bars=data.bars,
                     **data.run_kw).equity_curve
        matrix[:, j] = _safe_returns(equity, cash)
        if j == k:
            best_equity = equity
    notes = list(res.warnings)
    dsr = deflated_sharpe_ratio(matrix[:, k], _column_sharpes(matrix))
    best = _row_metrics(frame, names, k)
    deflated = {**dsr.to_dict(), "params": _row_params(frame, names, k),
                "objective": objective, "objective_value": best[objective],
                "annualised_sharpe": best["sharpe"]}
    pbo = None
    if frame.height >= 2:
        try:
            pbo = probability_of_backtest_overfitting(matrix, n_blocks).to_dict()
        except ValueError as exc:
            raise InputError(f"pbo: {exc}") from exc
    else:
        notes.append("one valid combination: no PBO (it needs at least two)")
    return deflated, pbo, best_equity, res.config, notes


def _rebased(curve: np.ndarray, lo: int, hi: int, cash: float) -> np.ndarray:
    """``curve[lo:hi]`` scaled to start from `cash` as of bar ``lo - 1``'s close."""
    base = curve[lo - 1] if lo > 0 else cash
    if not base > 0.0:
        return np.full(hi - lo, np.nan)
    return curve[lo:hi] / base * cash


def walk_forward(strategy: str | Strategy | SignalFunc = "sma_cross",
                 grid: Mapping[str, Sequence[Any]] | None = None, *,
                 lake: str | Path | None = None, market: str = "um", symbol: str = "BTCUSDT",
                 interval: str = "1h", start: TimeLike | None = None,
                 end: TimeLike | None = None, train: str | timedelta = "180d",
                 test: str | timedelta = "30d", anchored: bool = False,
                 objective: str = "sharpe", n_blocks: int = 16, bars: Bars | None = None,
                 funding_events: FundingEvents | None = None,
                 mark_opens: MarkOpens | None = None, jit: bool | None = None,
                 exchange_filters: Any = True, **settings: Any) -> WalkForwardResult:
    """Walk-forward optimisation of `grid` (name -> values) over ``[start, end)``.

    `train`/`test`: window lengths ('180d', '12h', '90m', '2w' or timedeltas);
    `anchored`: training windows all start at `start`; `objective`: ``sharpe``,
    ``total_return`` or ``calmar``; `n_blocks`: CSCV blocks for the PBO (even).
    Data and `settings` (cash, fee, slippage_bps, funding, direction, leverage...) as
    for `backtest.sweep` / `backtest.run`. See the module docstring for the decisions.
    """
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; expected {', '.join(OBJECTIVES)}")
    if int(n_blocks) != n_blocks or n_blocks < 2 or n_blocks % 2:
        raise InputError(f"PBO blocks must be an even integer >= 2, got {n_blocks}")
    train_us, test_us = parse_duration_us(train, "train"), parse_duration_us(test, "test")
    strat = get_strategy(strategy)
    grid = {k: list(v) if isinstance(v, Sequence | np.ndarray | range) else [v]
            for k, v in (grid or {}).items()}
    loaded, start_us, end_us, events, marks = _load(
        lake, market, symbol, interval, start, end, bars, funding_events, mark_opens,
        bool(settings.get("funding", True)))
    windows = fold_windows(start_us, end_us, train_us, test_us, anchored)
    cash = float(settings.pop("cash", 10_000.0))
    data = _Data(loaded, start_us, end_us, {
        "lake": lake, "funding_events": events, "mark_opens": marks, "jit": jit,
        "exchange_filters": exchange_filters, "cash": cash, **settings})
    folds, legs, notes = _walk(strat, grid, data, windows, objective, cash)
    oos_lo = _window(data, windows[0][2], windows[0][3], "test")[0]
    oos_hi = oos_lo + sum(leg.equity.shape[0] for leg in legs)
    equity, oos = _stitch(legs, cash, loaded.bar_days)
    deflated, pbo, best_equity, config, full_notes = _full_sample(strat, grid, data,
                                                                  objective, n_blocks)
    is_sharpes = np.array([f.in_sample["sharpe"] for f in folds], dtype=np.float64)
    finite = is_sharpes[np.isfinite(is_sharpes)]
    in_sample_sharpe = float(finite.mean()) if finite.shape[0] else np.nan
    oos |= {"start": format_us(windows[0][2]), "end": format_us(windows[-1][3]),
            "n_bars": int(equity.shape[0]), "n_folds": len(folds),
            "in_sample_sharpe": in_sample_sharpe,
            "sharpe_gap": in_sample_sharpe - oos["sharpe"]}
    t_oos = loaded.open_time_us[oos_lo:oos_hi]
    frame = pl.DataFrame({
        "open_time": pl.Series(t_oos).cast(pl.Datetime("us", "UTC")),
        "fold": np.repeat(np.arange(len(legs)), [leg.equity.shape[0] for leg in legs]),
        "equity": equity, "in_sample_best": _rebased(best_equity, oos_lo, oos_hi, cash)})
    tail_us = end_us - windows[-1][3]
    if tail_us > 0:
        notes.append(f"the last {_days(tail_us)} of the range make no whole test window "
                     "and are not tested")
    config = dict(config) | {"start": format_us(start_us), "end": format_us(end_us),
                             "train": _days(train_us), "test": _days(test_us),
                             "anchored": anchored, "objective": objective,
                             "n_blocks": n_blocks}
    return WalkForwardResult(folds, oos, deflated, pbo, frame, strat.name, list(grid),
                             objective, config, _unique(notes + full_notes))


def _walk(strat: Strategy, grid: Mapping[str, Sequence[Any]], data: _Data,
          windows: list[tuple[int, int, int, int]], objective: str, cash: float
          ) -> tuple[list[FoldResult], list[_Leg], list[str]]:
    """Train, choose and test fold by fold, carrying capital forward."""
    folds, legs, notes = [], [], []
    capital, stopped = cash, False
    for k, (a, b, c, d) in enumerate(windows):
        t_lo, t_hi = _window(data, a, b, "training")
        lo, hi = _window(data, c, d, "test")
        params, in_sample, defined, sweep_notes = _train(strat, grid, data, t_lo, t_hi,
                                                         objective)
        notes += sweep_notes
        if not defined:
            notes.append(f"fold {k}: no combination has a defined {objective} in its "
                         "training window; the first combination was chosen")
        if stopped:
            leg = _flat_leg(hi - lo, capital)
        else:
            leg = _test(strat, params, data, lo, hi, capital)
            notes += leg.notes
            capital = float(leg.equity[-1])
            if leg.ruin_idx >= 0 or not capital > 0.0:
                stopped = True
                notes.append(f"fold {k}: the account was ruined; later folds are not traded")
        legs.append(leg)
        folds.append(FoldResult((format_us(a), format_us(b)), (format_us(c), format_us(d)),
                                params, in_sample, leg.metrics or None))
    return folds, legs, notes


def _unique(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))
