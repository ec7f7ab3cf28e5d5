"""Archive ingest benchmark: zip -> verified -> parsed -> committed Parquet, and auto vs rest.

Part 1 (one core): rows per second through the archive pipeline for a month of 1m klines
(44,640 rows) and a day of aggTrades, stage by stage (sha256, safe unzip, CSV parse, lake
commit), one file at a time, with pyarrow's CSV reader timed on the same bytes as the
parser's peer; then a year of monthly 1m-kline zips through the archive
source's own code path (``ingest_archive_pieces``: sha256 while receiving, unzip, parse
and commit in worker threads, manifest), served from memory by an in-process transport,
so one file's fsync waits overlap the next file's work as they do in a real download:
with batched commits (the default), and with one commit per month (``batch_rows=1``, the
pipeline before batching) in the same run; and the peer on the same zips, one month at a
time: ``pyarrow.csv.read_csv`` + ``pq.write_table`` (the lake's Parquet options) + fsync.
The process is pinned to one CPU (``sched_setaffinity``) and pyarrow, polars and numba to
one thread before any of them is imported.

Part 1a: where that year's one-core time goes, stage by stage (sha256, inflate, parse,
the Parquet write uncompressed and its zstd, each timed alone in memory), against the time
budget of 2 M rows/s: what no parser can remove, and what a free parser would reach.

Part 1b (``--workers 1,2``): monthly 1m-kline zips served over loopback HTTP by their own
process and ingested by ``archive.parallel.ingest_parallel`` with 1 and 2 worker processes
(pinned to CPU 0, then 0 and 1): one series x two years (its months dealt to the
workers, which share its lock) and four series x one year (whole series per worker); the
lakes of every worker count are checked byte-identical (data, coverage, manifest).

Part 2: one year of 1m klines downloaded with ``--source auto`` and with ``--source rest``
from the fake exchange (loopback, real HTTP), each into a fresh lake: request weight used
(from the fake exchange's /fake/stats), requests, archive bytes and wall time side by side.

    python benchmarks/archive_ingest.py            # full run
    python benchmarks/archive_ingest.py --quick    # smaller day of trades, two months

Prints a markdown table and writes JSON (``--json``, default
``benchmarks/results/archive_ingest.json``).
"""

from __future__ import annotations

import os

# One core for part 1: set before pyarrow/polars/numba create their pools, and pin the
# process (and every thread it starts from here on) to one CPU.
os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
PINNABLE = hasattr(os, "sched_setaffinity")  # Linux; elsewhere only the thread limits apply
ALL_CPUS = sorted(os.sched_getaffinity(0)) if PINNABLE else []
if PINNABLE:
    os.sched_setaffinity(0, {ALL_CPUS[0]})

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import functools  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kline_lake.archive.csv import parse_archive_csv  # noqa: E402
from kline_lake.archive.ingest import clip_rows  # noqa: E402
from kline_lake.archive.zip_safety import extract_single_csv  # noqa: E402
from kline_lake.core.series import SeriesKey  # noqa: E402
from kline_lake.lake.writer import LakeWriter  # noqa: E402

US_PER_MS = 1000


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000


def kline_month_csv(year: int, month: int, seed: int = 1) -> tuple[bytes, int, int]:
    """A realistic month of 1m spot klines in the archive's format (no header, ms)."""
    start = _ms(year, month, 1)
    end = _ms(year + (month == 12), month % 12 + 1, 1)
    n = (end - start) // 60_000
    rng = np.random.default_rng(seed)
    opens = start + np.arange(n, dtype=np.int64) * 60_000
    close = 30_000 + np.cumsum(rng.normal(0, 8, n)).round(2)
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) + rng.random(n).round(2)
    low = np.minimum(open_, close) - rng.random(n).round(2)
    vol = (rng.random(n) * 40).round(5)
    trades = rng.integers(100, 3000, n)
    cols = [
        opens.astype(str), np.char.mod("%.8f", open_), np.char.mod("%.8f", high),
        np.char.mod("%.8f", low), np.char.mod("%.8f", close), np.char.mod("%.8f", vol),
        (opens + 59_999).astype(str), np.char.mod("%.8f", vol * close), trades.astype(str),
        np.char.mod("%.8f", vol / 2), np.char.mod("%.8f", vol * close / 2), np.full(n, "0"),
    ]
    lines = cols[0]
    for c in cols[1:]:
        lines = np.char.add(np.char.add(lines, ","), c)
    return ("\n".join(lines.tolist()) + "\n").encode(), start, end


