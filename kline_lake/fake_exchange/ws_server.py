"""The fake exchange's WebSocket market streams, served on the HTTP server's own port.

An HTTP request with `Upgrade: websocket` on a stream path is handed over by `server`
to `serve_stream`, which does the RFC 6455 handshake and framing with the `websockets`
package's sans-I/O protocol (`websockets.server.ServerProtocol`) on the handler's socket;
the connection then lives in the handler thread (one thread per connection).

Paths (one server for every market, so each market's stream host has a root here, see
`kline_lake.core.markets.Market.ws_shared_root`): spot at `/ws...` and `/stream...`, USD-M
below `/fstream`, COIN-M below `/dstream`, Binance.US below `/us`.
- `/ws/<stream>[/<stream>...]`: raw events; `/ws` alone: subscribe by message.
- `/stream?streams=<a>/<b>`: combined events `{"stream": <name>, "data": <event>}`.
- JSON messages `{"method": "SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS", "params":
  [...], "id": n}` answered `{"result": null|[...], "id": n}`.

Exchange rules enforced (spot: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams ;
USD-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams):
- at most 5 incoming messages per second per spot connection (10 on futures): PING, PONG
  and JSON control frames count; beyond it the connection is closed (counted
  `closed_rate`); the limit is per real second.
- at most 1024 streams per spot connection, 200 on futures (counted `closed_streams`).
- at most 300 connection attempts per 5 minutes per IP (real time): beyond it the
  upgrade is refused with 429 (counted `refused_connects`).
- the server pings every 20 s (futures: 3 minutes) and drops a client whose pong does not
  come within 1 minute (futures: 10 minutes); a connection is cut after 24 hours. These
  three are in fake time, so scaled by the clock's speed (pings no more often than
  every `min_ping_s` real seconds).
Stream faults (`ws-*` in the fault spec) are applied per message sent (`faults`).
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from kline_lake.fake_exchange.ws_streams import (
    AggTradeFeed,
    BookTickerFeed,
    KlineBook,
    KlineFeed,
    MarkPriceFeed,
    StreamName,
    parse_stream,
)

MAX_CONNECTS_PER_WINDOW = 300
CONNECT_WINDOW_S = 300.0
WS_ROOTS = {"": "spot", "/fstream": "um", "/dstream": "cm", "/us": "us"}


@dataclass(frozen=True)
class StreamRules:
    """The exchange's per-connection rules for one market (fake-time periods in s)."""

    max_streams: int
    max_messages_per_s: int
    ping_every_s: float
    pong_timeout_s: float
    kline_update_ms: int  # how often an open kline is updated, fake ms


SPOT_RULES = StreamRules(1024, 5, 20.0, 60.0, 2000)
FUTURES_RULES = StreamRules(200, 10, 180.0, 600.0, 250)
RULES = {"spot": SPOT_RULES, "us": SPOT_RULES, "um": FUTURES_RULES, "cm": FUTURES_RULES}
STAT_NAMES = ("connections", "open", "messages_in", "messages_out", "control_messages",
              "closed_rate", "closed_streams", "closed_expired", "closed_pong", "max_streams",
              "peak_messages_per_s", "refused_connects", "ws-drop", "ws-silent", "ws-dup", "ws-delay", "ws-reorder", "ws-miss")


def route(path: str) -> tuple[str | None, str]:
    """(market, path below its root) of a stream path, or (None, '')."""
    for root in sorted(WS_ROOTS, key=len, reverse=True):
        rest = path[len(root):]
        if path.startswith(root) and (rest == "/ws" or rest.startswith("/ws/") or rest == "/stream"):
            return WS_ROOTS[root], rest
    return None, ""


