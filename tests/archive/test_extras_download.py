"""book_ticker, metrics and book_depth end to end against the fake exchange over loopback:
the archive parsers (header/no-header, text times, empty ratios, the composite depth key),
the fake's book ticker and depth bracketing its trades, metrics archive == REST over the
last 30 days, idempotent reruns, and funding under --source auto taken from REST."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.archive.csv import parse_archive_csv
from kline_lake.core.timeutil import parse_utc_ms
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.download.rest_metrics import merge_metrics_pages, metrics_windows, rest_reach_ms
from kline_lake.errors import InputError, TransientError
from kline_lake.fake_exchange import FakeExchange

NOW_MS = parse_utc_ms("2025-02-19T21:20")
BT_HEADER = b"update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n"


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=4, now_ms=NOW_MS) as server:
        yield server


@pytest.fixture(autouse=True)
def _state(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


def download(fx, lake: Path, dataset: str, market: str, symbol: str, start: str, end: str,
             source: str):
    request = validate_request(market=market, dataset=dataset, symbols=symbol, interval=None,
                               start=start, end=end, lake=lake, base_url=fx.base_url, source=source)
    return asyncio.run(run_download(request))


def read_lake(lake: Path, market: str, dataset: str, key: str) -> pa.Table:
    files = sorted((lake / market / dataset).rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f, partitioning=None) for f in files]).sort_by(key)


def archive_csv(fx, path: str) -> bytes:
    body = httpx.get(f"{fx.base_url}/data/{path}", timeout=60)
    assert body.status_code == 200, path
    with zipfile.ZipFile(io.BytesIO(body.content)) as zf:
        return zf.read(zf.namelist()[0])


# ------------------------------------------------------------------ parsers (pure)
def test_book_ticker_csv_with_and_without_header() -> None:
    row = b"4307082988118,0.02634800,315928.00000000,0.02634900,2385.00000000,1711756800080,1711756800087\n"
    with_header, without = parse_archive_csv(BT_HEADER + row, "book_ticker"), parse_archive_csv(row, "book_ticker")
    assert with_header.equals(without)
    assert with_header.to_pylist()[0]["update_id"] == 4307082988118
    assert with_header.column("event_time").cast(pa.int64()).to_pylist() == [1711756800087000]
    with pytest.raises(InputError, match="7"):
        parse_archive_csv(b"1,2,3\n", "book_ticker")


def test_metrics_csv_text_times_and_empty_ratios() -> None:
    data = (b"create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
            b"sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio\n"
            b"2025-01-01 00:05:00,BTCUSD_PERP,100,1,,,,1\n2025-01-01 00:00:00,BTCUSD_PERP,99,2,0.5,0.6,0.7,0.8\n")
    rows = parse_archive_csv(data, "metrics").to_pylist()
    assert [r["create_time"].minute for r in rows] == [5, 0]  # file order; the writer sorts
    assert rows[0]["count_toptrader_long_short_ratio"] is None and rows[1]["sum_open_interest"] == 99.0


def test_book_depth_key_is_time_then_band() -> None:
    data = (b"timestamp,percentage,depth,notional\n2025-07-31 00:00:07,-5,10,1\n"
            b"2025-07-31 00:00:07,1.00,3,4\n2025-07-31 00:00:37,-5.00,11,2\n")
    table = parse_archive_csv(data, "book_depth")
    keys = table.column("depth_key").to_pylist()
    assert keys == sorted(keys) and len(set(keys)) == 3
    t0 = parse_utc_ms("2025-07-31T00:00:07")
    assert keys[0] == t0 * 10_000 + (-500 + 5_000) and keys[1] == t0 * 10_000 + 100 + 5_000
    with pytest.raises(InputError, match="percentage"):
        parse_archive_csv(b"timestamp,percentage,depth,notional\n2025-07-31 00:00:07,-55,1,1\n", "book_depth")


def test_metrics_pages_join_on_timestamp_and_windows() -> None:
    pages = {"openInterestHist": [{"timestamp": 600_000, "sumOpenInterest": "5", "sumOpenInterestValue": "50"}],
             "takerlongshortRatio": [{"timestamp": 600_000, "buySellRatio": "1.5"},
                                     {"timestamp": 900_000, "buySellRatio": "0.5"}]}
    rows = merge_metrics_pages(pages, 0, 1_200_000).to_pylist()
    assert [(r["sum_open_interest"], r["sum_taker_long_short_vol_ratio"]) for r in rows] == [(5.0, 1.5), (None, 0.5)]
    assert metrics_windows([(0, 500 * 300_000 + 1)]) == [(0, 150_000_000), (150_000_000, 150_000_001)]
    oldest, end = rest_reach_ms(NOW_MS)
    assert end == NOW_MS - NOW_MS % 300_000 and NOW_MS - oldest < 30 * 86_400_000


# ------------------------------------------------------- the fake's consistency
def test_book_ticker_and_depth_bracket_every_trade(fx) -> None:
    day, sym = "2022-06-01", "SRMUSDT"
    bt = parse_archive_csv(archive_csv(fx, f"futures/um/daily/bookTicker/{sym}/{sym}-bookTicker-{day}.zip"), "book_ticker")
    trades = parse_archive_csv(archive_csv(fx, f"futures/um/daily/trades/{sym}/{sym}-trades-{day}.zip"), "trades")
    t_bt = bt.column("transaction_time").cast(pa.int64()).to_numpy()
    t_tr = trades.column("time").cast(pa.int64()).to_numpy()
    price = trades.column("price").to_numpy()
    idx = np.searchsorted(t_bt, t_tr, side="right") - 1  # the update in force at each trade
    assert (idx >= 0).all() and len(trades) > 5_000
    bid, ask = bt.column("best_bid_price").to_numpy()[idx], bt.column("best_ask_price").to_numpy()[idx]
    assert ((bid <= price) & (price <= ask)).all() and (bid < ask).all()
    assert bt.column("update_id").to_numpy().tolist() == sorted(set(bt.column("update_id").to_pylist()))
    depth = parse_archive_csv(archive_csv(fx, f"futures/um/daily/bookDepth/{sym}/{sym}-bookDepth-{day}.zip"), "book_depth")
    snap = depth.filter(pa.compute.equal(depth.column("timestamp"), depth.column("timestamp")[0]))
    pct, qty, notional = (snap.column(c).to_numpy() for c in ("percentage", "depth", "notional"))
    at = np.searchsorted(t_bt, snap.column("timestamp").cast(pa.int64()).to_numpy()[0], side="right") - 1
    mid = (bt.column("best_bid_price")[int(at)].as_py() + bt.column("best_ask_price")[int(at)].as_py()) / 2
    avg = notional / qty
    bids, asks = pct < 0, pct > 0
    assert (np.diff(qty[bids][::-1]) > 0).all() and (np.diff(qty[asks]) > 0).all()  # cumulative
    assert ((avg[bids] >= mid * (1 + pct[bids] / 100)) & (avg[bids] <= mid)).all()
    assert ((avg[asks] <= mid * (1 + pct[asks] / 100)) & (avg[asks] >= mid)).all()


def test_newer_futures_files_carry_headers_older_do_not(fx) -> None:
    new = archive_csv(fx, "futures/um/daily/bookTicker/SRMUSDT/SRMUSDT-bookTicker-2022-03-01.zip")
    old = archive_csv(fx, "futures/um/daily/bookTicker/SRMUSDT/SRMUSDT-bookTicker-2021-03-01.zip")
    assert new.startswith(BT_HEADER) and old[:1].isdigit()
    assert httpx.get(f"{fx.base_url}/data/spot/daily/bookTicker/BTCUSDT/BTCUSDT-bookTicker-2024-03-01.zip").status_code == 404
    assert httpx.get(f"{fx.base_url}/data/futures/um/daily/metrics/BTCUSDT/BTCUSDT-metrics-2024-03-01.zip.CHECKSUM").text.endswith(
        "  BTCUSDT-metrics-2024-03-01.zip")


# ------------------------------------------------------------- downloads
def test_metrics_archive_equals_rest_over_the_last_30_days(fx, tmp_path: Path) -> None:
    start, end = "2025-02-10", "2025-02-13"
    archive = download(fx, tmp_path / "a", "metrics", "um", "BTCUSDT", start, end, "archive")
    rest = download(fx, tmp_path / "r", "metrics", "um", "BTCUSDT", start, end, "rest")
    a = read_lake(tmp_path / "a", "um", "metrics", "create_time")
    r = read_lake(tmp_path / "r", "um", "metrics", "create_time")
    assert archive.extra["archive files"] == 3 and a.num_rows == 3 * 288
    assert a.equals(r) and rest.weight <= 10  # exchangeInfo and time; the statistics weigh 0
    again = download(fx, tmp_path / "r", "metrics", "um", "BTCUSDT", start, end, "auto")
    assert again.rows_written == 0  # covered: nothing refetched, nothing duplicated


def test_metrics_rest_skips_beyond_30_days_with_a_note(fx, tmp_path: Path) -> None:
    totals = download(fx, tmp_path, "metrics", "um", "BTCUSDT", "2024-12-01", "2024-12-02", "rest")
    assert totals.rows_written == 0 and totals.extra["ranges skipped (not on REST)"] == 1


def test_book_ticker_auto_is_archive_then_skips_the_unpublished_tail(fx, tmp_path: Path) -> None:
    totals = download(fx, tmp_path, "book_ticker", "cm", "BTCUSD_PERP", "2025-02-18", "2025-02-19T12:00", "auto")
    assert totals.extra["archive files"] == 1 and totals.extra["ranges skipped (not on REST)"] == 1
    table = read_lake(tmp_path, "cm", "book_ticker", "update_id")
    assert table.num_rows == totals.rows_written > 10_000
    assert len(set(table.column("update_id").to_pylist())) == table.num_rows
    assert download(fx, tmp_path, "book_ticker", "cm", "BTCUSD_PERP", "2025-02-18", "2025-02-19",
                    "auto").rows_written == 0


def test_funding_auto_takes_rest_with_mark_price(fx, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", fx.base_url)
    totals = download(fx, tmp_path, "funding", "um", "ETHUSDT", "2024-02-01", "2024-03-01", "auto")
    table = read_lake(tmp_path, "um", "funding", "funding_time")
    assert "archive files" not in totals.extra and table.num_rows == 29 * 6
    assert table.column("mark_price").null_count == 0


def test_funding_auto_falls_back_to_the_archive_when_rest_fails(fx, tmp_path: Path, monkeypatch) -> None:
    from kline_lake.archive import hybrid

    async def broken(*_args, **_kwargs):
        raise TransientError("GET fundingRate: 503 after 5 attempts")

    monkeypatch.setattr(hybrid, "_fetch_rest", broken)
    monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", fx.base_url)
    totals = download(fx, tmp_path, "funding", "um", "ETHUSDT", "2024-02-01", "2024-03-01", "auto")
    table = read_lake(tmp_path, "um", "funding", "funding_time")
    assert totals.extra["archive files"] == 1 and table.num_rows == 29 * 6
    assert table.column("mark_price").null_count == table.num_rows  # the archive has none
