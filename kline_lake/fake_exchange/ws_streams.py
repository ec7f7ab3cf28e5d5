"""Stream names and payloads of the fake exchange's WebSocket market streams.

Names and payload shapes follow the exchange docs:
- Spot (and Binance.US, same shapes): https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
- USD-M: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
- COIN-M: https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams

Streams served: `<symbol>@kline_<interval>`, `<symbol>@aggTrade` and, on USD-M and
COIN-M, `<symbol>@markPrice@1s` and `<symbol>@bookTicker` (symbol lower-case).
Like the exchange, a well-formed name for a symbol the market does not list is accepted
and simply never sends anything.

Consistency with REST: every kline payload is built from the same data source as the
REST `/klines` answer. A closing update (`"x": true`) carries the kline's final values,
equal to what REST returns for it afterwards; the kline's trade ids (`f`, `L`) are not
modelled and sent as -1. Closed klines are computed ahead in chunks (`KlineBook`): the
synthetic data is deterministic, so a kline's final values do not depend on when they
are computed, only on when they may be sent (after the kline's close).

Mark price (`markPriceUpdate`, one per fake second while the symbol trades, `E` on the
whole second): `p` the mark price and `i` the index price of the second that just ended,
the same transforms of the last price as the REST mark/index price klines (so the update
at a minute's end carries that minute's mark/index kline close); `P` (estimated settle
price) the index price; `r` the rate REST `fundingRate` reports at `T`, the next funding
time. Served by the synthetic source only (a file-backed source has no mark stream).

Book ticker (futures `bookTicker`): the same updates as the fake's archive bookTicker
files (`market_extras.book_ticker`: one per trade, bracketing it), each pushed once its
event time `E` has passed. On spot and Binance.US the same updates (bid <= trade price <=
ask) in spot's payload: `u`, `s`, `b`, `B`, `a`, `A` only, no event type and no times.

Pure apart from the data source's computation; no I/O.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from kline_lake.core.intervals import ALL_INTERVALS, INTERVAL_MS, floor_open_ms, next_open_ms
from kline_lake.fake_exchange import series
from kline_lake.fake_exchange.params import TimeRange

_NAME_RE = re.compile(r"([a-z0-9_]{1,40})@(kline_([0-9]+[smhdwM])|aggTrade|markPrice@1s|bookTicker)")
CHUNK_KLINES = 500
MAX_CHUNK_MS = 62 * 86_400_000
AGG_PAGE = 1000
MAX_STREAM_NAME = 64


@dataclass(frozen=True)
class StreamName:
    """A parsed stream name: `kind` is 'kline', 'aggTrade' or 'markPrice'."""

    text: str
    symbol: str  # upper-case, as REST spells it
    kind: str
    interval: str | None = None


def parse_stream(text: str) -> StreamName | None:
    """The stream `text` names, or None when it is not a stream name the fake serves."""
    if not isinstance(text, str) or len(text) > MAX_STREAM_NAME:
        return None
    m = _NAME_RE.fullmatch(text)
    if m is None:
        return None
    if m.group(2) == "markPrice@1s":
        return StreamName(text, m.group(1).upper(), "markPrice")
    if m.group(2) == "bookTicker":
        return StreamName(text, m.group(1).upper(), "bookTicker")
    if m.group(3) is not None:
        if m.group(3) not in ALL_INTERVALS:
            return None
        return StreamName(text, m.group(1).upper(), "kline", m.group(3))
    return StreamName(text, m.group(1).upper(), "aggTrade")


def _close_ms(open_ms: int, interval: str) -> int:
    return next_open_ms(open_ms, interval) if interval == "1M" else open_ms + INTERVAL_MS[interval]


def kline_payload(symbol: str, interval: str, row: list[Any], closed: bool, event_ms: int) -> dict[str, Any]:
    """The kline event for a REST-shaped kline row (12 fields)."""
    return {
        "e": "kline", "E": event_ms, "s": symbol,
        "k": {
            "t": row[0], "T": row[6], "s": symbol, "i": interval, "f": -1, "L": -1,
            "o": row[1], "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8],
            "x": closed, "q": row[7], "V": row[9], "Q": row[10], "B": "0",
        },
    }


def agg_trade_payload(symbol: str, row: dict[str, Any], event_ms: int, spot: bool) -> dict[str, Any]:
    """The aggTrade event for a REST-shaped aggTrades object."""
    out = {"e": "aggTrade", "E": event_ms, "s": symbol, "a": row["a"], "p": row["p"], "q": row["q"],
           "f": row["f"], "l": row["l"], "T": row["T"], "m": row["m"]}
    if spot:
        out["M"] = True  # spot's aggTrade event carries "M" (ignore); futures' does not
    return out


class KlineBook:
    """Final klines of one (market, symbol, interval), computed ahead in chunks and
    shared by every connection (thread-safe)."""

    def __init__(self, source: Any, spec: Any, interval: str) -> None:
        self.source, self.spec, self.interval = source, spec, interval
        self._rows: dict[int, list[Any]] = {}
        self._chunks: set[int] = set()
        self._lock = threading.Lock()

    @property
    def _step_ms(self) -> int:
        """Chunk length: CHUNK_KLINES klines, at most MAX_CHUNK_MS (a chunk of 500 months
        would be 42 years of data computed for one close)."""
        return min(INTERVAL_MS.get(self.interval, 31 * 86_400_000) * CHUNK_KLINES, MAX_CHUNK_MS)

    def _chunk_start(self, open_ms: int) -> int:
        return open_ms // self._step_ms * self._step_ms

    def _fill(self, chunk_ms: int) -> None:
        step = self._step_ms
        end_ms = chunk_ms + step  # exclusive
        rows = self.source.klines(self.spec, self.interval, TimeRange(chunk_ms, end_ms - 1),
                                  CHUNK_KLINES + 2, end_ms + 2 * step, "klines")
        for row in rows:
            if chunk_ms <= row[0] < end_ms:
                self._rows[int(row[0])] = row
        self._chunks.add(chunk_ms)

    def closed(self, from_open_ms: int, now_ms: int) -> list[list[Any]]:
        """Rows of the klines opening at or after `from_open_ms` and closed by `now_ms`."""
        out = []
        cur = floor_open_ms(from_open_ms, self.interval)
        with self._lock:
            while _close_ms(cur, self.interval) <= now_ms:
                chunk = self._chunk_start(cur)
                if chunk not in self._chunks:
                    self._fill(chunk)
                row = self._rows.get(cur)
                if row is not None:
                    out.append(row)
                cur = _close_ms(cur, self.interval)
        return out


class KlineFeed:
    """One subscribed kline stream: what to send at each tick."""

    def __init__(self, name: StreamName, book: KlineBook | None, now_ms: int) -> None:
        self.name = name
        self.book = book
        self.next_open_ms = floor_open_ms(now_ms, name.interval)  # first kline not yet closed

    def poll(self, now_ms: int, send_open: bool) -> list[dict[str, Any]]:
        """Closing updates of the klines closed since the last poll, then (if
        `send_open`) an update of the kline in progress."""
        if self.book is None:
            return []
        out = []
        interval = self.name.interval
        if _close_ms(self.next_open_ms, interval) <= now_ms:
            for row in self.book.closed(self.next_open_ms, now_ms):
                out.append(kline_payload(self.name.symbol, interval, row, True, now_ms))
            self.next_open_ms = floor_open_ms(now_ms, interval)
        if send_open:
            rows = self.book.source.klines(self.book.spec, interval,
                                           TimeRange(self.next_open_ms, self.next_open_ms), 1, now_ms, "klines")
            if rows and rows[0][0] == self.next_open_ms:
                out.append(kline_payload(self.name.symbol, interval, rows[0], False, now_ms))
        return out


class AggTradeFeed:
    """One subscribed aggTrade stream: the trades executed since the last poll."""

    def __init__(self, name: StreamName, source: Any, spec: Any, now_ms: int) -> None:
        self.name, self.source, self.spec = name, source, spec
        self.from_ms = now_ms

    def poll(self, now_ms: int, send_open: bool) -> list[dict[str, Any]]:
        """Every trade with a time in [last poll, now), in id order: the same objects the
        REST `/aggTrades` answer holds (paged here by 1000 so none is skipped)."""
        if self.spec is None or now_ms <= self.from_ms:
            return []
        # Futures reject aggTrades windows of an hour or more: stay below it.
        start = max(self.from_ms, now_ms - 3_599_000)
        rows: list[dict[str, Any]] = []
        while True:
            page = self.source.agg_trades(self.spec, None, TimeRange(start, now_ms - 1), AGG_PAGE, now_ms)
            rows += page
            if len(page) < AGG_PAGE:
                break
            start = int(page[-1]["T"]) + 1
        self.from_ms = now_ms
        spot = self.spec.market in ("spot", "us")
        return [agg_trade_payload(self.name.symbol, r, now_ms, spot) for r in rows]


def _units_text(values: Any) -> list[str]:
    """1e-8 units -> the exchange's 8-decimal strings."""
    return [f"{'-' if v < 0 else ''}{abs(v) // 10**8}.{abs(v) % 10**8:08d}" for v in values.tolist()]


