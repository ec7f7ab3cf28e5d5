"""Benchmark: an sma_cross parameter sweep, ours vs vectorbt, on one year of 1m bars.

    python benchmarks/sweep.py            # 525,600 bars, 20 x 20 grid
    python benchmarks/sweep.py --quick    # 50,000 bars, 5 x 5 grid

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
drawdown and trade counts agree to 1e-9 relative, prints a markdown table and writes
JSON (default benchmarks/results/sweep.json).
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


def make_prices(n_bars: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 1m random walk around 30k: (open, close); open gaps off the previous close."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, n_bars)))
    open_ = np.r_[close[0], close[:-1]] * (1.0 + rng.normal(0.0, 0.0001, n_bars))
    return open_, close


def grid(quick: bool) -> tuple[list[int], list[int]]:
    if quick:
        return list(range(5, 30, 5)), list(range(40, 140, 20))
    return list(range(5, 105, 5)), list(range(110, 510, 20))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ---- children ---------------------------------------------------------------------------

def run_ours(open_: np.ndarray, close: np.ndarray, fast: list[int], slow: list[int]) -> dict:
    import backtest
    from backtest.data import Bars

    def sweep(o, c):
        n = c.shape[0]
        t_us = (1_704_067_200_000 + np.arange(n, dtype=np.int64) * 60_000) * 1000
        bars = Bars("um", "SYN", "1m", t_us, o, np.maximum(o, c), np.minimum(o, c), c,
                    np.ones(n))
        res = backtest.sweep("sma_cross", {"fast": fast, "slow": slow}, bars=bars,
                             fee=FEE_RATE, slippage_bps=SLIPPAGE_BPS, funding=False,
                             cash=INIT_CASH)
        return res.to_frame()

    return _timed(sweep, open_, close, lambda f: {
        "final_equity": f["final_equity"].to_list(),
        "total_return": f["total_return"].to_list(),
        "max_drawdown": f["max_drawdown"].to_list(),
        "n_trades": f["n_trades"].to_list(),
    })


def run_vectorbt(open_: np.ndarray, close: np.ndarray, fast: list[int], slow: list[int],
                 chunk: int) -> dict:
    """vectorbt, `chunk` grid columns per call: all 400 columns of 525,600 rows at once
    need more than 15 GB (the full-width call was OOM-killed on the 23 GB test box)."""
    import gc

    import pandas as pd
    import vectorbt as vbt

    # vectorbt's method cache keeps every chunk's portfolio alive; off, memory stays flat
    vbt.settings.caching["enabled"] = False
    fast_all = [f for f in fast for _ in slow]
    slow_all = [s for _ in fast for s in slow]

    def one_chunk(close_s, open_s, fasts, slows):
        fast_ma = vbt.MA.run(close_s, fasts, short_name="fast")
        slow_ma = vbt.MA.run(close_s, slows, short_name="slow")
        entries = fast_ma.ma_crossed_above(slow_ma).shift(1, fill_value=False)
        exits = fast_ma.ma_crossed_below(slow_ma).shift(1, fill_value=False)
        pf = vbt.Portfolio.from_signals(close_s, entries, exits, price=open_s, fees=FEE_RATE,
                                        slippage=SLIPPAGE_BPS / 1e4, init_cash=INIT_CASH,
                                        freq="1min")
        return {
            "final_equity": pf.final_value().to_list(),
            "total_return": pf.total_return().to_list(),
            "max_drawdown": (-pf.max_drawdown()).to_list(),
            "n_trades": pf.trades.count().to_list(),
        }

    def sweep(o, c):
        idx = pd.date_range("2024-01-01", periods=c.shape[0], freq="min")
        close_s, open_s = pd.Series(c, idx), pd.Series(o, idx)
        out: dict[str, list] = {}
        for lo in range(0, len(fast_all), chunk):
            part = one_chunk(close_s, open_s, fast_all[lo:lo + chunk], slow_all[lo:lo + chunk])
            for k, v in part.items():
                out.setdefault(k, []).extend(v)
            gc.collect()
        return out

    return _timed(sweep, open_, close, lambda m: m)


def _timed(sweep, open_, close, extract) -> dict:
    rss_imports = _peak_rss_mb()
    t0 = time.perf_counter()
    sweep(open_[:WARMUP_BARS], close[:WARMUP_BARS])
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = sweep(open_, close)
    run_s = time.perf_counter() - t0
    metrics = extract(result)
    return {"warmup_s": warmup_s, "run_s": run_s, "peak_rss_mb": _peak_rss_mb(),
            "rss_after_imports_mb": rss_imports, "metrics": metrics}


def child(engine: str, n_bars: int, quick: bool, out: str, chunk: int) -> None:
    open_, close = make_prices(n_bars)
    fast, slow = grid(quick)
    if engine == "ours":
        result = run_ours(open_, close, fast, slow)
    else:
        result = run_vectorbt(open_, close, fast, slow, chunk)
    Path(out).write_text(json.dumps(result))


# ---- parent -----------------------------------------------------------------------------

def spawn(engine: str, n_bars: int, quick: bool, tmp: Path, threads: int, chunk: int,
          cold: bool = False) -> dict:
    """Run one engine in a child process; `cold` gives Numba an empty cache directory so
    the warm-up measures a full compilation."""
    out = tmp / f"bench_{engine}_{threads}_{int(cold)}.json"
    env = os.environ | {"NUMBA_NUM_THREADS": str(threads)}
    if cold:
        env["NUMBA_CACHE_DIR"] = str(tmp / "numba_cache")
    cmd = [sys.executable, __file__, "--child", engine, "--bars", str(n_bars),
           "--out", str(out), "--vbt-chunk", str(chunk)] + (["--quick"] if quick else [])
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return json.loads(out.read_text())


def compare(a: dict, b: dict) -> float:
    """Largest relative difference over the compared metrics; trade counts must be equal."""
    if a["n_trades"] != b["n_trades"]:
        raise SystemExit("trade counts differ between engines")
    worst = 0.0
    for name in ("final_equity", "total_return", "max_drawdown"):
        x, y = np.asarray(a[name]), np.asarray(b[name])
        worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-12))))
    return worst


def table(rows: list[tuple[str, dict]], n_bars: int, n_combos: int) -> str:
    lines = [f"sma_cross sweep: {n_bars:,} 1m bars x {n_combos} combinations",
             "",
             "| engine | warm-up / compile (s) | sweep (s) | peak RSS (MB) |",
             "|---|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['warmup_s']:.2f} | {r['run_s']:.2f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50,000 bars and a 5 x 5 grid")
    ap.add_argument("--bars", type=int, default=None)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    ap.add_argument("--vbt-chunk", type=int, default=50,
                    help="grid columns per vectorbt call (memory bound; default 50)")
    ap.add_argument("--child", choices=["ours", "vectorbt"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    n_bars = args.bars or (50_000 if args.quick else 525_600)
    if args.child:
        child(args.child, n_bars, args.quick, args.out, args.vbt_chunk)
        return
    with tempfile.TemporaryDirectory(prefix="kline_lake_bench_") as tmp_dir:
        tmp = Path(tmp_dir)
        ours = spawn("ours", n_bars, args.quick, tmp, 2, args.vbt_chunk)
        ours_1t = spawn("ours", n_bars, args.quick, tmp, 1, args.vbt_chunk)
        ours_cold = spawn("ours", n_bars, args.quick, tmp, 2, args.vbt_chunk, cold=True)
        vbt = spawn("vectorbt", n_bars, args.quick, tmp, 1, args.vbt_chunk)
    worst = compare(ours["metrics"], vbt["metrics"])
    fast, slow = grid(args.quick)
    n_combos = len(fast) * len(slow)
    rows = [("kline-lake backtest (2 threads)", ours), ("kline-lake backtest (1 thread)", ours_1t),
            ("kline-lake backtest (2 threads, empty Numba cache)", ours_cold),
            (f"vectorbt 1.2 (MA + from_signals, {args.vbt_chunk} columns per call)", vbt)]
    print(table(rows, n_bars, n_combos))
    speed = vbt["run_s"] / ours["run_s"]
    speed_1t = vbt["run_s"] / ours_1t["run_s"]
    mem = ours["peak_rss_mb"] / vbt["peak_rss_mb"]
    print(f"\nspeed-up: {speed:.1f}x (2 threads), {speed_1t:.1f}x (1 thread); "
          f"peak memory: {mem:.3f} of vectorbt's")
    print(f"metrics identical: max relative difference {worst:.2e} over {n_combos} "
          f"combinations; trade counts equal")
    summary = {
        "n_bars": n_bars, "n_combinations": n_combos, "fee_rate": FEE_RATE,
        "slippage_bps": SLIPPAGE_BPS, "speedup": speed, "speedup_1_thread": speed_1t,
        "memory_ratio": mem, "max_rel_diff": worst,
        "ours": {k: v for k, v in ours.items() if k != "metrics"},
        "ours_1_thread": {k: v for k, v in ours_1t.items() if k != "metrics"},
        "ours_cold_cache": {k: v for k, v in ours_cold.items() if k != "metrics"},
        "vectorbt": {k: v for k, v in vbt.items() if k != "metrics"},
    }
    summary["vectorbt_columns_per_call"] = args.vbt_chunk
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if worst > 1e-9:
        raise SystemExit(f"metrics differ: {worst:.2e}")


if __name__ == "__main__":
    main()
