"""book_ticker archive ingest: a day of bookTicker CSV -> the lake-schema Arrow table, with
kline-lake's parser against the same job in DuckDB and in Polars, in the same run, on one
core (each job a fresh child process pinned to one CPU, every library one thread; peak RSS
is the child's `ru_maxrss`).

The input is N rows (default 3,000,000; a busy USD-M symbol prints tens of millions a day)
in the archive's exact format, header included:
`update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time`.

    python benchmarks/book_ticker.py [--rows N] [--json benchmarks/results/book_ticker.json]
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

JOBS = ("kline_lake", "duckdb", "polars")
HEADER = "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n"
DAY0_MS = 1_709_251_200_000  # 2024-03-01


def _one_core() -> None:
    for var in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = 4_307_082_988_118 + np.cumsum(rng.integers(1, 50, rows))
    bid = 6_200_000 + np.cumsum(rng.integers(-2, 3, rows))  # cents
    ask = bid + rng.integers(1, 4, rows)
    qty = rng.integers(1, 90_000, rows)  # 1e-3 units
    times = DAY0_MS + np.sort(rng.integers(0, 86_400_000, rows))
    with open(path, "w") as fh:
        fh.write(HEADER)
        for i in range(0, rows, 500_000):
            sl = slice(i, i + 500_000)
            fh.write("".join(
                f"{u},{b // 100}.{b % 100:02d},{q // 1000}.{q % 1000:03d},{a // 100}.{a % 100:02d},"
                f"{q // 1000}.{q % 1000:03d},{t},{t + 7}\n"
                for u, b, a, q, t in zip(ids[sl].tolist(), bid[sl].tolist(), ask[sl].tolist(),
                                         qty[sl].tolist(), times[sl].tolist(), strict=True)))


def _job(name: str, csv_path: str) -> dict:
    _one_core()
    data = Path(csv_path).read_bytes()
    if name == "kline_lake":
        from kline_lake.archive.csv import parse_archive_csv

        parse_archive_csv(data[:4096].rsplit(b"\n", 1)[0] + b"\n", "book_ticker")  # compile
        t = time.perf_counter()
        table = parse_archive_csv(data, "book_ticker")
    elif name == "duckdb":
        import duckdb

        con = duckdb.connect(config={"threads": 1})
        t = time.perf_counter()
        table = con.sql(
            f"SELECT update_id, best_bid_price, best_bid_qty, best_ask_price, best_ask_qty, "
            f"make_timestamp(transaction_time * 1000) AS transaction_time, "
            f"make_timestamp(event_time * 1000) AS event_time FROM read_csv('{csv_path}', header=true, "
            f"columns={{'update_id':'BIGINT','best_bid_price':'DOUBLE','best_bid_qty':'DOUBLE',"
            f"'best_ask_price':'DOUBLE','best_ask_qty':'DOUBLE','transaction_time':'BIGINT',"
            f"'event_time':'BIGINT'}})").fetch_arrow_table()
    else:
        import polars as pl

        t = time.perf_counter()
        frame = pl.read_csv(data, schema={
            "update_id": pl.Int64, "best_bid_price": pl.Float64, "best_bid_qty": pl.Float64,
            "best_ask_price": pl.Float64, "best_ask_qty": pl.Float64,
            "transaction_time": pl.Int64, "event_time": pl.Int64})
        table = frame.with_columns(
            pl.from_epoch("transaction_time", "ms").dt.replace_time_zone("UTC"),
            pl.from_epoch("event_time", "ms").dt.replace_time_zone("UTC")).to_arrow()
    seconds = time.perf_counter() - t
    rows = table.num_rows
    return {"job": name, "rows": rows, "seconds": round(seconds, 3),
            "rows_per_s": round(rows / seconds), "peak_rss_mb":
            round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        print(json.dumps(_job(args.job, args.csv)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "BTCUSDT-bookTicker-2024-03-01.csv"
        make_csv(csv_path, args.rows)
        results = []
        for job in JOBS:
            out = subprocess.run([sys.executable, __file__, "--job", job, "--csv", str(csv_path)],
                                 capture_output=True, text=True, check=True)
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    fastest_peer = max(r["rows_per_s"] for r in results if r["job"] != "kline_lake")
    ours = next(r for r in results if r["job"] == "kline_lake")
    report = {"rows": args.rows, "jobs": results,
              "kline_lake_vs_faster_peer": round(ours["rows_per_s"] / fastest_peer, 2)}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
