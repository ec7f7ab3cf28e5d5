"""Memory of a parameter sweep: estimated before it runs, chunked to fit, or refused.

Pure arithmetic, except `available_memory_bytes` (reads ``/proc/meminfo`` and the
cgroup limit) and `resolve_budget` (reads ``BACKTEST_MEMORY_BUDGET``).

What a sweep allocates (see `backtest.sweep` and `backtest.batch`), with ``n`` bars,
``P`` swept parameters and ``c`` grid points per chunk:

- results, kept for the whole grid: per combination its metric record (`METRICS_DT`)
  and parameter values, filled chunk by chunk, then the frame built from them (8 bytes
  per parameter and metric) and one column in transit:
  ``METRICS_DT.itemsize + 8 * P + 8 * (P + len(METRICS_DT)) + 8`` bytes.
  The estimate counts every combination of the grid (an upper bound: invalid points such
  as ``fast >= slow`` are skipped and cost nothing), because checking each point takes a
  few microseconds and a grid too large to hold is refused before anything is loaded;
- per chunk: the Python dicts of its points (grid point and resolved parameters), the
  kernel's metric records and statuses, the parameter lists, and either the int8 signal
  row of each point (generic strategies: ``n`` bytes) or, for crossovers, one float64
  indicator row per distinct window (at most ``min(windows, 2 * c)`` rows of ``8 * n``);
- fixed: per Numba thread the simulation scratch (equity and position, ``16 * n``), a
  trade buffer (``n + 1`` trade records) and a signal row; a strategy's temporary arrays;
  the skipped points kept as examples;
- the bars and funding arrays themselves (their real ``nbytes``).

The budget is, in order: the `memory_budget` argument (``--memory-budget``), the
``BACKTEST_MEMORY_BUDGET`` environment variable (bytes, or ``512MB``, ``2GiB``...), or
80 % of the memory available now (``MemAvailable``, lowered by a cgroup limit). A grid
that fits runs as one chunk (up to `MAX_CHUNK_POINTS` points); a larger one runs in
chunks of grid points through the same batch kernels (every row is computed exactly as
in one call, so the results are identical); one whose results alone, or whose results
plus a single combination's working memory, exceed the budget is refused with one line
(InputError, exit 2 from the CLI) saying how large the grid is and what it needs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from math import prod
from pathlib import Path

from backtest.records import METRICS_DT, TRADE_DT
from kline_lake.errors import InputError

BUDGET_ENV = "BACKTEST_MEMORY_BUDGET"
AVAILABLE_FRACTION = 0.8  # headroom for the interpreter, Polars and the page cache
MAX_CHUNK_POINTS = 1 << 20  # bounds the Python dicts of one chunk (~0.6 GB)
SIGNAL_BATCH_BYTES = 64 * 1024 * 1024  # int8 signal rows of one generic-strategy chunk
POINT_PY_BYTES = 600  # two small dicts, list slots and int objects per grid point
STRATEGY_TEMP_ARRAYS = 8  # float64 bar-length temporaries of one strategy call
MAX_SKIPPED_KEPT = 1000  # skipped points kept as examples (all are counted)
SKIPPED_POINT_BYTES = 600  # a skipped point's dict and its reason text
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_NO_CGROUP_LIMIT = 1 << 60


def parse_size(text: str | int, what: str = "memory budget") -> int:
    """'2GB' -> 2_000_000_000, '512MiB' -> 536_870_912, '1e9' -> 10**9; InputError else."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
        if m is None or m.group(2) not in _UNITS:
            raise InputError(f"{what} {text!r} is not a size (e.g. 512MB, 8GB, 2GiB, 1e9)")
        value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise InputError(f"{what} must be positive, got {text!r}")
    return value


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB', 3.2e10 -> '29.8 GiB'."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    k = 0
    while abs(n) >= 1024 and k < len(units) - 1:
        n /= 1024
        k += 1
    return f"{n:,.0f} B" if k == 0 else f"{n:,.1f} {units[k]}"


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory_bytes(proc: Path = Path("/proc"),
                           cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Memory this process can still take: ``MemAvailable`` or the room left under a
    cgroup (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) limit, whichever is less;
    None where neither can be read."""
    found: list[int] = []
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit_name, usage_name in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes",
                                    "memory/memory.usage_in_bytes")):
        limit, usage = _read_int(cgroup / limit_name), _read_int(cgroup / usage_name)
        if limit is not None and usage is not None and limit < _NO_CGROUP_LIMIT:
            found.append(max(limit - usage, 0))
    return min(found) if found else None


@dataclass(frozen=True)
class Budget:
    """How many bytes a sweep may use, and where that number came from."""

    bytes: int | None  # None: unknown (no limit applied)
    source: str


def resolve_budget(memory_budget: int | str | None = None) -> Budget:
    """The argument, else ``BACKTEST_MEMORY_BUDGET``, else 80 % of available memory."""
    if memory_budget is not None:
        return Budget(parse_size(memory_budget), "--memory-budget")
    env = os.environ.get(BUDGET_ENV, "").strip()
    if env:
        return Budget(parse_size(env, BUDGET_ENV), BUDGET_ENV)
    available = available_memory_bytes()
    if available is None:
        return Budget(None, "available memory unknown")
    return Budget(int(available * AVAILABLE_FRACTION),
                  f"{AVAILABLE_FRACTION:.0%} of the {format_bytes(available)} available; "
                  f"--memory-budget or {BUDGET_ENV} to change")


def grid_shape(grid: Mapping[str, Sequence]) -> str:
    """'fast 10,000 x slow 10,000'."""
    return " x ".join(f"{name} {len(values):,}" for name, values in grid.items())


def result_bytes_per_point(n_params: int) -> int:
    """Result memory of one combination (see the module docstring)."""
    return METRICS_DT.itemsize + 8 * n_params + 8 * (n_params + len(METRICS_DT.names)) + 8


def check_results_fit(grid: Mapping[str, Sequence], budget: Budget) -> None:
    """Refuse (InputError) a grid whose results alone exceed the budget."""
    n_points = prod(len(v) for v in grid.values())
    per_point = result_bytes_per_point(len(grid))
    need = n_points * per_point
    if budget.bytes is not None and need > budget.bytes:
        raise InputError(
            f"sweep grid too large: {n_points:,} combinations ({grid_shape(grid)}) need up "
            f"to {format_bytes(need)} for their results alone ({per_point} bytes each), "
            f"more than the memory budget of {format_bytes(budget.bytes)} ({budget.source}); "
            "narrow the --param ranges or split the grid")


@dataclass(frozen=True)
class MemoryPlan:
    """The estimate of one sweep and the chunk size that keeps it within the budget."""

    n_points: int  # grid combinations (valid or not)
    n_bars: int
    n_params: int
    n_threads: int
    n_windows: int  # distinct indicator windows (crossover strategies), else 0
    data_bytes: int
    budget: Budget
    chunk_points: int = 0  # set by `plan_chunks`

    @property
    def crossover(self) -> bool:
        return self.n_windows > 0

    @property
    def results_bytes(self) -> int:
        return self.n_points * result_bytes_per_point(self.n_params)

    @property
    def fixed_bytes(self) -> int:
        n = self.n_bars
        per_thread = 16 * n + TRADE_DT.itemsize * (n + 1) + n
        return (self.n_threads * per_thread + STRATEGY_TEMP_ARRAYS * 8 * n
                + MAX_SKIPPED_KEPT * SKIPPED_POINT_BYTES)

    @property
    def point_bytes(self) -> int:
        """Working bytes of each grid point of a chunk (crossover lines apart)."""
        own = 16 if self.crossover else self.n_bars
        return POINT_PY_BYTES + METRICS_DT.itemsize + 8 + 16 * self.n_params + own

    def working_bytes(self, chunk_points: int) -> int:
        """Memory of one chunk of `chunk_points` grid points, on top of data and results."""
        lines = min(self.n_windows, 2 * chunk_points) * 8 * self.n_bars
        return self.fixed_bytes + chunk_points * self.point_bytes + lines

    def total_bytes(self, chunk_points: int) -> int:
        return self.data_bytes + self.results_bytes + self.working_bytes(chunk_points)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_points // self.chunk_points) if self.chunk_points else 0

    def describe(self) -> str:
        """One line: estimate, budget and chunking."""
        return (f"{self.n_points:,} combinations x {self.n_bars:,} bars need about "
                f"{format_bytes(self.total_bytes(self.chunk_points))} (results "
                f"{format_bytes(self.results_bytes)}, data {format_bytes(self.data_bytes)}); "
                f"run in {self.n_chunks:,} chunks of up to {self.chunk_points:,} "
                f"combinations to stay within the memory budget of "
                f"{format_bytes(self.budget.bytes or 0)} ({self.budget.source})")


def max_chunk_points(n_points: int, n_bars: int, crossover: bool) -> int:
    """The largest chunk run without a budget: the whole grid, capped so one chunk's
    Python dicts (and, for generic strategies, its signal rows) stay small."""
    cap = MAX_CHUNK_POINTS if crossover else max(1, SIGNAL_BATCH_BYTES // max(n_bars, 1))
    return max(1, min(n_points, cap, MAX_CHUNK_POINTS))


def plan_chunks(plan: MemoryPlan, shape: str) -> MemoryPlan:
    """`plan` with the largest chunk size that fits its budget; InputError if even one
    combination at a time does not fit."""
    top = max_chunk_points(plan.n_points, plan.n_bars, plan.crossover)
    limit = plan.budget.bytes
    if limit is None or plan.total_bytes(top) <= limit:
        return _with_chunk(plan, top)
    if plan.total_bytes(1) > limit:
        raise InputError(
            f"sweep grid too large: {plan.n_points:,} combinations ({shape}) over "
            f"{plan.n_bars:,} bars need {format_bytes(plan.total_bytes(1))} even one "
            f"combination at a time (results {format_bytes(plan.results_bytes)}, data "
            f"{format_bytes(plan.data_bytes)}), more than the memory budget of "
            f"{format_bytes(limit)} ({plan.budget.source}); narrow the grid or the range")
    lo, hi = 1, top  # total_bytes grows with the chunk: the largest chunk that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if plan.total_bytes(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return _with_chunk(plan, lo)


def _with_chunk(plan: MemoryPlan, chunk_points: int) -> MemoryPlan:
    return replace(plan, chunk_points=chunk_points)
