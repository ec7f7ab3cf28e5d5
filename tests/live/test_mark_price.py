"""`follow --data mark_price`: a recorder dataset. The fake's `@markPrice@1s` stream agrees
with its REST mark/index price klines and funding rates; the lake holds what was recorded,
its coverage never claims a missed update, and `gaps`/inventory show the unrecorded
stretches (nothing can backfill them: the exchange keeps no history).

Oracles: REST `markPriceKlines`/`indexPriceKlines` closes and `fundingRate`; hand-worked
coverage of a key sequence."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from websockets.sync.client import connect

from kline_lake.cli.follow_cmd import build_request
from kline_lake.core.series import SeriesKey
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.event_gaps import recorded_gaps
from kline_lake.lake.gaps import find_gaps
from kline_lake.lake.inventory import inventory
from kline_lake.lake.scan import scan_series
from kline_lake.lake.writer import LakeWriter
from kline_lake.live.follower import Follower
from kline_lake.live.recorder_track import recorded_ranges

T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC, a funding time
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def test_recorded_ranges_and_gaps_by_hand() -> None:
    # 3000 arrives late, 5000 twice, 7000 was missed; 1.5 s apart at most
    keys = [0, 1000, 2000, 4000, 3000, 5000, 5000, 6000, 8000, 9000]
    assert recorded_ranges(keys, 1500) == [(0, 1001), (1000, 2001), (2000, 3001), (3000, 4001), (4000, 5001),
                                           (5000, 6001), (8000, 9001)]
    covered = [(0, 6_001_000), (8_000_000, 9_001_000)]  # the same in us, merged
    assert recorded_gaps(covered, 1_000_000) == [(6_001_000, 8_000_000, 1, "unrecorded")]
    assert recorded_gaps(covered, 1_000_000, 0, 20_000_000) == [
        (6_001_000, 8_000_000, 1, "unrecorded"), (9_001_000, 20_000_000, 10, "unrecorded")]
    assert recorded_gaps([], 1_000_000) == []


def test_fake_mark_price_stream_agrees_with_rest_klines_and_funding() -> None:
    with FakeExchange(now_ms=T0_MS - 90_000, speed=30, seed=3) as fx:
        with connect(fx.base_url.replace("http", "ws") + "/fstream/stream?streams=btcusdt@markPrice@1s",
                     ping_interval=None, open_timeout=10) as ws:
            events, deadline = [], time.monotonic() + 30
            while (not events or events[-1]["E"] < T0_MS + 62_000) and time.monotonic() < deadline:
                events.append(json.loads(ws.recv(timeout=10))["data"])
        params = {"interval": "1m", "startTime": T0_MS - 120_000, "endTime": T0_MS + 60_000}
        mark = httpx.get(f"{fx.base_url}/fapi/v1/markPriceKlines", params={"symbol": "BTCUSDT", **params}).json()
        index = httpx.get(f"{fx.base_url}/fapi/v1/indexPriceKlines", params={"pair": "BTCUSDT", **params}).json()
        funding = httpx.get(f"{fx.base_url}/fapi/v1/fundingRate", params={
            "symbol": "BTCUSDT", "startTime": T0_MS - 1, "endTime": T0_MS + 1}).json()
    stamps = [e["E"] for e in events]
    assert all(b - a == 1000 for a, b in zip(stamps, stamps[1:], strict=False)) and stamps[0] % 1000 == 0
    by_e = {e["E"]: e for e in events}
    ends = [(m, i) for m, i in zip(mark, index, strict=True) if m[6] + 1 in by_e]
    assert len(ends) >= 2  # the minutes closing at T0 and T0 + 1 min at least
    for m, i in ends:  # the update at a minute's end carries that minute's mark/index closes
        assert by_e[m[6] + 1]["p"] == m[4] and by_e[i[6] + 1]["i"] == i[4]
    before = [e for e in events if e["E"] <= T0_MS - 1000]
    assert before and all(e["T"] == T0_MS and e["r"] == funding[0]["fundingRate"] for e in before)
    assert all(e["T"] > T0_MS for e in events if e["E"] > T0_MS)  # the next funding time after T0


def test_follow_mark_price_records_what_arrived_and_shows_the_rest_unrecorded(tmp_path: Path) -> None:
    faults = "ws-drop:0.003,ws-dup:0.02,ws-reorder:0.02,ws-miss:0.01"
    with FakeExchange(now_ms=T0_MS, speed=60, faults=faults, seed=8) as fx:
        req = build_request(market="um", data="mark_price", interval="1m", symbols=",".join(SYMBOLS),
                            lake=str(tmp_path), base_url=fx.base_url, ws_url=None, duration="5s",
                            flush_seconds="0.5", silence_seconds="3", streams_per_connection="1")
        lines: list[str] = []
        totals = Follower(req, log=lines.append, seed=1).run(threading.Event())
        stats = fx.stats()
        mark = httpx.get(f"{fx.base_url}/fapi/v1/markPriceKlines", params={
            "symbol": "BTCUSDT", "interval": "1m", "startTime": T0_MS, "endTime": fx.now_ms()}).json()
    assert totals.rest.requests == 2  # exchangeInfo and the clock: there is nothing to backfill from
    assert stats["ws"]["ws-miss"] + stats["ws"]["ws-drop"] >= 1
    assert any("recorded from the stream only" in line for line in lines)
    holes = 0
    for symbol in SYMBOLS:
        key = SeriesKey("um", "mark_price", symbol)
        rows = scan_series(tmp_path, key).collect()
        stamps = rows["event_time"].cast(pl.Int64).to_numpy() // 1000
        assert rows.height >= 100 and len(np.unique(stamps)) == rows.height
        covered = LakeWriter(tmp_path).covered(key)
        for a, b in covered:  # a covered stretch holds an update every second, none missed
            inside = stamps[(stamps >= a // 1000) & (stamps < b // 1000)]
            assert len(inside) == (b // 1000 - 1 - a // 1000) // 1000 + 1
            assert (np.diff(inside) == 1000).all()
        gaps = find_gaps(tmp_path, key)
        assert gaps["status"].to_list() == ["unrecorded"] * (len(covered) - 1)
        holes += len(covered) - 1
        if symbol == "BTCUSDT":
            closes = {m[6] + 1: float(m[4]) for m in mark}
            checked = [(t, p) for t, p in zip(stamps, rows["mark_price"].to_list(), strict=True) if t in closes]
            assert checked and all(closes[t] == p for t, p in checked)
    assert holes >= 1  # the missed updates and reconnects are visible, not silently continuous
    inv = inventory(tmp_path).filter(pl.col("dataset") == "mark_price")
    assert inv["coverage_holes"].sum() == holes
