"""Scale benchmark: downloads of a growing synthetic universe through ``--source auto``.

The fake exchange (its own process, loopback HTTP, real archive zips) serves its larger
synthetic universe (``universe_size``: spot pairs ``X000USDT`` ..). For each size, the
first N generated spot pairs that trade x ``--months`` of 1m klines up to the fake exchange's pinned
now are downloaded into a fresh lake by ``kline-lake download --source auto``, each run in
its own process, and the table shows rows, rows/s, request weight used (from the fake
exchange's /fake/stats), archive files and the download process's peak RSS. Time should
grow linearly with the symbols (rows/s flat) and memory stay flat (series are streamed a
month at a time, ``DEFAULT_SERIES_CONCURRENCY`` at once).

The fake exchange builds each archive zip on first request (the real archive serves
prebuilt files from a CDN; here about 3 s of CPU per symbol-month of 1m klines, which is
what limits the sizes this can run on a small machine), so before the timed run of a size
its files are requested once, into a zip cache sized to hold them all (``--no-warm``
skips that and times both together). The fake exchange is one Python process serving
every request: on a 2-core machine it, not the downloader, sets the pace.

    python benchmarks/scale.py                         # 10, 50, 200 symbols x 24 months
    python benchmarks/scale.py --sizes 10,20,40 --months 3

Generated symbols list on a staggered schedule (2020-01-06 plus 13 d 5 h per index) and
every tenth is delisted after 700 days, so a symbol listed inside the range contributes
fewer rows: rows/s, not seconds per symbol, is the figure to compare across sizes.

Prints a markdown table and writes JSON (``--json``, default
``benchmarks/results/scale.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAX_INDEX = 500  # kline_lake.fake_exchange.universe.MAX_UNIVERSE_SIZE
ZIP_BYTES_PER_MONTH = 2_500_000  # a monthly 1m-kline zip of the fake exchange, about
FAKE_NOW = "2027-06-01T00:00"  # the fake exchange's pinned clock: all 200 symbols listed
_SERVER = """
import sys
from datetime import datetime, timezone
from kline_lake.fake_exchange import FakeExchange
now = int(datetime.fromisoformat(sys.argv[1]).replace(tzinfo=timezone.utc).timestamp() * 1000)
with FakeExchange(seed=7, now_ms=now, universe_size=int(sys.argv[2])) as fx:
    # room for every zip of the run, so a warm run reads them all from memory
    fx.archive.cache.max_bytes = max(fx.archive.cache.max_bytes, int(sys.argv[3]))
    print(fx.base_url, flush=True)
    sys.stdin.read()
"""
# the download, in its own process so that its peak RSS is its own
_DOWNLOAD = """
import asyncio, json, os, resource, sys, time
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
url, symbols, start, lake = sys.argv[1:5]
req = validate_request(market="spot", dataset="klines", symbols=symbols, interval="1m",
                       start=start, end=None, lake=lake, base_url=url, source="auto",
                       archive_url=url)
t0 = time.perf_counter()
totals = asyncio.run(run_download(req))
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "rows": totals.rows_written, "series": totals.series,
                  "weight_client": totals.weight, "requests_client": totals.requests,
                  "archive_files": totals.extra.get("archive files", 0),
                  "rows_from_archive": totals.extra.get("rows from archive", 0),
                  "cpu_s": time.process_time(),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def start_fake_exchange(universe_size: int, zip_cache_bytes: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, FAKE_NOW, str(universe_size),
                             str(zip_cache_bytes)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError("the fake exchange did not start")
    return proc, url


def universe(n: int) -> list[str]:
    """The first `n` generated spot pairs that still trade (every tenth, index % 10 == 7,
    is delisted after 700 days, before any range this benchmark asks for)."""
    return [f"X{i:03d}USDT" for i in range(MAX_INDEX) if i % 10 != 7][:n]


def start_date(months: int) -> str:
    year, month = int(FAKE_NOW[:4]), int(FAKE_NOW[5:7])
    index = year * 12 + month - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}-01"


def download(url: str, symbols: list[str], start: str, lake: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _DOWNLOAD, url, ",".join(symbols), start, str(lake)],
                         capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"download failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_size(url: str, n: int, months: int, warm: bool, state_dir: Path) -> dict:
    symbols = universe(n)
    start = start_date(months)
    env = {**os.environ, "KLINE_LAKE_STATE_DIR": str(state_dir)}
    if warm:  # the fake exchange builds its zips once; the timed run then reads them
        with tempfile.TemporaryDirectory() as tmp:
            download(url, symbols, start, Path(tmp), env)
    before = httpx.get(f"{url}/fake/stats").json()
    with tempfile.TemporaryDirectory() as tmp:
        row = download(url, symbols, start, Path(tmp), env)
    after = httpx.get(f"{url}/fake/stats").json()
    row.update({
        "symbols": n, "months": months, "range": f"{start} .. {FAKE_NOW}",
        "weight": after["spot"]["weight"] - before["spot"]["weight"],
        "requests": after["spot"]["requests"] - before["spot"]["requests"],
        "archive_mb": (after["archive"]["bytes"] - before["archive"]["bytes"]) / 1e6,
        "rows_per_s": row["rows"] / row["wall_s"],
    })
    return row


def table(rows: list[dict]) -> str:
    lines = ["| symbols | range | rows | rows from archive | wall s | rows/s | CPU s "
             "| weight used | REST requests | archive files | archive MB | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['symbols']} | {r['range']} | {r['rows']:,} | {r['rows_from_archive']:,} "
            f"| {r['wall_s']:.1f} | {r['rows_per_s'] / 1e6:.2f} M | {r['cpu_s']:.1f} "
            f"| {r['weight']:,} | {r['requests']:,} | {r['archive_files']} "
            f"| {r['archive_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,50,200", help="symbols per run, comma-separated")
    parser.add_argument("--months", type=int, default=24, help="months of 1m klines per symbol")
    parser.add_argument("--no-warm", action="store_true",
                        help="time the fake exchange's first zip builds too")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "scale.json"))
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if not sizes or sizes[0] < 1 or args.months < 1:
        parser.error("--sizes and --months must be positive")
    cache = max(sizes) * args.months * ZIP_BYTES_PER_MONTH * 5 // 4
    proc, url = start_fake_exchange(int(universe(max(sizes))[-1][1:4]) + 1, cache)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as state:
            for n in sizes:
                rows.append(run_size(url, n, args.months, not args.no_warm, Path(state)))
                print(f"{n} symbols: {rows[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    print(f"## Scale: spot 1m klines, --source auto, {args.months} months per symbol "
          f"(fake exchange, loopback, {os.cpu_count()} CPUs)\n")
    print(table(rows))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sizes": rows, "months": args.months,
                               "warm": not args.no_warm, "when": time.strftime("%Y-%m-%d")}, indent=1))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
