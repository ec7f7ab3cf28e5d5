"""Benchmark: sweeps on a 2-worker Dask LocalCluster vs the same sweeps in one process.

    python benchmarks/distributed_sweep.py           # 20 symbols x 400 combinations x 8,760 1h bars
    python benchmarks/distributed_sweep.py --quick   # 4 symbols x 100 combinations x 2,000 bars

A lake of seeded synthetic USD-M 1h klines (one year per symbol, written in the lake's
layout) is swept with ``sma_cross`` (fast 5..100 x slow 110..300, every point valid),
fee 0.05 %, slippage 1 bp, funding off, one ``backtest.sweep`` per symbol:

- local: in this process, Numba using every core;
- dask: ``dask=<scheduler address>`` on a LocalCluster of 2 worker processes (one
  thread each, Numba ``cores // 2`` threads per worker), started once before timing
  (its start-up is reported apart); workers read the lake from its path;
- dask cold: one symbol with ``dask="local:2"``, i.e. starting and stopping a cluster
  inside the call (what a one-off CLI run pays).

Each configuration runs once untimed (Numba cache, worker imports and first lake load),
then is timed. Results are checked identical frame for frame (``DataFrame.equals``).
Prints a markdown table and writes JSON (default benchmarks/results/distributed_sweep.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support.backtest: the tests' lake writing


def build_lake(root: Path, n_symbols: int, n_bars: int) -> list[str]:
    from tests.support.backtest import make_bars, write_klines

    symbols = [f"S{k:02d}USDT" for k in range(n_symbols)]
    for k, sym in enumerate(symbols):
        write_klines(root, make_bars(n_bars, seed=100 + k), symbol=sym)
    return symbols


def sweep_all(root: Path, symbols: list[str], grid: dict, n_bars: int,
              dask: str | None) -> tuple[float, list]:
    import backtest
    from tests.support.backtest import iso, make_bars

    b = make_bars(n_bars)
    kw = dict(lake=root, interval="1h", start=iso(b.open_time_us[0]),
              end=iso(b.open_time_us[-1] + 1), funding=False, exchange_filters=False,
              fee=0.0005, slippage_bps=1.0)
    if dask is not None:
        kw |= dict(dask=dask, progress=False)
    t0 = time.perf_counter()
    frames = [backtest.sweep("sma_cross", grid, symbol=s, **kw).to_frame() for s in symbols]
    return time.perf_counter() - t0, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/distributed_sweep.json"))
    args = ap.parse_args()
    n_symbols, n_bars = (4, 2000) if args.quick else (20, 8760)
    grid = ({"fast": list(range(5, 55, 5)), "slow": list(range(110, 210, 10))} if args.quick
            else {"fast": list(range(5, 105, 5)), "slow": list(range(110, 310, 10))})
    n_points = len(grid["fast"]) * len(grid["slow"])
    import logging

    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        symbols = build_lake(root, n_symbols, n_bars)
        sweep_all(root, symbols[:1], grid, n_bars, None)  # warm-up
        local_s, local = sweep_all(root, symbols, grid, n_bars, None)
        t0 = time.perf_counter()
        threads = max(1, (os.cpu_count() or 1) // 2)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR,
                          env={"NUMBA_NUM_THREADS": str(threads)}) as cluster, \
                Client(cluster):
            startup_s = time.perf_counter() - t0
            address = cluster.scheduler_address
            sweep_all(root, symbols, grid, n_bars, address)  # warm-up: imports, lake loads
            dask_s, remote = sweep_all(root, symbols, grid, n_bars, address)
        cold_s, cold = sweep_all(root, symbols[:1], grid, n_bars, "local:2")
    identical = (all(a.equals(b) for a, b in zip(local, remote, strict=True))
                 and cold[0].equals(local[0]))
    bar_steps = n_symbols * n_points * n_bars
    out = {"n_symbols": n_symbols, "n_combinations": n_points, "n_bars": n_bars,
           "cores": os.cpu_count(), "identical": identical,
           "local_s": local_s, "dask_2_workers_s": dask_s,
           "overhead_s": dask_s - local_s, "overhead_per_sweep_s": (dask_s - local_s) / n_symbols,
           "cluster_startup_s": startup_s, "dask_cold_one_symbol_s": cold_s,
           "local_bar_steps_per_s": bar_steps / local_s, "dask_bar_steps_per_s": bar_steps / dask_s}
    print(f"| {n_symbols} symbols x {n_points} combinations x {n_bars:,} bars | seconds |")
    print("|---|---|")
    print(f"| one process | {local_s:.2f} |")
    print(f"| LocalCluster, 2 workers (started) | {dask_s:.2f} |")
    print(f"| overhead per sweep | {out['overhead_per_sweep_s']:+.3f} |")
    print(f"| cluster start-up | {startup_s:.2f} |")
    print(f"| one symbol with local:2 (cluster started in the call) | {cold_s:.2f} |")
    print(f"identical results: {identical}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    if not identical:
        sys.exit("results differ")


if __name__ == "__main__":
    main()
