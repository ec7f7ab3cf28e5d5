"""`sweep`: run a parameter grid in one compiled, parallel kernel call.

Crossover strategies (``sma_cross``, ``ema_cross``) compute each moving average once
per distinct window and cross the pairs inside the batch kernel; other strategies
compute their signals per grid point in Python and simulate in batches. Grid points
that fail the strategy's validation (e.g. ``fast >= slow``) are skipped: all are counted
(``SweepResult.n_skipped``), the first 1,000 are kept with their reasons
(``SweepResult.skipped``); a grid with no valid point is an InputError.

Memory is estimated before anything runs (`backtest.sweep_memory`): a grid too large
for the memory budget runs in chunks of consecutive grid points through the same batch
kernels (identical rows), and one whose results alone cannot fit is refused with one
line. The grid is expanded one chunk at a time, never whole.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numba
import numpy as np
import polars as pl

from backtest.batch import sweep_cross_nb, sweep_signals_nb
from backtest.data import Bars, FundingEvents, MarkOpens
from backtest.engine import (
    Config,
    MarketData,
    TimeLike,
    account_info,
    kernel_bars,
    load_market_data,
    make_config,
    strategy_signals,
    use_jit,
    with_exchange_filters,
)
from backtest.filters import ExchangeFilters
from backtest.indicators import ma_lines_nb
from backtest.metrics import METRIC_NAMES, bars_per_year
from backtest.params import grid_blocks, grid_product, grid_size
from backtest.records import METRICS_DT
from backtest.results import SweepResult
from backtest.stop_grid import StopGrid, first_levels, stop_grid, stop_levels
from backtest.strategies import SignalFunc, Strategy, get_strategy
from backtest.sweep_memory import (
    MAX_SKIPPED_KEPT,
    SIGNAL_BATCH_BYTES,
    Budget,
    MemoryPlan,
    check_results_fit,
    grid_shape,
    plan_chunks,
    resolve_budget,
)
from kline_lake.errors import InputError


def check_grid_names(strat: Strategy, grid: Mapping[str, Sequence[Any]]) -> None:
    """InputError for an empty grid or a parameter the strategy does not have."""
    if not grid:
        raise InputError("sweep needs at least one --param")
    unknown = sorted(set(grid) - set(strat.defaults))
    if unknown:
        strat.resolve_params({name: grid[name] for name in unknown})  # the clear error


def resolve_points(strat: Strategy, points: list[dict]) -> tuple[list[dict], list[dict]]:
    """(valid resolved params, skipped points with their reasons) of some grid points."""
    ok, skipped = [], []
    for point in points:
        try:
            ok.append(strat.resolve_params(point))
        except InputError as exc:
            skipped.append(point | {"reason": str(exc)})
    return ok, skipped


def _no_valid_point(skipped: list[dict]) -> InputError:
    reason = skipped[0]["reason"] if skipped else "empty grid"
    return InputError(f"no valid parameter combination in the grid ({reason})")


def valid_points(strat: Strategy, grid: Mapping[str, Sequence[Any]]
                 ) -> tuple[list[dict], list[dict]]:
    """Resolve every grid point: (valid resolved params, skipped points with reasons)."""
    check_grid_names(strat, grid)
    ok, skipped = resolve_points(strat, grid_product(grid))
    if not ok:
        raise _no_valid_point(skipped)
    return ok, skipped


def _n_chunks(n_points: int) -> int:
    """One chunk of grid points per Numba thread (each reuses its scratch buffers)."""
    return max(1, min(n_points, numba.get_num_threads()))


def _kernel(fn, jit: bool):
    return fn if jit else fn.py_func


def _run_cross(strat: Strategy, data: MarketData, points: list[dict], config: Config,
               stops: StopGrid, jit: bool) -> np.ndarray:
    b = data.bars
    windows = np.array(sorted({p["fast"] for p in points} | {p["slow"] for p in points}),
                       dtype=np.int64)
    pos = {int(w): k for k, w in enumerate(windows)}
    lines = ma_lines_nb(b.close, windows, strat.cross_line == "ema")
    levels = stops.n_levels
    fast_idx = np.tile(np.array([pos[p["fast"]] for p in points], dtype=np.int64), levels)
    slow_idx = np.tile(np.array([pos[p["slow"]] for p in points], dtype=np.int64), levels)
    if config.inverse:  # the mirror's negated signal: cross(slow, fast) == -cross(fast, slow)
        fast_idx, slow_idx = slow_idx, fast_idx
    k = kernel_bars(data, config)
    metrics, _ = _kernel(sweep_cross_nb, jit)(
        *k.arrays(), lines, fast_idx, slow_idx, k.fund_at_open, k.fund_intra,
        *config.kernel_args(), bars_per_year(b.bar_days), b.bar_days,
        _n_chunks(fast_idx.shape[0]), *stops.kernel_arrays(len(points)), stops.sl_trail,
        config.inverse)
    return metrics.reshape(levels, len(points))


def _run_signals(strat: Strategy, data: MarketData, points: list[dict], config: Config,
                 stops: StopGrid, jit: bool) -> np.ndarray:
    b = data.bars
    n = len(b)
    per_batch = max(1, SIGNAL_BATCH_BYTES // max(n, 1))
    k = kernel_bars(data, config)
    out = []
    for lo in range(0, len(points), per_batch):
        chunk = points[lo:lo + per_batch]
        sigs = np.empty((len(chunk), n), dtype=np.int8)
        for j, p in enumerate(chunk):
            sigs[j] = config.kernel_signals(strategy_signals(strat, b, p, config.direction))
        sig_idx = np.tile(np.arange(len(chunk), dtype=np.int64), stops.n_levels)
        metrics, _ = _kernel(sweep_signals_nb, jit)(
            *k.arrays(), sigs, sig_idx, k.fund_at_open, k.fund_intra, *config.kernel_args(),
            bars_per_year(b.bar_days), b.bar_days, _n_chunks(sig_idx.shape[0]),
            *stops.kernel_arrays(len(chunk)), stops.sl_trail, config.inverse)
        out.append(metrics.reshape(stops.n_levels, len(chunk)))
    return np.concatenate(out, axis=1)


def _crossover(strat: Strategy) -> bool:
    return strat.cross_line is not None and not strat.follows_direction


def run_grid(strat: Strategy, data: MarketData, points: list[dict], config: Config,
             jit: bool = True, stops: StopGrid | None = None) -> np.ndarray:
    """`backtest.records.METRICS_DT` records of the resolved grid points under every
    stop level of `stops` (default: `config`'s stops), in one batch-kernel call:
    shape ``(n_levels, len(points))``, ``[l, p]`` = point `p` under level `l`."""
    stops = stop_grid(config) if stops is None else stops
    if _crossover(strat):
        return _run_cross(strat, data, points, config, stops, jit)
    return _run_signals(strat, data, points, config, stops, jit)


def grid_frame(points: list[dict], metrics: np.ndarray, names: list[str]) -> pl.DataFrame:
    """Params (by name) followed by every metric, one row per grid point; a parameter
    mixing integers and floats (``lower=20,25.5``) is a float column."""
    cols: dict[str, Any] = {name: [p[name] for p in points] for name in names}
    for name in METRIC_NAMES:
        cols[name] = np.ascontiguousarray(metrics[name])
    return pl.DataFrame(cols, strict=False)


def plan_memory(strat: Strategy, grid: Mapping[str, Sequence[Any]], data: MarketData,
                budget: Budget) -> MemoryPlan:
    """The sweep's memory estimate over the loaded data and its chunk size
    (`backtest.sweep_memory.plan_chunks`; InputError when nothing fits). Swept stop
    levels count as grid dimensions (`grid` may hold ``sl_stop``/``tp_stop`` lists)."""
    n_windows = 0
    if _crossover(strat):
        n_windows = len({v for name in ("fast", "slow")
                         for v in grid.get(name, [strat.defaults[name]])})
    b = data.bars
    arrays = (b.open_time_us, b.open, b.high, b.low, b.close, b.volume, data.fund_at_open,
              data.fund_intra)
    plan = MemoryPlan(grid_size(grid), len(b), len(grid), numba.get_num_threads(), n_windows,
                      sum(a.nbytes for a in arrays), budget)
    return plan_chunks(plan, grid_shape(grid))


def _column_for(col: np.ndarray, values: list, filled: int) -> np.ndarray:
    """`col` (int64, float64 or object) widened, keeping its first `filled` entries, so it
    can hold `values`: ints stay int64, any float makes it float64 (as Polars infers from
    a list of numbers), anything else makes it an object column."""
    def is_int(v):
        return isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_)

    def is_number(v):
        return is_int(v) or isinstance(v, float | np.floating)

    if col.dtype == np.int64 and all(is_int(v) for v in values):
        return col
    numbers = col.dtype != object and all(is_number(v) for v in values)
    dtype = np.float64 if numbers else object
    if col.dtype == dtype:
        return col
    wider = np.empty(col.shape[0], dtype=dtype)
    wider[:filled] = col[:filled]
    return wider


class GridRows:
    """The rows of a grid run, filled chunk by chunk into arrays sized for the whole grid
    (times its stop levels): ``np.empty`` pages that are never written (skipped points)
    take no memory. Rows come out level by level, each level's points in grid order."""

    def __init__(self, names: list[str], n_points: int, stops: StopGrid | None = None) -> None:
        self.names = names
        self.stops = stops
        n_levels = 1 if stops is None else stops.n_levels
        self.metrics = np.empty((n_levels, n_points), dtype=METRICS_DT)
        self.params = {name: np.empty(n_points, dtype=np.int64) for name in names}
        self.n_rows = 0
        self.n_ruined = 0

    def add(self, points: list[dict], metrics: np.ndarray) -> None:
        """Record the points' metrics, ``(n_levels, len(points))`` (`run_grid`)."""
        lo, hi = self.n_rows, self.n_rows + len(points)
        self.metrics[:, lo:hi] = metrics.reshape(self.metrics.shape[0], len(points))
        for name in self.names:
            values = [p[name] for p in points]
            self.params[name] = _column_for(self.params[name], values, lo)
            self.params[name][lo:hi] = values
        self.n_rows = hi
        self.n_ruined += int(np.count_nonzero(metrics["ruined"]))

    def frame(self) -> pl.DataFrame:
        """Params (by name), the swept stops, then every metric: one row per valid grid
        point and stop level."""
        n, n_levels = self.n_rows, self.metrics.shape[0]
        cols: dict[str, Any] = {name: np.tile(self.params[name][:n], n_levels)
                                for name in self.names}
        if self.stops is not None:
            for name in self.stops.levels:
                per_level = self.stops.sl if name == "sl_stop" else self.stops.tp
                cols[name] = pl.Series(name, np.repeat(per_level, n), pl.Float64)
        for name in METRIC_NAMES:
            cols[name] = np.ascontiguousarray(self.metrics[name][:, :n].reshape(-1))
        return pl.DataFrame(cols)


@dataclass
class GridRun:
    """The rows of a grid run chunk by chunk, and what was skipped."""

    frame: pl.DataFrame
    skipped: list[dict]
    n_skipped: int
    n_ruined: int


def _block_part(strat: Strategy, data: MarketData, points: list[dict], config: Config,
                jit: bool, stops: StopGrid | None = None
                ) -> tuple[list[dict], np.ndarray, list[dict], int]:
    """(valid points, their metrics under every stop level, kept skipped points, number
    skipped) of one block."""
    ok, bad = resolve_points(strat, points)
    metrics = run_grid(strat, data, ok, config, jit, stops) if ok else np.empty(0, METRICS_DT)
    return ok, metrics, bad[:MAX_SKIPPED_KEPT], len(bad)


def collect_parts(grid: Mapping[str, Sequence[Any]], parts,
                  stops: StopGrid | None = None) -> GridRun:
    """The GridRun of block results (`_block_part`) taken in grid order."""
    rows = GridRows(list(grid), grid_size(grid), stops)
    skipped: list[dict] = []
    n_skipped = 0
    for ok, metrics, bad, n_bad in parts:
        n_skipped += n_bad
        skipped.extend(bad[:max(0, MAX_SKIPPED_KEPT - len(skipped))])
        if ok:
            rows.add(ok, metrics)
    if not rows.n_rows:
        raise _no_valid_point(skipped)
    return GridRun(rows.frame(), skipped, n_skipped, rows.n_ruined)


def run_chunks(strat: Strategy, grid: Mapping[str, Sequence[Any]], data: MarketData,
               config: Config, chunk_points: int, jit: bool = True,
               stops: StopGrid | None = None) -> GridRun:
    """Resolve and simulate the grid `chunk_points` parameter points (each under every
    stop level) at a time, in grid order; the rows equal one `run_grid` call over every
    valid point."""
    return collect_parts(grid, (_block_part(strat, data, block, config, jit, stops)
                                for block in grid_blocks(grid, chunk_points)), stops)


@dataclass(frozen=True)
class LakeSource:
    """Where a Dask worker loads a sweep's market data from: the lake path and the
    range, never the bars themselves. `token` is fresh per sweep, so a long-lived
    worker never serves one sweep's cached bars to a later sweep of a lake that has
    grown since."""

    lake: str
    market: str
    symbol: str
    interval: str
    start: Any
    end: Any
    funding: bool
    allow_gaps: bool
    token: str


@functools.lru_cache(maxsize=4)
def _lake_data(src: LakeSource) -> MarketData:
    """Market data of `src`, loaded once per worker process."""
    return load_market_data(src.lake, src.market, src.symbol, src.interval, src.start,
                            src.end, funding=src.funding, allow_gaps=src.allow_gaps)


def run_block(source: LakeSource | MarketData, strat: Strategy,
              grid: Mapping[str, Sequence[Any]], per_task: int, config: Config, jit: bool,
              stops: StopGrid | None, k: int) -> tuple[list[dict], np.ndarray, list[dict], int]:
    """One Dask task: grid points ``k * per_task`` onwards through the batch kernel."""
    from backtest.distributed import grid_slice

    data = _lake_data(source) if isinstance(source, LakeSource) else source
    points = grid_slice(grid, k * per_task, (k + 1) * per_task)
    return _block_part(strat, data, points, config, jit, stops)


def run_chunks_dask(strat: Strategy, grid: Mapping[str, Sequence[Any]], data: MarketData,
                    config: Config, chunk_points: int, jit: bool, address: str,
                    source: LakeSource | None, progress: bool = True,
                    stops: StopGrid | None = None) -> tuple[GridRun, str]:
    """`run_chunks` on a Dask cluster (`backtest.distributed`): identical rows, and a
    note saying where and in how many tasks it ran."""
    from backtest import distributed

    n_points = grid_size(grid)
    with distributed.connect(address) as client:
        workers = distributed.n_workers(client)
        per = distributed.task_points(n_points, chunk_points, workers)
        n_tasks = -(-n_points // per)
        src = source if source is not None else distributed.scatter(client, data)
        parts = distributed.map_blocks(client, run_block, n_tasks,
                                       (src, strat, grid, per, config, jit, stops), progress)
    note = (f"ran on Dask ({address}, {workers} workers) in {n_tasks} chunks of up to "
            f"{per:,} combinations")
    return collect_parts(grid, parts, stops), note


def sweep(strategy: str | Strategy | SignalFunc = "sma_cross",
          params: Mapping[str, Sequence[Any]] | None = None, *, lake: str | Path | None = None,
          market: str = "um", symbol: str = "BTCUSDT", interval: str = "1h",
          start: TimeLike | None = None, end: TimeLike | None = None, bars: Bars | None = None,
          funding_events: FundingEvents | None = None, mark_opens: MarkOpens | None = None,
          jit: bool | None = None, exchange_filters: bool | ExchangeFilters = True,
          allow_gaps: bool = False, memory_budget: int | str | None = None,
          dask: str | None = None, progress: bool = True, **settings: Any) -> SweepResult:
    """Backtest every combination of `params` (name -> list of values).

    Same data, settings, `exchange_filters` and `allow_gaps` arguments as `backtest.run`
    (the lake's coverage is checked before any simulation). Returns a
    `SweepResult` whose ``to_frame()`` has one row per valid combination (``ruined``
    rows stopped trading at bar ``ruin_idx``).
    `memory_budget` (bytes, or text like ``"8GB"``; default ``BACKTEST_MEMORY_BUDGET`` or
    80 % of the memory available) bounds the sweep's estimated memory: a grid that does
    not fit runs in chunks (``config["n_chunks"]``, identical rows), one whose results
    alone cannot fit is refused (InputError) before any data is loaded.
    `dask` (``"local:N"`` or ``"tcp://HOST:PORT"``) runs the chunks on a Dask cluster
    (`backtest.distributed`; identical rows; workers read the lake themselves, bars
    given in memory are copied to each worker once); `progress` shows its dashboard
    link and a bar of finished chunks on stderr.
    `sl_stop`/`tp_stop` given as several levels (a list) sweep them too, as grid
    dimensions of the same batched kernel call (`backtest.stop_grid`: data loaded once,
    points of one parameter combination share its signal row; ``sl_trail`` is one
    setting): the rows gain ``sl_stop``/``tp_stop`` columns after the parameters and
    come level by level (first stop slowest), each level's rows in grid order.
    """
    levels = stop_levels(settings)
    config = make_config(market=bars.market if bars is not None else market,
                         **first_levels(settings, levels))
    stops = stop_grid(config, levels)
    strat = get_strategy(strategy)
    grid = {k: list(v) if isinstance(v, Sequence | np.ndarray | range) else [v]
            for k, v in (params or {}).items()}
    check_grid_names(strat, grid)
    if dask is not None:
        from backtest.distributed import parse_address

        parse_address(dask)  # a bad address fails before any data is loaded
    budget = resolve_budget(memory_budget)
    check_results_fit(grid | levels, budget)
    data = load_market_data(lake, config.market, symbol, interval, start, end, bars=bars,
                            funding_events=funding_events, mark_opens=mark_opens,
                            funding=config.funding, allow_gaps=allow_gaps)
    config, notes = with_exchange_filters(config, exchange_filters, lake, data.bars.symbol)
    notes[:0] = data.coverage.notes()
    plan = _level_plan(plan_memory(strat, grid | levels, data, budget), stops.n_levels)
    if plan.n_chunks > 1:
        notes.append(plan.describe())
    per_block = plan.chunk_points // stops.n_levels
    if dask is None:
        done = run_chunks(strat, grid, data, config, per_block, use_jit(jit), stops)
    else:
        in_memory = bars is not None or funding_events is not None or mark_opens is not None
        source = None if in_memory else _lake_source(lake, config, symbol, interval, start,
                                                     end, allow_gaps)
        done, where = run_chunks_dask(strat, grid, data, config, per_block, use_jit(jit),
                                      dask, source, progress, stops)
        notes.append(where)
    b = data.bars
    cfg = asdict(config) | dict(levels) | {
        "symbol": b.symbol, "interval": b.interval, "start": _iso(b.open_time_us[0]),
        "end": _iso(b.open_time_us[-1]), "n_bars": len(b), "coverage": data.coverage.summary(),
        "unknown_gaps": data.coverage.n_unknown,
        "grid_shape": {k: len(v) for k, v in (grid | levels).items()},
        "n_chunks": plan.n_chunks} | account_info(config)
    if done.n_ruined:
        notes.append(f"{done.n_ruined} of {done.frame.height} combinations ruined the account "
                     "(column ruined; no Sharpe/Sortino/Calmar for them)")
    return SweepResult(done.frame, strat.name, list(grid) + list(levels), cfg, done.skipped,
                       notes, n_skipped=done.n_skipped)


def _level_plan(plan: MemoryPlan, n_levels: int) -> MemoryPlan:
    """`plan` with its chunk a whole number of parameter points times `n_levels` (every
    point runs under all stop levels in the same kernel call)."""
    return replace(plan, chunk_points=max(1, plan.chunk_points // n_levels) * n_levels)


def _lake_source(lake: str | Path | None, config: Config, symbol: str, interval: str,
                 start: TimeLike | None, end: TimeLike | None, allow_gaps: bool) -> LakeSource:
    """The lake as workers see it: an absolute path (or a URL, kept as given)."""
    root = str(lake) if "://" in str(lake) else str(Path(str(lake)).resolve())
    return LakeSource(root, config.market, symbol, interval, start, end, config.funding,
                      allow_gaps, uuid.uuid4().hex)


def _iso(ts_us: int) -> str:
    return str(np.datetime64(int(ts_us), "us")) + "Z"
