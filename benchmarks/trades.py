"""Trades benchmark: archive ingest of every-trade CSVs, and trades -> 1m bars, against the
same jobs in DuckDB SQL and in Polars, in the same run, on one core.

The input is a day of synthetic spot trades in the archive's exact format
(`id,price,qty,quote_qty,time,is_buyer_maker,is_best_match`, no header, microsecond
times as from 2025), N rows (default 5,000,000). Each job runs in a fresh child process
(so its peak RSS, `ru_maxrss`, is its own) pinned to one CPU with every library limited
to one thread:

- ingest: the CSV file -> lake-schema Arrow table (reading the file is timed too):
  kline-lake's `parse_archive_csv` on the file's bytes (what the archive pipeline does
  with an unzipped file: the one-layout kernel `archive.trades_csv`), the same kernel fed
  8 MiB chunks of the file (`archive.trades_stream`: the text never whole in memory),
  the archive pipeline's two paths from the zip's bytes in memory (`_zip`: inflated
  whole by `zip_safety.extract_single_csv`, then parsed; `_zip_stream`: the member
  inflated as `parse_trades_stream` reads it, `zip_safety.open_single_member`),
  the generic reader it replaced (`trades_csv._generic`: "before", same run), DuckDB
  `read_csv` (typed columns, -> Arrow) and Polars `read_csv` (typed, -> frame).
- bars: the lake-schema Parquet file -> 1m bars with OHLC, volume, quote volume, count
  and taker-buy volumes. kline-lake's `build_bars` (exact: integer sums of 1e-8 units in
  one Numba pass over the five columns it reads, `lake.time_bars`) vs DuckDB
  `GROUP BY time_bucket` vs Polars `group_by` on a floored minute (both float sums).

    python benchmarks/trades.py [--rows N] [--rounds R] [--jobs ingest] [--json PATH]

CPU seconds (user + system, the page faults of fresh memory included) are the measure
on a shared machine; wall seconds are printed too.
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

JOBS = ("ingest:kline_lake", "ingest:kline_lake_stream", "ingest:kline_lake_zip",
        "ingest:kline_lake_zip_stream", "ingest:generic", "ingest:duckdb", "ingest:polars",
        "bars:kline_lake", "bars:duckdb", "bars:polars")
DAY0_US = 1_736_467_200_000_000  # 2025-01-10


def _one_core() -> None:
    for var in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    """A day of trades in the spot archive format (microsecond times)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = np.arange(3_000_000_000, 3_000_000_000 + rows)
    ticks = 9_000_000 + np.cumsum(rng.integers(-2, 3, rows))  # cents
    qty = rng.integers(1, 200_000, rows)  # 1e-5 units
    times = DAY0_US + np.sort(rng.integers(0, 86_400_000_000, rows))
    maker = rng.random(rows) < 0.5
    with open(path, "w") as fh:
        for i in range(0, rows, 500_000):
            sl = slice(i, i + 500_000)
            p, q = ticks[sl], qty[sl]
            quote = p * q  # 1e-7 units
            lines = [f"{a},{pp // 100}.{pp % 100:02d}000000,{qq // 100000}.{qq % 100000:05d}000,"
                     f"{qt // 10**7}.{qt % 10**7:07d}0,{t},{'True' if m else 'False'},True\n"
                     for a, pp, qq, qt, t, m in zip(ids[sl].tolist(), p.tolist(), q.tolist(),
                                                   quote.tolist(), times[sl].tolist(),
                                                   maker[sl].tolist(), strict=True)]
            fh.writelines(lines)


def _zip_of(csv: Path) -> Path:
    """``csv`` as the archive ships it: one deflated member (zipfile's default level)."""
    import zipfile

    path = csv.with_suffix(".zip")
    if not path.exists():
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(csv, csv.name)
    return path


def _ingest(engine: str, csv: Path):
    if engine in ("kline_lake_zip", "kline_lake_zip_stream"):  # the pipeline, after the sha256
        from kline_lake.archive import zip_safety

        data = _zip_of(csv).read_bytes()
        if engine == "kline_lake_zip":
            from kline_lake.archive.csv import parse_archive_csv

            return parse_archive_csv(zip_safety.extract_single_csv(data, check_crc=False)[1], "trades")
        from kline_lake.archive.trades_stream import parse_trades_stream

        _, size, opener = zip_safety.open_single_member(data, check_crc=False)
        return parse_trades_stream(opener, size_bytes=size)
    if engine == "kline_lake":
        from kline_lake.archive.csv import parse_archive_csv

        data = csv.read_bytes()
        return parse_archive_csv(data, "trades")
    if engine == "kline_lake_stream":  # the file read in 8 MiB chunks, as the peers read it
        from kline_lake.archive.trades_stream import parse_trades_stream

        return parse_trades_stream(lambda: open(csv, "rb"), size_bytes=csv.stat().st_size)
    if engine == "generic":  # before: the generic numeric reader, kept as the refusal path
        from kline_lake.archive.trades_csv import _generic

        data = csv.read_bytes()
        return _generic(data, 7, False)
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect(config={"threads": 1})
        return con.sql(
            f"SELECT id AS trade_id, price, qty AS quantity, quote_qty AS quote_quantity, "
            f"make_timestamp(time) AS time, m AS is_buyer_maker, b AS is_best_match FROM read_csv("
            f"'{csv}', header=false, columns={{'id':'BIGINT','price':'DOUBLE','qty':'DOUBLE',"
            f"'quote_qty':'DOUBLE','time':'BIGINT','m':'BOOLEAN','b':'BOOLEAN'}})").fetch_arrow_table()
    import polars as pl

    names = ["trade_id", "price", "quantity", "quote_quantity", "time", "is_buyer_maker", "is_best_match"]
    types = [pl.Int64, pl.Float64, pl.Float64, pl.Float64, pl.Int64, pl.Boolean, pl.Boolean]
    frame = pl.read_csv(csv, has_header=False, new_columns=names, schema_overrides=dict(zip(names, types, strict=True)))
    return frame.with_columns(pl.col("time").cast(pl.Datetime("us", "UTC")))


