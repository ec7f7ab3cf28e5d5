"""Benchmark: portfolio stops, ours vs vectorbt `from_signals` with the same stops.

    python benchmarks/portfolio_stops.py           # 50 assets x 8,760 hourly bars (one year)
    python benchmarks/portfolio_stops.py --quick   # 20 assets x 2,000 bars

The case both engines can state alike (the mapping of `tests/portfolio/test_stops_oracle.py`):
one account, every asset entered once at the second bar's open with a seeded weight
(long or short, gross 0.9), then left to its stops: ``sl_stop 3 %``, ``tp_stop 6 %``,
once fixed and once trailing. Seeded synthetic hourly bars with gaps at the open and
real high/low ranges, fee 0.05 %, slippage 1 bp, funding off. Ours is
``backtest.portfolio(..., sl_stop=, tp_stop=, sl_trail=)`` on an in-memory panel;
vectorbt is ``Portfolio.from_signals(close, entries, short_entries, size=|w| * cash,
size_type="value", price=open, open, high, low, sl_stop, tp_stop, sl_trail,
stop_entry_price="fillprice", stop_exit_price="stopmarket", fees, slippage,
cash_sharing=True, group_by=True)`` plus ``value()``. Each engine runs in its own
subprocess: first on a small slice (Numba compilation or its cache, reported as
warm-up), then the fastest of five runs, wall and CPU seconds (one thread each).
The parent checks equity to 1e-9 relative and equal exit counts.

Sweep section (``--no-sweep`` skips it): `momentum_rank` over `SWEEP_GRID` (12
combinations) times `SL_LEVELS` (5 stop-loss levels), daily rebalance, on the same
panel: `backtest.portfolio_sweep` (one batched kernel call for the 60 points) vs the
loop of 60 single ``backtest.portfolio`` runs, fastest of three; rows must agree value
for value. vectorbt has no equivalent (its ``from_signals`` cannot hold target weights).
Results: benchmarks/results/portfolio_stops.json.
"""

from __future__ import annotations

import argparse
import json
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
CASES = {"fixed": dict(sl_stop=0.03, tp_stop=0.06, sl_trail=False),
         "trailing": dict(sl_stop=0.03, tp_stop=0.06, sl_trail=True)}
WARMUP_BARS = 300
REPEATS = 5
SWEEP_GRID = {"lookback": [12, 24, 48, 96], "k": [1, 3, 5]}
SL_LEVELS = [0.01, 0.02, 0.03, 0.04, 0.05]
SWEEP_REPEATS = 3
T0_US = 1_672_531_200_000_000  # 2023-01-01


def make_panel(n_bars: int, n_assets: int, seed: int = 11):
    """Seeded hourly walks of `n_assets` perpetuals with gaps and high/low ranges."""
    from backtest.multi_asset.panel import panel_from_arrays

    rng = np.random.default_rng(seed)
    levels = 10.0 ** rng.uniform(-1, 4, n_assets)
    shape = (n_bars, n_assets)
    close = levels * np.exp(np.cumsum(rng.normal(0.0, 0.008, shape), axis=0))
    open_ = np.vstack([close[:1], close[:-1]]) * (1.0 + rng.normal(0, 0.003, shape))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0, 0.006, shape))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0, 0.006, shape))
    t_us = T0_US + np.arange(n_bars, dtype=np.int64) * 3_600_000_000
    return panel_from_arrays([f"um:B{k:03d}USDT" for k in range(n_assets)], "1h", t_us,
                             open_, close, high=high, low=low)