class StreamHub:
    """Shared state of every stream connection: counters, kline books, open sessions."""

    def __init__(self, fx: Any, max_age_s: float = 86_400.0, delay_s: float = 0.5,
                 min_ping_s: float = 1.0, tick_s: float = 0.05, open_update_s: float = 0.25) -> None:
        self.fx = fx
        self.max_age_s, self.delay_s, self.min_ping_s = max_age_s, delay_s, min_ping_s
        self.tick_s, self.open_update_s = tick_s, open_update_s
        self._lock = threading.Lock()
        self._stats = dict.fromkeys(STAT_NAMES, 0)
        self._books: dict[tuple[str, str, str], KlineBook] = {}
        self._sessions: set[StreamSession] = set()
        self._attempts: dict[str, deque[float]] = {}

    def admit(self, client_ip: str) -> bool:
        """Count a connection attempt; False past 300 per 5 minutes from one IP."""
        now = time.monotonic()
        with self._lock:
            times = self._attempts.setdefault(client_ip, deque())
            while times and times[0] <= now - CONNECT_WINDOW_S:
                times.popleft()
            if len(times) >= MAX_CONNECTS_PER_WINDOW:
                self._stats["refused_connects"] += 1
                return False
            times.append(now)
            return True

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._stats[name] += n

    def peak(self, name: str, value: int) -> None:
        with self._lock:
            self._stats[name] = max(self._stats[name], value)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._stats)

    def reset(self) -> None:
        with self._lock:
            open_now = self._stats["open"]
            self._stats = dict.fromkeys(STAT_NAMES, 0)
            self._stats["open"] = open_now

    def feed(self, market: str, name: StreamName, now_ms: int) -> Any:
        spec = self.fx.source.spec(market, name.symbol)
        if name.kind == "aggTrade":
            return AggTradeFeed(name, self.fx.source, spec, now_ms)
        if name.kind == "markPrice":  # futures only: elsewhere a name that never sends
            return MarkPriceFeed(name, self.fx.source, spec if market in ("um", "cm") else None, now_ms)
        if name.kind == "bookTicker":  # spot/us: spot's payload (no event type, no times)
            return BookTickerFeed(name, self.fx.source, spec, now_ms, spot=market in ("spot", "us"))
        book = None
        if spec is not None:
            with self._lock:
                book = self._books.setdefault((market, name.symbol, name.interval),
                                              KlineBook(self.fx.source, spec, name.interval))
        return KlineFeed(name, book, now_ms)

    def add(self, session: StreamSession) -> None:
        with self._lock:
            self._sessions.add(session)
            self._stats["connections"] += 1
            self._stats["open"] += 1

    def remove(self, session: StreamSession) -> None:
        with self._lock:
            self._sessions.discard(session)
            self._stats["open"] -= 1

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions)
        for s in sessions:
            s.kill()


def _raw_request(req: Any) -> bytes:
    """The upgrade request as the sans-I/O parser wants it. The path was routed already,
    and a combined-stream URL may be longer than the parser's 8 KiB line limit, so the
    parser sees only the headers it checks (method and path are not used by `accept`)."""
    head = "GET / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in req.headers.items()) + "\r\n"
    return head.encode("latin-1")


def handshake(req: Any) -> ServerProtocol | None:
    """Answer the upgrade on the handler's socket; the open protocol, or None."""
    proto = ServerProtocol(max_size=1 << 20)
    proto.receive_data(_raw_request(req))
    events = proto.events_received()
    if not events or not isinstance(events[0], Request):
        return None
    response = proto.accept(events[0])
    proto.send_response(response)
    req.connection.sendall(b"".join(proto.data_to_send()))
    return proto if proto.state is State.OPEN else None


