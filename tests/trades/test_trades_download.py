"""The `trades` dataset (every trade) end to end against the fake exchange over loopback:
the fake's trades are the stream its aggTrades aggregate, the key gate answers 401,
archive == REST for spot/um/cm, ids contiguous, and no key skips REST with one line."""

from __future__ import annotations

import asyncio
import io
import zipfile
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.archive import fetch, ingest, zip_safety
from kline_lake.archive import manifest as archive_manifest
from kline_lake.archive.csv import parse_archive_csv
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us, parse_utc_ms
from kline_lake.download.orchestrate import run_download
from kline_lake.download.progress import NullProgress
from kline_lake.download.request import validate_request
from kline_lake.download.rest_rows import parse_rest_trades
from kline_lake.download.rest_trades import interpret_trades_page
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.catalog import Lake

NOW_MS = 1_740_000_000_000  # 2025-02-19T21:20Z: spot archive days of 2025 are in microseconds
KEY = {"X-MBX-APIKEY": "test-key-not-secret"}
PREFIX = {"spot": "/api/v3", "um": "/fapi/v1", "cm": "/dapi/v1"}
SYMBOL = {"spot": "XMRUSDT", "um": "SRMUSDT", "cm": "ETHUSD_PERP"}


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=4, now_ms=NOW_MS) as server:
        yield server


@pytest.fixture(autouse=True)
def _state(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    monkeypatch.setenv("BINANCE_API_KEY", KEY["X-MBX-APIKEY"])


def _get(fx, market: str, endpoint: str, headers=None, **params):
    return httpx.get(f"{fx.base_url}{PREFIX[market]}/{endpoint}", params=params, headers=headers,
                     timeout=30)


def read_series(lake: Path, key: SeriesKey) -> pa.Table:
    files = sorted((lake / key.market / key.dataset / f"symbol={key.symbol}").rglob("*.parquet"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f, partitioning=None) for f in files]).sort_by("trade_id")


def download(fx, lake: Path, market: str, start: str, end: str, source: str, progress=None,
             symbol: str | None = None):
    request = validate_request(market=market, dataset="trades", symbols=symbol or SYMBOL[market],
                               interval=None,
                               start=start, end=end, lake=lake, base_url=fx.base_url, source=source)
    return asyncio.run(run_download(request, progress=progress))


def test_key_gate_answers_401_with_the_exchange_body(fx) -> None:
    r = _get(fx, "spot", "historicalTrades", symbol="BTCUSDT", limit=5)
    assert r.status_code == 401 and r.json() == {"code": -2014, "msg": "API-key format invalid."}
    assert _get(fx, "spot", "historicalTrades", KEY, symbol="BTCUSDT", limit=5).status_code == 200


@pytest.mark.parametrize("market", ["spot", "um", "cm"])
def test_trades_are_the_stream_agg_trades_aggregate(fx, market: str) -> None:
    start = parse_utc_ms("2022-06-01T03:00")
    aggs = _get(fx, market, "aggTrades", symbol=SYMBOL[market], startTime=start,
                endTime=start + 600_000, limit=200).json()
    first = aggs[0]["f"]
    trades = _get(fx, market, "historicalTrades", KEY, symbol=SYMBOL[market], fromId=first,
                  limit=500).json()
    ids = [t["id"] for t in trades]
    assert ids == list(range(first, first + len(ids))) and len(ids) == 500
    by_id = {t["id"]: t for t in trades}
    checked = 0
    for agg in aggs:
        members = [by_id[i] for i in range(agg["f"], agg["l"] + 1) if i in by_id]
        if len(members) < agg["l"] - agg["f"] + 1:
            break  # past the page
        assert sum(Decimal(t["qty"]) for t in members) == Decimal(agg["q"])
        assert {(t["price"], t["time"], t["isBuyerMaker"]) for t in members} == \
            {(agg["p"], agg["T"], agg["m"])}
        for t in members:
            if market == "cm":  # baseQty = contracts * 10 USD / price
                assert abs(float(t["baseQty"]) - float(t["qty"]) * 10 / float(t["price"])) < 1e-8
            else:
                assert Decimal(t["quoteQty"]) == Decimal(t["price"]) * Decimal(t["qty"])
        checked += 1
    assert checked >= 20


def _archive_day(fx, market: str, day: str, sym: str) -> bytes:
    root = "spot" if market == "spot" else f"futures/{market}"
    r = httpx.get(f"{fx.base_url}/data/{root}/daily/trades/{sym}/{sym}-trades-{day}.zip", timeout=60)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return zf.read(zf.namelist()[0])


