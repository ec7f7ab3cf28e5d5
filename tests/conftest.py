"""Fixtures shared by every test package.

Expensive servers are started once a session and shared by every package that uses
them (a fixture imported into several modules would be one server per module):

- `cluster`: a Dask LocalCluster of 2 worker processes (`tests.support.distributed`),
  for tests that only submit work to it. A test that kills a worker, or needs workers
  with another environment, starts its own cluster.
- `moto_server`: the loopback S3-compatible server behind `tests.support.storage`'s
  `s3_server`; each test gets its own bucket there.

Every test has a private weight-ledger directory (`KLINE_LAKE_STATE_DIR`, inherited by
the CLI subprocesses it starts; see `kline_lake.exchange.weight_ledger`): no test writes
the user's ~/.cache, and tests running at once (pytest-xdist workers, two checkouts) never
split one loopback host's budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.distributed import new_cluster

# Real exchange files vendored into the repository (provenance in its README.md).
REAL_DATA = Path(__file__).resolve().parent / "data" / "real_data"


@pytest.fixture(autouse=True)
def _private_weight_ledger(tmp_path_factory: pytest.TempPathFactory,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the vendored real exchange files (laid out as data.binance.vision)."""
    return REAL_DATA


@pytest.fixture(scope="session")
def cluster() -> Iterator[object]:
    """One LocalCluster of 2 worker processes for the whole session (see the docstring)."""
    with new_cluster() as c:
        yield c


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The URL of one moto ThreadedMotoServer on loopback for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
