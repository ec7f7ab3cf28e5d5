"""Benchmark: a walk-forward of a 20 x 20 sma_cross grid x 5 stop levels over three
years of 1h bars.

    python benchmarks/walk_forward.py              # 26,280 bars, 400 x 5 sl_stop, 180d/30d
    python benchmarks/walk_forward.py --no-stops   # the 400 combinations alone
    python benchmarks/walk_forward.py --quick      # one year, 5 x 5 grid (x 5 stops)
    python benchmarks/walk_forward.py --dask local:2   # also on Dask: time, equality

Stop levels (``sl_stop`` 1 % ... 5 %) are grid dimensions: every fold's training sweep
runs 2,000 points and picks parameters and level together; the full sample counts
2,000 trials for the DSR and the PBO.

The bars are seeded synthetic klines (`kline_lake.lake.synthetic`) committed to a
temporary lake with the lake's writer, so the timed call reads the lake exactly as
``backtest walk-forward`` does. First an untimed warm-up on a small range (Numba
compilation or its on-disk cache), then the timed walk-forward: 30 rolling folds of
180 days training / 30 days test, each a 2,000-point sweep plus one test run, and the
full-sample part (one sweep, one run per point for the T x N return matrix of the PBO,
CSCV with 16 blocks = 12,870 splits). The pieces are timed again on their
own for a breakdown. Prints a markdown table and writes JSON (default
benchmarks/results/walk_forward.json).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR_MS = 3_600_000
SETTINGS = {"fee": 0.0005, "slippage_bps": 1.0, "funding": False, "exchange_filters": False}
SL_LEVELS = [0.01, 0.02, 0.03, 0.04, 0.05]


def grid(quick: bool) -> dict[str, list[int]]:
    if quick:
        return {"fast": list(range(5, 30, 5)), "slow": list(range(40, 140, 20))}
    return {"fast": list(range(5, 105, 5)), "slow": list(range(110, 510, 20))}


def write_lake(root: Path, n_bars: int) -> None:
    from kline_lake.core.series import SeriesKey
    from kline_lake.lake.synthetic import synthetic_klines
    from kline_lake.lake.writer import LakeWriter

    LakeWriter(root).commit(SeriesKey("um", "klines", "BTCUSDT", "1h"),
                            synthetic_klines(T0_MS, n_bars, "1h", seed=42))


def _iso(ms: int) -> str:
    return str(np.datetime64(ms, "ms")) + "Z"


def _timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def _cpu_timed(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall s, CPU s of this process, all threads, result)."""
    cpu0 = time.process_time()
    wall, out = _timed(fn, *args, **kwargs)
    return wall, time.process_time() - cpu0, out


