"""`follow --interval 1M`: calendar months on the grid, at the close and in the backfill
condition (a month is 28..31 days, never a fixed length).

Oracle: the fake exchange's REST `/klines?interval=1M` for the same range."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl

from kline_lake.cli.follow_cmd import build_request
from kline_lake.core.series import SeriesKey
from kline_lake.download.rest_rows import parse_rest_klines
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.scan import scan_series
from kline_lake.lake.writer import LakeWriter
from kline_lake.live.follower import Follower


def _ms(*ymd: int) -> int:
    return int(datetime(*ymd, tzinfo=UTC).timestamp() * 1000)


def _request(fx: FakeExchange, lake: Path, duration: str | None, start: str | None):
    return build_request(market="um", data="klines", interval="1M", symbols="BTCUSDT", lake=str(lake),
                         base_url=fx.base_url, ws_url=None, duration=duration, flush_seconds="0.25",
                         silence_seconds="30", streams_per_connection=None, start=start)


def test_follow_month_klines_close_on_the_calendar(tmp_path: Path) -> None:
    feb_ms = _ms(2026, 2, 1)
    key = SeriesKey("um", "klines", "BTCUSDT", "1M")
    writer = LakeWriter(tmp_path)
    clock = {"ms": feb_ms - 10_000}  # the exchange's clock, moved by the test
    with FakeExchange(now_ms=lambda: clock["ms"], seed=3) as fx:
        # an empty lake starts at the month in progress: January comes from the stream
        follower, stop = Follower(_request(fx, tmp_path, None, None)), threading.Event()
        t = threading.Thread(target=follower.run, args=(stop,))
        t.start()
        deadline = time.monotonic() + 60
        while fx.stats()["ws"]["open"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        clock["ms"] = feb_ms + 2_000  # January closes
        while not writer.covered(key) and time.monotonic() < deadline and t.is_alive():
            time.sleep(0.05)
        stop.set()
        t.join(timeout=30)
        assert follower.totals.committed_rows == 1  # the stream's close (a backfill's would make it a duplicate)
        assert writer.covered(key) == [(_ms(2026, 1, 1) * 1000, feb_ms * 1000)]
        # a catch-up from October: whole months over REST, contiguous with January
        Follower(_request(fx, tmp_path, "0.5s", "2025-10-01")).run(threading.Event())
        rest = httpx.get(f"{fx.base_url}/fapi/v1/klines", params={
            "symbol": "BTCUSDT", "interval": "1M", "startTime": _ms(2025, 10, 1), "endTime": feb_ms - 1}).json()
    assert writer.covered(key) == [(_ms(2025, 10, 1) * 1000, feb_ms * 1000)]
    stored = scan_series(tmp_path, key).collect()
    # Oct (31 days), Nov (30), Dec (31), Jan (31); February, still open, is not stored
    assert stored["open_time"].cast(pl.Int64).to_list() == [
        _ms(2025, 10, 1) * 1000, _ms(2025, 11, 1) * 1000, _ms(2025, 12, 1) * 1000, _ms(2026, 1, 1) * 1000]
    assert stored.equals(pl.from_arrow(parse_rest_klines(rest, "klines")).select(stored.columns))
