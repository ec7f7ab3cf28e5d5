"""Stop levels as a sweep dimension: the (sl_stop, tp_stop) setting of every grid point.

``backtest.sweep(..., sl_stop=[0.01, 0.02], tp_stop=[0.05])`` sweeps the stops together
with the strategy parameters: the grid is every stop-level combination (first stop
varying slowest) times every parameter combination, all in one batch-kernel call
(`backtest.batch`). Points are laid out level-major, ``c = level * n_params + p``, so
the rows come out as a loop over the levels would give them: each level's parameter
rows in grid order. ``sl_trail`` stays one setting for the whole sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backtest.engine import Config, validate_stops
from backtest.params import grid_product
from kline_lake.errors import InputError

STOP_LEVEL_NAMES = ("sl_stop", "tp_stop")


def stop_levels(settings: Mapping[str, Any]) -> dict[str, list[float]]:
    """The stop settings given as several levels (name -> levels); {} if none."""
    out = {}
    for name in STOP_LEVEL_NAMES:
        value = settings.get(name)
        if isinstance(value, Sequence | np.ndarray | range) and not isinstance(value, str):
            try:
                out[name] = [float(v) for v in value]
            except (TypeError, ValueError):
                raise InputError(f"{name} levels must be numbers, got {value!r}") from None
            if not out[name]:
                raise InputError("a swept stop needs at least one level")
    return out


def first_levels(settings: Mapping[str, Any], levels: Mapping[str, list[float]]
                 ) -> dict[str, Any]:
    """`settings` with each swept stop set to its first level (to build a Config)."""
    return dict(settings) | {name: values[0] for name, values in levels.items()}


@dataclass(frozen=True)
class StopGrid:
    """One stop setting per level combination: ``sl[l]``, ``tp[l]`` (NaN = off)."""

    levels: dict[str, list[float]]  # the swept stops (may be empty)
    sl: np.ndarray
    tp: np.ndarray
    sl_trail: bool

    @property
    def n_levels(self) -> int:
        return int(self.sl.shape[0])

    def kernel_arrays(self, n_points: int) -> tuple[np.ndarray, np.ndarray]:
        """The per-grid-point ``(sl_stop, tp_stop)`` of `n_points` parameter points under
        every level, level-major (point ``l * n_points + p``)."""
        return (np.ascontiguousarray(np.repeat(self.sl, n_points)),
                np.ascontiguousarray(np.repeat(self.tp, n_points)))


def stop_grid(config: Config, levels: Mapping[str, list[float]] | None = None) -> StopGrid:
    """The StopGrid of `config`'s stops with `levels` swept (each level validated as
    `backtest.run` validates a stop: InputError naming the bad one)."""
    levels = dict(levels or {})
    sl, tp, trail = config.stop_args()
    combos = grid_product(levels) if levels else [{}]
    sls, tps = [], []
    for combo in combos:
        s = combo.get("sl_stop", None if np.isnan(sl) else sl)
        t = combo.get("tp_stop", None if np.isnan(tp) else tp)
        validate_stops(s, t, trail)
        sls.append(np.nan if s is None else s)
        tps.append(np.nan if t is None else t)
    return StopGrid(levels, np.array(sls, dtype=np.float64), np.array(tps, dtype=np.float64),
                    bool(trail))
