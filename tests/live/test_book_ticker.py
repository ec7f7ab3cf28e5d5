"""`follow --data book_ticker` (USD-M/COIN-M `<symbol>@bookTicker`): a recorder. What it
recorded equals the exchange's (fake's) archive bookTicker file of the same day, row for
row inside the recorded stretches; reconnects leave the stretch between them uncovered.

Oracle: the day's archive bookTicker file, downloaded once the day is published."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import polars as pl

from kline_lake.cli.follow_cmd import build_request
from kline_lake.core.markets import get_market, resolve_base_url
from kline_lake.core.series import SeriesKey
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import DownloadRequest
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.scan import scan_series
from kline_lake.lake.writer import LakeWriter
from kline_lake.live.follower import Follower

T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC: the end of the recorded day
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def test_recorded_book_ticker_equals_the_archive_day(tmp_path: Path) -> None:
    lake, plain = tmp_path / "lake", tmp_path / "plain"
    with FakeExchange(now_ms=T0_MS - 150_000, speed=30, faults="ws-drop:0.01,ws-dup:0.03,ws-reorder:0.03",
                      seed=6) as fx:
        req = build_request(market="um", data="book_ticker", interval="1m", symbols=",".join(SYMBOLS),
                            lake=str(lake), base_url=fx.base_url, ws_url=None, duration="3s",
                            flush_seconds="0.5", silence_seconds="3", streams_per_connection="1")
        totals = Follower(req, seed=2).run(threading.Event())
        while fx.now_ms() < T0_MS + 1000:  # the day's file is published when the day is over
            time.sleep(0.1)
        asyncio.run(run_download(DownloadRequest(
            market=get_market("um"), dataset="book_ticker", symbols=SYMBOLS, intervals=(),
            start_ms=T0_MS - 86_400_000, end_ms=T0_MS, lake=plain,
            base_url=resolve_base_url(get_market("um"), fx.base_url), source="archive")))
        stats = fx.stats()["ws"]
    assert totals.rest.requests == 2 and stats["ws-dup"] + stats["ws-reorder"] >= 1
    for symbol in SYMBOLS:
        key = SeriesKey("um", "book_ticker", symbol)
        covered = LakeWriter(lake).covered(key)
        assert covered and all(b <= T0_MS * 1000 + 60_000_000 for _, b in covered)
        mine = scan_series(lake, key).collect().filter(pl.col("transaction_time").cast(pl.Int64) < T0_MS * 1000)
        assert mine.height >= 60 and mine["update_id"].n_unique() == mine.height
        archive = scan_series(plain, key).collect()
        for a, b in covered:  # inside what was recorded, exactly the archive's updates
            t = pl.col("transaction_time").cast(pl.Int64)
            ours = mine.filter((t >= a) & (t < min(b, T0_MS * 1000)))
            theirs = archive.filter((t >= a) & (t < min(b, T0_MS * 1000)))
            assert ours.equals(theirs), (symbol, a, b)
        assert mine.join(archive, on="update_id", how="anti").height == 0  # nothing invented