@pytest.mark.parametrize(("market", "sym", "day", "header", "micros"), [
    ("spot", "ETHUSDT", "2025-01-10", False, True), ("spot", "XMRUSDT", "2021-06-01", False, False),
    ("um", "SRMUSDT", "2022-06-01", True, False), ("um", "SRMUSDT", "2021-06-01", False, False),
    ("cm", "ETHUSD_PERP", "2023-06-01", True, False),
])
def test_archive_file_quirks_and_equal_to_rest(fx, market: str, sym: str, day: str, header: bool,
                                               micros: bool) -> None:
    csv = _archive_day(fx, market, day, sym)
    first_line = csv.split(b"\n", 1)[0].decode()
    assert first_line.startswith("id,price,qty,") == header
    n_cols = first_line.count(",") + 1
    assert n_cols == (7 if market == "spot" else 6)
    table = parse_archive_csv(csv, "trades")
    body = csv.split(b"\n")[1 if header else 0].split(b",")
    assert (int(body[4]) >= 10**15) == micros
    ids = table.column("trade_id").to_pylist()
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    rows = _get(fx, market, "historicalTrades", KEY, symbol=sym, fromId=ids[0], limit=500).json()
    assert parse_rest_trades(rows).equals(table.slice(0, 500))


def test_interpret_trades_page() -> None:
    rows = [{"id": i, "time": 1000 + i} for i in (5, 6, 8)]
    page = interpret_trades_page(rows, 5, 10_000, 3)
    assert (page.next_from_id, page.done, page.holes) == (9, False, [(7, 8)])
    page = interpret_trades_page(rows, 5, 1007, 3)
    assert (page.done, [r["id"] for r in page.rows]) == (True, [5, 6])
    assert interpret_trades_page(rows, 5, 10_000, 4).done  # short page: nothing newer yet


@pytest.mark.parametrize("market", ["spot", "um", "cm"])
def test_download_archive_equals_rest(fx, tmp_path: Path, market: str) -> None:
    """A whole day from the archive; two hours of it from REST (fromId paging located by
    aggTrades): the REST rows are exactly the archive's rows of those hours."""
    download(fx, tmp_path / "a", market, "2022-06-01", "2022-06-02", "archive")
    totals = download(fx, tmp_path / "r", market, "2022-06-01T02:30", "2022-06-01T04:30", "rest")
    key = SeriesKey(market, "trades", SYMBOL[market])
    arch, rest = read_series(tmp_path / "a", key), read_series(tmp_path / "r", key)
    t = arch.column("time").cast(pa.int64()).to_numpy()
    lo, hi = ms_to_us(parse_utc_ms("2022-06-01T02:30")), ms_to_us(parse_utc_ms("2022-06-01T04:30"))
    inside = arch.filter(pa.array((t >= lo) & (t < hi)))
    assert rest.num_rows > 1000 and rest.equals(inside)
    ids = arch.column("trade_id").to_pylist()
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, no duplicates
    assert totals.id_holes == 0


def _lake_files(lake: Path, key: SeriesKey) -> dict[str, bytes]:
    root = lake / key.market / key.dataset
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*.parquet"))}


def test_archive_days_streamed_from_the_zip_give_the_lake_of_the_whole_csv(
        fx, tmp_path: Path, monkeypatch) -> None:
    """Trades days go from the verified zip through parse_trades_stream (never inflated
    whole: extract_single_csv is not called), in small chunks; the second day is clipped.
    The lake, its coverage and its manifest are exactly those of the whole-CSV path."""
    key = SeriesKey("spot", "trades", "XMRUSDT")
    args = ("spot", "2022-06-01", "2022-06-02T06:00", "archive")
    monkeypatch.setattr(ingest, "STREAMED_DATASETS", frozenset())  # the bytes path, as before
    whole_totals = download(fx, tmp_path / "whole", *args)

    monkeypatch.setattr(ingest, "STREAMED_DATASETS", frozenset({"trades"}))
    streams: list[int] = []

    def small_chunks(open_binary, *, size_bytes):
        streams.append(size_bytes)
        return ingest_stream(open_binary, size_bytes=size_bytes)

    def no_whole_inflate(*args, **kw):
        raise AssertionError("a trades CSV was inflated whole")

    ingest_stream = partial(ingest.parse_trades_stream, chunk_bytes=1 << 16)
    monkeypatch.setattr(ingest, "parse_trades_stream", small_chunks)
    monkeypatch.setattr(fetch, "extract_single_csv", no_whole_inflate)
    monkeypatch.setattr(zip_safety, "_STREAM_INPUT_BYTES", 4096)
    streamed_totals = download(fx, tmp_path / "streamed", *args)

    assert len(streams) == 2 and min(streams) > 1 << 20  # two days, many chunks each
    a, b = read_series(tmp_path / "whole", key), read_series(tmp_path / "streamed", key)
    assert a.num_rows > 100_000 and a.equals(b)
    assert _lake_files(tmp_path / "whole", key) == _lake_files(tmp_path / "streamed", key)
    covered = [Lake(tmp_path / run).covered("spot", "trades", "XMRUSDT") for run in ("whole", "streamed")]
    assert covered[0] == covered[1] and covered[0]
    assert archive_manifest.read_manifest(tmp_path / "whole", key) == \
        archive_manifest.read_manifest(tmp_path / "streamed", key)
    assert whole_totals.rows_written == streamed_totals.rows_written == a.num_rows


