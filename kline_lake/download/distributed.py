"""`kline-lake download ... --dask ADDRESS`: series sharded across Dask workers.

Not pure: connects to (or starts) a Dask cluster, talks to the exchange, writes the lake,
prints progress on stderr. Dask is imported inside the functions that need it, so a
download without ``--dask`` never loads it.

How a run goes:
1. Here, on the client, once the cluster answers: the network validation of a local run (`orchestrate.prepare`:
   exchangeInfo, the symbols a pattern or ``--quote`` selects, the server clock, the
   range); the fresh exchangeInfo is cached in the lake, so the workers read it from
   there instead of asking the exchange again.
2. One shard per symbol (all its intervals): a `DownloadRequest` naming that symbol, with
   the start and end pinned to what step 1 resolved (every shard downloads the same range
   a local run would). Each shard runs `orchestrate.run_download` on a worker: its own
   HTTP client, rate limiter and weight budget, committing into the lake through the
   lake's own series locks (the lake must be at the same path for every worker: a shared
   filesystem or object storage).
3. The shards' counters are summed into one `RunTotals`; the shards' notes (waits,
   clamped ranges) are printed once each.

Request weight is counted per IP by the exchange. Every download process reserves its
weight in the machine's ledger (`kline_lake.exchange.weight_ledger`, a file keyed by API
host and path under ``$KLINE_LAKE_STATE_DIR``, default ``~/.cache/kline-lake``), so the
workers of one machine split one budget. `ledger_dir` (``--ledger-dir``) names the ledger
directory for the shards: give workers that share an IP one directory (for containers or
hosts behind one NAT address: a shared mount with working ``flock``), and workers with
their own IPs their own (the default, per machine).

Addresses: ``local:N`` starts a `distributed.LocalCluster` of N worker processes for this
run; ``tcp://HOST:PORT`` (``tls://``, ``ws://``, ``wss://``, ``ucx://``) connects to a
running scheduler. A bad address or an unreachable scheduler is an InputError (one line).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kline_lake.download.progress import NullProgress, RunTotals
from kline_lake.download.request import DownloadRequest
from kline_lake.errors import InputError

SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
CONNECT_TIMEOUT_S = 5.0
MAX_LOCAL_WORKERS = 256
STATE_DIR_ENV = "KLINE_LAKE_STATE_DIR"
_COUNTERS = ("rows_written", "requests", "weight", "rate_limited_429", "banned_418",
             "retries", "gaps_found", "id_holes", "commits", "series")


def parse_address(address: str) -> tuple[str, int | str]:
    """``'local:2'`` -> ('local', 2); ``'tcp://h:8786'`` -> ('remote', 'tcp://h:8786');
    InputError for anything else."""
    text = str(address).strip()
    local = re.fullmatch(r"local:(\d+)", text)
    if local:
        n = int(local.group(1))
        if not 1 <= n <= MAX_LOCAL_WORKERS:
            raise InputError(f"--dask local:N needs 1 <= N <= {MAX_LOCAL_WORKERS}, got {text!r}")
        return "local", n
    remote = re.fullmatch(r"([a-z]+)://([^\s/:]+|\[[0-9a-fA-F:]+\]):(\d{1,5})", text)
    if remote and remote.group(1) in SCHEMES and 0 < int(remote.group(3)) < 65536:
        return "remote", text
    raise InputError(f"--dask must be local:N (N worker processes) or a scheduler address "
                     f"like tcp://HOST:8786, got {text!r}")


@contextlib.contextmanager
def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """A `distributed.Client` for `address`, closed on exit together with a LocalCluster
    it started. InputError (one line) for a bad address or a scheduler that cannot be
    reached within `timeout_s`."""
    kind, where = parse_address(address)
    import logging

    from distributed import Client, LocalCluster

    if kind == "local":
        with LocalCluster(n_workers=int(where), threads_per_worker=1, processes=True,
                          dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(str(where), timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot reach the Dask scheduler at {where}: {reason}") from exc
    with client:
        yield client


def shard_requests(request: DownloadRequest, symbols: list[str], start_ms: int,
                   end_ms: int) -> list[DownloadRequest]:
    """One request per symbol, with the run's resolved range pinned, and the archive URL
    as this process resolves it (a worker does not see the client's environment)."""
    from kline_lake.archive.plan import archive_base_url

    lake = request.lake
    if isinstance(lake, Path):
        lake = lake.absolute()  # a worker's working directory is not the client's
    archive = archive_base_url(request.market, request.archive_url, request.base_url)
    return [dataclasses.replace(request, symbols=(symbol,), quote=None, days=None,
                                start_ms=start_ms, end_ms=end_ms, lake=lake,
                                archive_url=archive)
            for symbol in symbols]


def download_shard(request: DownloadRequest, ledger_dir: str | None = None) -> tuple[RunTotals, list[str]]:
    """Run on a worker: download one shard into the lake with its own client, limiter
    and budget. Returns its counters and the notes it would have printed."""
    from kline_lake.download.orchestrate import run_download

    progress = NullProgress()
    saved = os.environ.get(STATE_DIR_ENV)
    if ledger_dir is not None:
        os.environ[STATE_DIR_ENV] = ledger_dir
    try:
        totals = asyncio.run(run_download(request, progress=progress))
    finally:
        if ledger_dir is not None:
            if saved is None:
                os.environ.pop(STATE_DIR_ENV, None)
            else:
                os.environ[STATE_DIR_ENV] = saved
    return totals, progress.notes


def add_totals(total: RunTotals, part: RunTotals) -> None:
    """Add a shard's counters into `total` (in place; `seconds` is the caller's)."""
    for name in _COUNTERS:
        setattr(total, name, getattr(total, name) + getattr(part, name))
    for name, value in part.extra.items():
        total.extra[name] = total.extra.get(name, 0) + value


async def _prepare(request: DownloadRequest, progress: NullProgress) -> tuple[list[str], int, int, RunTotals]:
    """`orchestrate.prepare` here on the client; caches the fresh exchangeInfo in the
    lake. Returns the symbols, the range and the client's own counters."""
    from kline_lake.download.orchestrate import prepare
    from kline_lake.exchange.client import Session
    from kline_lake.exchange.retry import SystemClock
    from kline_lake.lake.writer import LakeWriter

    async with Session() as session:
        prepared = await prepare(request, session, SystemClock(), progress)
        if prepared.fresh_info is not None:
            LakeWriter(request.lake).save_exchange_info(request.market.name, prepared.fresh_info)
        stats = prepared.client.stats
    own = RunTotals(requests=stats.requests, weight=stats.weight,
                    rate_limited_429=stats.rate_limited_429, banned_418=stats.banned_418,
                    retries=stats.retries)
    return [s.symbol for s in prepared.symbols], prepared.start_ms, prepared.end_ms, own


def run_distributed_download(request: DownloadRequest, address: str, *,
                             show_progress: bool = True, ledger_dir: str | None = None,
                             totals: RunTotals | None = None) -> RunTotals:
    """Download `request` with its series sharded across the Dask cluster at `address`
    (see the module docstring). Progress (the dashboard link, a tqdm bar of finished
    shards) and the shards' notes go to stderr; `show_progress=False` keeps only the
    notes. A shard's error (an InputError, say) is raised here once every shard ended."""
    started = time.monotonic()
    totals = totals if totals is not None else RunTotals()
    notes = NullProgress(stream=sys.stderr)
    # the cluster first: a bad address or an unreachable scheduler is refused before the
    # exchange is asked or the lake touched
    with connect(address) as client:
        symbols, start_ms, end_ms, own = asyncio.run(_prepare(request, notes))
        add_totals(totals, own)
        shards = shard_requests(request, symbols, start_ms, end_ms)
        results = _map_shards(client, shards, ledger_dir, show_progress)
    seen: set[str] = set(notes.notes)
    for part, shard_notes in results:
        add_totals(totals, part)
        for note in shard_notes:
            if note not in seen:
                seen.add(note)
                print(note, file=sys.stderr, flush=True)
    totals.seconds = time.monotonic() - started
    return totals


def _map_shards(client: Any, shards: list[DownloadRequest], ledger_dir: str | None,
                show_progress: bool) -> list[tuple[RunTotals, list[str]]]:
    from distributed import as_completed
    from tqdm import tqdm

    workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    if show_progress:
        print(f"dask: {workers} workers, {len(shards)} shards, dashboard "
              f"{client.dashboard_link}", file=sys.stderr, flush=True)
    futures = [client.submit(download_shard, shard, ledger_dir, pure=False) for shard in shards]
    with tqdm(total=len(futures), unit="shard", desc="shards", file=sys.stderr,
              disable=not show_progress, leave=False) as bar:
        for _ in as_completed(futures):
            bar.update(1)
    return client.gather(futures)
