"""Sweeps on a Dask cluster: ``--dask local:N`` or ``--dask tcp://HOST:PORT``.

Not pure: starts or connects to a Dask cluster and prints progress on stderr. Dask is
imported inside the functions that need it, so runs without ``--dask`` never load it.

The work is split into tasks by the caller (`backtest.sweep` sends consecutive blocks of
grid points, each run through the same batch kernel as a local run); this module only
connects, submits one task per block, shows progress and gathers the results in block
order. A task whose worker dies (killed, out of memory) is rerun elsewhere by the Dask
scheduler (``distributed.scheduler.allowed-failures``, 3 by default): tasks are pure
functions of their arguments, so a rerun returns the same values.

Addresses:
- ``local:N`` starts a `distributed.LocalCluster` of N worker processes (one thread
  each; every worker's Numba kernels get ``cores // N`` threads) for this run only;
- ``tcp://HOST:PORT`` (also ``tls://``, ``ucx://``, ``ws://``, ``wss://``) connects to a
  running scheduler; its workers must see the lake at the same path (shared
  filesystem or object storage).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from kline_lake.download.distributed import CONNECT_TIMEOUT_S, parse_address
from kline_lake.errors import InputError

TASKS_PER_WORKER = 4  # enough tasks to balance uneven chunks and to survive a lost worker


def _local_cluster(n_workers: int) -> Any:
    import logging

    from distributed import LocalCluster

    threads = max(1, (os.cpu_count() or 1) // n_workers)
    return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                        dashboard_address=":0", silence_logs=logging.ERROR,
                        env={"NUMBA_NUM_THREADS": str(threads)})


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A `distributed.Client` for `address` (see the module docstring), closed on exit
    together with a LocalCluster it started. InputError (one line) for a bad address or
    a scheduler that cannot be reached within `CONNECT_TIMEOUT_S`."""
    kind, where = parse_address(address)
    from distributed import Client

    if kind == "local":
        with _local_cluster(int(where)) as cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(str(where), timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot reach the Dask scheduler at {where}: {reason}") from exc
    with client:
        yield client


def n_workers(client: Any) -> int:
    """Workers connected to the client's scheduler now (at least 1)."""
    return max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))


def task_points(n_points: int, chunk_points: int, workers: int) -> int:
    """Grid points per task: at most `chunk_points` (the memory plan's chunk), and small
    enough for `TASKS_PER_WORKER` tasks per worker."""
    if n_points < 1 or chunk_points < 1 or workers < 1:
        raise ValueError("n_points, chunk_points and workers must be >= 1")
    return max(1, min(chunk_points, math.ceil(n_points / (TASKS_PER_WORKER * workers))))


def grid_slice(grid: Mapping[str, Sequence[Any]], lo: int, hi: int) -> list[dict[str, Any]]:
    """Grid points ``lo:hi`` of `backtest.params.grid_product` order (first parameter
    varying slowest), decoded from their flat index without building the others."""
    names = list(grid)
    values = [list(grid[name]) for name in names]
    sizes = [len(v) for v in values]
    out = []
    for flat in range(lo, min(hi, math.prod(sizes))):
        digits = []
        for size in reversed(sizes):
            flat, digit = divmod(flat, size)
            digits.append(digit)
        out.append({name: vals[d] for name, vals, d in
                    zip(names, values, reversed(digits), strict=True)})
    return out


def map_blocks(client: Any, fn: Callable[..., Any], n_tasks: int, args: tuple,
               progress: bool = True, label: str = "chunks") -> list[Any]:
    """``[fn(*args, k) for k in range(n_tasks)]`` computed on the cluster, in order.

    Arguments that are large are the caller's to avoid (pass a lake path, not bars).
    With `progress`, prints the dashboard link and a tqdm bar of finished tasks on
    stderr. Exceptions raised by `fn` (an InputError, say) are raised here."""
    from distributed import as_completed
    from tqdm import tqdm

    if progress:
        print(f"dask: {n_workers(client)} workers, {n_tasks} {label}, dashboard "
              f"{client.dashboard_link}", file=sys.stderr)
    futures = [client.submit(fn, *args, k, pure=False) for k in range(n_tasks)]
    with tqdm(total=n_tasks, unit="chunk", desc=label, file=sys.stderr,
              disable=not progress, leave=False) as bar:
        for _ in as_completed(futures):
            bar.update(1)
    return client.gather(futures)


def scatter(client: Any, value: Any) -> Any:
    """`value` copied once to every worker (for data given in memory, not in a lake)."""
    return client.scatter(value, broadcast=True)