def mark_price_events(source: Any, spec: Any, secs: list[int]) -> list[dict[str, Any]]:
    """`markPriceUpdate` events pushed at the whole seconds `secs` (see the module docstring)."""
    synthetic = getattr(source, "synthetic", None)
    if synthetic is None or not secs or spec.market not in ("um", "cm"):
        return []
    import numpy as np

    path = synthetic.path(spec)
    prev = np.asarray(secs, dtype=np.int64) - 1  # the second that just ended
    live = np.zeros(len(prev), dtype=bool)
    for s0, s1 in path.segments(int(prev[-1])):
        live |= (prev >= s0) & (prev < s1)
    prev = prev[live]
    if not len(prev):
        return []
    close = path.level("second", prev)["c"]
    mark = _units_text(series.price_units(close, spec.price_decimals, "mark", spec.base_price))
    index = _units_text(series.price_units(close, spec.price_decimals, "index", spec.base_price))
    step_s = spec.funding_hours * 3600
    next_s = (prev + 1) // step_s * step_s + step_s  # the next funding time after the push
    rate, _ = series.funding_values(path, next_s)
    rates = _units_text(rate)
    return [{"e": "markPriceUpdate", "E": int(p + 1) * 1000, "s": spec.symbol, "p": mark[i], "i": index[i],
             "P": index[i], "r": rates[i], "T": int(next_s[i]) * 1000} for i, p in enumerate(prev.tolist())]


