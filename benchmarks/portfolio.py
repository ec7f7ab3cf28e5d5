"""Benchmark: a 50-asset portfolio, ours vs vectorbt `from_orders`, same weights.

    python benchmarks/portfolio.py            # 50 assets x 8,760 hourly bars (one year)
    python benchmarks/portfolio.py --quick    # 20 assets x 2,000 bars

Both engines get identical seeded synthetic prices (USD-M perpetuals, no missing bars),
the same `momentum_rank` weights (lookback 24 bars, k 5, daily rebalance: weights set
only on bars closing at 00:00 UTC, filled at the next open), fee 0.05 %, slippage
1 bp, funding off. Ours is `backtest.portfolio(...)` on an in-memory panel, timed with
the weights given (and once more with the strategy computing them, reported
apart); vectorbt is ``Portfolio.from_orders(close, size=W
shifted one bar, size_type="targetpercent", direction="both", price=open,
val_price=open, fees, slippage, init_cash, cash_sharing=True, group_by=True,
call_seq="auto")`` plus ``value()``, timed without computing the weights (they are
given). Each engine runs in its own subprocess, first on a small slice (Numba
compilation or its cache; reported as warm-up), then timed on the full data, the
fastest of five runs (the machine is shared). Memory is measured on the first and is
the run's own peak: the kernel's peak-RSS mark is reset just before it
(``/proc/self/clear_refs``) and VmHWM minus the RSS at that point is reported.
The parent checks that the equity curves agree to 1e-9 relative, prints a markdown
table and writes JSON (default benchmarks/results/portfolio.json).

Sweep section (a third subprocess; ``--no-sweep`` skips it): the 20 combinations of
`SWEEP_GRID` on the same panel, the per-combination loop `portfolio_sweep` used to be
(one ``backtest.portfolio`` per combination) vs `backtest.portfolio_sweep` (weights in
Python, one batched kernel call), fastest of three, once with `momentum_rank` computing
the weights and once on weights given (the simulation part alone); the rows must agree
value for value.
"""

from __future__ import annotations

