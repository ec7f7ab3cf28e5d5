"""The follower's REST side: every catch-up and backfill shares one session, one client
and one weight limiter (not a session per hole)."""

from __future__ import annotations

import threading
from pathlib import Path

from kline_lake.cli.follow_cmd import build_request
from kline_lake.exchange import client as client_mod
from kline_lake.fake_exchange import FakeExchange
from kline_lake.live.follower import Follower

T0_MS = 1_767_225_600_000


def test_backfills_share_one_session_and_client(tmp_path: Path, monkeypatch) -> None:
    opened: list[object] = []
    real_init = client_mod.Session.__init__

    def counting_init(self, *args, **kwargs) -> None:
        opened.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(client_mod.Session, "__init__", counting_init)
    with FakeExchange(now_ms=T0_MS, speed=600, faults="ws-drop:0.05", seed=4) as fx:
        req = build_request(market="um", data="klines", interval="1m", symbols="BTCUSDT,ETHUSDT",
                            lake=str(tmp_path), base_url=fx.base_url, ws_url=None, duration="5s",
                            flush_seconds="0.5", silence_seconds="5", streams_per_connection="1",
                            start="2025-12-31T23:00")
        follower = Follower(req, seed=2)
        totals = follower.run(threading.Event())
        served = fx.stats()["um"]["requests"]
    assert totals.reconnects >= 1 and totals.backfills >= 2 and len(totals.downloads) >= 3
    assert len(opened) == 1  # the follower's own: the downloads were handed it
    assert totals.rest is follower.rest.stats
    assert totals.rest.requests == served  # every REST call went through the one client