class MarkPriceFeed:
    """One subscribed `<symbol>@markPrice@1s` stream: an update per whole fake second."""

    MAX_BEHIND_S = 3600  # a connection that fell further behind skips (a stall, not a replay)

    def __init__(self, name: StreamName, source: Any, spec: Any, now_ms: int) -> None:
        self.name, self.source, self.spec = name, source, spec
        self.next_s = now_ms // 1000 + 1

    def poll(self, now_ms: int, send_open: bool) -> list[dict[str, Any]]:
        now_s = now_ms // 1000
        if self.spec is None or now_s < self.next_s:
            return []
        first = max(self.next_s, now_s - self.MAX_BEHIND_S)
        self.next_s = now_s + 1
        return mark_price_events(self.source, self.spec, list(range(first, now_s + 1)))


class BookTickerFeed:
    """One subscribed `<symbol>@bookTicker` stream, futures or spot (see the module docstring)."""

    MAX_LATENCY_MS = 12  # market_extras: E = T + 3..12 ms

    def __init__(self, name: StreamName, source: Any, spec: Any, now_ms: int, spot: bool = False) -> None:
        self.name, self.source, self.spec, self.spot = name, source, spec, spot
        self.from_ms = now_ms  # transaction times not yet pushed start here

    def poll(self, now_ms: int, send_open: bool) -> list[dict[str, Any]]:
        synthetic = getattr(self.source, "synthetic", None)
        until_ms = now_ms - self.MAX_LATENCY_MS  # every update with T < this has E <= now
        if self.spec is None or synthetic is None or until_ms <= self.from_ms:
            return []
        from kline_lake.fake_exchange import market_extras as mx
        from kline_lake.fake_exchange.rest import fmt_units

        start = max(self.from_ms, until_ms - 3_600_000)
        self.from_ms = until_ms
        rows = mx.book_ticker(self.spec, mx.aggs_between(synthetic.path(self.spec), start, until_ms, now_ms))
        pd_, qd = self.spec.price_decimals, self.spec.qty_decimals
        bid, ask = fmt_units(rows["bid"], pd_, pd_), fmt_units(rows["ask"], pd_, pd_)
        bq, aq = fmt_units(rows["bid_qty"], qd, qd), fmt_units(rows["ask_qty"], qd, qd)
        if self.spot:  # spot's payload: no event type, no event or transaction time
            return [{"u": u, "s": self.spec.symbol, "b": bid[i], "B": bq[i], "a": ask[i], "A": aq[i]}
                    for i, u in enumerate(rows["update_id"].tolist())]
        return [{"e": "bookTicker", "u": u, "E": e, "T": t, "s": self.spec.symbol, "b": bid[i], "B": bq[i],
                 "a": ask[i], "A": aq[i]}
                for i, (u, e, t) in enumerate(zip(rows["update_id"].tolist(), rows["E"].tolist(),
                                                  rows["T"].tolist(), strict=True))]
