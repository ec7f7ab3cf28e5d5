"""Scale benchmark: downloads of a growing synthetic universe through ``--source auto``.

The fake exchange (its own process, loopback HTTP, real archive zips) serves its larger
synthetic universe (``universe_size``: spot pairs ``X000USDT`` ..). For each size, the
first N generated spot pairs that trade x ``--months`` of 1m klines up to the fake exchange's pinned
now are downloaded into a fresh lake by ``kline-lake download --source auto``, each run in
its own process, and the table shows rows, rows/s, request weight used (from the fake
exchange's /fake/stats), archive files, the download process's CPU time and peak RSS and
the fake exchange's CPU time. Time should grow linearly with the symbols (seconds per
symbol flat) and memory stay flat (series are streamed a month at a time,
``DEFAULT_SERIES_CONCURRENCY`` at once). After each run the lake is checked complete:
every symbol holds every minute of the range (``inventory``: rows, covered extent, no
coverage holes) and ``gaps`` lists nothing; then the lake is deleted.

The real archive serves prebuilt files from a CDN; the fake exchange builds each zip on
first request (about 0.3 s of CPU per symbol-month of 1m klines, half of it deflate). So
before the timed runs every zip of the largest size is built once into an on-disk zip
cache (``--zip-cache DIR``, ``fake_exchange.archive_cache``: keyed by the fake's source
digest, so a rerun reuses them and a model change rebuilds), by ``--build-workers``
processes; the fake exchange then serves them from disk (``--no-prebuild`` times the
builds inside the first run instead). The fake exchange is one Python process serving
every request: on a 2-core machine it shares the cores with the downloader. When others
edit the fake's source meanwhile (the prebuild and the fake exchange would then disagree
on the model version; the script warns), run it from a snapshot:
``git archive HEAD | tar -x -C DIR && cd DIR && python benchmarks/scale.py``.

    python benchmarks/scale.py                         # 10, 50, 200 symbols x 24 months
    python benchmarks/scale.py --sizes 10,20,40 --months 3

Generated symbols list on a staggered schedule (2020-01-06 plus 13 d 5 h per index) and
every tenth is delisted after 700 days; the pinned now (2030-07-01) puts every listing
of the first 200 trading pairs (the last on 2028-01-04) before a two-year range, so each
symbol contributes the same rows and seconds per symbol compare directly across sizes.

Prints a markdown table and writes JSON (``--json``, default
``benchmarks/results/scale.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
# this checkout's kline_lake, for the prebuild here as for the `-c` children run in ROOT
# (so both build from one source, one model version, also when run from a copy)
sys.path.insert(0, str(ROOT))
MAX_INDEX = 500  # kline_lake.fake_exchange.universe.MAX_UNIVERSE_SIZE
SEED = 7
FAKE_NOW = "2030-07-01T00:00"  # the fake exchange's pinned clock: all 200 symbols listed
DEFAULT_ZIP_CACHE = Path(tempfile.gettempdir()) / "kline-lake-scale-zips"
_SERVER = """
import sys
from datetime import datetime, timezone
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.archive_cache import DiskZipCache, model_version
now = int(datetime.fromisoformat(sys.argv[1]).replace(tzinfo=timezone.utc).timestamp() * 1000)
with FakeExchange(seed=int(sys.argv[4]), now_ms=now, universe_size=int(sys.argv[2])) as fx:
    fx.archive.disk = DiskZipCache(sys.argv[3], int(sys.argv[4]))  # the prebuilt zips
    print(fx.base_url, model_version(), flush=True)
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


