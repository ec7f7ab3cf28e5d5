"""The follower against the fake exchange (real HTTP + WebSocket on loopback, fast clock).

Oracle: the fake exchange's own REST `/klines` for the same range, row for row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import polars as pl
import pytest

from kline_lake.cli.follow_cmd import build_request
from kline_lake.core.series import SeriesKey
from kline_lake.download.rest_rows import parse_rest_klines
from kline_lake.errors import InputError, LakeError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.scan import scan_series
from kline_lake.lake.writer import LakeWriter
from kline_lake.live.follower import Follower

T0_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
ALL_WS_FAULTS = "ws-drop:0.01,ws-silent:0.005,ws-dup:0.05,ws-delay:0.02,ws-reorder:0.05,ws-miss:0.05"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
CLI = [sys.executable, "-c", "from kline_lake.cli import main; main()"]


def _rest_klines(fx: FakeExchange, symbol: str, start_ms: int, end_ms: int) -> pl.DataFrame:
    rows, cur = [], start_ms
    while cur < end_ms:
        page = httpx.get(f"{fx.base_url}/fapi/v1/klines", params={
            "symbol": symbol, "interval": "1m", "startTime": cur, "endTime": end_ms - 1, "limit": 1500}).json()
        if not page:
            break
        rows += page
        cur = page[-1][0] + 60_000
    return pl.from_arrow(parse_rest_klines(rows, "klines"))


def _lake_frame(lake: Path, symbol: str) -> pl.DataFrame:
    frame = scan_series(lake, SeriesKey("um", "klines", symbol, "1m"))
    return frame.collect() if isinstance(frame, pl.LazyFrame) else frame


def _assert_lake_equals_rest(fx: FakeExchange, lake: Path, min_rows: int) -> None:
    writer = LakeWriter(lake)
    for symbol in SYMBOLS:
        covered = writer.covered(SeriesKey("um", "klines", symbol, "1m"))
        assert len(covered) == 1, covered  # one contiguous range: no hole left
        start_ms, end_ms = covered[0][0] // 1000, covered[0][1] // 1000
        lake_rows = _lake_frame(lake, symbol)
        lake_rows = lake_rows.filter(pl.col("open_time").cast(pl.Int64) // 1000 < end_ms)
        rest_rows = _rest_klines(fx, symbol, start_ms, end_ms)
        assert lake_rows.height >= min_rows
        assert lake_rows["open_time"].n_unique() == lake_rows.height  # no duplicates
        assert lake_rows.equals(rest_rows.select(lake_rows.columns)), symbol


def test_follower_under_every_stream_fault_equals_rest(tmp_path: Path) -> None:
    with FakeExchange(now_ms=T0_MS, speed=600, faults=ALL_WS_FAULTS, seed=5) as fx:
        req = build_request(market="um", data="klines", interval="1m", symbols=",".join(SYMBOLS),
                            lake=str(tmp_path), base_url=fx.base_url, ws_url=None, duration="8s",
                            flush_seconds="0.5", silence_seconds="2", streams_per_connection="1")
        lines: list[str] = []
        totals = Follower(req, log=lines.append, seed=1).run(threading.Event())
        stats = fx.stats()
        assert stats["um"]["429"] == 0 and stats["um"]["418"] == 0
        assert totals.reconnects >= 1 and totals.backfills >= 1, lines
        assert sum(stats["ws"][k] for k in ("ws-dup", "ws-reorder", "ws-miss")) >= 3
        _assert_lake_equals_rest(fx, tmp_path, min_rows=40)  # 8 s at 600x = 80 fake minutes


def test_start_catches_up_over_rest_then_streams_contiguously(tmp_path: Path) -> None:
    with FakeExchange(now_ms=T0_MS, speed=120, seed=2) as fx:
        req = build_request(market="um", data="klines", interval="1m", symbols=",".join(SYMBOLS),
                            lake=str(tmp_path), base_url=fx.base_url, ws_url=None, duration="4s",
                            flush_seconds="0.5", silence_seconds="5", streams_per_connection=None,
                            start="2025-12-31T22:00")
        totals = Follower(req).run(threading.Event())
        assert totals.committed_rows >= 4  # 4 s at 120x: 8 fake minutes from the streams
        for symbol in SYMBOLS:
            covered = LakeWriter(tmp_path).covered(SeriesKey("um", "klines", symbol, "1m"))
            assert covered[0][0] == (T0_MS - 2 * 3_600_000) * 1000  # from --start
        _assert_lake_equals_rest(fx, tmp_path, min_rows=120 + 4)


def test_connection_cut_after_max_age_reconnects_and_backfills(tmp_path: Path) -> None:
    # The exchange's 24 h cut, shrunk to 20 fake minutes (2 real seconds at 600x).
    with FakeExchange(now_ms=T0_MS, speed=600, ws_max_age_s=1200) as fx:
        req = build_request(market="um", data="klines", interval="1m", symbols=",".join(SYMBOLS),
                            lake=str(tmp_path), base_url=fx.base_url, ws_url=None, duration="7s",
                            flush_seconds="0.5", silence_seconds="5", streams_per_connection=None)
        totals = Follower(req, seed=3).run(threading.Event())
        assert fx.stats()["ws"]["closed_expired"] >= 2
        assert totals.reconnects >= 2
        _assert_lake_equals_rest(fx, tmp_path, min_rows=40)


def test_unknown_symbol_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with FakeExchange(now_ms=T0_MS) as fx:
        req = build_request(market="um", data="klines", interval="1m", symbols="BTCUSDT,NOPEUSDT",
                            lake=str(tmp_path / "lake"), base_url=fx.base_url, ws_url=None, duration="1s",
                            flush_seconds="0.5", silence_seconds="5", streams_per_connection=None)
        with pytest.raises(InputError, match="NOPEUSDT"):
            Follower(req).run(threading.Event())
        assert fx.stats()["ws"]["connections"] == 0


def test_symbols_all_follows_every_trading_symbol(tmp_path: Path) -> None:
    with FakeExchange(now_ms=T0_MS, speed=600) as fx:
        info = httpx.get(f"{fx.base_url}/fapi/v1/exchangeInfo").json()
        trading = {s["symbol"] for s in info["symbols"] if s["status"] == "TRADING"}
        req = build_request(market="um", data="klines", interval="1m", symbols="ALL",
                            lake=str(tmp_path), base_url=fx.base_url, ws_url=None, duration="3s",
                            flush_seconds="0.5", silence_seconds="5", streams_per_connection=None)
        follower = Follower(req)
        totals = follower.run(threading.Event())
        assert set(follower.symbols) == trading and len(trading) >= 2
        assert totals.committed_rows >= len(trading)
        assert fx.stats()["ws"]["max_streams"] == len(trading)  # one combined connection


def test_second_follower_of_a_series_is_refused(tmp_path: Path) -> None:
    with FakeExchange(now_ms=T0_MS, speed=60) as fx:
        req = build_request(market="um", data="klines", interval="1m", symbols="BTCUSDT",
                            lake=str(tmp_path), base_url=fx.base_url, ws_url=None, duration="3s",
                            flush_seconds="0.5", silence_seconds="5", streams_per_connection=None)
        first = threading.Thread(target=Follower(req).run, args=(threading.Event(),))
        first.start()
        time.sleep(1.0)
        with pytest.raises(LakeError, match="another follower is already following"):
            Follower(req).run(threading.Event())
        first.join()


def _start_follower(fx: FakeExchange, lake: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "follow", "--market", "um", "--symbols", ",".join(SYMBOLS), "--lake", str(lake),
         "--base-url", fx.base_url, "--flush-seconds", "0.5", "--silence-seconds", "2",
         "--streams-per-connection", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _coverage_end_us(lake: Path) -> int:
    if not lake.is_dir():
        return 0
    ends = [c[-1][1] for s in SYMBOLS if (c := LakeWriter(lake).covered(SeriesKey("um", "klines", s, "1m")))]
    return min(ends) if len(ends) == len(SYMBOLS) else 0


def _covered_span_ms(lake: Path) -> int:
    """Length of the stretch every symbol's coverage holds (0 until both have some)."""
    covered = [LakeWriter(lake).covered(SeriesKey("um", "klines", s, "1m")) for s in SYMBOLS]
    if not all(covered):
        return 0
    return (min(c[-1][1] for c in covered) - max(c[0][0] for c in covered)) // 1000


