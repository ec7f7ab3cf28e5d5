"""Fixtures: running fake exchanges on loopback with a pinned data clock."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.universe import utc_ms

NOW_MS = utc_ms("2025-11-20 12:34") + 56_789  # pinned server clock for data


@pytest.fixture(scope="session")
def fx() -> Iterator[FakeExchange]:
    """A shared synthetic exchange (seed 1, pinned clock); do not exhaust its weight."""
    with FakeExchange(seed=1, now_ms=NOW_MS) as exchange:
        yield exchange


@pytest.fixture()
def client(fx: FakeExchange) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fx.base_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def now_ms() -> int:
    """The pinned data clock of the shared `fx` exchange."""
    return NOW_MS