def agg_trades_day_csv(n: int, year: int = 2023, month: int = 6, day: int = 1,
                       seed: int = 2) -> tuple[bytes, int, int]:
    """``n`` spot aggTrades (8 columns) spread over one day."""
    start = _ms(year, month, day)
    rng = np.random.default_rng(seed)
    ids = 1_000_000_000 + np.arange(n, dtype=np.int64)
    times = start + np.sort(rng.integers(0, 86_400_000, n))
    price = (30_000 + np.cumsum(rng.normal(0, 0.5, n))).round(2)
    qty = (rng.random(n) * 0.5).round(5)
    maker = np.where(rng.random(n) < 0.5, "True", "False")
    cols = [ids.astype(str), np.char.mod("%.8f", price), np.char.mod("%.8f", qty),
            (ids * 3).astype(str), (ids * 3 + 2).astype(str), times.astype(str), maker,
            np.full(n, "True")]
    lines = cols[0]
    for c in cols[1:]:
        lines = np.char.add(np.char.add(lines, ","), c)
    return ("\n".join(lines.tolist()) + "\n").encode(), start, start + 86_400_000


def make_zip(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data,
                    compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


class FsyncTimer:
    """Times every ``os.fsync`` made inside the block (each one still really happens), so
    the table can tell the filesystem's flush wait from the pipeline's own work."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._real = os.fsync

    def _timed(self, fd: int) -> None:
        t0 = time.perf_counter()
        try:
            self._real(fd)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __enter__(self) -> FsyncTimer:
        os.fsync = self._timed
        return self

    def __exit__(self, *exc: object) -> None:
        os.fsync = self._real


def ingest_once(zip_bytes: bytes, sha: str, key: SeriesKey, start_ms: int, end_ms: int,
                root: Path) -> dict[str, float]:
    """The archive source's per-file pipeline, timed by stage (seconds).

    ``cpu_s`` is this process's CPU time for the whole pipeline (user + system, so the
    kernel's share of fsync is in it, the wait for the disk is not); ``fsync_s`` is the
    wall time spent inside fsync calls (``fsync_calls`` of them).
    """
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if hashlib.sha256(zip_bytes).hexdigest() != sha:
        raise RuntimeError("checksum mismatch in the benchmark")
    t1 = time.perf_counter()
    _, csv_bytes = extract_single_csv(zip_bytes, "bench.zip", check_crc=False)  # as archive_fetch
    t2 = time.perf_counter()
    table = clip_rows(parse_archive_csv(csv_bytes, key.dataset), key.dataset,
                      start_ms * US_PER_MS, end_ms * US_PER_MS)
    t3 = time.perf_counter()
    with FsyncTimer() as fsyncs:
        LakeWriter(root).commit(key, table, covered=[(start_ms * US_PER_MS, end_ms * US_PER_MS)])
    t4 = time.perf_counter()
    return {"rows": table.num_rows, "sha256_s": t1 - t0, "unzip_s": t2 - t1,
            "parse_s": t3 - t2, "commit_s": t4 - t3, "total_s": t4 - t0,
            "fsync_s": fsyncs.seconds, "fsync_calls": fsyncs.calls,
            "cpu_s": time.process_time() - cpu0}


def pyarrow_parse_s(csv_bytes: bytes, dataset: str, repeats: int) -> float:
    """Best time of pyarrow's CSV reader on the same bytes (the peer our parser replaced),
    with the same column types; the lake's conversion step is not included."""
    import pyarrow.csv as pacsv

    from kline_lake.archive import numeric_csv as nc
    from kline_lake.archive.csv import _CSV_COLUMNS

    n_cols = csv_bytes[:csv_bytes.find(b"\n")].count(b",") + 1
    columns = _CSV_COLUMNS[dataset][:n_cols]
    types = {nc.INT: pa.int64(), nc.FLOAT: pa.float64(), nc.BOOL: pa.bool_(), nc.SKIP: pa.string()}
    read = pacsv.ReadOptions(column_names=[name for name, _ in columns])
    convert = pacsv.ConvertOptions(column_types={name: types[kind] for name, kind in columns})
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        pacsv.read_csv(pa.BufferReader(csv_bytes), read_options=read, convert_options=convert)
        best = min(best, time.perf_counter() - t0)
    return best


def bench_ingest(label: str, csv_bytes: bytes, key: SeriesKey, start_ms: int, end_ms: int,
                 repeats: int, prefill: pa.Table | None = None) -> dict:
    """Best-of-``repeats`` timing of one file through the pipeline into fresh lakes.

    ``prefill`` is committed (untimed) first, so the series directories already exist, as
    for every month after the first one of a multi-month download.
    """
    zip_bytes = make_zip("bench.csv", csv_bytes)
    sha = hashlib.sha256(zip_bytes).hexdigest()
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            if prefill is not None:
                LakeWriter(Path(tmp)).commit(key, prefill)
            runs.append(ingest_once(zip_bytes, sha, key, start_ms, end_ms, Path(tmp)))
    best = min(runs, key=lambda r: r["total_s"])
    peer_s = pyarrow_parse_s(csv_bytes, key.dataset, repeats)
    return {
        "case": label, "rows": best["rows"], "zip_mb": len(zip_bytes) / 1e6,
        "csv_mb": len(csv_bytes) / 1e6, **{k: best[k] for k in best if k.endswith("_s")},
        "fsync_calls": best["fsync_calls"],
        "rows_per_s": best["rows"] / best["total_s"],
        "rows_per_s_without_fsync_wait": best["rows"] / (best["total_s"] - best["fsync_s"]),
        "rows_per_cpu_s": best["rows"] / best["cpu_s"],
        "parse_rows_per_s": best["rows"] / best["parse_s"],
        "pyarrow_csv_parse_s": peer_s,
        "parse_speedup_vs_pyarrow_csv": peer_s / best["parse_s"],
    }


def profile_kline_month(top: int = 15) -> str:
    """cProfile of one month of 1m klines through the pipeline (tottime order)."""
    import cProfile
    import pstats

    csv_bytes, start, end = kline_month_csv(2023, 1)
    zip_bytes = make_zip("bench.csv", csv_bytes)
    sha = hashlib.sha256(zip_bytes).hexdigest()
    key = SeriesKey("spot", "klines", "BTCUSDT", "1m")
    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile()
        prof.enable()
        ingest_once(zip_bytes, sha, key, start, end, Path(tmp))
        prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


@functools.cache
def _archive_year(year: int, symbol: str = "BTCUSDT") -> tuple[dict[str, bytes], int]:
    """The monthly 1m-kline zips of ``year`` and their CHECKSUMs, by archive URL path
    (built once per run: every part reads the same bytes)."""
    files, rows = {}, 0
    for month in range(1, 13):
        csv_bytes, start, end = kline_month_csv(year, month, seed=month)
        name = f"{symbol}-1m-{year}-{month:02d}"
        zip_bytes = make_zip(f"{name}.csv", csv_bytes)
        path = f"/data/spot/monthly/klines/{symbol}/1m/{name}.zip"
        files[path] = zip_bytes
        files[path + ".CHECKSUM"] = f"{hashlib.sha256(zip_bytes).hexdigest()}  {name}.zip\n".encode()
        rows += (end - start) // 60_000
    return files, rows


def bench_pipeline_year(repeats: int, year: int = 2023, batch_rows: int | None = None) -> dict:
    """A year of monthly zips through ``ingest_archive_pieces`` into fresh lakes (best of
    ``repeats``): zip bytes in memory to committed Parquet, coverage and manifest.
    ``batch_rows=1`` commits month by month (the pipeline before batched commits)."""
    import asyncio

    import httpx

    from kline_lake.archive.fetch import FetchPolicy
    from kline_lake.archive.ingest import ArchiveSettings, archive_client, ingest_archive_pieces
    from kline_lake.archive.plan import MONTHLY, plan_range
    from kline_lake.core.markets import SPOT

    files, rows = _archive_year(year, "BTCUSDT")

    async def serve(request: httpx.Request) -> httpx.Response:
        body = files.get(request.url.path)
        return httpx.Response(200, content=body) if body is not None else httpx.Response(404)

    start_us, end_us = _ms(year, 1, 1) * US_PER_MS, _ms(year + 1, 1, 1) * US_PER_MS
    pieces = plan_range(start_us, end_us, now_us=end_us + 30 * 86_400_000_000)
    if [p.kind for p in pieces] != [MONTHLY] * 12:
        raise RuntimeError(f"expected 12 monthly pieces, planned {pieces}")
    key = SeriesKey("spot", "klines", "BTCUSDT", "1m")
    settings = ArchiveSettings("http://archive.invalid", FetchPolicy())
    if batch_rows is not None:
        settings = dataclasses.replace(settings, batch_rows=batch_rows)

    async def ingest(root: Path) -> int:
        async with archive_client(transport=httpx.MockTransport(serve)) as client:
            outcome = await ingest_archive_pieces(client, LakeWriter(root), SPOT, key, pieces, settings)
        if outcome.errors or outcome.rest_pieces:
            raise RuntimeError(f"archive ingest failed: {outcome.errors or outcome.rest_pieces}")
        return outcome.stats.rows

    runs = []
    for _ in range(repeats + 1):  # the first run warms imports and the JIT cache; dropped
        with tempfile.TemporaryDirectory() as tmp, FsyncTimer() as fsyncs:
            cpu0, t0 = time.process_time(), time.perf_counter()
            got = asyncio.run(ingest(Path(tmp)))
            runs.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0,
                         "fsync_s": fsyncs.seconds, "fsync_calls": fsyncs.calls})
        if got != rows:
            raise RuntimeError(f"ingested {got} rows, expected {rows}")
    best = min(runs[1:], key=lambda r: r["wall_s"])
    how = "one commit per month" if batch_rows == 1 else "batched commits"
    return {
        "case": f"year of 1m klines, 12 monthly zips, archive source ({year}), {how}",
        "rows": rows, "zip_mb": sum(len(v) for k, v in files.items() if k.endswith(".zip")) / 1e6,
        **best, "rows_per_s": rows / best["wall_s"], "rows_per_cpu_s": rows / best["cpu_s"],
    }