import argparse
import gc
import json
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
PARAMS = {"lookback": 24, "k": 5}
WARMUP_BARS = 500
REPEATS = 5  # timed runs per engine: the fastest is reported (the box is shared)
SWEEP_GRID = {"lookback": [6, 12, 24, 48, 96], "k": [1, 2, 3, 5]}  # 20 combinations
SWEEP_REPEATS = 3
T0_US = 1_672_531_200_000_000  # 2023-01-01


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> float:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0: ``5 > /proc/self/clear_refs``) so
    that VmHWM afterwards is the peak of what follows; returns the RSS now (MB)."""
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mb("VmRSS")


def make_panel(n_bars: int, n_assets: int, seed: int = 7):
    """Seeded hourly random walks of `n_assets` perpetuals as a Panel."""
    from backtest.multi_asset.panel import panel_from_arrays

    rng = np.random.default_rng(seed)
    levels = 10.0 ** rng.uniform(-1, 4, n_assets)
    close = levels * np.exp(np.cumsum(rng.normal(0.0, 0.008, (n_bars, n_assets)), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1.0 + rng.normal(0, 0.0005, close.shape))
    t_us = T0_US + np.arange(n_bars, dtype=np.int64) * 3_600_000_000
    assets = [f"um:B{k:03d}USDT" for k in range(n_assets)]
    return panel_from_arrays(assets, "1h", t_us, open_, close)


def _slice(panel, n: int):
    from backtest.multi_asset.panel import panel_from_arrays

    return panel_from_arrays(list(panel.assets), panel.interval, panel.time_us[:n],
                             panel.open[:n], panel.close[:n])


def run_ours(panel) -> tuple:
    """Timed on the given weights (as vectorbt is); also timed once more computing
    them with the strategy (`with_strategy_s`)."""
    import backtest
    from backtest.multi_asset.strategies import momentum_rank

    def once(p, strategy):
        return backtest.portfolio(strategy, {} if callable(strategy) else PARAMS, panel=p,
                                  fee=FEE_RATE, slippage_bps=SLIPPAGE_BPS, funding=False,
                                  cash=INIT_CASH, rebalance="1d")

    small = _slice(panel, WARMUP_BARS)
    t0 = time.perf_counter()
    once(small, "momentum_rank")
    warm = time.perf_counter() - t0
    weights = momentum_rank(panel, **PARAMS)
    base = reset_peak()
    t0 = time.perf_counter()
    res = once(panel, lambda p: weights)
    run_s = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    for _ in range(REPEATS - 1):
        t0 = time.perf_counter()
        once(panel, lambda p: weights)
        run_s = min(run_s, time.perf_counter() - t0)
    t0 = time.perf_counter()
    again = once(panel, "momentum_rank")
    with_strategy_s = time.perf_counter() - t0
    for _ in range(REPEATS - 1):
        t0 = time.perf_counter()
        once(panel, "momentum_rank")
        with_strategy_s = min(with_strategy_s, time.perf_counter() - t0)
    assert np.array_equal(again.equity_curve, res.equity_curve)
    return warm, base, peak, run_s, res.equity_curve, with_strategy_s


def _vbt_weights(panel):
    from backtest.multi_asset.engine import rebalance_mask
    from backtest.multi_asset.strategies import momentum_rank

    w = momentum_rank(panel, **PARAMS)
    w[~rebalance_mask(panel, "1d")] = np.nan
    return np.vstack([np.full((1, panel.n_assets), np.nan), w[:-1]])  # fill at next open


def run_vectorbt(panel):
    import pandas as pd
    import vectorbt as vbt

    vbt.settings.caching["enabled"] = False

    def once(p, size):
        idx = pd.date_range("2023-01-01", periods=p.n_bars, freq="h")
        close = pd.DataFrame(p.close, index=idx)
        price = pd.DataFrame(p.open, index=idx)
        pf = vbt.Portfolio.from_orders(
            close, size=pd.DataFrame(size, index=idx), size_type="targetpercent",
            direction="both", price=price, val_price=price, fees=FEE_RATE,
            slippage=SLIPPAGE_BPS / 1e4, init_cash=INIT_CASH, cash_sharing=True,
            group_by=True, call_seq="auto", freq="1h")
        return pf.value().to_numpy()

    small = _slice(panel, WARMUP_BARS)
    small_w = _vbt_weights(small)
    t0 = time.perf_counter()
    once(small, small_w)
    warm = time.perf_counter() - t0
    size = _vbt_weights(panel)
    base = reset_peak()
    t0 = time.perf_counter()
    equity = once(panel, size)
    run_s = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    for _ in range(REPEATS - 1):
        t0 = time.perf_counter()
        once(panel, size)
        run_s = min(run_s, time.perf_counter() - t0)
    return warm, base, peak, run_s, equity, None


def _timed(fn, repeats: int) -> tuple[float, object]:
    """(fastest wall time of `repeats` calls, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def run_sweep(panel) -> dict:
    """The grid `SWEEP_GRID` two ways on one panel: the loop the sweep used to be (one
    `backtest.portfolio` per combination) and `backtest.portfolio_sweep` (one batched
    kernel call), each with the strategy computing its weights and on weights given (a
    function returning them precomputed: the simulation part alone). Rows must agree
    value for value."""
    import backtest
    from backtest.multi_asset.strategies import momentum_rank
    from backtest.params import grid_product

    combos = grid_product(SWEEP_GRID)
    kw = dict(fee=FEE_RATE, slippage_bps=SLIPPAGE_BPS, funding=False, cash=INIT_CASH,
              rebalance="1d")
    given = {(c["lookback"], c["k"]): momentum_rank(panel, **c) for c in combos}

    def weights_given(p, lookback=24, k=1):
        return given[(lookback, k)]

    def loop(strategy):
        return [{**c, **backtest.portfolio(strategy, c, panel=panel, **kw).metrics}
                for c in combos]

    def batched(strategy):
        return backtest.portfolio_sweep(strategy, SWEEP_GRID, panel=panel, **kw).to_dicts()

    small = _slice(panel, WARMUP_BARS)
    backtest.portfolio_sweep("momentum_rank", SWEEP_GRID, panel=small, **kw)  # compile/cache
    backtest.portfolio("momentum_rank", combos[0], panel=small, **kw)
    out = {"n_combos": len(combos), "grid": SWEEP_GRID}
    for label, strategy in (("strategy", "momentum_rank"), ("given", weights_given)):
        loop_s, loop_rows = _timed(lambda s=strategy: loop(s), SWEEP_REPEATS)
        sweep_s, sweep_rows = _timed(lambda s=strategy: batched(s), SWEEP_REPEATS)
        same = all(a == b or all((x == y) or (x != x and y != y) for x, y in
                                 zip(a.values(), b.values(), strict=True))
                   for a, b in zip(loop_rows, sweep_rows, strict=True))
        out[label] = {"loop_s": loop_s, "sweep_s": sweep_s, "speedup": loop_s / sweep_s,
                      "rows_equal": bool(same and len(loop_rows) == len(sweep_rows))}
    return out


def child(engine: str, n_bars: int, n_assets: int, out: str) -> None:
    panel = make_panel(n_bars, n_assets)
    if engine == "sweep":
        Path(out).write_text(json.dumps(run_sweep(panel)))
        return
    warm, base, peak, run_s, equity, with_strategy_s = (
        run_ours if engine == "ours" else run_vectorbt)(panel)
    np.save(out + ".npy", equity)
    Path(out).write_text(json.dumps({"warmup_s": warm, "run_s": run_s,
                                     "with_strategy_s": with_strategy_s,
                                     "rss_before_run_mb": base, "peak_rss_run_mb": peak,
                                     "peak_rss_process_mb": _peak_rss_mb()}))


def _spawn(engine: str, n_bars: int, n_assets: int, tmp: Path) -> tuple[dict, np.ndarray]:
    out = str(tmp / f"{engine}.json")
    subprocess.run([sys.executable, __file__, "--child", engine, "--bars", str(n_bars),
                    "--assets", str(n_assets), "--out", out], check=True, cwd=ROOT)
    return json.loads(Path(out).read_text()), np.load(out + ".npy")


def _spawn_sweep(n_bars: int, n_assets: int, tmp: Path) -> dict:
    out = str(tmp / "sweep.json")
    subprocess.run([sys.executable, __file__, "--child", "sweep", "--bars", str(n_bars),
                    "--assets", str(n_assets), "--out", out], check=True, cwd=ROOT)
    return json.loads(Path(out).read_text())


def _print_sweep(sweep: dict) -> None:
    print(f"\n| sweep of {sweep['n_combos']} momentum_rank combinations | per-combination "
          "loop (s) | portfolio_sweep (s) | speedup | rows equal |\n|---|---|---|---|---|")
    for label, text in (("strategy", "weights computed by the strategy"),
                        ("given", "weights given (simulation only)")):
        r = sweep[label]
        print(f"| {text} | {r['loop_s']:.3f} | {r['sweep_s']:.3f} | {r['speedup']:.1f}x | "
              f"{r['rows_equal']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bars", type=int, default=None)
    ap.add_argument("--assets", type=int, default=None)
    ap.add_argument("--child", choices=["ours", "vectorbt", "sweep"], default=None)
    ap.add_argument("--no-sweep", action="store_true", help="Skip the sweep section.")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "portfolio.json"))
    args = ap.parse_args()
    n_bars = args.bars or (2_000 if args.quick else 8_760)
    n_assets = args.assets or (20 if args.quick else 50)
    if args.child:
        child(args.child, n_bars, n_assets, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ours, eq_ours = _spawn("ours", n_bars, n_assets, Path(tmp))
        vbt, eq_vbt = _spawn("vectorbt", n_bars, n_assets, Path(tmp))
        sweep = None if args.no_sweep else _spawn_sweep(n_bars, n_assets, Path(tmp))
    rel = float(np.max(np.abs(eq_ours - eq_vbt) / np.abs(eq_vbt)))
    mem = {k: r["peak_rss_run_mb"] - r["rss_before_run_mb"] for k, r in
           (("ours", ours), ("vectorbt", vbt))}
    report = {"n_bars": n_bars, "n_assets": n_assets, "params": PARAMS, "rebalance": "1d",
              "ours": ours, "vectorbt": vbt, "speedup": vbt["run_s"] / ours["run_s"],
              "run_memory_mb": mem,
              "memory_ratio": mem["ours"] / mem["vectorbt"] if mem["vectorbt"] > 0 else None,
              "max_rel_equity_diff": rel, "final_equity": float(eq_ours[-1]),
              "sweep": sweep}
    print(f"| {n_assets} assets x {n_bars} bars | ours | vectorbt |\n|---|---|---|")
    print(f"| run on the weights (s) | {ours['run_s']:.3f} | {vbt['run_s']:.3f} |")
    print(f"| run computing momentum_rank too (s) | {ours['with_strategy_s']:.3f} | - |")
    print(f"| warm-up (s) | {ours['warmup_s']:.2f} | {vbt['warmup_s']:.2f} |")
    print(f"| process peak RSS (MB) | {ours['peak_rss_process_mb']:.0f} | "
          f"{vbt['peak_rss_process_mb']:.0f} |")
    print(f"| peak RSS of the run above its start (MB) | {mem['ours']:.1f} | "
          f"{mem['vectorbt']:.1f} |")
    ratio = report["memory_ratio"]  # None when vectorbt's run added nothing measurable
    shown = "n/a (vectorbt's run peak did not rise above its start)" if ratio is None \
        else f"{ratio:.2f}"
    print(f"speedup {report['speedup']:.1f}x, memory ratio {shown}, "
          f"max relative equity difference {rel:.2e}")
    if sweep is not None:
        _print_sweep(sweep)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if rel > 1e-9:
        raise SystemExit(f"equity differs: {rel:.3e} > 1e-9")
    if sweep is not None and not (sweep["strategy"]["rows_equal"]
                                  and sweep["given"]["rows_equal"]):
        raise SystemExit("sweep rows differ from the single runs")


if __name__ == "__main__":
    main()