class StreamSession:
    """One client connection: subscriptions, ticks, pings, limits and faults."""

    def __init__(self, hub: StreamHub, req: Any, market: str, combined: bool,
                 names: list[StreamName], proto: ServerProtocol) -> None:
        self.hub, self.req, self.market, self.combined = hub, req, market, combined
        self.sock: socket.socket = req.connection
        self.proto = proto
        self.rules = RULES[market]
        self.speed = max(hub.fx.clock_speed, 1e-9)
        self.feeds: dict[str, Any] = {}
        self.closed = False
        self.silent = False
        self._in_times: deque[float] = deque()
        self._held: deque[tuple[float, bytes]] = deque()  # delayed messages (release time, data)
        self._reorder: bytes | None = None
        now = time.monotonic()
        self._expire_at = now + hub.max_age_s / self.speed
        self._ping_every = max(hub.min_ping_s, self.rules.ping_every_s / self.speed)
        self._pong_timeout = max(3 * self._ping_every, self.rules.pong_timeout_s / self.speed)
        self._next_ping = now + self._ping_every
        self._pong_due: float | None = None
        self._open_every = max(hub.open_update_s, self.rules.kline_update_ms / 1000 / self.speed)
        self._next_open = now
        self._closing_at: float | None = None
        self._poller = select.poll()
        self._poller.register(self.sock, select.POLLIN)
        self._subscribe([n.text for n in names], now_ms=hub.fx.now_ms())

    # ---- I/O ---------------------------------------------------------------------------

    def kill(self) -> None:
        """Drop the TCP connection (server stop, ws-drop)."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _flush(self) -> None:
        if self.silent:
            self.proto.data_to_send()  # a silent connection answers nothing, not even pings
            return
        for chunk in self.proto.data_to_send():
            if chunk:
                self.sock.sendall(chunk)
            else:  # the protocol's end of stream: half-close, then wait for the client's EOF
                self.sock.shutdown(socket.SHUT_WR)
        if self.proto.state is State.CLOSED:
            self.closed = True

    def _close(self, code: int, reason: str, stat: str | None = None) -> None:
        """Start the closing handshake; `run` then waits (a bounded time) for the client's
        close frame, so the client sees the code instead of a reset."""
        if stat:
            self.hub.count(stat)
        self.silent = False
        if self.proto.state is State.OPEN:
            self.proto.send_close(code, reason)
            self._closing_at = time.monotonic()
        self._flush()

    def run(self) -> None:
        """Serve until the client leaves, a rule closes the connection or the server stops."""
        self.hub.add(self)
        try:
            while not self.closed:
                now = time.monotonic()
                wait = max(0.0, min(self._next_tick_at(now), self._expire_at) - now)
                # poll, not select: a process may hold more than FD_SETSIZE descriptors
                if self._poller.poll(wait * 1000):
                    data = self.sock.recv(65536)
                    if not data:
                        break
                    self._on_data(data)
                if self._closing_at is not None:
                    if time.monotonic() - self._closing_at > 2.0:
                        break
                elif not self.closed:
                    self._timers(time.monotonic())
        except OSError:
            pass
        finally:
            self.hub.remove(self)
            self.closed = True

    def _next_tick_at(self, now: float) -> float:
        at = min(now + self.hub.tick_s, self._next_ping)
        if self._held:
            at = min(at, self._held[0][0])
        return at

    # ---- incoming ------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        self.proto.receive_data(data)
        for frame in self.proto.events_received():
            if self.silent or self._closing_at is not None:
                continue
            if frame.opcode in (Opcode.TEXT, Opcode.PING, Opcode.PONG) and not self._rate_ok():
                return
            if frame.opcode is Opcode.PONG:
                self._pong_due = None
            elif frame.opcode is Opcode.TEXT:
                self.hub.count("control_messages")
                self._control(frame.data)
        self._flush()
        if self.proto.state is not State.OPEN and self._closing_at is None:
            self._closing_at = time.monotonic()  # the client started the closing handshake

    def _rate_ok(self) -> bool:
        now = time.monotonic()
        self._in_times.append(now)
        while self._in_times and self._in_times[0] <= now - 1.0:
            self._in_times.popleft()
        self.hub.count("messages_in")
        if len(self._in_times) > self.rules.max_messages_per_s:
            self._close(1008, "Too many requests", "closed_rate")
            return False
        self.hub.peak("peak_messages_per_s", len(self._in_times))
        return True

    def _control(self, data: bytes) -> None:
        try:
            msg = json.loads(data)
            method, msg_id = msg["method"], msg.get("id")
            params = msg.get("params", [])
            if method not in ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS") or not isinstance(params, list):
                raise ValueError(method)
        except (ValueError, KeyError, TypeError):
            self._reply({"error": {"code": 2, "msg": "Invalid request"}, "id": None})
            return
        if method == "LIST_SUBSCRIPTIONS":
            self._reply({"result": list(self.feeds), "id": msg_id})
            return
        bad = [p for p in params if parse_stream(p) is None]
        if bad:
            self._reply({"error": {"code": 2, "msg": f"Invalid request: unknown stream {bad[0]!r}"}, "id": msg_id})
            return
        if method == "SUBSCRIBE":
            if not self._subscribe(params, self.hub.fx.now_ms()):
                return
        else:
            for p in params:
                self.feeds.pop(p, None)
        self._reply({"result": None, "id": msg_id})

    def _subscribe(self, names: list[str], now_ms: int) -> bool:
        for text in names:
            if text not in self.feeds:
                self.feeds[text] = self.hub.feed(self.market, parse_stream(text), now_ms)
        if len(self.feeds) > self.rules.max_streams:
            self._close(1008, "Too many streams", "closed_streams")
            return False
        self.hub.peak("max_streams", len(self.feeds))
        return True

    def _reply(self, body: dict[str, Any]) -> None:
        self.proto.send_text(json.dumps(body, separators=(",", ":")).encode())

    # ---- outgoing ------------------------------------------------------------------------

    def _timers(self, now: float) -> None:
        if now >= self._expire_at:
            self._close(1000, "24 hour limit", "closed_expired")
            return
        if self._pong_due is not None and now >= self._pong_due and not self.silent:
            self._close(1008, "Pong timeout", "closed_pong")
            return
        if now >= self._next_ping:
            self._next_ping = now + self._ping_every
            if not self.silent:
                self.proto.send_ping(b"fake-binance")
                self._pong_due = self._pong_due or now + self._pong_timeout
        send_open = now >= self._next_open
        if send_open:
            self._next_open = now + self._open_every
        if not self.silent:
            now_ms = self.hub.fx.now_ms()
            for text, feed in list(self.feeds.items()):
                if self.closed or self.silent or self._closing_at is not None:
                    break
                for event in feed.poll(now_ms, send_open):
                    self._emit(text, event)
                    if self.closed or self.silent or self._closing_at is not None:
                        break
        self._release(now)
        self._flush()

    def _emit(self, stream: str, event: dict[str, Any]) -> None:
        body = {"stream": stream, "data": event} if self.combined else event
        data = json.dumps(body, separators=(",", ":")).encode()
        fault = self.hub.fx.faults.draw_ws()
        if fault is not None:
            self.hub.count(fault)
        if fault == "ws-drop":
            self.kill()
            return
        if fault == "ws-silent":
            self.silent = True
            return
        if fault == "ws-miss":
            return
        if fault == "ws-reorder" and self._reorder is None:
            self._reorder = data
            return
        release = time.monotonic() + (self.hub.delay_s if fault == "ws-delay" else 0.0)
        if self._held:
            release = max(release, self._held[-1][0])  # a delay holds what follows too
        self._held.append((release, data))
        if fault == "ws-dup":
            self._held.append((release, data))
        if self._reorder is not None:
            self._held.append((release, self._reorder))
            self._reorder = None

    def _release(self, now: float) -> None:
        while self._held and self._held[0][0] <= now and self.proto.state is State.OPEN:
            self.proto.send_text(self._held.popleft()[1])
            self.hub.count("messages_out")


def serve_stream(fx: Any, hub: StreamHub, req: Any, market: str, path: str, query: str) -> None:
    """Handle one upgrade request on a stream path of `market` (see the module docstring)."""
    from urllib.parse import parse_qs

    req.close_connection = True
    combined = path == "/stream"
    if combined:
        texts = [t for t in parse_qs(query).get("streams", [""])[0].split("/") if t]
    else:
        texts = [t for t in path[len("/ws"):].split("/") if t]
    names = [parse_stream(t) for t in texts]
    if any(n is None for n in names):
        bad = texts[[n is None for n in names].index(True)]
        fx.reject_upgrade(req, f"Invalid stream name {bad!r}")
        return
    if not hub.admit(req.client_address[0]):
        fx.reject_upgrade(req, "Too many connection attempts; limit is 300 per 5 minutes.", status=429)
        return
    proto = handshake(req)
    if proto is None:
        return
    StreamSession(hub, req, market, combined, names, proto).run()
