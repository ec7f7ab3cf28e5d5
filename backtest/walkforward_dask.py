"""Where a walk-forward's sweeps and full-sample runs execute: here, or on Dask.

`LocalRunner` calls `backtest.walkforward_folds` directly. `DaskRunner` (``dask=
"local:N"`` or ``"tcp://HOST:PORT"``, through `backtest.distributed`) sends the same
calls to the cluster: one task per window sweep (every fold's training window and the
full range, which do not depend on each other: each training sweep starts from the
same cash) and the full-sample return matrix in blocks of grid points. The test
windows, which carry capital from fold to fold, run here, and so do the DSR and the
PBO. Workers read the lake themselves (`RangeSource`: path and range, loaded once per
worker and run); bars given in memory are copied to each worker once. The tasks are the
local functions on the same inputs, so every value equals a local run's.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backtest.strategies import Strategy
from backtest.walkforward_folds import (
    FoldData,
    WindowSweep,
    load_range,
    return_columns,
    sweep_window,
)


@dataclass(frozen=True)
class RangeSource:
    """What a worker needs to load the walk-forward's bars from the lake itself; `token`
    is unique per walk-forward, so a worker never reuses another run's bars."""

    lake: str
    market: str
    symbol: str
    interval: str
    start: Any
    end: Any
    funding: bool
    token: str


@functools.lru_cache(maxsize=2)
def _range_data(src: RangeSource) -> tuple[Any, int, int, Any, Any]:
    return load_range(src.lake, src.market, src.symbol, src.interval, src.start, src.end,
                      None, None, None, src.funding)


def _worker_data(src: RangeSource | FoldData, run_kw: Mapping[str, Any]) -> FoldData:
    if isinstance(src, FoldData):
        return src
    bars, start_us, end_us, events, marks = _range_data(src)
    return FoldData(bars, start_us, end_us,
                    dict(run_kw) | {"funding_events": events, "mark_opens": marks})


def sweep_task(src: RangeSource | FoldData, run_kw: Mapping[str, Any], strat: Strategy,
               grid: Mapping[str, Sequence[Any]], bounds: list[tuple[int, int]],
               k: int) -> WindowSweep:
    """One Dask task: the sweep of window ``bounds[k]``."""
    lo, hi = bounds[k]
    return sweep_window(strat, grid, _worker_data(src, run_kw), lo, hi)


def columns_task(src: RangeSource | FoldData, run_kw: Mapping[str, Any], strat: Strategy,
                 points: list[dict[str, Any]], per: int, cash: float, k: int) -> np.ndarray:
    """One Dask task: the return columns of ``points[k * per:(k + 1) * per]``."""
    return return_columns(strat, points[k * per:(k + 1) * per], _worker_data(src, run_kw),
                          cash)


class LocalRunner:
    """Everything in this process."""

    note: str | None = None

    def __init__(self, data: FoldData) -> None:
        self.data = data

    def sweeps(self, strat: Strategy, grid: Mapping[str, Sequence[Any]],
               bounds: list[tuple[int, int]]) -> list[WindowSweep]:
        return [sweep_window(strat, grid, self.data, lo, hi) for lo, hi in bounds]

    def columns(self, strat: Strategy, points: list[dict[str, Any]], cash: float) -> np.ndarray:
        return return_columns(strat, points, self.data, cash)


class DaskRunner:
    """The same calls as `LocalRunner`, as tasks on a Dask cluster."""

    def __init__(self, client: Any, address: str, data: FoldData,
                 source: RangeSource | None, progress: bool) -> None:
        from backtest import distributed

        self.client, self.address, self.progress = client, address, progress
        self.workers = distributed.n_workers(client)
        if source is None:  # bars in memory: one copy per worker
            self.src, self.run_kw = distributed.scatter(client, data), {}
        else:
            self.src = source
            self.run_kw = {k: v for k, v in data.run_kw.items()
                           if k not in ("funding_events", "mark_opens")}
        self.n_tasks = 0

    def sweeps(self, strat: Strategy, grid: Mapping[str, Sequence[Any]],
               bounds: list[tuple[int, int]]) -> list[WindowSweep]:
        from backtest import distributed

        self.n_tasks += len(bounds)
        return distributed.map_blocks(self.client, sweep_task, len(bounds),
                                      (self.src, self.run_kw, strat, grid, bounds),
                                      self.progress, "window sweeps")

    def columns(self, strat: Strategy, points: list[dict[str, Any]], cash: float) -> np.ndarray:
        from backtest import distributed

        per = max(1, math.ceil(len(points) / (distributed.TASKS_PER_WORKER * self.workers)))
        n = math.ceil(len(points) / per)
        self.n_tasks += n
        blocks = distributed.map_blocks(self.client, columns_task, n,
                                        (self.src, self.run_kw, strat, points, per, cash),
                                        self.progress, "full-sample blocks")
        return np.concatenate(blocks, axis=1)

    @property
    def note(self) -> str:
        return (f"ran on Dask ({self.address}, {self.workers} workers) in {self.n_tasks} "
                "tasks (window sweeps, then full-sample blocks)")


@contextlib.contextmanager
def runner(address: str | None, data: FoldData, source: RangeSource | None,
           progress: bool = True) -> Iterator[LocalRunner | DaskRunner]:
    """A `LocalRunner`, or a `DaskRunner` connected to `address` for the block's span."""
    if address is None:
        yield LocalRunner(data)
        return
    from backtest import distributed

    with distributed.connect(address) as client:
        yield DaskRunner(client, address, data, source, progress)