def bench_pyarrow_peer_year(repeats: int, year: int = 2023) -> dict:
    """The peer pipeline on the same year of zips, one month at a time: sha256, the same
    safe unzip, ``pyarrow.csv.read_csv`` (same column types), the lake's table built from
    its columns, ``pq.write_table`` with the lake's Parquet options, fsync of each file
    (no lock, coverage or manifest: less durable bookkeeping than the lake's)."""
    import pyarrow.csv as pacsv

    from kline_lake.archive import numeric_csv as nc
    from kline_lake.archive.csv import _CSV_COLUMNS
    from kline_lake.core.schemas import klines_table
    from kline_lake.lake.data_files import write_parquet_file

    files, rows = _archive_year(year, "BTCUSDT")
    zips = [v for k, v in sorted(files.items()) if k.endswith(".zip")]
    shas = [hashlib.sha256(z).hexdigest() for z in zips]
    columns = _CSV_COLUMNS["klines"]
    types = {nc.INT: pa.int64(), nc.FLOAT: pa.float64(), nc.SKIP: pa.string()}
    read = pacsv.ReadOptions(column_names=[name for name, _ in columns])
    convert = pacsv.ConvertOptions(column_types={name: types[kind] for name, kind in columns})
    runs = []
    for _ in range(repeats + 1):
        with tempfile.TemporaryDirectory() as tmp:
            cpu0, t0 = time.process_time(), time.perf_counter()
            got = 0
            for i, (zip_bytes, sha) in enumerate(zip(zips, shas, strict=True)):
                if hashlib.sha256(zip_bytes).hexdigest() != sha:
                    raise RuntimeError("checksum mismatch in the benchmark")
                _, csv_bytes = extract_single_csv(zip_bytes, "bench.zip", check_crc=False)
                parsed = pacsv.read_csv(pa.BufferReader(csv_bytes), read_options=read,
                                        convert_options=convert)
                table = klines_table({n: parsed.column(n).to_numpy() for n, _ in columns[:-1]}, "klines")
                target = Path(tmp) / f"{i:02d}.parquet"
                write_parquet_file(table, target, "klines")
                fd = os.open(target, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
                got += table.num_rows
            runs.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0})
        if got != rows:
            raise RuntimeError(f"peer parsed {got} rows, expected {rows}")
    best = min(runs[1:], key=lambda r: r["wall_s"])
    return {"case": f"peer: pyarrow.csv + pq.write_table, same 12 zips ({year})", "rows": rows,
            **best, "rows_per_s": rows / best["wall_s"], "rows_per_cpu_s": rows / best["cpu_s"]}


