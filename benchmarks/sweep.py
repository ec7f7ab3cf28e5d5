"""Benchmark: an sma_cross parameter sweep, ours vs vectorbt, on one year of 1m bars.

    python benchmarks/sweep.py                 # 525,600 bars, 20 x 20 grid, then x 5 stops
    python benchmarks/sweep.py --quick         # 50,000 bars, 5 x 5 grid (x 5 stops)
    python benchmarks/sweep.py --part stops    # only the stop-level sweep

Two parts. ``plain``: the grid without stops (JSON: benchmarks/results/sweep.json).
``stops``: the same grid x 5 stop-loss levels (``sl_stop`` 0.2 % ... 1 %, 2,000 points
on the full size) against vectorbt ``from_signals(..., sl_stop=...)`` with the same
stops on the same signals (JSON: benchmarks/results/sweep_stops.json). The two engines
agree on stops when signals fill at the signal bar's close (ours ``fill="close"``,
vectorbt's default ``price=close``): both check a stop from the bar after the fill and
before that bar's signal, fill a gap at the open and the stop price otherwise
(``stop_entry_price="fillprice"``, ``stop_exit_price="stopmarket"`` so the stop fill
pays slippage like any fill). With next-open fills they would differ by design: our
exit signal filled at a bar's open comes before that bar's stops, while vectorbt lets a
stop hit later in the bar win (see `backtest.kernels.simulate_nb` and
tests/backtest/test_stops_vectorbt.py). Both engines compute a combination's signals once and
run them once per level (ours inside the one batched kernel call). The bars have wicks (high/low beyond
open/close), so stops are hit inside bars as well as by gaps.

vectorbt gets the grid in chunks of ``--vbt-chunk`` columns (default 50), with its
method cache off: one call with all 400 columns grew past 13.5 GB and was OOM-killed on
our 23 GB machine (the cache also kept every chunk alive). Both choices favour vectorbt.
Each engine runs in its own subprocess (so its peak RSS, ``ru_maxrss``, is its own):
first a warm-up on a small slice (Numba compilation, or loading it from Numba's
on-disk cache; reported separately, and once more with an empty cache for the true
compile time), then the timed sweep on the full data. Both get identical seeded synthetic prices, the same
signals convention (a crossover on bar t's close fills at bar t+1's open), fees and
slippage, funding off. vectorbt uses its own MA indicator and
``Portfolio.from_signals``. The parent checks that final equity, total return, max
drawdown and trade counts agree to 1e-9 relative (per grid point and stop level),
prints markdown tables with the machine's load average and writes the JSON files.
Besides wall time each sweep's CPU time (``time.process_time``) is recorded: on a
shared machine the ratio of CPU seconds (one thread each) is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FEE_RATE = 0.0005
SLIPPAGE_BPS = 1.0
INIT_CASH = 10_000.0
WARMUP_BARS = 2_000
SL_LEVELS = [0.002, 0.004, 0.006, 0.008, 0.01]


def make_prices(n_bars: int, seed: int = 42) -> tuple[np.ndarray, ...]:
    """Seeded 1m random walk around 30k: (open, high, low, close); opens gap off the
    previous close, highs and lows reach up to 0.06 % beyond the body."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n_bars)))
    open_ = np.r_[close[0], close[:-1]] * (1.0 + rng.normal(0.0, 0.0001, n_bars))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.0006, n_bars))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.0006, n_bars))
    return open_, high, low, close


def grid(quick: bool) -> tuple[list[int], list[int]]:
    if quick:
        return list(range(5, 30, 5)), list(range(40, 140, 20))
    return list(range(5, 105, 5)), list(range(110, 510, 20))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ---- children ---------------------------------------------------------------------------

