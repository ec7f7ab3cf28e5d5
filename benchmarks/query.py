"""Lake catalog benchmark: partition-pruned queries vs reading every file with pandas.

Builds a lake of several years of synthetic 1m klines for a few symbols with the real
``LakeWriter`` (one ``data.parquet`` per month), then times, each against the naive
baseline of reading every data file with pandas in the same run:

  (a) a one-day slice of one symbol       ``Lake.klines(..., start, end)``
  (b) 1m -> 1h resample of one year       ``Lake.resample(..., "1m", "1h", start, end)``
  (c) the inventory                       ``Lake.inventory()`` (Parquet footers only)

Each result is checked against the baseline's answer before it is timed. Timings are the
best of ``--repeat`` runs. Prints a markdown table and writes JSON.

    python benchmarks/query.py                      # 3 years x 2 symbols
    python benchmarks/query.py --years 5 --symbols 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kline_lake.core.series import SeriesKey  # noqa: E402
from kline_lake.lake.catalog import Lake  # noqa: E402
from kline_lake.lake.synthetic import synthetic_klines  # noqa: E402
from kline_lake.lake.writer import LakeWriter

START_MS = 1_577_836_800_000  # 2020-01-01T00:00Z
MINUTES_PER_YEAR = 525_600
SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT")


def build_lake(root: Path, years: int, symbols: int) -> int:
    """Write `years` x 365 days of 1m klines per symbol; returns total rows."""
    writer = LakeWriter(root)
    total = 0
    for s, symbol in enumerate(SYMBOLS[:symbols]):
        key = SeriesKey("um", "klines", symbol, "1m")
        for y in range(years):
            start_ms = START_MS + y * MINUTES_PER_YEAR * 60_000
            table = synthetic_klines(start_ms, MINUTES_PER_YEAR, seed=100 * s + y)
            writer.commit(key, table, covered=[(start_ms * 1000,
                                                (start_ms + MINUTES_PER_YEAR * 60_000) * 1000)])
            total += table.num_rows
    return total


def _data_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/symbol=*/interval=*/year=*/month=*/*.parquet"))


def naive_read_all(root: Path) -> pd.DataFrame:
    """The baseline: every data file read with pandas, the symbol taken from the path."""
    frames = []
    for path in _data_files(root):
        frame = pd.read_parquet(path)
        frame["symbol"] = path.parts[-5].split("=", 1)[1]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def naive_day(root: Path, symbol: str, day: pd.Timestamp) -> pd.DataFrame:
    frame = naive_read_all(root)
    mask = (frame["symbol"] == symbol) & (frame["open_time"] >= day) & \
        (frame["open_time"] < day + pd.Timedelta(days=1))
    return frame.loc[mask].sort_values("open_time")


def naive_resample(root: Path, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    frame = naive_read_all(root)
    frame = frame.loc[(frame["symbol"] == symbol) & (frame["open_time"] >= start)
                      & (frame["open_time"] < end)].set_index("open_time").sort_index()
    return frame.resample("1h").agg({
        "open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum",
        "quote_volume": "sum", "trades": "sum", "taker_buy_volume": "sum",
        "taker_buy_quote_volume": "sum"}).dropna(subset=["open"])


def naive_inventory(root: Path) -> pd.DataFrame:
    """Every file read with pandas; per-file first/last/rows/bytes, then per series."""
    records = []
    for path in _data_files(root):
        frame = pd.read_parquet(path)
        records.append({"symbol": path.parts[-5].split("=", 1)[1],
                        "interval": path.parts[-4].split("=", 1)[1],
                        "first_time": frame["open_time"].min(),
                        "last_time": frame["open_time"].max(),
                        "rows": len(frame), "bytes": path.stat().st_size})
    per_file = pd.DataFrame(records)
    return per_file.groupby(["symbol", "interval"]).agg(
        first_time=("first_time", "min"), last_time=("last_time", "max"),
        rows=("rows", "sum"), files=("rows", "size"), bytes=("bytes", "sum")).reset_index()


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run(years: int, symbols: int, repeat: int, root: Path) -> dict:
    t0 = time.perf_counter()
    rows = build_lake(root, years, symbols)
    build_s = time.perf_counter() - t0
    lake = Lake(root)
    symbol = SYMBOLS[0]
    day = pd.Timestamp(START_MS + (years * 365 // 2) * 86_400_000, unit="ms", tz="UTC")
    year_start = pd.Timestamp(START_MS, unit="ms", tz="UTC")
    year_end = year_start + pd.Timedelta(days=365)
    results = {}

    lake_s, ours = best_of(lambda: lake.klines("um", symbol, "1m", day, day + pd.Timedelta(days=1)), repeat)
    naive_s, theirs = best_of(lambda: naive_day(root, symbol, day), repeat)
    assert ours["close"].to_list() == theirs["close"].tolist() and ours.height == 1440
    results["one-day slice"] = (lake_s, naive_s)

    lake_s, ours = best_of(lambda: lake.resample("um", symbol, "1m", "1h", year_start, year_end), repeat)
    naive_s, theirs = best_of(lambda: naive_resample(root, symbol, year_start, year_end),
                              repeat)
    assert ours.height == len(theirs) == 365 * 24
    assert ours["high"].to_list() == theirs["high"].tolist()
    assert ours["trades"].to_list() == theirs["trades"].tolist()
    np.testing.assert_allclose(ours["volume"].to_numpy(), theirs["volume"].to_numpy(), rtol=1e-12)
    results["1m->1h resample, 1 year"] = (lake_s, naive_s)

    lake_s, ours = best_of(lake.inventory, repeat)
    naive_s, theirs = best_of(lambda: naive_inventory(root), repeat)
    assert sorted(ours["rows"].to_list()) == sorted(theirs["rows"].tolist())
    assert sorted(ours["bytes"].to_list()) == sorted(theirs["bytes"].tolist())
    results["inventory"] = (lake_s, naive_s)

    files = len(list(root.rglob("*.parquet")))
    lake_bytes = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    return {
        "years": years, "symbols": symbols, "rows": rows, "files": files,
        "lake_bytes": lake_bytes, "build_s": round(build_s, 3), "repeat": repeat,
        "tasks": {name: {"lake_s": round(a, 5), "naive_pandas_s": round(b, 5),
                         "speedup": round(b / a, 1)} for name, (a, b) in results.items()},
    }


def markdown(report: dict) -> str:
    lines = [
        f"Lake: {report['years']} years x {report['symbols']} symbols of 1m klines, "
        f"{report['rows']:,} rows, {report['files']} files, {report['lake_bytes'] / 1e6:.1f} MB "
        f"(built in {report['build_s']:.1f} s)",
        "",
        "| task | lake | naive pandas (read every file) | speedup |",
        "|---|---:|---:|---:|",
    ]
    for name, t in report["tasks"].items():
        lines.append(f"| {name} | {t['lake_s'] * 1000:.1f} ms | {t['naive_pandas_s'] * 1000:.0f} ms "
                     f"| {t['speedup']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=2, choices=range(1, len(SYMBOLS) + 1))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "query.json"))
    parser.add_argument("--lake", default=None, help="Build the lake here (default: a temp dir).")
    args = parser.parse_args()
    if args.years < 1 or args.repeat < 1:
        parser.error("--years and --repeat must be >= 1")
    if args.lake:
        report = run(args.years, args.symbols, args.repeat, Path(args.lake))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = run(args.years, args.symbols, args.repeat, Path(tmp) / "lake")
    print(markdown(report))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
