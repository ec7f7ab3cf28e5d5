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

- **Stop levels.** ``sl_stop``/``tp_stop`` given as lists are grid dimensions: each
  training sweep runs them with the parameters (`backtest.sweep`'s stop-level rows),
  the best row picks parameters and levels together (a fold's ``params`` hold
  ``sl_stop``/``tp_stop``), the test window runs with the chosen levels, and the full
  sample counts every (parameters, levels) point as one trial for the DSR and the PBO.
  A single value is a setting of every run; ``sl_trail`` is one flag for all.
- **Exit reasons out of sample.** Each test window's trades keep their exit reason, so
  its metrics and the stitched ones count ``n_sl_exits``/``n_tp_exits``/
  ``n_trail_exits``; a position closed at a fold boundary is a ``signal`` exit.
- **Dask.** With ``dask=...`` the training sweeps and the full-sample runs are tasks
  on the cluster (`backtest.walkforward_dask`); the test windows, which carry capital,
  run here. Values equal a local run's.

Grid keys pass through to `backtest.sweep` and the chosen point to `backtest.run`, so
anything those accept as a swept parameter a walk-forward accepts too. The pieces live
in `backtest.walkforward_folds` (windows, sweeps, picks), `backtest.walkforward_oos`
(test windows, boundary close, stitching) and `backtest.walkforward_dask`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backtest.data import Bars, FundingEvents, MarkOpens
from backtest.engine import TimeLike
from backtest.overfitting import (
    deflated_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from backtest.results import json_safe
from backtest.strategies import SignalFunc, Strategy, get_strategy
from backtest.walkforward_dask import RangeSource, runner
from backtest.walkforward_folds import (
    FoldData,
    WindowSweep,
    check_stop_levels,
    load_range,
    row_metrics,
    row_params,
    run_point,
    window_bounds,
)
from backtest.walkforward_folds import pick as _pick
from backtest.walkforward_oos import Leg, flat_leg, stitch, trade_window
from kline_lake.core.timeutil import format_us
from kline_lake.errors import InputError

OBJECTIVES = ("sharpe", "total_return", "calmar")
DURATION_UNITS_US = {"m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000,
                     "w": 7 * 86_400_000_000}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")


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


def _column_sharpes(matrix: np.ndarray) -> np.ndarray:
    sd = matrix.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0.0, matrix.mean(axis=0) / np.where(sd > 0.0, sd, 1.0), np.nan)


def _full_sample(strat: Strategy, full: WindowSweep, matrix: np.ndarray, data: FoldData,
                 objective: str, n_blocks: int) -> tuple[dict, dict | None, np.ndarray,
                                                         list[str]]:
    """Every combination over the whole range (its sweep and the T x N matrix of its
    per-bar returns): (DSR of the best by `objective`, PBO of the matrix, the best's
    equity, notes)."""
    frame, names = full.frame, full.names
    k, _ = _pick(frame, objective)
    best_point = row_params(frame, names, k)
    best_equity = run_point(strat, best_point, data.bars, data.run_kw).equity_curve
    notes = list(full.notes)
    dsr = deflated_sharpe_ratio(matrix[:, k], _column_sharpes(matrix))
    best = row_metrics(frame, names, k)
    deflated = {**dsr.to_dict(), "params": best_point, "objective": objective,
                "objective_value": best[objective], "annualised_sharpe": best["sharpe"]}
    pbo = None
    if frame.height >= 2:
        try:
            pbo = probability_of_backtest_overfitting(matrix, n_blocks).to_dict()
        except ValueError as exc:
            raise InputError(f"pbo: {exc}") from exc
    else:
        notes.append("one valid combination: no PBO (it needs at least two)")
    return deflated, pbo, best_equity, notes


def _rebased(curve: np.ndarray, lo: int, hi: int, cash: float) -> np.ndarray:
    """``curve[lo:hi]`` scaled to start from `cash` as of bar ``lo - 1``'s close."""
    base = curve[lo - 1] if lo > 0 else cash
    if not base > 0.0:
        return np.full(hi - lo, np.nan)
    return curve[lo:hi] / base * cash


def _abs_lake(lake: str | Path | None) -> str | Path | None:
    """The lake as a Dask worker sees it: an absolute path (a URL is kept as given)."""
    if lake is None or "://" in str(lake):
        return lake
    return str(Path(str(lake)).resolve())


def walk_forward(strategy: str | Strategy | SignalFunc = "sma_cross",
                 grid: Mapping[str, Sequence[Any]] | None = None, *,
                 lake: str | Path | None = None, market: str = "um", symbol: str = "BTCUSDT",
                 interval: str = "1h", start: TimeLike | None = None,
                 end: TimeLike | None = None, train: str | timedelta = "180d",
                 test: str | timedelta = "30d", anchored: bool = False,
                 objective: str = "sharpe", n_blocks: int = 16, bars: Bars | None = None,
                 funding_events: FundingEvents | None = None,
                 mark_opens: MarkOpens | None = None, jit: bool | None = None,
                 exchange_filters: Any = True, dask: str | None = None,
                 progress: bool = True, **settings: Any) -> WalkForwardResult:
    """Walk-forward optimisation of `grid` (name -> values) over ``[start, end)``.

    `train`/`test`: window lengths ('180d', '12h', '90m', '2w' or timedeltas);
    `anchored`: training windows all start at `start`; `objective`: ``sharpe``,
    ``total_return`` or ``calmar``; `n_blocks`: CSCV blocks for the PBO (even).
    Data and `settings` (cash, fee, slippage_bps, funding, direction, leverage, stops...)
    as for `backtest.sweep` / `backtest.run`; ``sl_stop``/``tp_stop`` given as lists
    of levels are grid dimensions, chosen per fold like parameters (the folds'
    ``params`` name them); ``sl_trail`` stays one flag. `dask` (``"local:N"`` or
    ``"tcp://HOST:PORT"``) runs the window sweeps and the full-sample runs on a Dask
    cluster (`backtest.walkforward_dask`; identical results), `progress` shows its
    dashboard link and finished tasks on stderr. See the module docstring for the
    decisions.
    """
    if objective not in OBJECTIVES:
        raise InputError(f"unknown objective {objective!r}; expected {', '.join(OBJECTIVES)}")
    if int(n_blocks) != n_blocks or n_blocks < 2 or n_blocks % 2:
        raise InputError(f"PBO blocks must be an even integer >= 2, got {n_blocks}")
    train_us, test_us = parse_duration_us(train, "train"), parse_duration_us(test, "test")
    strat = get_strategy(strategy)
    grid = {k: list(v) if isinstance(v, Sequence | np.ndarray | range) else [v]
            for k, v in (grid or {}).items()}
    check_stop_levels(settings)
    if dask is not None:
        from backtest.distributed import parse_address

        parse_address(dask)  # a bad address fails before any data is loaded
    lake = _abs_lake(lake)
    loaded, start_us, end_us, events, marks = load_range(
        lake, market, symbol, interval, start, end, bars, funding_events, mark_opens,
        bool(settings.get("funding", True)))
    windows = fold_windows(start_us, end_us, train_us, test_us, anchored)
    cash = float(settings.pop("cash", 10_000.0))
    data = FoldData(loaded, start_us, end_us, {
        "lake": lake, "funding_events": events, "mark_opens": marks, "jit": jit,
        "exchange_filters": exchange_filters, "cash": cash, **settings})
    bounds = [(window_bounds(data, a, b, "training"), window_bounds(data, c, d, "test"))
              for a, b, c, d in windows]
    in_memory = bars is not None or funding_events is not None or mark_opens is not None
    source = None if in_memory else RangeSource(
        str(lake), market, symbol, interval, start, end,
        bool(settings.get("funding", True)), uuid.uuid4().hex)
    with runner(dask, data, source, progress) as where:
        sweeps = where.sweeps(strat, grid, [t for t, _ in bounds] + [(0, len(loaded))])
        full = sweeps[-1]
        matrix = where.columns(strat, [row_params(full.frame, full.names, j)
                                       for j in range(full.frame.height)], cash)
        dask_note = where.note
    folds, legs, notes = _walk(strat, sweeps[:-1], data, windows, bounds, objective, cash)
    deflated, pbo, best_equity, full_notes = _full_sample(strat, full, matrix, data,
                                                          objective, n_blocks)
    if dask_note:
        full_notes.append(dask_note)
    oos_lo = bounds[0][1][0]
    oos_hi = oos_lo + sum(leg.equity.shape[0] for leg in legs)
    equity, oos = stitch(legs, cash, loaded.bar_days)
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
    config = dict(full.config) | {"start": format_us(start_us), "end": format_us(end_us),
                                  "train": _days(train_us), "test": _days(test_us),
                                  "anchored": anchored, "objective": objective,
                                  "n_blocks": n_blocks}
    return WalkForwardResult(folds, oos, deflated, pbo, frame, strat.name, list(full.names),
                             objective, config, _unique(notes + full_notes))


def _walk(strat: Strategy, sweeps: list[WindowSweep], data: FoldData,
          windows: list[tuple[int, int, int, int]],
          bounds: list[tuple[tuple[int, int], tuple[int, int]]], objective: str,
          cash: float) -> tuple[list[FoldResult], list[Leg], list[str]]:
    """Choose from each fold's training sweep and test fold by fold, carrying capital
    forward."""
    folds, legs, notes = [], [], []
    capital, stopped = cash, False
    for k, ((a, b, c, d), (_, (lo, hi)), sw) in enumerate(zip(windows, bounds, sweeps,
                                                              strict=True)):
        row, defined = _pick(sw.frame, objective)
        params, in_sample = row_params(sw.frame, sw.names, row), \
            row_metrics(sw.frame, sw.names, row)
        notes += sw.notes
        if not defined:
            notes.append(f"fold {k}: no combination has a defined {objective} in its "
                         "training window; the first combination was chosen")
        if stopped:
            leg = flat_leg(hi - lo, capital)
        else:
            leg = trade_window(strat, params, data, lo, hi, capital)
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