def _serve_dir(root: Path) -> tuple[subprocess.Popen, str]:
    """``python -m http.server`` on loopback over ``root``, in its own process."""
    proc = subprocess.Popen([sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (http://...) ..."
    port = line.split(" port ")[1].split()[0] if " port " in line else None
    if port is None:
        proc.kill()
        raise RuntimeError(f"the archive server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}"


def bench_parallel(workers_list: list[int], years: tuple[int, ...], repeats: int,
                   symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> list[dict]:
    """Monthly 1m-kline zips of ``symbols`` x ``years`` served over loopback HTTP by their
    own process, ingested by ``archive.parallel.ingest_parallel`` with 1, 2, .. worker
    processes pinned to CPUs 0, 1, .. (best of ``repeats``, each into a fresh lake; the
    pool is started and warmed first, so process start-up is not timed). With one
    symbol, the workers split its months and take turns on its series lock."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from kline_lake.archive.fetch import FetchPolicy
    from kline_lake.archive.ingest import ArchiveSettings, raise_first
    from kline_lake.archive.parallel import IngestJob, ingest_parallel
    from kline_lake.archive.plan import plan_range

    cpus = ALL_CPUS or [0]
    if PINNABLE:  # the workers pin themselves; the archive server may run anywhere
        os.sched_setaffinity(0, set(ALL_CPUS))
    with tempfile.TemporaryDirectory() as served:
        rows = 0
        for symbol in symbols:
            for year in years:
                files, n = _archive_year(year, symbol)
                rows += n
                for path, body in files.items():
                    target = Path(served) / path.lstrip("/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(body)
        start_us = _ms(years[0], 1, 1) * US_PER_MS
        end_us = _ms(years[-1] + 1, 1, 1) * US_PER_MS
        pieces = tuple(plan_range(start_us, end_us, now_us=end_us + 30 * 86_400_000_000))
        jobs = [IngestJob("spot", SeriesKey("spot", "klines", s, "1m"), pieces) for s in symbols]
        server, url = _serve_dir(Path(served))
        settings = ArchiveSettings(url, FetchPolicy())
        out = []
        try:
            with ProcessPoolExecutor(max(workers_list),
                                     mp_context=multiprocessing.get_context("spawn")) as pool:
                for _ in pool.map(time.sleep, [1.0] * max(workers_list)):  # start them all
                    pass
                for workers in workers_list:
                    runs = []
                    for _ in range(repeats + 1):  # the first warms imports and caches
                        with tempfile.TemporaryDirectory() as lake:
                            t0 = time.perf_counter()
                            outcome = ingest_parallel(lake, jobs, settings, workers, pool=pool,
                                                      cpus=cpus[:workers])
                            runs.append(time.perf_counter() - t0)
                            digest = lake_digest(Path(lake))
                        raise_first(outcome.errors)
                        if outcome.stats.rows != rows:
                            raise RuntimeError(f"ingested {outcome.stats.rows} rows, expected {rows}")
                    best = min(runs[1:])
                    out.append({"workers": workers, "cpus": cpus[:workers], "rows": rows,
                                "series": len(symbols), "files": len(pieces) * len(symbols),
                                "wall_s": best, "rows_per_s": rows / best,
                                "lake_sha256": digest})
        finally:
            server.kill()
            server.wait()
    for row in out:
        row["speedup_vs_1"] = out[0]["wall_s"] / row["wall_s"]
        row["lake_identical_to_1_worker"] = row["lake_sha256"] == out[0]["lake_sha256"]
        if not row["lake_identical_to_1_worker"]:
            raise RuntimeError(f"{row['workers']} workers left a different lake than 1")
    return out


def lake_digest(lake: Path) -> str:
    """sha256 over every data file, coverage record and manifest of a lake (paths and
    bytes; the lock files and temp names excluded): equal digests, byte-identical lakes."""
    h = hashlib.sha256()
    for path in sorted(p for p in lake.rglob("*") if p.is_file() and p.suffix in (".parquet", ".json")):
        h.update(str(path.relative_to(lake)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def parallel_table(rows: list[dict]) -> str:
    lines = ["| workers (CPUs) | series | monthly zips | rows | wall ms | rows/s | vs 1 worker "
             "| lake == 1 worker's |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workers']} ({','.join(map(str, r['cpus']))}) | {r['series']} | {r['files']} "
                     f"| {r['rows']:,} | {1e3 * r['wall_s']:.0f} | {r['rows_per_s'] / 1e6:.2f} M "
                     f"| {r['speedup_vs_1']:.2f}x | {'yes' if r['lake_identical_to_1_worker'] else 'NO'} |")
    return "\n".join(lines)


TARGET_ROWS_PER_S = 2_000_000  # issue 15's one-core goal for archive ingest of klines


def bench_stage_budget(repeats: int, year: int = 2023) -> dict:
    """Where one core's time goes for a year of 1m klines, stage by stage on the same 12
    zips (CPU seconds, best of ``repeats`` each, in memory: no files, no fsync), set
    against the time budget of ``TARGET_ROWS_PER_S``.

    The stages are the pipeline's own calls: sha256 of the zip, the safe unzip (ISA-L's
    inflate when installed), `parse_archive_csv`, and the lake's ``pq.write_table`` into a
    memory buffer, once with its codecs and once with every column uncompressed (the
    difference is the zstd of the price, time and trade-count columns). ``floor_s`` is
    the part no parser can remove (sha256 + inflate + write), and ``free_parse_rows_per_s``
    what even a parser costing nothing would reach without the files' own write and fsync.
    """
    import pyarrow.parquet as pq

    from kline_lake.lake.data_files import parquet_options

    files, rows = _archive_year(year, "BTCUSDT")
    zips = [v for k, v in sorted(files.items()) if k.endswith(".zip")]
    csvs = [extract_single_csv(z, "bench.zip", check_crc=False)[1] for z in zips]
    tables = [parse_archive_csv(c, "klines") for c in csvs]

    def write(compressed: bool) -> None:
        for table in tables:
            options = parquet_options(table.schema, "klines")
            if not compressed:
                options.update(compression="none", compression_level=None)
            pq.write_table(table, pa.BufferOutputStream(), **options)

    stages = {
        "sha256": lambda: [hashlib.sha256(z).digest() for z in zips],
        "inflate": lambda: [extract_single_csv(z, "bench.zip", check_crc=False) for z in zips],
        "parse": lambda: [parse_archive_csv(c, "klines") for c in csvs],
        "write_uncompressed": lambda: write(False),
        "write": lambda: write(True),
    }
    best = {}
    for name, stage in stages.items():
        times = []
        for _ in range(repeats + 1):  # the first warms caches; dropped
            cpu0 = time.process_time()
            stage()
            times.append(time.process_time() - cpu0)
        best[name] = min(times[1:])
    budget = rows / TARGET_ROWS_PER_S
    floor = best["sha256"] + best["inflate"] + best["write"]
    return {
        "case": f"year of 1m klines ({year}), 12 zips, {sum(map(len, csvs)) / 1e6:.1f} MB of CSV",
        "rows": rows, **{f"{k}_cpu_s": v for k, v in best.items()},
        "zstd_cpu_s": best["write"] - best["write_uncompressed"],
        "target_rows_per_s": TARGET_ROWS_PER_S, "budget_s": budget, "floor_s": floor,
        "left_for_parse_s": budget - floor, "stages_rows_per_s": rows / (floor + best["parse"]),
        "free_parse_rows_per_s": rows / floor,
    }


def budget_table(row: dict) -> str:
    ms = {k: 1e3 * row[f"{k}_cpu_s"] for k in ("sha256", "inflate", "parse", "write_uncompressed", "zstd")}
    lines = [f"{row['case']}: budget at {row['target_rows_per_s'] / 1e6:.0f} M rows/s = "
             f"{1e3 * row['budget_s']:.0f} ms\n",
             "| stage | CPU ms | share of the budget |", "|---|---|---|"]
    for name, value in ms.items():
        lines.append(f"| {name} | {value:.0f} | {value / (1e3 * row['budget_s']):.0%} |")
    lines.append(f"| floor without the parse | {1e3 * row['floor_s']:.0f} "
                 f"| {row['floor_s'] / row['budget_s']:.0%} |")
    lines.append(f"\nstages alone: {row['stages_rows_per_s'] / 1e6:.2f} M rows/s; with a parser "
                 f"costing nothing: {row['free_parse_rows_per_s'] / 1e6:.2f} M rows/s")
    return "\n".join(lines)


def pipeline_table(rows: list[dict]) -> str:
    lines = ["| case | rows | wall ms | CPU ms | fsync calls | rows/s (zip to Parquet) "
             "| rows per CPU s |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['case']} | {row['rows']:,} | {1e3 * row['wall_s']:.0f} "
                     f"| {1e3 * row['cpu_s']:.0f} | {row.get('fsync_calls', '-')} "
                     f"| {row['rows_per_s'] / 1e6:.2f} M | {row['rows_per_cpu_s'] / 1e6:.2f} M |")
    return "\n".join(lines)


def part1(quick: bool, repeats: int) -> list[dict]:
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    kl_csv, k0, k1 = kline_month_csv(2023, 1)
    kl_key = SeriesKey("spot", "klines", "BTCUSDT", "1m")
    n_trades = 200_000 if quick else 1_000_000
    ag_csv, a0, a1 = agg_trades_day_csv(n_trades)
    previous_month = parse_archive_csv(kline_month_csv(2022, 12)[0], "klines")
    return [
        bench_ingest("month of 1m klines", kl_csv, kl_key, k0, k1, repeats),
        bench_ingest("month of 1m klines, series exists", kl_csv, kl_key, k0, k1, repeats,
                     prefill=previous_month),
        bench_ingest(f"day of aggTrades ({n_trades:,})", ag_csv,
                     SeriesKey("spot", "agg_trades", "BTCUSDT"), a0, a1, repeats),
    ]


def part1_table(rows: list[dict]) -> str:
    head = ("| case | rows | zip MB | sha256 ms | unzip ms | parse ms | commit ms | of which fsync ms "
            "| total ms | CPU ms | rows/s (zip to Parquet) | rows/s without fsync wait "
            "| rows per CPU s | parse rows/s | parse vs pyarrow.csv |\n|" + "---|" * 15)
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['rows']:,} | {r['zip_mb']:.2f} | {1e3 * r['sha256_s']:.1f} "
            f"| {1e3 * r['unzip_s']:.1f} | {1e3 * r['parse_s']:.1f} | {1e3 * r['commit_s']:.1f} "
            f"| {1e3 * r['fsync_s']:.1f} ({r['fsync_calls']}) | {1e3 * r['total_s']:.1f} "
            f"| {1e3 * r['cpu_s']:.1f} | {r['rows_per_s'] / 1e6:.2f} M "
            f"| {r['rows_per_s_without_fsync_wait'] / 1e6:.2f} M | {r['rows_per_cpu_s'] / 1e6:.2f} M "
            f"| {r['parse_rows_per_s'] / 1e6:.2f} M "
            f"| {r['parse_speedup_vs_pyarrow_csv']:.1f}x ({1e3 * r['pyarrow_csv_parse_s']:.1f} ms) |"
        )
    return "\n".join(lines)


FAKE_NOW = "2025-01-01T06:00"  # the fake exchange's pinned clock for part 2
_SERVER_SNIPPET = """
import sys, time
from datetime import datetime, timezone
from kline_lake.fake_exchange import FakeExchange
now = int(datetime.fromisoformat(sys.argv[1]).replace(tzinfo=timezone.utc).timestamp() * 1000)
with FakeExchange(seed=7, now_ms=now) as fx:
    print(fx.base_url, flush=True)
    sys.stdin.read()
"""


def _start_fake_exchange() -> tuple[subprocess.Popen, str]:
    """The fake exchange in its own process (so it does not share our GIL)."""
    proc = subprocess.Popen([sys.executable, "-c", _SERVER_SNIPPET, FAKE_NOW],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            cwd=str(Path(__file__).resolve().parents[1]))
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError("the fake exchange did not start")
    return proc, url


def _stats(url: str) -> dict:
    import httpx

    return httpx.get(f"{url}/fake/stats").json()


def _download(url: str, source: str, start: str, root: Path) -> dict:
    import asyncio

    from kline_lake.download.orchestrate import run_download
    from kline_lake.download.request import validate_request

    os.environ["KLINE_LAKE_ARCHIVE_URL"] = url
    before = _stats(url)
    req = validate_request(market="spot", dataset="klines", symbols="BTCUSDT", interval="1m",
                           start=start, end=None, lake=root, base_url=url, source=source)
    t0 = time.perf_counter()
    totals = asyncio.run(run_download(req))
    wall = time.perf_counter() - t0
    after = _stats(url)
    return {
        "source": source, "wall_s": wall, "rows": totals.rows_written,
        "weight": after["spot"]["weight"] - before["spot"]["weight"],
        "requests": after["spot"]["requests"] - before["spot"]["requests"],
        "archive_files": totals.extra.get("archive files", 0),
        "archive_requests": after["archive"]["requests"] - before["archive"]["requests"],
        "archive_mb": (after["archive"]["bytes"] - before["archive"]["bytes"]) / 1e6,
        "rows_from_archive": totals.extra.get("rows from archive", 0),
        "rows_from_rest": totals.extra.get("rows from REST", totals.rows_written if source == "rest" else 0),
    }


def part2(quick: bool) -> list[dict]:
    """auto vs rest for spot BTCUSDT 1m from ``start`` to the fake exchange's now."""
    start = "2024-11-01" if quick else "2024-01-01"
    proc, url = _start_fake_exchange()
    try:
        out = []
        # The fake exchange builds each zip on first request (the real archive serves
        # prebuilt files from a CDN), so auto runs twice: cold, then with its cache warm.
        for source, label in (("auto", "auto"), ("rest", "rest"), ("auto", "auto (archive cache warm)")):
            with tempfile.TemporaryDirectory() as tmp:
                row = _download(url, source, start, Path(tmp))
                row["range"] = f"{start} .. {FAKE_NOW}"
                row["source"] = label
                out.append(row)
        if len({r["rows"] for r in out}) != 1:
            raise RuntimeError(f"auto and rest lakes differ in rows: {out}")
        return out
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def part2_table(rows: list[dict]) -> str:
    lines = ["| source | range | rows | rows from archive | rows from REST | REST requests "
             "| weight used | archive files | archive MB | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['source']} | {r['range']} | {r['rows']:,} | {r['rows_from_archive']:,} "
            f"| {r['rows_from_rest']:,} | {r['requests']:,} | {r['weight']:,} "
            f"| {r['archive_files']} | {r['archive_mb']:.1f} | {r['wall_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for CI")
    parser.add_argument("--repeats", type=int, default=None, help="best of N (default 5, 3 with --quick)")
    parser.add_argument("--skip-download", action="store_true", help="part 1 only")
    parser.add_argument("--profile", action="store_true", help="cProfile a kline month (part 1)")
    parser.add_argument("--workers", default="1,2",
                        help="worker processes of the parallel ingest, comma-separated "
                             "('' to skip it)")
    parser.add_argument("--json", default=str(Path(__file__).parent / "results" / "archive_ingest.json"))
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 5)
    results: dict = {"ingest_one_core": part1(args.quick, repeats),
                     "pipeline_one_core": bench_pipeline_year(repeats)}
    if not args.quick:  # the same year committed month by month, and the peer
        results["pipeline_one_core_monthly_commits"] = bench_pipeline_year(repeats, batch_rows=1)
        results["pipeline_one_core_pyarrow_peer"] = bench_pyarrow_peer_year(repeats)
    results["stage_budget"] = bench_stage_budget(repeats)
    pinned = f"pinned to CPU {sorted(os.sched_getaffinity(0))}" if PINNABLE else "not pinned"
    print(f"## Archive ingest, one core ({pinned})\n")
    print(part1_table(results["ingest_one_core"]))
    print()
    print(pipeline_table([results[k] for k in ("pipeline_one_core", "pipeline_one_core_monthly_commits",
                                               "pipeline_one_core_pyarrow_peer") if k in results]))
    print("\n## Where a year's one-core time goes, against the 2 M rows/s budget\n")
    print(budget_table(results["stage_budget"]))
    if args.profile:
        print("\n```\n" + profile_kline_month() + "```")
    workers = sorted({int(w) for w in args.workers.split(",") if w.strip()})
    if workers:
        results["parallel_one_series"] = bench_parallel(
            workers, (2023,) if args.quick else (2022, 2023), max(1, repeats // 2), symbols=("BTCUSDT",))
        results["parallel"] = [] if args.quick else bench_parallel(  # --quick: one series only
            workers, (2023,), max(1, repeats // 2), symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"))
        print("\n## Parallel ingest over loopback HTTP, 1 vs N worker processes: one series (its "
              "months split), several series (whole series per worker)\n")
        print(parallel_table(results["parallel_one_series"] + results["parallel"]))
    if not args.skip_download:
        if PINNABLE:
            os.sched_setaffinity(0, ALL_CPUS)  # part 2: the fake exchange gets its own core
        results["auto_vs_rest"] = part2(args.quick)
        print("\n## One year of 1m klines: auto vs rest (fake exchange)\n")
        print(part2_table(results["auto_vs_rest"]))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"\nJSON: {out}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
