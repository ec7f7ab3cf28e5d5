"""The fake exchange's HTTP server: one threaded server for every market and the archive.

Routes: `/api/v3/*` (spot), `/fapi/v1/*` (USD-M), `/dapi/v1/*` (COIN-M),
`/us/api/v3/*` (Binance.US), `/data/*` (the data.binance.vision archive tree) and
`GET /fake/stats` (counters; never faulted, never counted), and the WebSocket market
streams on the same port (`ws_server`: an `Upgrade: websocket` request on a stream path).

The data clock (`now_ms`) can run fast: `speed=60` makes one fake minute pass per real
second, for REST and streams alike (they read the same clock).

Binance.US uses spot's paths on its own host (api.binance.us). One server for every
market cannot do that, so it serves Binance.US under `/us`, with its own symbols,
exchangeInfo, weights, 1200/min budget and counters: spot's `/api/v3` never answers for
Binance.US. The client resolves a base URL shared by every market the same way
(`kline_lake.core.markets.resolve_base_url`: Binance.US at `<url>/us`). `venues`
restricts what a server serves (a spot-only server answers 404 under `/us`).

Weight accounting is per client IP (the peer address) and per market, see `ratelimit`.
Every REST response carries `X-MBX-USED-WEIGHT-1M`; when the window is not one minute
the honest `X-MBX-USED-WEIGHT-<n>S` header is sent too (same value: the weight used in
the current window) and exchangeInfo advertises that window.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kline_lake.fake_exchange import extras_rest, rest, weights
from kline_lake.fake_exchange.exchange_info import exchange_info
from kline_lake.fake_exchange.faults import FaultInjector, FaultSpec, parse_faults
from kline_lake.fake_exchange.params import ApiError, parse_query
from kline_lake.fake_exchange.ratelimit import WeightLimiter, header_suffix
from kline_lake.fake_exchange.ws_server import StreamHub, route, serve_stream

STAT_KEYS = ("spot", "um", "cm", "us", "archive")
VENUES = ("spot", "um", "cm", "us")
_PREFIXES = {"/api/v3/": "spot", "/fapi/v1/": "um", "/dapi/v1/": "cm", "/us/api/v3/": "us",
             # USD-M statistics outside /fapi/v1 (fapi.binance.com/futures/data/...); the
             # endpoint keeps its folder ("futures/data/openInterestHist")
             "/futures/data/": "um"}
_5XX = {
    "500": (500, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}),
    "503": (503, {"code": -1008, "msg": "Server is currently overloaded with other requests. Please try again in a few minutes."}),
}


def _json(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _sent(data: bytes, head: bool, truncate: bool = False) -> int:
    """Body bytes a response puts on the wire (counted before sending, so a client that
    reads /fake/stats right after its response sees its own request)."""
    if head:
        return 0
    return len(data) // 2 if truncate else len(data)


def _window_words(window_s: int) -> str:
    return f"{window_s // 60} MINUTE" if window_s % 60 == 0 else f"{window_s} SECOND"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-binance"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without NODELAY, Nagle's algorithm
        # and delayed ACKs add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._guarded(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._guarded(head=True)

    def _guarded(self, head: bool) -> None:
        """Serve; a bug in the fake becomes a logged 500 with the exchange's -1000 body
        instead of a silently dropped connection."""
        try:
            self.server.fx._serve(self, head=head)  # type: ignore[attr-defined]
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 (server boundary: report, answer, keep serving)
            sys.stderr.write(f"fake-exchange: error serving {self.path}\n{traceback.format_exc()}")
            body = _json({"code": -1000, "msg": "An unknown error occurred while processing the request."})
            FakeExchange._send(self, 500, body, {}, head)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests and benchmarks read /fake/stats instead of logs."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class FakeExchange:
    """A fake Binance on loopback. Use as a context manager (starts and stops a thread).

    `now_ms`: None for the real clock, an int to pin the data clock, or a callable
    returning epoch ms. It decides which klines exist and which one is still open; the
    rate-limit windows always run on the real clock. `speed`: when given, the data clock
    runs `speed` times faster than real time, from `now_ms` (an int) or the real now
    (`speed=60`: one fake minute per real second); not with a callable `now_ms`.
    `venues`: the markets served (all by default); the others answer 404 like an unknown
    path. `ws_max_age_s`: fake seconds a stream connection lives (the exchange: 24 h);
    `ws_delay_s`: real seconds a `ws-delay` fault holds messages. `universe_size`: serve
    that many generated spot pairs and USD-M perpetuals besides the fixed symbols
    (`universe.generated_spec`; 0, the default, serves the fixed table only).
    """

    def __init__(
        self,
        seed: int = 1,
        minute_seconds: float = 60,
        weight_limit: int | None = None,
        data_dir: str | Path | None = None,
        faults: str | FaultSpec | None = None,
        venues: Iterable[str] = VENUES,
        now_ms: int | Callable[[], int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        slow_s: float = 1.0,
        speed: float | None = None,
        ws_max_age_s: float = 86_400.0,
        ws_delay_s: float = 0.5,
        universe_size: int = 0,
    ) -> None:
        self.venues = tuple(venues)
        unknown = sorted(set(self.venues) - set(VENUES))
        if unknown or not self.venues:
            raise ValueError(f"venues must be a non-empty subset of {', '.join(VENUES)}, got {self.venues!r}")
        if minute_seconds < 1 or not float(minute_seconds).is_integer():
            # The exchange advertises windows in whole seconds (rateLimits intervalNum).
            raise ValueError(f"minute_seconds must be a whole number of seconds >= 1, got {minute_seconds}")
        if weight_limit is not None and weight_limit <= 0:
            raise ValueError("weight_limit must be positive")
        self.seed = seed
        self.minute_seconds = int(minute_seconds)
        self.window_s = int(minute_seconds)
        self.weight_limit = weight_limit
        self.slow_s = slow_s
        if speed is not None and (callable(now_ms) or not speed > 0):
            raise ValueError(f"speed must be > 0 and needs now_ms None or an int, got {speed!r}")
        self.speed = speed
        self._origin = (time.time(), int(time.time() * 1000) if now_ms is None else now_ms)
        self._now = now_ms
        self._host, self._port = host, port
        self.faults = FaultInjector(faults if isinstance(faults, FaultSpec) else parse_faults(faults), seed)
        self.source, self.archive = self._make_sources(seed, data_dir, universe_size)
        self._limiters = {m: self._limiter(self.budget(m), minute_seconds) for m in VENUES}
        pool_window = weights.FUNDING_POOL_WINDOW_S * minute_seconds / 60
        self._funding_pool = self._limiter(weights.FUNDING_POOL_REQUESTS, pool_window)
        data_window = weights.FUTURES_DATA_POOL_WINDOW_S * minute_seconds / 60
        self._futures_data_pool = self._limiter(weights.FUTURES_DATA_POOL_REQUESTS, data_window)
        self._stats_lock = threading.Lock()
        self._stats = self._zero_stats()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.streams = StreamHub(self, max_age_s=ws_max_age_s, delay_s=ws_delay_s)

    @property
    def clock_speed(self) -> float:
        """How many fake seconds pass per real second (0 when the clock is pinned)."""
        if self.speed is not None:
            return float(self.speed)
        return 0.0 if isinstance(self._now, int) else 1.0

    @staticmethod
    def _make_sources(seed: int, data_dir: str | Path | None,
                      universe_size: int = 0) -> tuple[Any, Any]:
        from kline_lake.fake_exchange.archive import SyntheticArchive

        if data_dir is None:
            source = rest.SyntheticSource(seed, universe_size)
            return source, SyntheticArchive(source)
        from kline_lake.fake_exchange.real_data import RealSource

        real = RealSource(Path(data_dir))
        return real, real

    def _limiter(self, limit: int, window_s: float) -> WeightLimiter:
        m = self.minute_seconds
        return WeightLimiter(limit, window_s, ban_base_s=2 * m, ban_max_s=3 * 24 * 60 * m, clock=time.time)

    def budget(self, market: str) -> int:
        """The weight budget per window of `market`."""
        return self.weight_limit or weights.WEIGHT_PER_MINUTE[market]

    def now_ms(self) -> int:
        """The data clock (epoch ms)."""
        if self.speed is not None:
            real0, fake0 = self._origin
            return int(fake0 + (time.time() - real0) * 1000 * self.speed)
        if self._now is None:
            return int(time.time() * 1000)
        if callable(self._now):
            return int(self._now())
        return int(self._now)

    # ---- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeExchange:
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.fx = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fake-exchange", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self.streams.close_all()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake exchange is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    # ---- stats -----------------------------------------------------------------------

    @staticmethod
    def _zero_stats() -> dict[str, dict[str, int]]:
        return {k: {"requests": 0, "weight": 0, "429": 0, "418": 0, "bytes": 0} for k in STAT_KEYS}

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per market and, under "ws", of the streams (the body of GET /fake/stats)."""
        with self._stats_lock:
            out = {k: dict(v) for k, v in self._stats.items()}
        out["ws"] = self.streams.stats()
        return out

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._stats = self._zero_stats()
        self.streams.reset()

    def _count(self, key: str, weight: int = 0, status: int = 200, nbytes: int = 0) -> None:
        with self._stats_lock:
            st = self._stats[key]
            st["requests"] += 1
            st["weight"] += weight
            st["bytes"] += nbytes
            if status in (429, 418):
                st[str(status)] += 1

    # ---- request handling ------------------------------------------------------------

    def _serve(self, req: _Handler, head: bool) -> None:
        url = urlsplit(req.path)
        path = url.path
        if path == "/fake/stats":
            self._send(req, 200, _json(self.stats()), {}, head)
            return
        if path.startswith("/data/"):
            self._serve_archive(req, path, head)
            return
        if req.headers.get("Upgrade", "").lower() == "websocket" and not head:
            ws_market, ws_path = route(path)
            if ws_market is not None and ws_market in self.venues:
                serve_stream(self, self.streams, req, ws_market, ws_path, url.query)
                return
        market_name, endpoint = self._route(path)
        if market_name is None:
            self._send(req, 404, _json({"code": -5000, "msg": f"Path {path}, Method GET is invalid"}), {}, head)
            return
        self._serve_rest(req, market_name, endpoint, url.query, head)

    def reject_upgrade(self, req: _Handler, msg: str, status: int = 400) -> None:
        """Refuse a stream upgrade with `status` and the exchange's error body."""
        self._send(req, status, _json({"code": -1100 if status == 400 else -1003, "msg": msg}), {}, False)
        req.close_connection = True

    def _route(self, path: str) -> tuple[str | None, str]:
        for prefix, name in _PREFIXES.items():
            if path.startswith(prefix):
                endpoint = path[len(prefix):]
                if prefix == "/futures/data/":
                    endpoint = prefix[1:] + endpoint
                served = name in self.venues and rest.known_endpoint(name, endpoint)
                return (name, endpoint) if served else (None, "")
        return None, ""

    def _serve_rest(self, req: _Handler, market_name: str, endpoint: str, query: str, head: bool) -> None:
        client = req.client_address[0]
        limiter = self._limiters[market_name]
        suffix = header_suffix(self.window_s)
        fault = self.faults.draw(is_zip=False)

        def headers(used: int) -> dict[str, str]:
            out = {"X-MBX-USED-WEIGHT-1M": str(used)}
            if suffix != "1M":
                out[f"X-MBX-USED-WEIGHT-{suffix}"] = str(used)
            return out

        if fault in _5XX or fault == "drop":
            if fault == "drop":
                self._count(market_name)
                req.close_connection = True
                return
            status, body = _5XX[fault]
            data = _json(body)
            self._count(market_name, status=status, nbytes=_sent(data, head))
            self._send(req, status, data, headers(limiter.used(client)), head)
            return
        if fault == "slow":
            time.sleep(self.slow_s)
        try:
            params = parse_query(query)
        except ApiError as exc:
            params, parse_error = {}, exc
        else:
            parse_error = None
        if endpoint in rest.KEY_GATED_ENDPOINTS and not req.headers.get("X-MBX-APIKEY"):
            parse_error = rest.missing_key_error()
        weight = rest.weight_of(market_name, endpoint, params)
        decision = limiter.charge(client, weight)
        if decision.status == 200 and endpoint in weights.FUNDING_POOL_ENDPOINTS.get(market_name, ()):
            decision = self._funding_pool.charge(client, 1)
        elif decision.status == 200 and endpoint in extras_rest.ENDPOINTS:
            pooled = self._futures_data_pool.charge(client, 1)
            decision = decision if pooled.status == 200 else pooled
        if decision.status != 200:
            data = _json(self._limit_body(decision.status, market_name))
            hdrs = {**headers(decision.used), "Retry-After": str(decision.retry_after_s)}
            self._count(market_name, status=decision.status, nbytes=_sent(data, head))
            self._send(req, decision.status, data, hdrs, head)
            return
        status, data = self._rest_body(market_name, endpoint, params, parse_error)
        self._count(market_name, weight=weight, nbytes=_sent(data, head, fault == "truncate"))
        self._send(req, status, data, headers(decision.used), head, truncate=fault == "truncate")

    def _rest_body(self, venue: str, endpoint: str, params: dict[str, str], parse_error: ApiError | None) -> tuple[int, bytes]:
        now = self.now_ms()
        try:
            if parse_error is not None:
                raise parse_error
            if endpoint in extras_rest.ENDPOINTS:
                body = extras_rest.handle(self.source, venue, endpoint, params, now)
            else:
                body = rest.handle(self.source, venue, endpoint, params, now,
                                   lambda specs: self._exchange_info(venue, now, specs))
        except ApiError as exc:
            return exc.status, _json(exc.body())
        return 200, _json(body)

    def _exchange_info(self, market: str, now_ms: int, specs: list[Any]) -> dict[str, Any]:
        return exchange_info(market, specs, now_ms, self.budget(market), self.window_s)

    def _limit_body(self, status: int, market: str) -> dict[str, Any]:
        if status == 429:
            return {"code": -1003, "msg": f"Too much request weight used; current limit is {self.budget(market)} "
                    f"request weight per {_window_words(self.window_s)}. "
                    "Please use WebSocket Streams for live updates to avoid polling the API."}
        return {"code": -1003, "msg": "Way too much request weight used; IP banned. "
                "Please use WebSocket Streams for live updates to avoid bans."}

    def _serve_archive(self, req: _Handler, path: str, head: bool) -> None:
        fault = self.faults.draw(is_zip=path.endswith(".zip"))
        if fault == "drop":
            self._count("archive")
            req.close_connection = True
            return
        if fault in _5XX:
            status, body = _5XX[fault]
            data = _json(body)
            self._count("archive", nbytes=_sent(data, head))
            self._send(req, status, data, {}, head)
            return
        if fault == "slow":
            time.sleep(self.slow_s)
        data = self.archive.get(path, self.now_ms())
        if data is None:
            body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
            self._count("archive", nbytes=_sent(body, head))
            self._send(req, 404, body, {}, head, content_type="application/xml")
            return
        if fault == "corrupt-archive":
            data = bytes(b ^ 0xFF if i % 97 == 0 else b for i, b in enumerate(data))
        ctype = "application/zip" if path.endswith(".zip") else "text/plain"
        self._count("archive", nbytes=_sent(data, head, fault == "truncate"))
        self._send(req, 200, data, {}, head, truncate=fault == "truncate", content_type=ctype)

    @staticmethod
    def _send(req: _Handler, status: int, data: bytes, headers: dict[str, str], head: bool,
              truncate: bool = False, content_type: str = "application/json;charset=UTF-8") -> None:
        try:
            req.send_response(status)
            req.send_header("Content-Type", content_type)
            req.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                req.send_header(name, value)
            if truncate:
                req.send_header("Connection", "close")
            req.end_headers()
            if not head:
                req.wfile.write(data[: len(data) // 2] if truncate else data)
            if truncate:
                req.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            req.close_connection = True