def breakdown(lake: Path, g: dict, start: str, end: str, n_bars: int,
              stops: dict) -> dict[str, float]:
    """The walk-forward's pieces on their own: one full-range sweep, the per-combination
    runs of the return matrix, and CSCV on a matrix of that shape."""
    import backtest
    from backtest.data import load_bars, parse_time_us
    from backtest.overfitting import probability_of_backtest_overfitting
    from backtest.params import grid_product

    sweep_s, res = _timed(backtest.sweep, "sma_cross", g, lake=lake, start=start, end=end,
                          **SETTINGS, **stops)
    points = [p for p in grid_product(g) if p["fast"] < p["slow"]][:40]
    bars = load_bars(lake, "um", "BTCUSDT", "1h", parse_time_us(start, "start"),
                     parse_time_us(end, "end"))
    t0 = time.perf_counter()
    one_stop = {"sl_stop": stops["sl_stop"][0]} if stops else {}
    for p in points:  # as the walk-forward runs them: on bars read once
        backtest.run("sma_cross", p, bars=bars, lake=lake, **SETTINGS, **one_stop)
    run_s = (time.perf_counter() - t0) / len(points)
    matrix = np.random.default_rng(0).normal(0.0, 0.01, (n_bars, res.to_frame().height))
    pbo_s, _ = _timed(probability_of_backtest_overfitting, matrix, 16)
    return {"full_range_sweep_s": sweep_s, "one_full_range_run_s": run_s,
            "pbo_cscv_s": pbo_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one year of bars, a 5 x 5 grid")
    ap.add_argument("--no-stops", action="store_true", help="the grid without stop levels")
    ap.add_argument("--dask", default=None, metavar="local:N|ADDRESS",
                    help="also run the walk-forward on Dask and check it is identical")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "walk_forward.json"))
    args = ap.parse_args()
    import backtest

    n_bars = 365 * 24 * (1 if args.quick else 3)
    g = grid(args.quick)
    stops = {} if args.no_stops else {"sl_stop": SL_LEVELS}
    train, test = ("90d", "30d") if args.quick else ("180d", "30d")
    start, end = _iso(T0_MS), _iso(T0_MS + n_bars * HOUR_MS)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp)
        write_lake(lake, n_bars)
        warm_end = _iso(T0_MS + 40 * 24 * HOUR_MS)
        warm_s, _ = _timed(backtest.walk_forward, "sma_cross", {"fast": [5, 10], "slow": [20, 40]},
                           lake=lake, start=start, end=warm_end, train="20d", test="10d",
                           n_blocks=2, **SETTINGS, **({"sl_stop": [0.01, 0.02]} if stops else {}))
        total_s, total_cpu_s, res = _cpu_timed(backtest.walk_forward, "sma_cross", g, lake=lake, start=start,
                              end=end, train=train, test=test, **SETTINGS, **stops)
        parts = breakdown(lake, g, start, end, n_bars, stops)
        dask_part = {}
        if args.dask:
            dask_s, remote = _timed(backtest.walk_forward, "sma_cross", g, lake=lake,
                                    start=start, end=end, train=train, test=test,
                                    dask=args.dask, progress=False, **SETTINGS, **stops)
            dask_part = {"dask": args.dask, "dask_walk_forward_s": dask_s,
                         "dask_identical": remote.to_json() == res.to_json()
                         and remote.equity.equals(res.equity)}
    load_after = os.getloadavg()
    n_points = res.deflated_sharpe["n_trials"]
    n_levels = len(stops.get("sl_stop", [None]))
    out = {
        "n_bars": n_bars, "n_combinations": n_points // n_levels, "n_stop_levels": n_levels,
        "n_points": n_points, "sl_levels": stops.get("sl_stop"), "n_folds": len(res.folds),
        "train": train, "test": test, "threads": os.cpu_count(),
        "numba_threads": int(__import__("numba").get_num_threads()),
        "warmup_s": warm_s, "walk_forward_s": total_s, "walk_forward_cpu_s": total_cpu_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        **parts, **dask_part, "pbo": res.pbo["pbo"],
        "deflated_sharpe": res.deflated_sharpe["dsr"],
        "oos_sharpe": res.out_of_sample["sharpe"],
        "sharpe_gap": res.out_of_sample["sharpe_gap"],
        "oos_n_sl_exits": res.out_of_sample["n_sl_exits"],
        "chosen_sl_stops": sorted({f.params.get("sl_stop") for f in res.folds},
                                  key=lambda v: -1 if v is None else v),
        "load_avg_before": load_before, "load_avg_after": load_after,
    }
    print(f"| bars | combinations | stop levels | folds | walk-forward | warm-up "
          f"| full sweep | one run | CSCV | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {n_bars:,} | {n_points // n_levels} | {n_levels} | {len(res.folds)} "
          f"| {total_s:.2f} s | {warm_s:.2f} s "
          f"| {parts['full_range_sweep_s']:.2f} s | {parts['one_full_range_run_s'] * 1e3:.1f} ms "
          f"| {parts['pbo_cscv_s']:.2f} s | {out['peak_rss_mb']:.0f} MB |")
    print(f"walk-forward CPU time {total_cpu_s:.2f} s (both threads); "
          f"load average (1, 5, 15 min): {load_before[0]:.1f}/{load_before[1]:.1f}/"
          f"{load_before[2]:.1f} before, {load_after[0]:.1f}/{load_after[1]:.1f}/"
          f"{load_after[2]:.1f} after")
    if dask_part:
        print(f"on Dask ({args.dask}): {dask_part['dask_walk_forward_s']:.2f} s, identical: "
              f"{dask_part['dask_identical']}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if dask_part and not dask_part["dask_identical"]:
        raise SystemExit("the Dask walk-forward differs from the local one")


if __name__ == "__main__":
    main()
