"""Async REST client for the exchange: one connection pool per host, one shared weight
limiter per (host, API prefix), and the one place where HTTP outcomes become typed errors.

Outcome mapping (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-api-information):
- 2xx with a JSON body of the expected type -> returned.
- 429 -> the limiter stops everyone for `Retry-After`, then the request is retried.
- 418 -> waited out if short, else `BannedError` (never provoked: see rate_limiter).
  Either wait is told to `on_wait` (one line, e.g. the download's progress display).
- 5xx, timeouts, dropped connections, truncated or malformed bodies -> the outcome is
  unknown; bounded retries with exponential backoff and jitter (`retry`), then
  `TransientError`.
- other 4xx with a Binance body `{"code": -1121, "msg": "Invalid symbol."}` ->
  `BinanceAPIError`, never retried (repeating a wrong request only spends weight).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from kline_lake.core.markets import Market
from kline_lake.errors import BinanceAPIError, TransientError
from kline_lake.exchange.rate_limiter import RateLimiter, RateWindow
from kline_lake.exchange.request_stats import RequestStats
from kline_lake.exchange.retry import Clock, RetryPolicy, SystemClock, backoff_delay_s
from kline_lake.exchange.weight_ledger import ledger_for
from kline_lake.exchange.weights import request_weight

DEFAULT_TIMEOUT_S = 20.0
DEFAULT_MAX_IN_FLIGHT = 16


class _Retryable(Exception):
    """Internal: a failure worth retrying, with the reason for the final message."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class _RateLimited(Exception):
    def __init__(self, status: int, retry_after_s: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after_s = retry_after_s


def parse_retry_after_s(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` in seconds (the exchange sends an integer), None if absent/garbled."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_response(status: int, headers: Mapping[str, str], body: bytes, url: str,
                      expect: type | None) -> Any:
    """Pure outcome mapping of one HTTP answer: the decoded JSON, or an exception raised.

    Raises `_RateLimited` (429/418), `_Retryable` (5xx, bad body) or `BinanceAPIError`.
    """
    if status in (429, 418):
        raise _RateLimited(status, parse_retry_after_s(headers))
    if status >= 500:
        raise _Retryable(f"HTTP {status}", parse_retry_after_s(headers))
    if status >= 400:
        code, msg = None, body[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
        try:
            payload = json.loads(body)
            if isinstance(payload, dict):
                code, msg = payload.get("code"), str(payload.get("msg", msg))
        except ValueError:
            pass  # not a Binance error body: keep the raw text as the message
        raise BinanceAPIError(status, code, msg, url)
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise _Retryable(f"malformed JSON body ({len(body)} bytes): {exc}") from None
    if expect is not None and not isinstance(payload, expect):
        raise _Retryable(f"unexpected JSON {type(payload).__name__}, expected {expect.__name__}")
    return payload


def host_of(base_url: str) -> str:
    """`scheme://host:port` of a base URL: the key of a connection pool."""
    parts = urlsplit(base_url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"invalid base URL {base_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def default_windows(market: Market) -> list[RateWindow]:
    """The published budget of `market`, used until exchangeInfo says otherwise."""
    return [RateWindow("REQUEST_WEIGHT", market.weight_per_minute, 60.0)]


class ExchangeClient:
    """REST calls to one market through a shared pool and limiter (see `Session`).

    `stats` (a `RequestStats`, new by default) counts what this client sent and got.
    """

    def __init__(self, market: Market, base_url: str, http: httpx.AsyncClient,
                 limiter: RateLimiter, *, retry: RetryPolicy, clock: Clock,
                 semaphore: asyncio.Semaphore, stats: RequestStats | None = None) -> None:
        self.market = market
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.limiter = limiter
        self.retry = retry
        self.clock = clock
        self.stats = stats if stats is not None else RequestStats()
        self._semaphore = semaphore
        # Told (one line) whenever a 429/418 makes every request wait; None = nobody.
        self.on_wait: Callable[[str], None] | None = None
        self._announced_until_s = 0.0

    def url(self, endpoint: str) -> str:
        """The URL of `endpoint`: below the API prefix, or an absolute path as given
        (USD-M's `/futures/data/...` statistics live outside `/fapi/v1`)."""
        if endpoint.startswith("/"):
            return f"{self.base_url}{endpoint}"
        return f"{self.base_url}{self.market.api_prefix}/{endpoint}"

    def weight_of(self, endpoint: str, limit: int | None = None) -> int:
        return request_weight(self.market, endpoint, limit)

    async def get(self, endpoint: str, params: Mapping[str, Any] | None = None, *,
                  weight: int | None = None, pools: Iterable[str] = (),
                  expect: type | None = None, headers: Mapping[str, str] | None = None) -> Any:
        """GET `endpoint` (below the market's API prefix) and return its decoded JSON.
        `headers` are sent as given and never logged (the API key of key-gated endpoints).

        Waits for the weight budget before every attempt. Raises BinanceAPIError,
        BannedError or TransientError (after the retry budget).
        """
        params = {k: v for k, v in (params or {}).items() if v is not None}
        if weight is None:
            weight = self.weight_of(endpoint, params.get("limit"))
        url = self.url(endpoint)
        pools = tuple(pools)
        failures = 0
        limited = 0
        while True:
            try:
                return await self._attempt(url, params, weight, pools, expect, headers)
            except _RateLimited as exc:
                limited += 1
                retry_after = exc.retry_after_s
                if retry_after is None:
                    retry_after = self.limiter_window_wait_s()
                if exc.status == 418:
                    self.limiter.on_418(retry_after, url)
                else:
                    self.limiter.on_429(retry_after)
                self._announce_wait(exc.status, retry_after)
                if limited > self.retry.max_rate_limited:
                    raise TransientError(f"{url}: still rate limited after {limited} answers") from None
            except _Retryable as exc:
                if failures + 1 >= self.retry.max_attempts:
                    raise TransientError(
                        f"{url}: {exc.reason} (gave up after {failures + 1} attempts)"
                    ) from None
                delay = backoff_delay_s(failures, self.retry, self.clock.random())
                if exc.retry_after_s is not None:
                    delay = max(delay, exc.retry_after_s)
                failures += 1
                self.stats.record_retry()
                await self.clock.sleep(delay)

    def _announce_wait(self, status: int, retry_after_s: float) -> None:
        """Say once (not per request in flight) how long a 429/418 stops sending: its
        Retry-After, or longer when the limiter also waits for its window to end."""
        if self.on_wait is None:
            return
        wait_s = max(retry_after_s, self.limiter.blocked_for_s(), self.limiter.time_to_window_end_s())
        until_s = self.clock.time() + wait_s
        if until_s <= self._announced_until_s + 1.0:
            return
        self._announced_until_s = until_s
        what = "IP banned" if status == 418 else "request weight over the limit"
        then = ", then the end of the weight window" if wait_s > retry_after_s + 1.0 else ""
        self.on_wait(f"HTTP {status} ({what}) from {self.base_url}: waiting {wait_s:.0f} s "
                     f"before sending again (Retry-After {retry_after_s:.0f} s{then})")

    def limiter_window_wait_s(self) -> float:
        """Fallback back-off when a 429 lacks Retry-After: until the longest window ends."""
        return self.limiter.time_to_window_end_s()

    async def _attempt(self, url: str, params: Mapping[str, Any], weight: int,
                       pools: tuple[str, ...], expect: type | None,
                       headers: Mapping[str, str] | None = None) -> Any:
        async with self._semaphore:
            ticket = await self.limiter.acquire(weight, pools=pools)
            self.stats.record_sent(weight)
            try:
                response = await self.http.get(url, params=params, headers=headers)
                self.stats.record_answer(response.status_code)
                self.limiter.observe_headers(response.headers, ticket)
            except httpx.TimeoutException as exc:
                raise _Retryable(f"timeout ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                # dropped connection, reset, truncated body (RemoteProtocolError)...
                raise _Retryable(f"connection failed ({type(exc).__name__}: {exc})") from None
            finally:
                self.limiter.release(ticket)
        self.stats.record_received(len(response.content))
        return classify_response(response.status_code, response.headers, response.content,
                                 url, expect)


class Session:
    """One httpx connection pool per host and one rate limiter per (host, API prefix),
    shared by every client it hands out. Use as an async context manager.

    `share_budget` (default on) also reserves weight in a per-machine ledger file (see
    `weight_ledger.SharedLedger`) so concurrent processes split one IP's budget.
    """

    def __init__(self, *, transport: httpx.AsyncBaseTransport | None = None,
                 clock: Clock | None = None, retry: RetryPolicy | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 margin_fraction: float | None = None,
                 share_budget: bool = True) -> None:
        self.transport = transport
        self.clock: Clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self.margin_fraction = margin_fraction
        self.share_budget = share_budget
        self._http: dict[str, httpx.AsyncClient] = {}
        self._limiters: dict[tuple[str, str], RateLimiter] = {}
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._clients: dict[tuple[str, str], ExchangeClient] = {}

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _pool(self, host: str) -> httpx.AsyncClient:
        if host not in self._http:
            limits = httpx.Limits(max_connections=self.max_in_flight,
                                  max_keepalive_connections=self.max_in_flight)
            self._http[host] = httpx.AsyncClient(
                transport=self.transport, timeout=httpx.Timeout(self.timeout_s),
                limits=limits, headers={"User-Agent": "kline-lake"},
            )
            self._semaphores[host] = asyncio.Semaphore(self.max_in_flight)
        return self._http[host]

    def limiter(self, market: Market, base_url: str) -> RateLimiter:
        """The limiter shared by every request to `market`'s API at `base_url`'s host
        (keyed by the API's full path: Binance.US under `/us` is not spot's `/api/v3`)."""
        key = (host_of(base_url), urlsplit(base_url).path.rstrip("/") + market.api_prefix)
        if key not in self._limiters:
            kwargs = {} if self.margin_fraction is None else {"margin_fraction": self.margin_fraction}
            ledger = ledger_for(*key) if self.share_budget else None
            self._limiters[key] = RateLimiter(default_windows(market), clock=self.clock,
                                              ledger=ledger, **kwargs)
        return self._limiters[key]

    def client(self, market: Market, base_url: str) -> ExchangeClient:
        """A client for `market` at `base_url` (one per pair, reused)."""
        key = (base_url.rstrip("/"), market.name)
        if key not in self._clients:
            host = host_of(base_url)
            http = self._pool(host)
            self._clients[key] = ExchangeClient(
                market, base_url, http, self.limiter(market, base_url), retry=self.retry,
                clock=self.clock, semaphore=self._semaphores[host],
            )
        return self._clients[key]

    async def aclose(self) -> None:
        for http in self._http.values():
            await http.aclose()
        self._http.clear()
        for limiter in self._limiters.values():
            if limiter.ledger is not None:
                limiter.ledger.close()
