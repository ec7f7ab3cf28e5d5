"""1,500 streams are spread over connections within the exchange's per-connection limits,
and the incoming message rate is never exceeded (the fake server counts both)."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from kline_lake.cli.follow_cmd import build_request
from kline_lake.fake_exchange import FakeExchange
from kline_lake.live.follower import Follower


@pytest.mark.parametrize(("market", "connections", "per_connection"), [("um", 8, 200), ("spot", 2, 1024)])
def test_1500_streams_within_limits(tmp_path: Path, market: str, connections: int, per_connection: int) -> None:
    # Made-up symbols: like the exchange, the fake accepts well-formed stream names it has
    # no data for, so only the subscription mechanics are exercised.
    symbols = ",".join(f"S{i}USDT" for i in range(1500))
    with FakeExchange() as fx:
        req = build_request(market=market, data="klines", interval="1m", symbols=symbols, lake=str(tmp_path),
                            base_url=fx.base_url, ws_url=None, duration=None, flush_seconds="1",
                            silence_seconds="60", streams_per_connection=None)
        stop = threading.Event()
        follower = Follower(dataclasses.replace(req, check_symbols=False))
        t = threading.Thread(target=follower.run, args=(stop,))
        t.start()
        deadline = time.monotonic() + 20
        while fx.stats()["ws"]["open"] < connections and time.monotonic() < deadline:
            time.sleep(0.1)
        ws = fx.stats()["ws"]
        stop.set()
        t.join(timeout=20)
    assert ws["open"] == ws["connections"] == connections
    assert ws["max_streams"] == per_connection
    assert ws["closed_streams"] == 0 and ws["closed_rate"] == 0
    assert ws["peak_messages_per_s"] <= (10 if market == "um" else 5)