def run_ours(prices: tuple[np.ndarray, ...], fast: list[int], slow: list[int],
             stops: bool) -> dict:
    import backtest
    from backtest.data import Bars

    def sweep(o, h, lo, c):
        n = c.shape[0]
        t_us = (1_704_067_200_000 + np.arange(n, dtype=np.int64) * 60_000) * 1000
        bars = Bars("um", "SYN", "1m", t_us, o, h, lo, c, np.ones(n))
        extra = {"fill": "close", "sl_stop": SL_LEVELS} if stops else {}
        res = backtest.sweep("sma_cross", {"fast": fast, "slow": slow}, bars=bars,
                             fee=FEE_RATE, slippage_bps=SLIPPAGE_BPS, funding=False,
                             cash=INIT_CASH, exchange_filters=False, **extra)
        return res.to_frame()

    def extract(f):
        keys = [_key(r.get("sl_stop"), r["fast"], r["slow"])
                for r in f.select([c for c in ("sl_stop", "fast", "slow") if c in f.columns])
                .iter_rows(named=True)]
        out = {"key": keys}
        for name in ("final_equity", "total_return", "max_drawdown", "n_trades"):
            out[name] = f[name].to_list()
        if stops:
            out["n_sl_exits"] = f["n_sl_exits"].to_list()
        return out

    return _timed(sweep, prices, extract)


def _key(sl: float | None, fast: int, slow: int) -> str:
    return f"{sl}|{int(fast)}|{int(slow)}"


def run_vectorbt(prices: tuple[np.ndarray, ...], fast: list[int], slow: list[int],
                 chunk: int, stops: bool) -> dict:
    """vectorbt, `chunk` grid columns per call: all 400 columns of 525,600 rows at once
    need more than 15 GB (the full-width call was OOM-killed on the 23 GB test box).
    With `stops`, each chunk's signals are computed once and run once per stop level."""
    import gc

    import pandas as pd
    import vectorbt as vbt

    # vectorbt's method cache keeps every chunk's portfolio alive; off, memory stays flat
    vbt.settings.caching["enabled"] = False
    fast_all = [f for f in fast for _ in slow]
    slow_all = [s for _ in fast for s in slow]

    def metrics(pf, keys):
        return {"key": keys, "final_equity": pf.final_value().to_list(),
                "total_return": pf.total_return().to_list(),
                "max_drawdown": (-pf.max_drawdown()).to_list(),
                "n_trades": pf.trades.count().to_list()}

    def one_chunk(s, fasts, slows):
        fast_ma = vbt.MA.run(s["close"], fasts, short_name="fast")
        slow_ma = vbt.MA.run(s["close"], slows, short_name="slow")
        entries = fast_ma.ma_crossed_above(slow_ma)
        exits = fast_ma.ma_crossed_below(slow_ma)
        common = {"fees": FEE_RATE, "slippage": SLIPPAGE_BPS / 1e4, "init_cash": INIT_CASH,
                  "freq": "1min"}
        if not stops:  # a crossover on bar t's close fills at bar t+1's open
            pf = vbt.Portfolio.from_signals(s["close"], entries.shift(1, fill_value=False),
                                            exits.shift(1, fill_value=False),
                                            price=s["open"], **common)
            return [metrics(pf, [_key(None, f, w) for f, w in zip(fasts, slows, strict=True)])]
        parts = []
        for level in SL_LEVELS:  # fills at the signal bar's close, stops from the next bar
            pf = vbt.Portfolio.from_signals(
                s["close"], entries, exits, open=s["open"], high=s["high"], low=s["low"],
                sl_stop=level, stop_entry_price="fillprice", stop_exit_price="stopmarket",
                **common)
            parts.append(metrics(pf, [_key(level, f, w) for f, w in zip(fasts, slows, strict=True)]))
        return parts

    def sweep(o, h, lo, c):
        idx = pd.date_range("2024-01-01", periods=c.shape[0], freq="min")
        s = {k: pd.Series(v, idx) for k, v in (("open", o), ("high", h), ("low", lo),
                                                ("close", c))}
        out: dict[str, list] = {}
        for start in range(0, len(fast_all), chunk):
            for part in one_chunk(s, fast_all[start:start + chunk],
                                  slow_all[start:start + chunk]):
                for k, v in part.items():
                    out.setdefault(k, []).extend(v)
            gc.collect()
        return out

    return _timed(sweep, prices, lambda m: m)


