"""No silent waits or guesses (issue 12 item 11): a ban waited out, a start before the
listing and an end after the exchange's now are each said in one line through the
progress display, and the archive is planned from the listing, not from --start."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx

from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import parse_utc_ms
from kline_lake.download.orchestrate import run_download
from kline_lake.download.progress import NullProgress, TqdmProgress
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange, universe
from tests.support.fetch import NOW_MS, cli, read_series, server_klines


def _run(fx: FakeExchange, lake: Path, progress, **kw):
    args = {"market": "spot", "dataset": "klines", "symbols": "BTCUSDT", "interval": "1d",
            "start": "2024-01-01", "end": None, "source": "auto", **kw}
    request = validate_request(lake=lake, base_url=fx.base_url, **args)
    return asyncio.run(run_download(request, progress=progress))


def test_archive_plan_starts_at_the_listing_not_at_start(tmp_path: Path) -> None:
    # the fake lists BTCUSDT on 2017-08-17 04:00: its first daily kline opens at 00:00
    assert universe.listing_ms("spot", "BTCUSDT") == parse_utc_ms("2017-08-17T04:00")
    with FakeExchange(seed=3, now_ms=NOW_MS) as fx:
        progress = NullProgress()
        totals = _run(fx, tmp_path, progress, start="1990-01-01", end="2018-01-01")
        archive = fx.stats()["archive"]["requests"]
        rows = server_klines(fx.base_url, "spot", "klines", "BTCUSDT", "1d", 0, parse_utc_ms("2018-01-01"))
    # 2017-08-17..31 from 15 daily files, September..December from 4 monthly files:
    # a CHECKSUM and a zip each, and not one request for the 27 years before the listing
    assert archive == 2 * (15 + 4), archive
    assert "files not in archive" not in totals.extra
    assert read_series(tmp_path, SeriesKey("spot", "klines", "BTCUSDT", "1d")).equals(rows)
    assert [n for n in progress.notes if "BTCUSDT" in n] == [
        "BTCUSDT: the first 1d kline at or after --start 1990-01-01T00:00:00Z opens "
        "2017-08-17T00:00:00Z; nothing to fetch before it"], progress.notes


def test_rest_listing_note_and_no_note_when_start_is_after_listing(tmp_path: Path) -> None:
    with FakeExchange(seed=3, now_ms=NOW_MS) as fx:
        progress = NullProgress()
        _run(fx, tmp_path / "a", progress, market="um", symbols="ETHUSDT", interval="1h",
             start="2019-11-01", end="2019-12-01", source="rest")
        assert progress.notes == [
            "ETHUSDT: the first 1h kline at or after --start 2019-11-01T00:00:00Z opens "
            "2019-11-27T07:00:00Z; nothing to fetch before it"]
        quiet = NullProgress()
        _run(fx, tmp_path / "b", quiet, market="um", symbols="ETHUSDT", interval="1h",
             start="2020-01-01", end="2020-02-01", source="auto")
        assert quiet.notes == []


def test_end_after_the_exchanges_now_is_clamped_with_a_note(tmp_path: Path) -> None:
    with FakeExchange(seed=3, now_ms=NOW_MS) as fx:  # 2024-06-01T12:00:30Z
        progress = NullProgress()
        totals = _run(fx, tmp_path, progress, interval="1h", start="2024-06-01", end="2030-01-01",
                      source="rest")
    assert totals.rows_written == 12  # 00:00..11:00; the 12:00 kline is still open
    assert progress.notes == [
        "--end 2030-01-01T00:00:00Z is after the exchange's now (2024-06-01T12:00:30Z): "
        "downloading up to now"]


def test_a_ban_is_waited_out_and_said(tmp_path: Path) -> None:
    # Spend the window, earn a 429, then a 418 (a ban of 2 fake minutes = 4 s), all from
    # this IP, before the download starts: its first request meets the ban. A first run
    # caches exchangeInfo (its 2-second window) in the lake, so the wait is the ban's,
    # not the rest of the 1-minute window a client assumes before it has read rateLimits.
    with FakeExchange(seed=3, now_ms=NOW_MS, minute_seconds=2, weight_limit=40) as fx:
        _run(fx, tmp_path, NullProgress(), interval="1h", start="2024-05-30", end="2024-05-31",
             source="rest")
        with httpx.Client(base_url=fx.base_url) as http:
            statuses = []
            while 418 not in statuses:
                statuses.append(http.get("/api/v3/time").status_code)
                assert len(statuses) < 100
        stream = io.StringIO()
        progress = TqdmProgress(stream=stream, disable=True)
        totals = _run(fx, tmp_path, progress, interval="1h", start="2024-05-31", end="2024-06-01",
                      source="rest")
        base_url = fx.base_url
    assert totals.rows_written == 24 and totals.banned_418 >= 1
    said = [line for line in stream.getvalue().splitlines() if "418" in line]
    assert said and said[0].startswith(f"HTTP 418 (IP banned) from {base_url}: waiting "), said
    assert " s before sending again (Retry-After " in said[0], said
    seconds = float(said[0].split("waiting ")[1].split(" s")[0])
    assert 1 <= seconds <= 5


def test_quiet_cli_still_says_a_clamp_on_stderr(tmp_path: Path) -> None:
    with FakeExchange(seed=3, now_ms=NOW_MS) as fx:
        res = cli("download", "--market", "spot", "--data", "klines", "--symbols", "BTCUSDT",
                  "--interval", "1h", "--start", "2024-06-01", "--end", "2030-01-01", "--quiet",
                  "--source", "rest", "--lake", str(tmp_path), "--base-url", fx.base_url)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == [
        "--end 2030-01-01T00:00:00Z is after the exchange's now (2024-06-01T12:00:30Z): "
        "downloading up to now"]
    assert "download done: 12 rows written" in res.stdout
