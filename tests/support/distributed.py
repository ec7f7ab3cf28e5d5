"""Helpers of the Dask tests (a named module: `conftest` is ambiguous across dirs)."""

from __future__ import annotations


def new_cluster():
    """A LocalCluster of 2 worker processes (nanny-restarted when killed)."""
    import logging

    from distributed import LocalCluster

    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                        dashboard_address=":0", silence_logs=logging.CRITICAL,
                        env={"NUMBA_NUM_THREADS": "1"})
