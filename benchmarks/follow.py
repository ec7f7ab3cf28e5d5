"""Follower benchmark: messages per second on one core with 200 streams, and the lag from
a kline's close to its commit.

Part 1 (throughput, one core): the follower's whole message path (parse, route, buffer,
atomic commit with coverage into a real lake every `--flush-seconds`) fed through its
connection seam by 200 combined streams (one connection, futures' per-connection
limit) of pre-built messages, as fast as it takes them: per kline 1 closing update and
`--updates` updates of the open kline, like the exchange's futures streams. Timed until
every closed kline is committed. The process is pinned to one CPU before pyarrow and
polars start their pools.

Part 1b (recorder, one core): the same path for `--data mark_price`: 200 `@markPrice@1s`
streams, one update per stream per second of `--minutes` worth of updates, every update a
row (no REST: a recorder has nothing to backfill).

Part 2 (lag): the fake exchange (real HTTP + WebSocket on loopback) at `--speed`, two
symbols followed for `--lag-seconds`; lag = the exchange's send delay after the close
(scaled to real time by the speed) + receive -> commit, in real seconds.

    python benchmarks/follow.py [--quick]

Prints a markdown table; writes JSON (`--json`, default benchmarks/results/follow.json).
"""

from __future__ import annotations

import os

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from kline_lake.cli.follow_cmd import build_request  # noqa: E402
from kline_lake.errors import StreamError  # noqa: E402
from kline_lake.fake_exchange import FakeExchange  # noqa: E402
from kline_lake.live.follower import Follower  # noqa: E402

T0_MS = 1_767_225_600_000


def build_messages(n_streams: int, minutes: int, updates: int) -> tuple[list[str], int]:
    """Combined-stream messages, minute by minute: `updates` open updates then the close
    of each stream's kline. Returns (messages, closed klines)."""
    out = []
    for m in range(minutes):
        t = T0_MS + m * 60_000
        for u in range(updates + 1):
            closed = u == updates
            for i in range(n_streams):
                sym = f"S{i}USDT"
                k = {"t": t, "T": t + 59_999, "s": sym, "i": "1m", "f": -1, "L": -1, "o": "100.5",
                     "c": f"{100 + u}.25", "h": "110.0", "l": "99.0", "v": "12.5", "n": 40 + u, "x": closed,
                     "q": "1300.75", "V": "6.0", "Q": "650.5", "B": "0"}
                out.append(json.dumps({"stream": f"{sym.lower()}@kline_1m",
                                       "data": {"e": "kline", "E": t + 60_000 if closed else t + u, "s": sym,
                                                "k": k}}, separators=(",", ":")))
    return out, n_streams * minutes


def build_mark_messages(n_streams: int, seconds: int) -> tuple[list[str], int]:
    """Combined-stream markPriceUpdate messages, second by second. Returns (messages, rows)."""
    out = []
    for sec in range(seconds):
        e_ms = T0_MS + sec * 1000
        for i in range(n_streams):
            sym = f"S{i}USDT"
            out.append(json.dumps({"stream": f"{sym.lower()}@markPrice@1s", "data": {
                "e": "markPriceUpdate", "E": e_ms, "s": sym, "p": f"{100 + sec % 7}.12345678",
                "i": "100.01000000", "P": "100.02000000", "r": "0.00010000", "T": T0_MS + 8 * 3_600_000}},
                separators=(",", ":")))
    return out, n_streams * seconds


class ScriptedConnection:
    """The connection seam, replaying messages once, then silent until closed."""

    def __init__(self, messages: list[str]) -> None:
        self._it = iter(messages)
        self._closed = threading.Event()

    def recv(self, timeout: float | None = None) -> str:
        msg = next(self._it, None)
        if msg is not None:
            return msg
        if self._closed.wait(timeout):
            raise StreamError("closed")
        raise TimeoutError

    def close(self) -> None:
        self._closed.set()


