"""The follower's REST side: one session for the follower's whole life.

Every REST call a follower makes (the exchange check, the catch-up download, each
backfill download, the agg-trade `fromId` pages) goes through one
`kline_lake.exchange.client.Session`: one HTTP connection pool per host and one weight
limiter per API (with the machine-wide ledger), so a burst of backfills after a
reconnect storm shares one budget and one set of keep-alive connections instead of
opening a session per hole. The session's httpx pool is bound to an event loop, so the
calls run on one `asyncio.Runner` kept open until `close`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from kline_lake.core.markets import Market
from kline_lake.download.orchestrate import run_download
from kline_lake.download.progress import RunTotals
from kline_lake.download.request import DownloadRequest
from kline_lake.exchange.client import ExchangeClient, Session
from kline_lake.exchange.request_stats import RequestStats

T = TypeVar("T")


class RestSide:
    """One session, one client and one limiter per follower (see the module docstring).
    Not thread-safe: the follower's main thread is its only user."""

    def __init__(self, market: Market, base_url: str) -> None:
        self.market, self.base_url = market, base_url
        self._runner = asyncio.Runner()
        self.session = Session()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the follower's event loop."""
        return self._runner.run(coro)

    @property
    def client(self) -> ExchangeClient:
        """The follower's one client of its market (shared limiter and pool)."""
        return self.session.client(self.market, self.base_url)

    @property
    def stats(self) -> RequestStats:
        """Running totals of every request the follower sent."""
        return self.client.stats

    def download(self, request: DownloadRequest) -> RunTotals:
        """`run_download(request)` through the follower's session."""
        return self.run(run_download(request, session=self.session))

    def close(self) -> None:
        """Close the session's connections and the event loop."""
        try:
            self.run(self.session.aclose())
        finally:
            self._runner.close()