def _timed(sweep, prices, extract) -> dict:
    rss_imports = _peak_rss_mb()
    t0 = time.perf_counter()
    sweep(*(a[:WARMUP_BARS] for a in prices))
    warmup_s = time.perf_counter() - t0
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = sweep(*prices)
    run_s, run_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    metrics = extract(result)
    return {"warmup_s": warmup_s, "run_s": run_s, "run_cpu_s": run_cpu_s,
            "peak_rss_mb": _peak_rss_mb(),
            "rss_after_imports_mb": rss_imports, "metrics": metrics}


def child(engine: str, n_bars: int, quick: bool, out: str, chunk: int, stops: bool) -> None:
    prices = make_prices(n_bars)
    fast, slow = grid(quick)
    if engine == "ours":
        result = run_ours(prices, fast, slow, stops)
    else:
        result = run_vectorbt(prices, fast, slow, chunk, stops)
    Path(out).write_text(json.dumps(result))


# ---- parent -----------------------------------------------------------------------------

def spawn(engine: str, n_bars: int, quick: bool, tmp: Path, threads: int, chunk: int,
          stops: bool, cold: bool = False) -> dict:
    """Run one engine in a child process; `cold` gives Numba an empty cache directory so
    the warm-up measures a full compilation."""
    out = tmp / f"bench_{engine}_{threads}_{int(cold)}_{int(stops)}.json"
    env = os.environ | {"NUMBA_NUM_THREADS": str(threads)}
    if cold:
        env["NUMBA_CACHE_DIR"] = str(tmp / "numba_cache")
    cmd = [sys.executable, __file__, "--child", engine, "--bars", str(n_bars),
           "--out", str(out), "--vbt-chunk", str(chunk)] + (["--quick"] if quick else []) \
        + (["--child-stops"] if stops else [])
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads(out.read_text())


def compare(a: dict, b: dict) -> float:
    """Largest relative difference over the compared metrics, point by point (matched
    by stop level and parameters); trade counts must be equal."""
    if sorted(a["key"]) != sorted(b["key"]):
        raise SystemExit("the engines ran different grid points")
    order_a, order_b = np.argsort(a["key"]), np.argsort(b["key"])
    if list(np.asarray(a["n_trades"])[order_a]) != list(np.asarray(b["n_trades"])[order_b]):
        raise SystemExit("trade counts differ between engines")
    worst = 0.0
    for name in ("final_equity", "total_return", "max_drawdown"):
        x, y = np.asarray(a[name])[order_a], np.asarray(b[name])[order_b]
        worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-12))))
    return worst