def test_without_key_rest_is_skipped_and_the_archive_serves(fx, tmp_path: Path,
                                                           monkeypatch) -> None:
    """`--source auto` without a key: the archive's day lands, the REST tail (today) is
    skipped with one note naming the variable."""
    monkeypatch.delenv("BINANCE_API_KEY")
    progress = NullProgress()
    totals = download(fx, tmp_path, "spot", "2025-02-18", "2025-02-19T06:00", "auto", progress,
                      "ETHUSDT")
    notes = [n for n in progress.notes if "API key" in n]
    assert len(notes) == 1 and "BINANCE_API_KEY" in notes[0] and "\n" not in notes[0]
    assert totals.extra.get("rows from REST", 0) == 0
    assert totals.rows_written == totals.extra["rows from archive"]
    lake = read_series(tmp_path, SeriesKey("spot", "trades", "ETHUSDT"))
    t = lake.column("time").cast(pa.int64()).to_numpy()
    assert lake.num_rows > 100_000  # the whole archive day of 2025-02-18
    assert t.min() >= ms_to_us(parse_utc_ms("2025-02-18")) and t.max() < ms_to_us(parse_utc_ms("2025-02-19"))


def test_real_historical_trades_body_parses_and_the_fake_has_its_shape(fx) -> None:
    """A real spot /api/v3/historicalTrades body (tests/data/real_data/README.md): parsed
    exactly, ids contiguous, quoteQty = price * qty; the fake's objects have its keys."""
    import json

    path = Path(__file__).parents[1] / "data/real_data/spot/rest_responses/" \
        "nautilus_http_spot_market_historical_trades.json"
    real = json.loads(path.read_text())
    table = parse_rest_trades(real)
    assert table.column("trade_id").to_pylist() == list(range(1111471896, 1111471906))
    assert table.column("price").to_pylist()[0] == 60814.78
    assert table.column("quote_quantity").to_pylist()[0] == 20.6770252
    assert table.column("time").cast(pa.int64()).to_pylist()[0] == 1634943219887 * 1000
    for row in real:
        assert Decimal(row["quoteQty"]) == Decimal(row["price"]) * Decimal(row["qty"])
    fake = _get(fx, "spot", "historicalTrades", KEY, symbol="BTCUSDT", limit=3).json()
    assert [list(r) for r in fake] == [list(real[0])] * 3


@pytest.mark.slow
def test_sigkill_mid_download_then_rerun_equals_clean(fx, tmp_path: Path) -> None:
    """Six archive days of trades, the CLI killed (SIGKILL) after its first commits; a
    rerun leaves exactly the rows and coverage of a clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    exe = str(Path(sys.executable).with_name("kline-lake"))
    args = ["download", "--market", "spot", "--data", "trades", "--symbols", "XMRUSDT",
            "--start", "2022-06-01", "--end", "2022-06-07", "--source", "archive", "--quiet",
            "--base-url", fx.base_url]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert subprocess.run([exe, *args, "--lake", str(clean)], capture_output=True,
                          timeout=300).returncode == 0
    proc = subprocess.Popen([exe, *args, "--lake", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((killed / "spot" / "trades").rglob("*.parquet")):
        time.sleep(0.02)
    assert proc.poll() is None, "the download finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    rerun = subprocess.run([exe, *args, "--lake", str(killed)], capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    key = SeriesKey("spot", "trades", "XMRUSDT")
    a, b = read_series(clean, key), read_series(killed, key)
    assert a.num_rows > 500_000 and a.equals(b)
    assert Lake(clean).covered("spot", "trades", "XMRUSDT") == Lake(killed).covered("spot", "trades", "XMRUSDT")


def test_rest_only_without_key_is_one_line_exit_2(fx, tmp_path: Path, monkeypatch) -> None:
    import subprocess
    import sys

    monkeypatch.delenv("BINANCE_API_KEY")
    exe = str(Path(sys.executable).with_name("kline-lake"))
    r = subprocess.run([exe, "download", "--market", "spot", "--data", "trades", "--symbols",
                        "XMRUSDT", "--start", "2022-06-01", "--end", "2022-06-02", "--source", "rest",
                        "--base-url", fx.base_url, "--lake", str(tmp_path / "lake")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "BINANCE_API_KEY" in r.stderr and not (tmp_path / "lake").exists()