def throughput(n_streams: int, minutes: int, updates: int, flush_s: float, data: str = "klines") -> dict:
    if data == "klines":
        messages, n_closed = build_messages(n_streams, minutes, updates)
    else:
        messages, n_closed = build_mark_messages(n_streams, minutes * 60)
    symbols = ",".join(f"S{i}USDT" for i in range(n_streams))
    conns: queue.Queue = queue.Queue()
    with FakeExchange(now_ms=T0_MS) as fx, tempfile.TemporaryDirectory() as lake:
        req = build_request(market="um", data=data, interval="1m", symbols=symbols, lake=lake,
                            base_url=fx.base_url, ws_url=None, duration=None, flush_seconds=str(flush_s),
                            silence_seconds="600", streams_per_connection=None)

        def connector(url: str, timeout: float) -> ScriptedConnection:
            conn = ScriptedConnection(messages if conns.empty() else [])
            conns.put(conn)
            return conn

        follower = Follower(dataclasses.replace(req, check_symbols=False), connector=connector)  # made-up symbols
        stop = threading.Event()
        t = threading.Thread(target=follower.run, args=(stop,))
        t0 = time.perf_counter()
        t.start()
        while follower.totals.messages < len(messages) and t.is_alive():
            time.sleep(0.005)
        received_s = time.perf_counter() - t0
        while follower.totals.committed_rows < n_closed and t.is_alive() and flush_s < 3600:
            time.sleep(0.01)
        seconds = time.perf_counter() - t0
        stop.set()
        t.join()
    return {"streams": n_streams, "messages": len(messages), "closed_klines": n_closed,
            "committed": follower.totals.committed_rows, "commits": follower.totals.commits,
            "seconds": round(seconds, 3), "messages_per_s": round(len(messages) / seconds),
            "received_s": round(received_s, 3), "received_per_s": round(len(messages) / received_s),
            "lag_recv_to_commit_p50_s": round(statistics.median(follower.totals.lags_s or [0.0]), 3)}


def lag(speed: float, seconds: float, flush_s: float) -> dict:
    with FakeExchange(now_ms=T0_MS, speed=speed) as fx, tempfile.TemporaryDirectory() as lake:
        req = build_request(market="um", data="klines", interval="1m", symbols="BTCUSDT,ETHUSDT", lake=lake,
                            base_url=fx.base_url, ws_url=None, duration=f"{seconds}s",
                            flush_seconds=str(flush_s), silence_seconds="30", streams_per_connection=None)
        totals = Follower(req).run(threading.Event())
    sends = [d / 1000 / speed for d in totals.send_delays_ms]
    lags = sorted(a + b for a, b in zip(sends, totals.lags_s, strict=False))
    return {"speed": speed, "klines": len(lags), "flush_s": flush_s,
            "lag_p50_s": round(statistics.median(lags), 3),
            "lag_p95_s": round(lags[int(0.95 * (len(lags) - 1))], 3), "lag_max_s": round(lags[-1], 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--updates", type=int, default=9)
    ap.add_argument("--flush-seconds", type=float, default=1.0)
    ap.add_argument("--speed", type=float, default=60)
    ap.add_argument("--lag-seconds", type=float, default=None)
    ap.add_argument("--json", default="benchmarks/results/follow.json")
    args = ap.parse_args()
    minutes = 10 if args.quick else 60
    tp = throughput(args.streams, minutes, args.updates, args.flush_seconds)
    path_only = throughput(args.streams, minutes, args.updates, 3600.0)  # no flush until the end
    rec = throughput(args.streams, max(1, minutes // 6), 0, args.flush_seconds, data="mark_price")
    lg = lag(args.speed, args.lag_seconds or (10 if args.quick else 30), 0.25)
    print("| measure | value |\n|---|---|")
    print(f"| follower throughput, {tp['streams']} streams, one core | {tp['messages_per_s']:,} messages/s "
          f"({tp['messages']:,} messages, {tp['closed_klines']:,} closed klines committed in {tp['seconds']} s, "
          f"{tp['commits']} commits) |")
    print(f"| message path only (parse, route, buffer; commits deferred), {tp['streams']} streams | "
          f"{path_only['received_per_s']:,} messages/s |")
    print(f"| receive -> commit (flush {args.flush_seconds:g} s), p50 | {tp['lag_recv_to_commit_p50_s']} s |")
    print(f"| recorder (mark_price), {rec['streams']} streams, one core | {rec['messages_per_s']:,} updates/s, "
          f"each a row ({rec['messages']:,} updates committed in {rec['seconds']} s, {rec['commits']} commits) |")
    print(f"| kline close -> commit, fake exchange at {lg['speed']:g}x, flush {lg['flush_s']} s | "
          f"p50 {lg['lag_p50_s']} s, p95 {lg['lag_p95_s']} s, max {lg['lag_max_s']} s ({lg['klines']} klines) |")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"throughput": tp, "message_path": path_only, "recorder": rec, "lag": lg},
                                          indent=2) + "\n")


if __name__ == "__main__":
    main()