def _bars(engine: str, parquet: Path):
    import polars as pl

    if engine == "kline_lake":
        from kline_lake.lake.bars import build_bars

        return build_bars([pl.scan_parquet(parquet)], "trades", "1m")
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect(config={"threads": 1})
        return con.sql(
            f"SELECT time_bucket(INTERVAL 1 minute, time) AS open_time, first(price ORDER BY trade_id) AS open, "
            f"max(price) AS high, min(price) AS low, last(price ORDER BY trade_id) AS close, sum(quantity) AS volume, "
            f"sum(quote_quantity) AS quote_volume, count(*) AS trades, "
            f"sum(quantity) FILTER (WHERE NOT is_buyer_maker) AS taker_buy_volume, "
            f"sum(quote_quantity) FILTER (WHERE NOT is_buyer_maker) AS taker_buy_quote_volume "
            f"FROM read_parquet('{parquet}') GROUP BY 1 ORDER BY 1").fetch_arrow_table()
    buy = ~pl.col("is_buyer_maker")
    return (pl.scan_parquet(parquet).group_by(pl.col("time").dt.truncate("1m").alias("open_time"))
            .agg(pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
                 pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
                 pl.col("quantity").sum().alias("volume"), pl.col("quote_quantity").sum().alias("quote_volume"),
                 pl.len().alias("trades"), pl.col("quantity").filter(buy).sum().alias("taker_buy_volume"),
                 pl.col("quote_quantity").filter(buy).sum().alias("taker_buy_quote_volume"))
            .sort("open_time").collect())


def _vm_hwm_mb() -> float:
    """Peak resident memory of this process image (VmHWM; reset at exec, unlike
    ru_maxrss, which a child inherits from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(job: str, csv: Path, parquet: Path) -> dict:
    _one_core()
    kind, engine = job.split(":")
    # warm imports and Numba compilation (on a 1,000-row head) outside the timed part
    if kind == "bars":
        _bars(engine, parquet)
    else:
        head = csv.with_name("head.csv")
        if not head.exists():
            with open(csv) as src:
                head.write_text("".join(next(src) for _ in range(1000)))
        _ingest(engine, head)
    base_rss = _vm_hwm_mb()
    t, cpu = time.perf_counter(), time.process_time()
    out = _ingest(engine, csv) if kind == "ingest" else _bars(engine, parquet)
    seconds, cpu_seconds = time.perf_counter() - t, time.process_time() - cpu
    rows = len(out)
    return {"job": job, "seconds": seconds, "cpu_seconds": cpu_seconds, "out_rows": rows,
            "peak_rss_mb": _vm_hwm_mb(), "rss_before_mb": base_rss}


def _run_child(job: str, csv: Path, parquet: Path, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", job, "--csv", str(csv),
                          "--parquet", str(parquet)], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{job} failed: {out.stderr.strip().splitlines()[-1]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["rows_per_s"] = rows / r["seconds"]
    r["rows_per_cpu_s"] = rows / r["cpu_seconds"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_000_000)
    ap.add_argument("--json", default="benchmarks/results/trades.json")
    ap.add_argument("--jobs", default="", help="only the jobs starting with this (e.g. ingest)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every job this many times, interleaved; keep each job's fastest")
    ap.add_argument("--child", default=None)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--parquet", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, Path(args.csv), Path(args.parquet))))
        return
    jobs = [job for job in JOBS if job.startswith(args.jobs)]
    with tempfile.TemporaryDirectory() as tmp:
        csv, parquet = Path(tmp) / "trades.csv", Path(tmp) / "trades.parquet"
        make_csv(csv, args.rows)
        import pyarrow.parquet as pq

        from kline_lake.archive.csv import parse_archive_csv

        pq.write_table(parse_archive_csv(csv.read_bytes(), "trades"), parquet)
        if any(job.startswith("ingest:kline_lake_zip") for job in jobs):
            _zip_of(csv)
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for job in jobs:  # interleaved, so a busy spell on the machine hits every job
                r = _run_child(job, csv, parquet, args.rows)
                if job not in best or r["cpu_seconds"] < best[job]["cpu_seconds"]:
                    best[job] = r
        results = [best[job] for job in jobs]
    print(f"{args.rows:,} trades, one core, best of {args.rounds}")
    print("| job | seconds | M rows/s | CPU s | M rows/CPU s | peak RSS MB | RSS before MB |\n"
          "|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['job']} | {r['seconds']:.2f} | {r['rows_per_s'] / 1e6:.2f} | {r['cpu_seconds']:.2f} | "
              f"{r['rows_per_cpu_s'] / 1e6:.2f} | {r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} |")
    Path(args.json).write_text(json.dumps({"rows": args.rows, "rounds": args.rounds,
                                           "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