def table(rows: list[tuple[str, dict]], title: str) -> str:
    lines = [title, "",
             "| engine | warm-up / compile (s) | sweep (s) | sweep CPU (s) | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['warmup_s']:.2f} | {r['run_s']:.2f} "
                     f"| {r['run_cpu_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def _strip(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "metrics"}


def run_part(stops: bool, n_bars: int, quick: bool, chunk: int, json_path: str) -> float:
    """One part (plain or stops) end to end: children, comparison, table, JSON; returns
    the largest relative difference."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kline_lake_bench_") as tmp_dir:
        tmp = Path(tmp_dir)
        ours = spawn("ours", n_bars, quick, tmp, 2, chunk, stops)
        ours_1t = spawn("ours", n_bars, quick, tmp, 1, chunk, stops)
        ours_cold = None if stops else spawn("ours", n_bars, quick, tmp, 2, chunk, stops,
                                             cold=True)
        vbt = spawn("vectorbt", n_bars, quick, tmp, 1, chunk, stops)
    load_after = os.getloadavg()
    worst = compare(ours["metrics"], vbt["metrics"])
    fast, slow = grid(quick)
    n_combos = len(fast) * len(slow)
    n_points = n_combos * (len(SL_LEVELS) if stops else 1)
    what = (f"x {len(SL_LEVELS)} sl_stop levels {SL_LEVELS} (fills at the close)"
            if stops else "(fills at the next open)")
    rows = [("kline-lake backtest (2 threads)", ours), ("kline-lake backtest (1 thread)", ours_1t)]
    if ours_cold is not None:
        rows.append(("kline-lake backtest (2 threads, empty Numba cache)", ours_cold))
    rows.append((f"vectorbt 1.2 (MA + from_signals, {chunk} columns per call)", vbt))
    print(table(rows, f"sma_cross sweep: {n_bars:,} 1m bars x {n_combos} combinations {what}"))
    speed = vbt["run_s"] / ours["run_s"]
    speed_1t = vbt["run_s"] / ours_1t["run_s"]
    mem = ours["peak_rss_mb"] / vbt["peak_rss_mb"]
    # CPU time: steadier on a shared box (a tiny run can take less than the clock's tick)
    cpu_ratio = vbt["run_cpu_s"] / max(ours_1t["run_cpu_s"], 1e-6)
    print(f"\nspeed-up: {speed:.1f}x (2 threads), {speed_1t:.1f}x (1 thread), "
          f"{cpu_ratio:.1f}x in CPU seconds (1 thread); "
          f"peak memory: {mem:.3f} of vectorbt's; load average (1, 5, 15 min) "
          f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f} before, "
          f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} after")
    summary = {
        "n_bars": n_bars, "n_combinations": n_combos, "n_points": n_points,
        "fee_rate": FEE_RATE, "slippage_bps": SLIPPAGE_BPS, "speedup": speed,
        "speedup_1_thread": speed_1t, "cpu_ratio_1_thread": cpu_ratio,
        "memory_ratio": mem, "max_rel_diff": worst,
        "load_avg_before": load_before, "load_avg_after": load_after,
        "ours": _strip(ours), "ours_1_thread": _strip(ours_1t), "vectorbt": _strip(vbt),
        "vectorbt_columns_per_call": chunk,
    }
    if stops:
        exits = ours["metrics"]["n_sl_exits"]
        summary |= {"sl_levels": SL_LEVELS, "fill": "close", "n_sl_exits_total": int(sum(exits)),
                    "points_with_sl_exits": int(sum(1 for e in exits if e > 0))}
        print(f"stop-loss exits: {sum(exits):,} over {n_points} points "
              f"({summary['points_with_sl_exits']} points with at least one)")
    else:
        summary["ours_cold_cache"] = _strip(ours_cold)
    print(f"metrics identical: max relative difference {worst:.2e} over {n_points} "
          f"points; trade counts equal\n")
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(summary, indent=2) + "\n")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 bars and a 5 x 5 grid")
    ap.add_argument("--bars", type=int, default=None)
    ap.add_argument("--part", choices=["all", "plain", "stops"], default="all",
                    help="the sweep without stops, the one with 5 stop levels, or both")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    ap.add_argument("--json-stops",
                    default=str(ROOT / "benchmarks" / "results" / "sweep_stops.json"))
    ap.add_argument("--vbt-chunk", type=int, default=50,
                    help="grid columns per vectorbt call (memory bound; default 50)")
    ap.add_argument("--child", choices=["ours", "vectorbt"], help=argparse.SUPPRESS)
    ap.add_argument("--child-stops", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n_bars = args.bars or (50_000 if args.quick else 525_600)
    if args.child:
        child(args.child, n_bars, args.quick, args.out, args.vbt_chunk, args.child_stops)
        return
    worst = 0.0
    if args.part in ("all", "plain"):
        worst = max(worst, run_part(False, n_bars, args.quick, args.vbt_chunk, args.json))
    if args.part in ("all", "stops"):
        worst = max(worst, run_part(True, n_bars, args.quick, args.vbt_chunk,
                                    args.json_stops))
    if worst > 1e-9:
        raise SystemExit(f"metrics differ: {worst:.2e}")


if __name__ == "__main__":
    main()
