"""Stream names, connection limits, payload parsing and the WebSocket connection seam.

Exchange rules (spot and Binance.US: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams ;
USD-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams ;
COIN-M: https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams):
- stream names are lower-case: `<symbol>@kline_<interval>`, `<symbol>@aggTrade`, and on
  USD-M/COIN-M only `<symbol>@markPrice@1s` (event `markPriceUpdate`: `p` mark price,
  `i` index price, `P` estimated settle price, `r` funding rate, `T` next funding time),
  `<symbol>@bookTicker` (futures event `bookTicker`: `u` update id, `E` event time, `T`
  transaction time, `b`/`B` best bid price/qty, `a`/`A` best ask price/qty); spot's
  `<symbol>@bookTicker` payload is `u`, `s`, `b`, `B`, `a`, `A` only: no event type, no
  event or transaction time (spot docs, #individual-symbol-book-ticker-streams), so its
  rows (`spot_book_ticker`) are stamped with the follower's receive time;
- combined streams at `/stream?streams=<a>/<b>` wrap each event as `{"stream", "data"}`;
- at most 1024 streams per spot connection, 200 per futures connection;
- at most 5 incoming messages per second per spot connection, 10 on futures (PING, PONG
  and JSON control messages count): the follower puts its streams in the URL and sends
  no pings of its own, so it sends nothing but the pongs the library answers with;
- 300 connection attempts per 5 minutes per IP (`MAX_CONNECTS_PER_5MIN`);
- the server pings and drops a client that does not pong (the `websockets` client
  answers pings by itself); a connection lives at most 24 hours.

Parsing is pure; `connect` is the only I/O (the seam tests replace).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kline_lake.core.markets import Market
from kline_lake.errors import InputError, StreamError

STREAM_DATASETS = ("klines", "agg_trades", "mark_price", "book_ticker")
# markPrice streams exist on USD-M and COIN-M only. `--data book_ticker` on spot/us records
# the `spot_book_ticker` dataset (its events carry no exchange time; see `lake_dataset`).
FUTURES_STREAM_DATASETS = frozenset({"mark_price"})
SPOT_BOOK_TICKER = "spot_book_ticker"
MAX_STREAMS = {"spot": 1024, "us": 1024, "um": 200, "cm": 200}
MAX_MESSAGES_PER_S = {"spot": 5, "us": 5, "um": 10, "cm": 10}
MAX_CONNECTS_PER_5MIN = 300


def stream_datasets(market: Market) -> tuple[str, ...]:
    """The datasets `market` has streams for."""
    return tuple(d for d in STREAM_DATASETS if market.is_futures or d not in FUTURES_STREAM_DATASETS)


def lake_dataset(market: Market, dataset: str) -> str:
    """The lake dataset a followed `--data` records into: spot/us book tickers go to
    `spot_book_ticker` (update id + receive time), futures ones to `book_ticker`."""
    return SPOT_BOOK_TICKER if dataset == "book_ticker" and not market.is_futures else dataset


def validate_stream_dataset(market: Market, dataset: str) -> str:
    """`dataset` if the market streams it, else InputError."""
    if dataset == SPOT_BOOK_TICKER and not market.is_futures:
        return dataset
    if dataset not in stream_datasets(market):
        raise InputError(f"no stream for dataset {dataset!r} on market {market.name!r}; "
                         f"follow supports {', '.join(stream_datasets(market))} there")
    return dataset


def stream_name(dataset: str, symbol: str, interval: str | None = None) -> str:
    """The exchange's stream name for one series."""
    if dataset == "klines":
        return f"{symbol.lower()}@kline_{interval}"
    if dataset == "agg_trades":
        return f"{symbol.lower()}@aggTrade"
    if dataset == "mark_price":
        return f"{symbol.lower()}@markPrice@1s"
    if dataset in ("book_ticker", SPOT_BOOK_TICKER):
        return f"{symbol.lower()}@bookTicker"
    raise InputError(f"no stream for dataset {dataset!r}")


def split_streams(names: Sequence[str], market: str, max_per_connection: int | None = None) -> list[list[str]]:
    """Streams in chunks of at most the market's per-connection limit, in order."""
    size = min(max_per_connection or MAX_STREAMS[market], MAX_STREAMS[market])
    return [list(names[i:i + size]) for i in range(0, len(names), size)]


def combined_url(ws_root: str, names: Sequence[str]) -> str:
    """The combined-stream URL of `names` below a market's streams root."""
    return f"{ws_root.rstrip('/')}/stream?streams={'/'.join(names)}"


@dataclass(frozen=True)
class ClosedKline:
    """A closed kline from a stream, as a REST-shaped row (12 fields) plus event time."""

    symbol: str
    open_ms: int
    row: tuple[Any, ...]
    event_ms: int


def parse_message(text: str | bytes) -> tuple[str | None, dict[str, Any]]:
    """(stream name or None, event) of a combined or raw message; ValueError if malformed."""
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"malformed stream message: {exc}") from None
    if not isinstance(msg, dict):
        raise ValueError("malformed stream message: not an object")
    if "stream" in msg and isinstance(msg.get("data"), dict):
        return msg["stream"], msg["data"]
    return None, msg