def entry_weights(n_assets: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(0.2, 1.0, n_assets) * rng.choice([-1.0, 1.0], n_assets)
    return w0 * (0.9 / np.abs(w0).sum())


def _slice(panel, n: int):
    from backtest.multi_asset.panel import panel_from_arrays

    return panel_from_arrays(list(panel.assets), panel.interval, panel.time_us[:n],
                             panel.open[:n], panel.close[:n], high=panel.high[:n],
                             low=panel.low[:n])


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    """(fastest wall s, fastest CPU s, last result) of `repeats` calls."""
    wall = cpu = float("inf")
    out = None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = min(wall, time.perf_counter() - w0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu, out


def ours_once(panel, w0, stops):
    import backtest

    w = np.full((panel.n_bars, panel.n_assets), np.nan)
    w[0] = w0
    res = backtest.portfolio(lambda p: w, panel=panel, fee=FEE_RATE, slippage_bps=SLIPPAGE_BPS,
                             funding=False, cash=INIT_CASH, **stops)
    m = res.metrics
    return res.equity_curve, m["n_sl_exits"] + m["n_tp_exits"] + m["n_trail_exits"]


def vbt_once(panel, w0, stops):
    import pandas as pd
    import vectorbt as vbt

    n, m = panel.n_bars, panel.n_assets
    idx = pd.date_range("2023-01-01", periods=n, freq="h")

    def f(a):
        return pd.DataFrame(a, index=idx)

    at = np.zeros((n, m), dtype=bool)
    at[1] = True
    none = f(np.zeros((n, m), dtype=bool))
    pf = vbt.Portfolio.from_signals(
        f(panel.close), entries=f(at & (w0 > 0)), exits=none, short_entries=f(at & (w0 < 0)),
        short_exits=none, size=np.abs(w0)[None, :] * INIT_CASH, size_type="value",
        price=f(panel.open), open=f(panel.open), high=f(panel.high), low=f(panel.low),
        sl_stop=stops["sl_stop"], tp_stop=stops["tp_stop"], sl_trail=stops["sl_trail"],
        stop_entry_price="fillprice", stop_exit_price="stopmarket", fees=FEE_RATE,
        slippage=SLIPPAGE_BPS / 1e4, init_cash=INIT_CASH, cash_sharing=True, group_by=True,
        freq="1h")
    closed = pf.trades.values["status"] == 1  # vectorbt's TradeStatus.Closed
    return pf.value().to_numpy(), int(closed.sum())


def child_engine(engine: str, panel, out: str) -> None:
    if engine == "vectorbt":
        import vectorbt as vbt

        vbt.settings.caching["enabled"] = False
    once = ours_once if engine == "ours" else vbt_once
    w0 = entry_weights(panel.n_assets)
    t0 = time.perf_counter()
    for stops in CASES.values():
        once(_slice(panel, WARMUP_BARS), w0, stops)
    report = {"warmup_s": time.perf_counter() - t0}
    for name, stops in CASES.items():
        wall, cpu, (equity, n_exits) = _timed(lambda s=stops: once(panel, w0, s), REPEATS)
        np.save(f"{out}.{name}.npy", equity)
        report[name] = {"wall_s": wall, "cpu_s": cpu, "n_stop_exits": int(n_exits)}
    Path(out).write_text(json.dumps(report))


def child_sweep(panel, out: str) -> None:
    import backtest
    from backtest.params import grid_product

    kw = dict(fee=FEE_RATE, slippage_bps=SLIPPAGE_BPS, funding=False, cash=INIT_CASH,
              rebalance="1d", tp_stop=0.06)
    points = grid_product({**SWEEP_GRID, "sl_stop": SL_LEVELS})

    def loop(p):
        rows = []
        for pt in points:
            params = {k: pt[k] for k in SWEEP_GRID}
            res = backtest.portfolio("momentum_rank", params, panel=p, sl_stop=pt["sl_stop"],
                                     **kw)
            rows.append({**pt, **res.metrics})
        return rows

    def batched(p):
        return backtest.portfolio_sweep("momentum_rank", SWEEP_GRID, panel=p,
                                        sl_stop=SL_LEVELS, **kw).to_dicts()

    small = _slice(panel, WARMUP_BARS)
    batched(small)
    backtest.portfolio("momentum_rank", {"lookback": 12, "k": 1}, panel=small, sl_stop=0.01,
                       **kw)
    loop_wall, loop_cpu, loop_rows = _timed(lambda: loop(panel), SWEEP_REPEATS)
    sweep_wall, sweep_cpu, sweep_rows = _timed(lambda: batched(panel), SWEEP_REPEATS)
    same = len(loop_rows) == len(sweep_rows) and all(
        list(a) == list(b) and all(x == y or (x != x and y != y)
                                   for x, y in zip(a.values(), b.values(), strict=True))
        for a, b in zip(loop_rows, sweep_rows, strict=True))
    Path(out).write_text(json.dumps({
        "n_points": len(points), "grid": SWEEP_GRID, "sl_levels": SL_LEVELS,
        "loop_wall_s": loop_wall, "loop_cpu_s": loop_cpu, "sweep_wall_s": sweep_wall,
        "sweep_cpu_s": sweep_cpu, "rows_equal": bool(same),
        "stop_exits": int(sum(r["n_sl_exits"] + r["n_tp_exits"] for r in sweep_rows))}))


def _spawn(part: str, n_bars: int, n_assets: int, tmp: Path) -> dict:
    out = str(tmp / f"{part}.json")
    subprocess.run([sys.executable, __file__, "--child", part, "--bars", str(n_bars),
                    "--assets", str(n_assets), "--out", out], check=True, cwd=ROOT)
    report = json.loads(Path(out).read_text())
    for name in CASES:
        if name in report:
            report[name]["equity"] = np.load(f"{out}.{name}.npy")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bars", type=int, default=None)
    ap.add_argument("--assets", type=int, default=None)
    ap.add_argument("--child", choices=["ours", "vectorbt", "sweep"], default=None)
    ap.add_argument("--no-sweep", action="store_true", help="Skip the sweep section.")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         "portfolio_stops.json"))
    args = ap.parse_args()
    n_bars = args.bars or (2_000 if args.quick else 8_760)
    n_assets = args.assets or (20 if args.quick else 50)
    if args.child:
        panel = make_panel(n_bars, n_assets)
        if args.child == "sweep":
            child_sweep(panel, args.out)
        else:
            child_engine(args.child, panel, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        ours = _spawn("ours", n_bars, n_assets, Path(tmp))
        vbt = _spawn("vectorbt", n_bars, n_assets, Path(tmp))
        sweep = None if args.no_sweep else _spawn("sweep", n_bars, n_assets, Path(tmp))
    report = {"n_bars": n_bars, "n_assets": n_assets, "cases": {}, "sweep": sweep,
              "warmup_s": {"ours": ours["warmup_s"], "vectorbt": vbt["warmup_s"]}}
    print(f"| {n_assets} assets x {n_bars} bars, one entry each | ours wall / CPU (s) | "
          "vectorbt wall / CPU (s) | CPU ratio | stop exits | max rel. equity diff |\n"
          "|---|---|---|---|---|---|")
    worst = 0.0
    for name, stops in CASES.items():
        a, b = ours[name], vbt[name]
        rel = float(np.max(np.abs(a["equity"] - b["equity"]) / np.abs(b["equity"])))
        worst = max(worst, rel)
        ratio = b["cpu_s"] / a["cpu_s"] if a["cpu_s"] > 0 else float("inf")
        report["cases"][name] = {
            "stops": stops, "ours": {k: a[k] for k in ("wall_s", "cpu_s", "n_stop_exits")},
            "vectorbt": {k: b[k] for k in ("wall_s", "cpu_s", "n_stop_exits")},
            "cpu_ratio": ratio, "wall_ratio": b["wall_s"] / a["wall_s"],
            "max_rel_equity_diff": rel, "exits_equal": a["n_stop_exits"] == b["n_stop_exits"]}
        print(f"| {name} {stops} | {a['wall_s']:.3f} / {a['cpu_s']:.3f} | {b['wall_s']:.3f} / "
              f"{b['cpu_s']:.3f} | {ratio:.1f}x | {a['n_stop_exits']} / {b['n_stop_exits']} | "
              f"{rel:.1e} |")
    if sweep is not None:
        print(f"\n| sweep: {sweep['n_points']} points (12 momentum_rank combinations x 5 sl "
              "levels) | wall (s) | CPU (s) |\n|---|---|---|")
        print(f"| loop of single runs | {sweep['loop_wall_s']:.3f} | {sweep['loop_cpu_s']:.3f} |")
        print(f"| portfolio_sweep (one batched call) | {sweep['sweep_wall_s']:.3f} | "
              f"{sweep['sweep_cpu_s']:.3f} |")
        print(f"rows equal: {sweep['rows_equal']}, wall speedup "
              f"{sweep['loop_wall_s'] / sweep['sweep_wall_s']:.1f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if worst > 1e-9 or not all(c["exits_equal"] for c in report["cases"].values()):
        raise SystemExit(f"results differ: equity {worst:.3e}, or the exit counts")
    if sweep is not None and not sweep["rows_equal"]:
        raise SystemExit("sweep rows differ from the single runs")


if __name__ == "__main__":
    main()
