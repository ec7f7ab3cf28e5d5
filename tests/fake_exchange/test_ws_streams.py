"""The fake exchange's WebSocket streams: a real server on the HTTP port, checked with the
`websockets` client over loopback."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.faults import parse_faults
from kline_lake.fake_exchange.ws_streams import parse_stream

T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def _ws(fx: FakeExchange, path: str):
    return connect(fx.base_url.replace("http://", "ws://") + path, ping_interval=None, open_timeout=5)


def _collect(ws, seconds: float) -> list[dict]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
        except TimeoutError:
            break
    return out


def test_parse_stream_names() -> None:
    assert parse_stream("btcusdt@kline_1m").interval == "1m"
    assert parse_stream("btcusd_perp@aggTrade").symbol == "BTCUSD_PERP"
    assert parse_stream("btcusdt@kline_7m") is None
    assert parse_stream("BTCUSDT@kline_1m") is None  # stream names are lower-case
    assert parse_stream("btcusdt@depth") is None


def test_closed_klines_equal_rest_and_arrive_in_order() -> None:
    with FakeExchange(now_ms=T0_MS, speed=600) as fx:
        with _ws(fx, "/fstream/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m") as ws:
            events = _collect(ws, 2.5)
        closed = [e for e in events if e["data"]["k"]["x"]]
        assert {e["stream"] for e in closed} == {"btcusdt@kline_1m", "ethusdt@kline_1m"}
        assert any(not e["data"]["k"]["x"] for e in events)  # updates of the open kline too
        btc = [e["data"]["k"] for e in closed if e["stream"] == "btcusdt@kline_1m"]
        assert len(btc) >= 10  # 2.5 s at 600x = 25 fake minutes
        opens = [k["t"] for k in btc]
        assert opens == sorted(opens) and all(b - a == 60_000 for a, b in zip(opens, opens[1:], strict=False))
        rest = httpx.get(f"{fx.base_url}/fapi/v1/klines", params={
            "symbol": "BTCUSDT", "interval": "1m", "startTime": opens[0], "endTime": opens[-1]}).json()
        assert [[k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"]]
                for k in btc] == [r[:11] for r in rest]
        assert btc[-1]["T"] < fx.now_ms()


def test_subscribe_list_unsubscribe_raw_spot_and_us() -> None:
    with FakeExchange(now_ms=T0_MS, speed=600) as fx:
        for root in ("", "/us"):
            with _ws(fx, f"{root}/ws") as ws:
                ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}))
                assert json.loads(ws.recv(timeout=2)) == {"result": None, "id": 1}
                ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
                got = [json.loads(ws.recv(timeout=2)) for _ in range(30)]
                assert {"result": ["btcusdt@kline_1m"], "id": 2} in got
                assert any(m.get("e") == "kline" and m["s"] == "BTCUSDT" for m in got)  # raw events
                ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 3}))
                replies = [m for m in _collect(ws, 0.5) if m.get("id") == 3]
                assert replies[0]["error"]["code"] == 2


def test_message_rate_and_stream_limits_close_the_connection() -> None:
    with FakeExchange(now_ms=T0_MS, speed=1) as fx:
        with _ws(fx, "/fstream/ws") as ws:
            with pytest.raises(ConnectionClosed) as info:
                for i in range(20):  # futures allow 10 incoming messages per second
                    ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                while True:
                    ws.recv(timeout=2)
            assert info.value.rcvd.code == 1008
        with _ws(fx, "/fstream/ws") as ws:
            names = [f"s{i}usdt@kline_1m" for i in range(201)]  # 200 per futures connection
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": names, "id": 1}))
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=2)
        with _ws(fx, "/ws") as ws:  # spot allows 1024
            ws.send(json.dumps({"method": "SUBSCRIBE", "params": [f"s{i}usdt@kline_1m" for i in range(1024)], "id": 1}))
            assert json.loads(ws.recv(timeout=2)) == {"result": None, "id": 1}
        stats = fx.stats()["ws"]
        assert stats["closed_rate"] == 1 and stats["closed_streams"] == 1
        assert stats["peak_messages_per_s"] == 10 and stats["max_streams"] == 1024


def test_pings_are_sent_and_connection_cut_after_max_age() -> None:
    # 4 fake seconds of life at speed 1; pings no more often than every real second.
    with FakeExchange(now_ms=T0_MS, speed=10, ws_max_age_s=30) as fx:
        with _ws(fx, "/ws/btcusdt@kline_1m") as ws:
            t0 = time.monotonic()
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    ws.recv(timeout=10)
            assert 2.5 < time.monotonic() - t0 < 6
            assert info.value.rcvd.code == 1000
        stats = fx.stats()["ws"]
        assert stats["closed_expired"] == 1
        assert stats["messages_in"] >= 1  # the client's pongs to the server's pings


def test_bad_stream_name_is_refused_at_the_handshake() -> None:
    with FakeExchange() as fx, pytest.raises(InvalidStatus) as info:
        _ws(fx, "/stream?streams=btcusdt@kline_9x")
    assert info.value.response.status_code == 400


@pytest.mark.parametrize(("fault", "check"), [
    ("ws-dup:1", lambda ev: len(ev) >= 4 and ev[0] == ev[1] and ev[2] == ev[3]),
    ("ws-miss:1", lambda ev: ev == []),
])
def test_stream_faults(fault: str, check) -> None:
    with FakeExchange(now_ms=T0_MS, speed=600, faults=fault) as fx:
        with _ws(fx, "/ws/btcusdt@kline_1m") as ws:  # noqa: SIM117 (stats read after the close)
            events = _collect(ws, 1.0)
        assert check(events)
        assert fx.stats()["ws"][fault.split(":")[0]] >= 1


def test_ws_drop_and_silent() -> None:
    with (FakeExchange(now_ms=T0_MS, speed=600, faults="ws-drop:1") as fx,
          _ws(fx, "/ws/btcusdt@kline_1m") as ws, pytest.raises(ConnectionClosed)):
        ws.recv(timeout=3)
    with (FakeExchange(now_ms=T0_MS, speed=600, faults="ws-silent:1") as fx,
          _ws(fx, "/ws/btcusdt@kline_1m") as ws, pytest.raises(TimeoutError)):
        ws.recv(timeout=1.5)


def test_reorder_swaps_neighbours() -> None:
    with (FakeExchange(now_ms=T0_MS, speed=600, faults="ws-reorder:0.5", seed=3) as fx,
          _ws(fx, "/ws/btcusdt@kline_1m") as ws):
        events = _collect(ws, 2.0)
    closed = [e["k"]["t"] for e in events if e["k"]["x"]]
    assert closed != sorted(closed) and sorted(closed) == sorted(set(closed))


def test_fault_spec_keeps_http_and_stream_budgets_apart() -> None:
    spec = parse_faults("500:0.9,ws-miss:0.9")
    assert spec.active and spec.ws_active
    with pytest.raises(InputError):
        parse_faults("ws-miss:0.6,ws-dup:0.6")
    with pytest.raises(InputError):
        parse_faults("ws-nope:0.1")


def test_speed_runs_rest_and_streams_on_one_fast_clock() -> None:
    with FakeExchange(speed=3600) as fx:
        t0 = httpx.get(f"{fx.base_url}/api/v3/time").json()["serverTime"]
        time.sleep(0.5)
        t1 = httpx.get(f"{fx.base_url}/api/v3/time").json()["serverTime"]
        assert 0.4 * 3_600_000 < t1 - t0 < 1.5 * 3_600_000  # half a real second = ~half a fake hour
        with _ws(fx, "/ws/btcusdt@kline_1m") as ws:
            event = json.loads(ws.recv(timeout=3))
        assert abs(event["E"] - fx.now_ms()) < 3_600_000


def test_cli_speed_option() -> None:
    import os
    import signal
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from kline_lake.cli import main; main()", "fake-exchange", "--port", "0"]
    bad = subprocess.run([*cli, "--speed", "fast"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--speed" in bad.stderr
    proc = subprocess.Popen([*cli, "--speed", "600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = proc.stdout.readline().split()[-1]
        with connect(url.replace("http://", "ws://") + "/fstream/stream?streams=btcusdt@kline_1m",
                     ping_interval=None) as ws:
            msgs = [json.loads(ws.recv(timeout=3)) for _ in range(12)]
        assert any(m["data"]["k"]["x"] for m in msgs)  # 1m klines close every 0.1 s at 600x
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_connection_attempts_are_limited_per_ip() -> None:
    with FakeExchange() as fx:
        for _ in range(300):  # "300 connections per attempt every 5 minutes per IP"
            with _ws(fx, "/ws"):
                pass
        with pytest.raises(InvalidStatus) as info:
            _ws(fx, "/ws/btcusdt@kline_1m")
        assert info.value.response.status_code == 429
        assert fx.stats()["ws"]["refused_connects"] == 1
