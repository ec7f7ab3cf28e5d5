"""`follow --data agg_trades`: ids prove completeness; holes, duplicates and late trades;
a SIGKILL + restart under every stream fault ends equal to a plain REST download.

Oracle: the fake exchange's REST `/aggTrades` for the same range (a plain download:
a time window for the first id, then `fromId` pages), row for row, and agg ids that
step by exactly 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from kline_lake.cli.follow_cmd import build_request
from kline_lake.core.series import SeriesKey
from kline_lake.download.rest_rows import parse_rest_agg_trades
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.scan import scan_series
from kline_lake.lake.verify import verify_lake
from kline_lake.lake.writer import LakeWriter
from kline_lake.live.follower import Follower
from kline_lake.live.state import SeriesState
from kline_lake.live.streams import AggTrade

T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
NOW_MS = T0_MS + 2 * 3_600_000  # inside the day: nothing for the archive, REST only
SYMBOLS = ("BTCUSDT", "ETHUSDT")
CLI = [sys.executable, "-c", "from kline_lake.cli import main; main()"]
# per message; trades come every fake second, so lower than the klines test's rates
TRADE_WS_FAULTS = "ws-drop:0.002,ws-silent:0.001,ws-dup:0.02,ws-delay:0.01,ws-reorder:0.02,ws-miss:0.02"


def _trade(agg_id: int, time_ms: int) -> AggTrade:
    row = {"a": agg_id, "p": f"{100 + agg_id % 7}.5", "q": "0.25", "f": 10 * agg_id, "l": 10 * agg_id + 3,
           "T": time_ms, "m": agg_id % 2 == 0}
    return AggTrade("BTCUSDT", agg_id, time_ms, row)


def test_ids_drive_coverage_duplicates_and_late_trades_change_nothing(tmp_path: Path) -> None:
    req = build_request(market="um", data="agg_trades", interval="1m", symbols="BTCUSDT", lake=str(tmp_path),
                        base_url="http://127.0.0.1:9", ws_url=None, duration=None, flush_seconds="1",
                        silence_seconds="5", streams_per_connection=None)
    follower = Follower(req)
    track = follower.track
    state = SeriesState(track.key("BTCUSDT"), "BTCUSDT", covered_ms=T0_MS, next_id=100)
    follower.series["BTCUSDT"] = state
    times = {i: T0_MS + 1000 * (i - 99) for i in range(98, 106)}
    for i in (100, 101, 103, 101, 99, 98):  # 102 missing; 101 twice; 98, 99 already in the lake
        track.on_item(state, _trade(i, times[i]), 0.0, 0)
    rows, _ = track.flush_one(state)
    assert rows == 3  # 100, 101 and 103 (past the hole, claiming nothing)
    assert follower.writer.covered(state.key) == [(T0_MS * 1000, times[101] * 1000)]
    assert state.next_id == 102 and set(state.uncovered) == {103} and state.hole_since is not None
    track.on_item(state, _trade(103, times[103]), 0.0, 0)  # again: already committed
    assert not state.buffer
    track.on_item(state, _trade(102, times[102]), 0.0, 0)  # the late one
    track.on_item(state, _trade(104, times[104]), 0.0, 0)
    track.flush_one(state)
    assert follower.writer.covered(state.key) == [(T0_MS * 1000, times[104] * 1000)]
    assert state.next_id == 105 and not state.uncovered and state.hole_since is None
    stored = scan_series(tmp_path, state.key).collect()
    assert stored["agg_id"].to_list() == [100, 101, 102, 103, 104]
    assert stored["price"].to_list() == [100 + i % 7 + 0.5 for i in range(100, 105)]
    assert stored["transact_time"].cast(pl.Int64).to_list() == [times[i] * 1000 for i in range(100, 105)]
    follower.rest.close()


def _rest_agg_trades(fx: FakeExchange, symbol: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    """A plain REST download of [start_ms, end_ms): a time window finds the first id,
    then `fromId` pages."""
    first = httpx.get(f"{fx.base_url}/fapi/v1/aggTrades", params={
        "symbol": symbol, "startTime": start_ms, "endTime": start_ms + 3_599_999, "limit": 1}).json()
    rows, cur = [], first[0]["a"]
    while not rows or rows[-1]["T"] < end_ms:
        page = httpx.get(f"{fx.base_url}/fapi/v1/aggTrades", params={
            "symbol": symbol, "fromId": cur, "limit": 1000}).json()
        rows += page
        cur = page[-1]["a"] + 1
    return pl.from_arrow(parse_rest_agg_trades([r for r in rows if r["T"] < end_ms]))


def _start_follower(fx: FakeExchange, lake: Path, start: str | None) -> subprocess.Popen:
    extra = ["--start", start] if start else []
    return subprocess.Popen(
        [*CLI, "follow", "--market", "um", "--data", "agg_trades", "--symbols", ",".join(SYMBOLS),
         "--lake", str(lake), "--base-url", fx.base_url, "--flush-seconds", "0.5", "--silence-seconds", "2",
         "--streams-per-connection", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _covered(lake: Path) -> dict[str, list[tuple[int, int]]]:
    if not lake.is_dir():
        return {s: [] for s in SYMBOLS}
    return {s: LakeWriter(lake).covered(SeriesKey("um", "agg_trades", s)) for s in SYMBOLS}


def _wait_until(cond, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_follow_agg_trades_sigkill_restart_under_faults_equals_rest(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    start_ms = NOW_MS - 10 * 60_000
    with FakeExchange(now_ms=NOW_MS, speed=240, faults=TRADE_WS_FAULTS, seed=11) as fx:
        proc = _start_follower(fx, lake, "2026-01-01T01:50")
        # past the catch-up (10 fake minutes over REST), then some streaming
        _wait_until(lambda: all(c and c[-1][1] > NOW_MS * 1000 for c in _covered(lake).values()), 60,
                    "the first follower committed nothing from the streams")
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc = _start_follower(fx, lake, None)  # from where the coverage ends
        target_us = max(c[-1][1] for c in _covered(lake).values()) + 5 * 60_000_000  # 5 more fake minutes
        _wait_until(lambda: all(c and c[-1][1] > target_us for c in _covered(lake).values()), 90,
                    "the restarted follower stopped advancing")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "followed 2 series" in out and "agg_trades rows committed" in out
        covered = _covered(lake)
        assert all(len(c) == 1 and c[0][0] == start_ms * 1000 for c in covered.values()), covered
        end_ms = min(c[0][1] for c in covered.values()) // 1000
        rest = {s: _rest_agg_trades(fx, s, start_ms, end_ms) for s in SYMBOLS}
        stats = fx.stats()
    for symbol in SYMBOLS:
        mine = scan_series(lake, SeriesKey("um", "agg_trades", symbol), start_ms * 1000, end_ms * 1000).collect()
        theirs = rest[symbol]
        assert mine.height == theirs.height >= 15 * 60  # a trade per fake second
        assert (np.diff(mine["agg_id"].to_numpy()) == 1).all()  # contiguous, no duplicates
        assert mine.equals(theirs), symbol
    report = verify_lake(lake)
    assert report.ok and report.files_checked >= 2, [str(p) for p in report.problems]
    assert stats["um"]["429"] == 0 and stats["um"]["418"] == 0
    assert sum(stats["ws"][k] for k in ("ws-dup", "ws-reorder", "ws-miss")) >= 3
    assert stats["ws"]["closed_rate"] == 0 and stats["ws"]["closed_streams"] == 0