def closed_kline(event: dict[str, Any]) -> ClosedKline | None:
    """The closed kline an event carries, or None (an update of an open kline, another
    event, a subscription reply). ValueError when a kline event is malformed."""
    if event.get("e") != "kline":
        return None
    try:
        k = event["k"]
        if not k["x"]:
            return None
        row = (int(k["t"]), k["o"], k["h"], k["l"], k["c"], k["v"], int(k["T"]), k["q"], int(k["n"]),
               k["V"], k["Q"], "0")
        return ClosedKline(str(k["s"]), int(k["t"]), row, int(event["E"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed kline event: {exc!r}") from None


@dataclass(frozen=True)
class AggTrade:
    """An aggregate trade from a stream: its id, time and a REST-shaped object
    (`a p q f l T m`, plus `M` on spot)."""

    symbol: str
    agg_id: int
    time_ms: int
    row: dict[str, Any]


def agg_trade(event: dict[str, Any]) -> AggTrade | None:
    """The aggregate trade an `aggTrade` event carries, or None for another event;
    ValueError when malformed."""
    if event.get("e") != "aggTrade":
        return None
    try:
        row = {k: event[k] for k in ("a", "p", "q", "f", "l", "T", "m")}
        if "M" in event:
            row["M"] = event["M"]
        return AggTrade(str(event["s"]), int(row["a"]), int(row["T"]), row)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed aggTrade event: {exc!r}") from None


@dataclass(frozen=True)
class Recorded:
    """One update of a recorder dataset (no history on the exchange): its row key, its
    time (the dataset's time column, ms) and a row of the dataset's columns (see
    `kline_lake.core.schemas`)."""

    symbol: str
    key: int
    time_ms: int
    row: dict[str, Any]


def mark_price_update(event: dict[str, Any]) -> Recorded | None:
    """The `markPriceUpdate` event as a `mark_price` row, or None for another event."""
    if event.get("e") != "markPriceUpdate":
        return None
    try:
        event_ms = int(event["E"])
        row = {"event_time": event_ms, "mark_price": float(event["p"]), "index_price": float(event["i"]),
               "estimated_settle_price": float(event["P"]), "funding_rate": float(event["r"]),
               "next_funding_time": int(event["T"])}
        return Recorded(str(event["s"]), event_ms, event_ms, row)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed markPriceUpdate event: {exc!r}") from None


def book_ticker_update(event: dict[str, Any]) -> Recorded | None:
    """The futures `bookTicker` event (u, E, T, s, b, B, a, A) as a `book_ticker` row keyed
    by its update id `u`, timed by its transaction time `T`; None for another event."""
    if event.get("e") != "bookTicker":
        return None
    try:
        row = {"update_id": int(event["u"]), "best_bid_price": float(event["b"]),
               "best_bid_qty": float(event["B"]), "best_ask_price": float(event["a"]),
               "best_ask_qty": float(event["A"]), "transaction_time": int(event["T"]),
               "event_time": int(event["E"])}
        return Recorded(str(event["s"]), row["update_id"], row["transaction_time"], row)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed bookTicker event: {exc!r}") from None


def spot_book_ticker_update(event: dict[str, Any], recv_us: int) -> Recorded | None:
    """A spot/us `bookTicker` payload (u, s, b, B, a, A; no `e`, no times) as a
    `spot_book_ticker` row keyed by `u` and stamped `recv_time = recv_us` (the follower's
    clock when it arrived); None for another event (anything with an `e`)."""
    if "e" in event or "u" not in event:
        return None
    try:
        row = {"update_id": int(event["u"]), "best_bid_price": float(event["b"]),
               "best_bid_qty": float(event["B"]), "best_ask_price": float(event["a"]),
               "best_ask_qty": float(event["A"]), "recv_time": int(recv_us)}
        return Recorded(str(event["s"]), row["update_id"], int(recv_us) // 1000, row)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed bookTicker event: {exc!r}") from None


PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "klines": closed_kline, "agg_trades": agg_trade, "mark_price": mark_price_update,
    "book_ticker": book_ticker_update}
# Parsers that also take the receive time (UTC us), for payloads without an exchange time.
RECV_PARSERS: dict[str, Callable[[dict[str, Any], int], Any]] = {SPOT_BOOK_TICKER: spot_book_ticker_update}


def event_time_ms(event: dict[str, Any]) -> int | None:
    value = event.get("E")
    return int(value) if isinstance(value, int) else None


class Connection(Protocol):
    """What the follower needs of a WebSocket connection."""

    def recv(self, timeout: float | None = None) -> str | bytes: ...

    def close(self) -> None: ...


Connector = Callable[[str, float], Connection]


class _WsConnection:
    """A `websockets` client connection whose errors are `StreamError` (recv timeouts
    stay `TimeoutError`: silence is the follower's decision)."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws.__enter__()  # the library's supported lifetime: a context manager

    def recv(self, timeout: float | None = None) -> str | bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return self._ws.recv(timeout=timeout)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            raise StreamError(f"connection closed (code {code})") from None

    def close(self) -> None:
        self._ws.__exit__(None, None, None)


def connect(url: str, open_timeout_s: float) -> Connection:
    """Open a client connection (the `websockets` threading client); StreamError when it
    cannot be opened. No pings of our own: each would count against the connection's
    incoming-message rate."""
    from websockets.exceptions import InvalidHandshake, InvalidURI
    from websockets.sync.client import connect as ws_connect

    try:
        ws = ws_connect(url, open_timeout=open_timeout_s, ping_interval=None, close_timeout=2,
                        max_size=1 << 22, max_queue=4096)
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        raise StreamError(f"cannot connect to {url.split('?')[0]}: {exc}") from None
    return _WsConnection(ws)
