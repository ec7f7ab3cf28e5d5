"""`kline-lake follow`: keep the lake current from the exchange's WebSocket streams.

Options are taken as text and validated in `build_request`, so every bad value is one
`kline-lake: error: ...` line and exit status 2 (InputError). SIGINT/SIGTERM flush and
exit 0. On a TTY a status line per series is redrawn every second; otherwise one log
line per reconnect and backfill.
"""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
from pathlib import Path

import click

from kline_lake.errors import InputError

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str | None) -> float | None:
    """'6h', '30m', '45s', '2d' or plain seconds -> seconds; None stays None."""
    if text is None:
        return None
    m = _DURATION_RE.fullmatch(text.strip())
    if m is None or float(m.group(1)) <= 0:
        raise InputError(f"--duration must be a positive length like 6h, 30m, 45s or 2d, got {text!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _positive(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{name} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise InputError(f"{name} must be > 0, got {text}")
    return value


def build_request(*, market: str, data: str, interval: str, symbols: str, lake: str,
                  base_url: str | None, ws_url: str | None, duration: str | None,
                  flush_seconds: str, silence_seconds: str, streams_per_connection: str | None,
                  start: str | None = None):
    """Validate every option (no network); InputError on the first problem."""
    from kline_lake.core.intervals import validate_interval
    from kline_lake.core.markets import (
        get_market,
        resolve_base_url,
        resolve_ws_url,
        validate_symbol,
    )
    from kline_lake.core.timeutil import parse_utc_ms
    from kline_lake.live.streams import MAX_STREAMS, lake_dataset, validate_stream_dataset

    mkt = get_market(market)
    validate_stream_dataset(mkt, data)
    data = lake_dataset(mkt, data)  # spot/us book tickers: spot_book_ticker
    interval = validate_interval(interval, mkt.name)  # used by --data klines only
    names = tuple(validate_symbol(s.strip().upper()) for s in symbols.split(",") if s.strip())
    if not names:
        raise InputError("--symbols: give at least one symbol (or ALL)")
    if "ALL" in names and len(names) > 1:
        raise InputError("--symbols ALL cannot be combined with other symbols")
    if ws_url is not None and not ws_url.startswith(("ws://", "wss://")):
        raise InputError(f"--ws-url must start with ws:// or wss://, got {ws_url!r}")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise InputError(f"--base-url must start with http:// or https://, got {base_url!r}")
    start_ms = None if start is None else parse_utc_ms(start, what="--start")
    per_conn = None
    if streams_per_connection is not None:
        if not streams_per_connection.isdigit() or not 1 <= int(streams_per_connection) <= MAX_STREAMS[mkt.name]:
            raise InputError(f"--streams-per-connection must be within 1..{MAX_STREAMS[mkt.name]}, "
                             f"got {streams_per_connection!r}")
        per_conn = int(streams_per_connection)
    if "://" in lake and not lake.startswith("file://"):
        raise InputError(f"kline-lake follow writes a local lake, not {lake}: follow into a "
                         "directory and publish it with kline-lake sync DIR URL")
    rest_url, ws = resolve_base_url(mkt, base_url), resolve_ws_url(mkt, ws_url, base_url)
    duration_s = parse_duration_s(duration)
    flush_s = _positive("--flush-seconds", flush_seconds)
    silence_s = _positive("--silence-seconds", silence_seconds)
    # the follower loads the lake writer (Polars, PyArrow): only for input that is valid
    from kline_lake.live.follower import FollowRequest

    return FollowRequest(
        market=mkt, interval=interval, symbols=names, lake=Path(lake), base_url=rest_url,
        ws_url=ws, duration_s=duration_s, flush_s=flush_s, silence_s=silence_s,
        max_streams_per_connection=per_conn, start_ms=start_ms, dataset=data,
    )


def _status_loop(follower, stop: threading.Event) -> None:
    from kline_lake.core.timeutil import format_ms

    started = time.monotonic()
    while not stop.wait(1.0):
        rate = follower.totals.messages / max(1e-9, time.monotonic() - started)
        lines = []
        for s in follower.series.values():
            last = format_ms(s.last_closed_ms) if s.last_closed_ms is not None else "-"
            lag_s = (follower.server_now_ms - s.covered_ms) / 1000
            lines.append(f"{s.symbol:<14} last closed {last}  lag {lag_s:6.1f} s  reconnects {s.reconnects}")
        sys.stderr.write("\x1b[2K" + f"  {rate:,.0f} msg/s\n" + "\n".join(lines) + f"\x1b[{len(lines) + 1}F")
        sys.stderr.flush()


@click.command("follow")
@click.option("--market", required=True, help="spot, um (USD-M), cm (COIN-M) or us (Binance.US).")
@click.option("--data", default="klines", show_default=True,
              help="Stream dataset: klines, agg_trades (backfilled by id over REST), or the "
                   "recorders mark_price and book_ticker (um/cm; what the stream brought is "
                   "kept, a reconnect stays an unrecorded gap: no history to backfill from).")
@click.option("--interval", default="1m", show_default=True,
              help="Kline interval (--data klines), 1s..1M; 1M is the calendar month.")
@click.option("--symbols", required=True, help="Comma-separated symbols, or ALL (every TRADING symbol).")
@click.option("--lake", default="./data", show_default=True, help="Lake root directory.")
@click.option("--base-url", default=None, help="REST base URL for every market (env KLINE_LAKE_BASE_URL).")
@click.option("--ws-url", default=None,
              help="WebSocket streams root of the market (env KLINE_LAKE_<MARKET>_WS_URL; default: the "
                   "exchange's, or the --base-url host and port).")
@click.option("--start", default=None,
              help="UTC start of the catch-up (default: where each series' coverage ends; an empty "
                   "series starts now).")
@click.option("--duration", default=None, help="Stop after this long (6h, 30m, 45s); default: until SIGINT/SIGTERM.")
@click.option("--flush-seconds", default="5", show_default=True, help="Commit closed klines this often.")
@click.option("--silence-seconds", default="30", show_default=True,
              help="Reconnect when a connection sends nothing for this long.")
@click.option("--streams-per-connection", default=None, hidden=True,
              help="Fewer streams per connection than the exchange allows (tests).")
def follow(market: str, data: str, interval: str, symbols: str, lake: str, base_url: str | None,
           ws_url: str | None, start: str | None, duration: str | None, flush_seconds: str,
           silence_seconds: str, streams_per_connection: str | None) -> None:
    """Catch up over REST, then keep the lake current from WebSocket streams, gap-free."""
    request = build_request(market=market, data=data, interval=interval, symbols=symbols, lake=lake,
                            base_url=base_url, ws_url=ws_url, duration=duration,
                            flush_seconds=flush_seconds, silence_seconds=silence_seconds,
                            streams_per_connection=streams_per_connection, start=start)
    from kline_lake.live.follower import Follower

    tty = sys.stderr.isatty()
    follower = Follower(request, log=(lambda _line: None) if tty else
                        (lambda line: click.echo(f"follow: {line}", err=True)))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    status_stop = threading.Event()
    if tty:
        threading.Thread(target=_status_loop, args=(follower, status_stop), daemon=True).start()
    try:
        totals = follower.run(stop)
    finally:
        status_stop.set()
    click.echo(f"followed {len(follower.symbols)} series: {totals.committed_rows} {request.dataset} rows committed from "
               f"streams, {totals.reconnects} reconnects, {totals.backfills} backfills, "
               f"{totals.messages} messages")