def start_fake_exchange(universe_size: int, zip_cache: Path) -> tuple[subprocess.Popen, str, str]:
    """The fake exchange's process, base URL and model version (its zip cache folder)."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, FAKE_NOW, str(universe_size),
                             str(zip_cache), str(SEED)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    url, _, version = proc.stdout.readline().strip().partition(" ")
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError("the fake exchange did not start")
    return proc, url, version


def universe(n: int) -> list[str]:
    """The first `n` generated spot pairs that still trade (every tenth, index % 10 == 7,
    is delisted after 700 days, before any range this benchmark asks for)."""
    return [f"X{i:03d}USDT" for i in range(MAX_INDEX) if i % 10 != 7][:n]


def month_starts(months: int) -> list[str]:
    """The first days ('YYYY-MM-01') of the `months` whole months before FAKE_NOW."""
    year, month = int(FAKE_NOW[:4]), int(FAKE_NOW[5:7])
    last = year * 12 + month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}-01" for i in range(last - months, last)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _build_symbol(zip_cache: str, universe_size: int, symbol: str,
                  months: list[str]) -> tuple[int, str]:
    """Build (or find) the monthly 1m zips of one symbol in the disk cache: how many, and
    the model version they are stored under."""
    from kline_lake.fake_exchange.archive import SyntheticArchive, ZipCache, parse_archive_path
    from kline_lake.fake_exchange.archive_cache import DiskZipCache, model_version
    from kline_lake.fake_exchange.rest import SyntheticSource

    source = SyntheticSource(SEED, universe_size)
    archive = SyntheticArchive(source, ZipCache(max_bytes=1), DiskZipCache(zip_cache, SEED))
    spec = source.spec("spot", symbol)
    built = 0
    for month in months:
        name = f"{symbol}-1m-{month[:7]}.zip"
        key = parse_archive_path(f"/data/spot/monthly/klines/{symbol}/1m/{name}")
        if spec is not None and key is not None and archive.build(spec, key) is not None:
            built += 1
    return built, model_version()


def prebuild(zip_cache: Path, universe_size: int, symbols: list[str], months: list[str],
             workers: int) -> dict:
    """Every monthly zip of `symbols` x `months` into the disk cache, `workers` at once."""
    t0, cpu0 = time.perf_counter(), os.times()
    with ProcessPoolExecutor(workers) as pool:
        done = list(pool.map(_build_symbol, [str(zip_cache)] * len(symbols),
                             [universe_size] * len(symbols), symbols, [months] * len(symbols)))
    cpu1 = os.times()
    return {"files": sum(n for n, _ in done), "model_versions": sorted({v for _, v in done}), "wall_s": time.perf_counter() - t0,
            "cpu_s": cpu1.children_user + cpu1.children_system
            - cpu0.children_user - cpu0.children_system}


def download(url: str, symbols: list[str], start: str, lake: Path, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", _DOWNLOAD, url, ",".join(symbols), start, str(lake)],
                         capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"download failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cli_json(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", "from kline_lake.cli import main; main()", *args,
                          "--format", "json"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"kline-lake {args[0]} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout) if out.stdout.strip() else []


def check_complete(lake: Path, symbols: list[str], start: str) -> dict:
    """Is every minute of [start, FAKE_NOW) of every symbol in the lake? (inventory: rows
    and covered extent per series, no coverage holes; gaps: nothing missing)"""
    t0 = time.perf_counter()
    minutes = (_epoch_s(FAKE_NOW) - _epoch_s(start)) // 60
    inv = {r["symbol"]: r for r in _cli_json("inventory", "--lake", str(lake))
           if r["dataset"] == "klines"}
    gaps = _cli_json("gaps", "--lake", str(lake), "--market", "spot", "--interval", "1m",
                     "--start", start, "--end", FAKE_NOW)
    wrong = [s for s in symbols if s not in inv or inv[s]["rows"] != minutes
             or inv[s]["coverage_holes"] not in (0, None)]
    return {"complete": not wrong and not gaps and set(inv) == set(symbols),
            "rows_per_symbol": minutes, "series_in_lake": len(inv), "series_wrong": wrong[:5],
            "gap_runs": len(gaps), "check_s": time.perf_counter() - t0}


def _epoch_s(text: str) -> int:
    from datetime import UTC, datetime

    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def run_size(url: str, server_pid: int, n: int, months: int, state_dir: Path,
             lake_parent: Path) -> dict:
    symbols = universe(n)
    start = month_starts(months)[0]
    env = {**os.environ, "KLINE_LAKE_STATE_DIR": str(state_dir)}
    before, server_cpu = httpx.get(f"{url}/fake/stats").json(), cpu_seconds(server_pid)
    lake_parent.mkdir(parents=True, exist_ok=True)  # --lake-dir may name a new directory
    lake = Path(tempfile.mkdtemp(prefix=f"scale-{n}-", dir=lake_parent))
    try:
        row = download(url, symbols, start, lake, env)
        server_cpu = cpu_seconds(server_pid) - server_cpu
        after = httpx.get(f"{url}/fake/stats").json()
        row["lake_mb"] = sum(f.stat().st_size for f in lake.rglob("*") if f.is_file()) / 1e6
        row.update(check_complete(lake, symbols, start))
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    row.update({
        "symbols": n, "months": months, "range": f"{start} .. {FAKE_NOW}",
        "weight": after["spot"]["weight"] - before["spot"]["weight"],
        "requests": after["spot"]["requests"] - before["spot"]["requests"],
        "archive_mb": (after["archive"]["bytes"] - before["archive"]["bytes"]) / 1e6,
        "server_cpu_s": server_cpu,
        "rows_per_s": row["rows"] / row["wall_s"],
        "wall_s_per_symbol": row["wall_s"] / n, "cpu_s_per_symbol": row["cpu_s"] / n,
    })
    return row


def table(rows: list[dict]) -> str:
    lines = ["| symbols | range | rows | complete | wall s | rows/s | wall s/symbol "
             "| CPU s (download) | CPU s/symbol | CPU s (fake exchange) | weight used "
             "| REST requests | archive files | archive MB | lake MB | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['symbols']} | {r['range']} | {r['rows']:,} | {'yes' if r['complete'] else 'NO'} "
            f"| {r['wall_s']:.1f} | {r['rows_per_s'] / 1e6:.2f} M | {r['wall_s_per_symbol']:.2f} "
            f"| {r['cpu_s']:.1f} | {r['cpu_s_per_symbol']:.2f} | {r['server_cpu_s']:.1f} "
            f"| {r['weight']:,} | {r['requests']:,} | {r['archive_files']} "
            f"| {r['archive_mb']:.0f} | {r['lake_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> dict:
    """Per-symbol time and peak RSS of each size over the smallest size's, and the
    marginal seconds per added symbol from the previous size (free of the fixed start-up
    cost a process pays once: imports, JIT)."""
    base, out = rows[0], {}
    for prev, r in zip([None, *rows[:-1]], rows, strict=True):
        out[str(r["symbols"])] = {
            "wall_s_per_symbol": r["wall_s_per_symbol"] / base["wall_s_per_symbol"],
            "cpu_s_per_symbol": r["cpu_s_per_symbol"] / base["cpu_s_per_symbol"],
            "peak_rss": r["peak_rss_mb"] / base["peak_rss_mb"]}
        if prev is not None:
            added = r["symbols"] - prev["symbols"]
            out[str(r["symbols"])].update({
                "marginal_wall_s_per_symbol": (r["wall_s"] - prev["wall_s"]) / added,
                "marginal_cpu_s_per_symbol": (r["cpu_s"] - prev["cpu_s"]) / added})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,50,200", help="symbols per run, comma-separated")
    parser.add_argument("--months", type=int, default=24, help="months of 1m klines per symbol")
    parser.add_argument("--zip-cache", default=str(DEFAULT_ZIP_CACHE),
                        help="directory of the fake exchange's built zips, kept across runs")
    parser.add_argument("--build-workers", type=int, default=2,
                        help="processes building the zips before the timed runs")
    parser.add_argument("--no-prebuild", action="store_true",
                        help="time the fake exchange's first zip builds inside the runs")
    parser.add_argument("--lake-dir", default=None,
                        help="where the (deleted after each size) lakes go; default: temp dir")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "scale.json"))
    args = parser.parse_args(argv)
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes: not a comma-separated list of integers: {args.sizes!r}")
    if not sizes or sizes[0] < 1 or sizes[-1] > len(universe(MAX_INDEX)) or args.months < 1 \
            or args.build_workers < 1:
        parser.error("--sizes, --months and --build-workers must be positive "
                     f"(at most {len(universe(MAX_INDEX))} symbols)")
    zip_cache = Path(args.zip_cache)
    universe_size = int(universe(max(sizes))[-1][1:4]) + 1
    build = None
    if not args.no_prebuild:
        build = prebuild(zip_cache, universe_size, universe(max(sizes)), month_starts(args.months),
                         args.build_workers)
        print(f"prebuilt {build['files']} zips in {build['wall_s']:.0f} s "
              f"({build['cpu_s']:.0f} s CPU)", file=sys.stderr, flush=True)
    proc, url, version = start_fake_exchange(universe_size, zip_cache)
    if build and build["model_versions"] != [version]:  # the fake's source changed meanwhile
        print(f"warning: zips prebuilt for model {build['model_versions']}, the fake exchange "
              f"runs {version}: it builds them again inside the timed runs", file=sys.stderr)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as state:
            for n in sizes:
                rows.append(run_size(url, proc.pid, n, args.months, Path(state),
                                     Path(args.lake_dir or tempfile.gettempdir())))
                print(f"{n} symbols: {rows[-1]['wall_s']:.1f} s, complete: {rows[-1]['complete']}",
                      file=sys.stderr, flush=True)
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    print(f"## Scale: spot 1m klines, --source auto, {args.months} months per symbol "
          f"(fake exchange, loopback, {os.cpu_count()} CPUs)\n")
    print(table(rows))
    summary = ratios(rows)
    print("\nover the smallest size: " + ", ".join(
        f"{n}: time/symbol x{v['wall_s_per_symbol']:.2f} (CPU x{v['cpu_s_per_symbol']:.2f}), "
        f"peak RSS x{v['peak_rss']:.2f}" for n, v in summary.items()))
    print("per added symbol: " + ", ".join(
        f"up to {n}: {v['marginal_wall_s_per_symbol']:.2f} s ({v['marginal_cpu_s_per_symbol']:.2f} s CPU)"
        for n, v in summary.items() if "marginal_wall_s_per_symbol" in v))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sizes": rows, "months": args.months, "prebuild": build,
                               "ratios_to_smallest": summary, "fake_now": FAKE_NOW,
                               "model_version": version,
                               "when": time.strftime("%Y-%m-%d")}, indent=1))
    print(f"\nJSON: {out}")
    return 0 if all(r["complete"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
