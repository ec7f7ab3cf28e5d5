"""book_ticker, metrics and book_depth in the lake: DuckDB views, gaps (metrics on the
5-minute grid, silences of the event streams, hand-computed), inventory, verify, compact;
`--data-dir` serving a real-format bookDepth file; SIGKILL mid-download then rerun ==
clean; bad input is one line, exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.archive.csv import parse_archive_csv
from kline_lake.core.schemas import book_depth_key, conform, ms_to_ts
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import parse_utc_ms
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.catalog import Lake
from kline_lake.lake.writer import LakeWriter

NOW_MS = parse_utc_ms("2022-07-01T00:00")
T0 = parse_utc_ms("2022-06-01")
MIN_US = 60_000_000
EXE = str(Path(sys.executable).with_name("kline-lake"))


@pytest.fixture(autouse=True)
def _state(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


def download(base_url: str, lake: Path, dataset: str, symbol: str, start: str, end: str,
             source: str = "archive", market: str = "um"):
    request = validate_request(market=market, dataset=dataset, symbols=symbol, interval=None,
                               start=start, end=end, lake=lake, base_url=base_url, source=source)
    return asyncio.run(run_download(request))


def metrics_rows(times_ms: list[int]) -> pa.Table:
    n = len(times_ms)
    return conform(pa.table({"create_time": ms_to_ts(times_ms),
                             **{c: [1.0] * n for c in ("sum_open_interest", "sum_open_interest_value",
                                                       "count_toptrader_long_short_ratio",
                                                       "sum_toptrader_long_short_ratio",
                                                       "count_long_short_ratio",
                                                       "sum_taker_long_short_vol_ratio")}}), "metrics")


def ticker_rows(times_ms: list[int], bid: float = 1.0, ask: float = 1.1) -> pa.Table:
    n = len(times_ms)
    return conform(pa.table({"update_id": list(range(10, 10 + n)), "best_bid_price": [bid] * n,
                             "best_bid_qty": [1.0] * n, "best_ask_price": [ask] * n,
                             "best_ask_qty": [1.0] * n, "transaction_time": ms_to_ts(times_ms),
                             "event_time": ms_to_ts(times_ms)}), "book_ticker")


def test_gaps_metrics_grid_and_ticker_silences_hand_computed(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)
    m = SeriesKey("um", "metrics", "BTCUSDT")
    # slots 00:00..00:25 covered; 00:10, 00:15 and 00:25 absent
    writer.commit(m, metrics_rows([T0, T0 + 300_000, T0 + 1_200_000]), [(T0 * 1000, (T0 + 1_800_000) * 1000)])
    gaps = Lake(tmp_path).gaps("um", "BTCUSDT", dataset="metrics")
    assert gaps.select("missing", "status").rows() == [(2, "confirmed"), (1, "confirmed")]
    assert gaps["start"].dt.minute().to_list() == [10, 25]
    b = SeriesKey("um", "book_ticker", "BTCUSDT")
    writer.commit(b, ticker_rows([T0, T0 + 10_000, T0 + 100_000, T0 + 110_000]),
                  [(T0 * 1000, (T0 + 200_000) * 1000)])
    silences = Lake(tmp_path).gaps("um", "BTCUSDT", dataset="book_ticker")
    # 10 s -> 100 s (90 s: 1 whole minute) and the last update -> the covered end (90 s)
    assert [(int(r[0].timestamp() * 1000) - T0, int(r[1].timestamp() * 1000) - T0, r[2], r[3])
            for r in silences.rows()] == [(10_000, 100_000, 1, "confirmed"), (110_000, 200_000, 1, "confirmed")]


def test_views_inventory_verify_compact_over_downloaded_extras(tmp_path: Path) -> None:
    with FakeExchange(seed=4, now_ms=NOW_MS) as fx:
        for dataset in ("metrics", "book_depth", "book_ticker"):
            download(fx.base_url, tmp_path, dataset, "SRMUSDT", "2022-06-01", "2022-06-03")
    lake = Lake(tmp_path)
    counts = lake.sql("SELECT (SELECT count(*) FROM metrics) m, (SELECT count(*) FROM book_depth) d, "
                      "(SELECT count(DISTINCT update_id) = count(*) FROM book_ticker) u, "
                      "(SELECT count(*) FROM book_depth WHERE percentage < 0 AND symbol = 'SRMUSDT') bids").row(0)
    assert counts[0] == 2 * 288 and counts[1] > 2 * 1000 and counts[2] is True and counts[3] * 2 == counts[1]
    spread = lake.sql("SELECT min(best_ask_price - best_bid_price) s FROM book_ticker")["s"][0]
    assert spread > 0
    assert lake.metrics("um", "SRMUSDT", start="2022-06-02").height == 288
    assert lake.book_depth("um", "SRMUSDT").height == counts[1]
    assert lake.book_ticker("um", "SRMUSDT", lazy=True).select("update_id").collect()["update_id"].is_sorted()
    inv = lake.inventory().filter(lake.inventory()["dataset"].is_in(["metrics", "book_depth", "book_ticker"]))
    assert sorted(inv["dataset"].to_list()) == ["book_depth", "book_ticker", "metrics"]
    assert inv.filter(inv["dataset"] == "metrics")["rows"][0] == 2 * 288
    assert lake.verify().ok
    assert lake.gaps("um", "SRMUSDT", dataset="metrics").height == 0
    day_files = sorted(p.name for p in (tmp_path / "um" / "book_ticker").rglob("*.parquet"))
    assert day_files == ["2022-06-01.parquet", "2022-06-02.parquet"]
    before = lake.sql("SELECT count(*) n FROM book_depth")["n"][0]
    lake.compact(dataset="book_depth", force=True)
    assert Lake(tmp_path).sql("SELECT count(*) n FROM book_depth")["n"][0] == before
    # a crossed book is what verify's sanity rules report
    writer = LakeWriter(tmp_path)
    writer.commit(SeriesKey("um", "book_ticker", "ETHUSDT"), ticker_rows([T0], bid=2.0, ask=1.0))
    assert any("best bid <= best ask" in p.message for p in Lake(tmp_path).verify().errors)


def test_data_dir_serves_real_format_book_depth(tmp_path: Path) -> None:
    """A bookDepth file in the archive's format (header, text times, -5..5 and the newer
    +-0.20 bands, as printed in 2025 files) served by `--data-dir` lands as parsed."""
    folder = tmp_path / "data" / "futures" / "um" / "daily" / "bookDepth" / "BTCUSDT"
    folder.mkdir(parents=True)
    rows = [f"2025-07-31 00:00:{s:02d},{p},{abs(float(p)) * 100:.8f},{abs(float(p)) * 1e6:.8f}"
            for s in (7, 37) for p in ("-5", "-1", "-0.20", "0.20", "1", "5")]
    text = ("timestamp,percentage,depth,notional\n" + "\n".join(rows) + "\n").encode()
    (folder / "BTCUSDT-bookDepth-2025-07-31.csv").write_bytes(text)
    with FakeExchange(seed=1, now_ms=parse_utc_ms("2025-08-02"), data_dir=tmp_path / "data") as fx:
        totals = download(fx.base_url, tmp_path / "lake", "book_depth", "BTCUSDT", "2025-07-31", "2025-08-01")
    assert totals.extra["archive files"] == 1
    stored = pa.concat_tables([pq.read_table(f, partitioning=None)
                               for f in (tmp_path / "lake").rglob("*.parquet")])
    assert stored.equals(parse_archive_csv(text, "book_depth").sort_by("depth_key"))
    assert book_depth_key([0], [-0.2])[0] == 5_000 - 20


def test_data_dir_metrics_archive_equals_rest(tmp_path: Path) -> None:
    """A metrics file in the real archive's format (16-decimal open interest, 8-decimal
    ratios, rows out of time order, an empty ratio) served by `--data-dir`: the REST
    statistics answered from it land exactly as the archive file does."""
    folder = tmp_path / "data" / "futures" / "um" / "daily" / "metrics" / "BOBUSDT"
    folder.mkdir(parents=True)
    rows = [f"2025-08-01 {h:02d}:{m:02d}:00,BOBUSDT,{28094099 + h * 60 + m}.0000000000000000,"
            f"{1608949.04973 + m:.16f},1.40508806,{'' if (h, m) == (3, 5) else '2.00440300'},"
            f"1.67633929,1.51837000" for h in range(24) for m in range(0, 60, 5)]
    rows = rows[1:] + rows[:1]
    header = ("create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
              "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio")
    (folder / "BOBUSDT-metrics-2025-08-01.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    with FakeExchange(seed=1, now_ms=parse_utc_ms("2025-08-10"), data_dir=tmp_path / "data") as fx:
        for source in ("archive", "rest"):
            download(fx.base_url, tmp_path / source, "metrics", "BOBUSDT", "2025-08-01", "2025-08-02", source)
    archive, rest = Lake(tmp_path / "archive").metrics("um", "BOBUSDT"), Lake(tmp_path / "rest").metrics("um", "BOBUSDT")
    assert archive.height == 288 and archive.equals(rest)
    assert archive["sum_toptrader_long_short_ratio"].null_count() == 1


def test_sigkill_mid_book_ticker_download_then_rerun_equals_clean(tmp_path: Path) -> None:
    with FakeExchange(seed=4, now_ms=NOW_MS) as fx:
        args = ["download", "--market", "um", "--data", "book_ticker", "--symbols", "SRMUSDT",
                "--start", "2022-06-01", "--end", "2022-06-05", "--source", "archive", "--quiet",
                "--base-url", fx.base_url]
        clean, killed = tmp_path / "clean", tmp_path / "killed"
        download(fx.base_url, clean, "book_ticker", "SRMUSDT", "2022-06-01", "2022-06-05")
        proc = subprocess.Popen([EXE, *args, "--lake", str(killed)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((killed / "um" / "book_ticker").rglob("*.parquet")):
            time.sleep(0.02)
        assert proc.poll() is None, "the download finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        rerun = subprocess.run([EXE, *args, "--lake", str(killed)], capture_output=True, text=True,
                               timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    a, b = Lake(clean), Lake(killed)
    left, right = a.read("um", "book_ticker", "SRMUSDT"), b.read("um", "book_ticker", "SRMUSDT")
    assert left.height > 50_000 and left.equals(right)
    assert a.covered("um", "book_ticker", "SRMUSDT") == b.covered("um", "book_ticker", "SRMUSDT")


@pytest.mark.parametrize(("market", "dataset", "source", "needle"), [
    ("spot", "book_ticker", "auto", "futures markets"),
    ("spot", "metrics", "rest", "futures markets"),
    ("um", "book_depth", "rest", "no REST history"),
    ("cm", "metrics", "rest", "no REST history"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, market: str, dataset: str, source: str,
                                      needle: str) -> None:
    r = subprocess.run([EXE, "download", "--market", market, "--data", dataset, "--symbols", "BTCUSDT",
                        "--start", "2024-01-01", "--end", "2024-01-02", "--source", source,
                        "--base-url", "http://127.0.0.1:9", "--lake", str(tmp_path / "lake")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert needle in r.stderr and not (tmp_path / "lake").exists()