def _wait_for_new_coverage(lake: Path, timeout_s: float) -> None:
    before, deadline = _coverage_end_us(lake), time.monotonic() + timeout_s
    while _coverage_end_us(lake) <= before:
        assert time.monotonic() < deadline, "the follower committed nothing"
        time.sleep(0.1)


def test_follow_cli_survives_sigkills_and_equals_a_rest_download(tmp_path: Path) -> None:
    lake, plain = tmp_path / "lake", tmp_path / "plain"
    with FakeExchange(now_ms=T0_MS, speed=600, faults=ALL_WS_FAULTS, seed=9) as fx:
        for pause_s in (1.5, 0.7, 2.1):  # three SIGKILLs mid-run, each followed by a restart
            proc = _start_follower(fx, lake)
            _wait_for_new_coverage(lake, timeout_s=30)  # the run is past its start-up
            time.sleep(pause_s)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        proc = _start_follower(fx, lake)
        _wait_for_new_coverage(lake, timeout_s=30)
        # follow until the lake spans a few fake hours (wall time depends on the machine's
        # load, so wait for the span itself rather than a fixed number of seconds)
        deadline = time.monotonic() + 90
        while _covered_span_ms(lake) < 2 * 3_600_000:
            assert time.monotonic() < deadline, "the follower stopped advancing"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "followed 2 series" in out
        covered = {s: LakeWriter(lake).covered(SeriesKey("um", "klines", s, "1m")) for s in SYMBOLS}
        assert all(len(c) == 1 for c in covered.values()), covered
        start_ms = max(c[0][0] for c in covered.values()) // 1000
        end_ms = min(c[0][1] for c in covered.values()) // 1000
        assert end_ms - start_ms >= 2 * 3_600_000  # a few fake hours
        fmt = "%Y-%m-%dT%H:%M"
        start_text = time.strftime(fmt, time.gmtime(start_ms / 1000))
        end_text = time.strftime(fmt, time.gmtime(end_ms / 1000))
        download = subprocess.run(
            [*CLI, "download", "--market", "um", "--data", "klines", "--symbols", ",".join(SYMBOLS),
             "--interval", "1m", "--start", start_text, "--end", end_text, "--source", "rest",
             "--lake", str(plain), "--base-url", fx.base_url, "--quiet"],
            capture_output=True, text=True, timeout=60)
        assert download.returncode == 0, download.stderr
        for symbol in SYMBOLS:
            lo, hi = pl.col("open_time").cast(pl.Int64) // 1000 >= start_ms, pl.col("open_time").cast(pl.Int64) // 1000 < end_ms
            mine = _lake_frame(lake, symbol).filter(lo & hi)
            theirs = _lake_frame(plain, symbol)
            assert mine.height == theirs.height >= 120
            assert mine["open_time"].n_unique() == mine.height
            assert mine.equals(theirs), symbol
        verify = subprocess.run([*CLI, "verify", "--lake", str(lake)], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        stats = fx.stats()
        assert stats["um"]["429"] == 0 and stats["um"]["418"] == 0
        assert stats["ws"]["closed_rate"] == 0 and stats["ws"]["closed_streams"] == 0
