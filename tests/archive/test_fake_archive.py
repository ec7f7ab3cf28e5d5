"""The archive sources against the fake exchange's archive tree, format by format.

Every case compares an archive-sourced lake with the REST answer for the same range, so
each quirk (spot microseconds from 2025, futures header from 2022, 7 vs 8 aggTrades
columns, fundingRate, price klines) is checked by equality, not by eye.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.archive.fetch import FetchPolicy
from kline_lake.archive.ingest import ArchiveSettings, ingest_archive_pieces
from kline_lake.archive.plan import archive_frequencies, plan_range
from kline_lake.core.markets import get_market
from kline_lake.core.series import SeriesKey
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.download.rest_rows import parse_rest_agg_trades, parse_rest_funding
from kline_lake.errors import ChecksumError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.writer import LakeWriter

NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=5, now_ms=NOW_MS) as exchange:
        yield exchange


def lake(root: Path, market: str, dataset: str) -> pa.Table:
    files = sorted((root / market / dataset).rglob("*.parquet"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files])


def download(fx: FakeExchange, root: Path, source: str, market: str, dataset: str, symbol: str,
             start: str, end: str | None, interval: str | None = None):
    req = validate_request(market=market, dataset=dataset, symbols=symbol, interval=interval,
                           start=start, end=end, lake=root, base_url=fx.base_url, source=source)
    return asyncio.run(run_download(req))


@pytest.fixture
def archive_env(fx: FakeExchange, monkeypatch):
    monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", fx.base_url)
    return fx


def both(fx, tmp_path, market, dataset, symbol, start, end, interval=None):
    """Download with auto and with rest; return both lake tables and the auto totals."""
    totals = download(fx, tmp_path / "auto", "auto", market, dataset, symbol, start, end, interval)
    download(fx, tmp_path / "rest", "rest", market, dataset, symbol, start, end, interval)
    return lake(tmp_path / "auto", market, dataset), lake(tmp_path / "rest", market, dataset), totals


@pytest.mark.parametrize(
    ("market", "dataset", "symbol", "interval", "start", "end"),
    [
        # spot: ms before 2025, us from 2025-01-01 (canonical close time applies to both)
        ("spot", "klines", "BTCUSDT", "1h", "2024-12-30", "2025-01-03"),
        # futures: no header before 2022, a header row from 2022-01-01
        ("um", "klines", "BTCUSDT", "1h", "2021-12-30", "2022-01-02"),
        ("cm", "klines", "BTCUSD_PERP", "4h", "2021-12-31", "2022-01-02"),
        ("um", "mark_klines", "BTCUSDT", "1h", "2023-03-01", "2023-03-03"),
        ("um", "index_klines", "BTCUSDT", "1h", "2023-03-01", "2023-03-03"),
        ("um", "premium_klines", "BTCUSDT", "1h", "2021-12-31", "2022-01-02"),
    ],
)
def test_klines_archive_equals_rest(archive_env, tmp_path, market, dataset, symbol, interval, start, end):
    auto, rest, totals = both(archive_env, tmp_path, market, dataset, symbol, start, end, interval)
    assert totals.extra["archive files"] >= 2 and "rows from REST" not in totals.extra
    assert auto.num_rows == rest.num_rows > 0
    assert auto.equals(rest)


def test_auto_spanning_months_days_and_today(archive_env, tmp_path) -> None:
    fx = archive_env
    fx.reset_stats()
    auto, rest, totals = both(fx, tmp_path, "um", "klines", "ETHUSDT", "2025-04-01", None, "1h")
    # April and May monthly, June 1..9 daily, today (June 10 until 12:00) from REST
    assert totals.extra["archive files"] == 2 + 9
    assert totals.extra["rows from REST"] == 12
    assert totals.extra["rows from archive"] == (30 + 31 + 9) * 24
    assert auto.equals(rest)
    writer = LakeWriter(tmp_path / "auto")
    key = SeriesKey("um", "klines", "ETHUSDT", "1h")
    assert writer.covered(key) == [(ms(2025, 4, 1) * 1000, ms(2025, 6, 10, 12) * 1000)]


def test_404_falls_back_to_rest_around_a_listing(archive_env, tmp_path) -> None:
    # NEWUSDT lists 2025-06-02 10:00: the listing probe (issue 12 item 11) finds that
    # first, so the 06-01 file is not even asked for (no 404); 06-02 holds only the hours
    # after the listing.
    auto, rest, totals = both(archive_env, tmp_path, "spot", "klines", "NEWUSDT", "2025-06-01", "2025-06-04", "1h")
    assert "files not in archive" not in totals.extra
    assert totals.extra["archive files"] == 2
    assert auto.equals(rest) and auto.num_rows == 14 + 24


def test_agg_trades_spot_8_columns_and_futures_7(archive_env, tmp_path) -> None:
    fx = archive_env
    for market, symbol, api, best in (("spot", "XMRUSDT", "/api/v3", True), ("um", "SRMUSDT", "/fapi/v1", None)):
        key = SeriesKey(market, "agg_trades", symbol)
        pieces = plan_range(ms(2021, 3, 2) * 1000, ms(2021, 3, 3) * 1000, NOW_MS * 1000)

        async def go(key=key, pieces=pieces, market=market):
            async with httpx.AsyncClient(timeout=30) as client:
                return await ingest_archive_pieces(
                    client, LakeWriter(tmp_path), get_market(market), key, pieces,
                    ArchiveSettings(fx.base_url, FetchPolicy(backoff_base_s=0)))

        outcome = asyncio.run(go())
        assert outcome.errors == [] and outcome.stats.files == 1
        stored = lake(tmp_path, market, "agg_trades")
        first_rest = httpx.get(f"{fx.base_url}{api}/aggTrades", params={
            "symbol": symbol, "startTime": ms(2021, 3, 2), "endTime": ms(2021, 3, 2) + 3_599_999,
            "limit": 1000}).json()
        expected = parse_rest_agg_trades(first_rest)
        assert expected.num_rows > 0
        assert stored.slice(0, expected.num_rows).equals(expected)
        ids = stored.column("agg_id").to_numpy()
        assert (ids[1:] - ids[:-1] == 1).all()  # contiguous over the whole day
        assert stored.column("is_best_match").to_pylist()[:3] == [best] * 3


def test_funding_from_monthly_archive(archive_env, tmp_path) -> None:
    fx = archive_env
    assert archive_frequencies(get_market("um"), "funding") == ("monthly",)
    # --source archive: under auto, funding now comes from REST first (issue 17; see
    # tests/archive/test_extras_download.py::test_funding_auto_takes_rest_with_mark_price)
    totals = download(fx, tmp_path, "archive", "um", "funding", "ETHUSDT", "2024-02-01", "2024-03-01")
    assert totals.extra["archive files"] == 1
    stored = lake(tmp_path, "um", "funding")
    rest_rows = httpx.get(f"{fx.base_url}/fapi/v1/fundingRate", params={
        "symbol": "ETHUSDT", "startTime": ms(2024, 2, 1), "endTime": ms(2024, 3, 1) - 1,
        "limit": 1000}).json()
    rest = parse_rest_funding(rest_rows)
    assert stored.num_rows == rest.num_rows == 29 * 6  # ETHUSDT funds every 4 h
    assert stored.select(["funding_time", "funding_rate"]).equals(rest.select(["funding_time", "funding_rate"]))
    assert stored.column("mark_price").null_count == stored.num_rows  # archive has no markPrice
    assert rest.column("mark_price").null_count == 0


def test_corrupt_archive_names_the_file_and_writes_nothing(tmp_path, monkeypatch) -> None:
    with FakeExchange(seed=5, now_ms=NOW_MS, faults="corrupt-archive:1.0") as bad:
        monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", bad.base_url)
        with pytest.raises(ChecksumError, match=r"BTCUSDT-1h-2024-0[12]\.zip: sha256"):
            download(bad, tmp_path, "auto", "spot", "klines", "BTCUSDT", "2024-01-01", "2024-03-01", "1h")
    assert list((tmp_path).rglob("*.parquet")) == []
    writer = LakeWriter(tmp_path)
    assert writer.covered(SeriesKey("spot", "klines", "BTCUSDT", "1h")) == []


def test_the_quirks_are_really_in_the_files(fx) -> None:
    """Guard the tests above: the raw CSVs carry the quirks they claim to cover."""
    from kline_lake.archive.fetch import fetch_archive_file

    async def csv(path: str) -> bytes:
        async with httpx.AsyncClient(timeout=30) as client:
            return (await fetch_archive_file(client, f"{fx.base_url}/{path}")).csv_bytes

    spot25 = asyncio.run(csv("data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-01.zip"))
    assert len(spot25.split(b",", 1)[0]) == 16  # microseconds
    spot24 = asyncio.run(csv("data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-12-31.zip"))
    assert len(spot24.split(b",", 1)[0]) == 13
    um22 = asyncio.run(csv("data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01-01.zip"))
    assert um22.startswith(b"open_time,")
    um21 = asyncio.run(csv("data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2021-12-31.zip"))
    assert um21[:1].isdigit()
    spot_agg = asyncio.run(csv("data/spot/daily/aggTrades/XMRUSDT/XMRUSDT-aggTrades-2021-03-02.zip"))
    um_agg = asyncio.run(csv("data/futures/um/daily/aggTrades/SRMUSDT/SRMUSDT-aggTrades-2021-03-02.zip"))
    assert spot_agg.split(b"\n", 1)[0].count(b",") == 7 and um_agg.split(b"\n", 1)[0].count(b",") == 6


REAL_ROOT = str(Path(__file__).resolve().parents[1] / "data" / "real_data")


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2020-01-01", "2020-01-04", 3),  # the original zips with their real CHECKSUM files
        ("2021-10-20", "2021-10-25", 5),  # CSV days (zipped and summed by the fake)
        ("2024-12-31", "2025-01-02", 2),  # ms day, then the first microsecond day
    ],
)
def test_real_files_archive_equals_real_rest(tmp_path, monkeypatch, start, end, days) -> None:
    with FakeExchange(seed=1, data_dir=REAL_ROOT) as real:
        monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", real.base_url)
        auto, rest, totals = both(real, tmp_path, "spot", "klines", "BTCUSDT", start, end, "1m")
    assert totals.extra["archive files"] == days and "rows from REST" not in totals.extra
    assert auto.num_rows == days * 1440
    assert auto.equals(rest)
    close = auto.column("close_time").cast(pa.int64()).to_numpy()
    opens = auto.column("open_time").cast(pa.int64()).to_numpy()
    assert ((close - opens) == 59_999_000).all()


def test_overridden_base_url_serves_the_archive_too(fx, tmp_path, monkeypatch) -> None:
    """No archive URL anywhere: a download pointed at a local exchange looks for the
    archive there too, never at data.binance.vision."""
    monkeypatch.delenv("KLINE_LAKE_ARCHIVE_URL", raising=False)
    monkeypatch.delenv("KLINE_LAKE_BASE_URL", raising=False)
    before = fx.stats()["archive"]["requests"]
    totals = download(fx, tmp_path, "auto", "um", "klines", "BTCUSDT", "2023-05-01", "2023-05-03", "1h")
    assert totals.extra["archive files"] == 2
    assert fx.stats()["archive"]["requests"] - before == 4  # two zips and their CHECKSUMs


@pytest.mark.parametrize(
    ("market", "symbol", "interval", "start", "end", "months"),
    [
        # spot 1w across 2025-01-01: ms files, then microsecond files
        ("spot", "BTCUSDT", "1w", "2024-10-01", "2025-03-01", 5),
        # USD-M 3d across 2022-01-01: headerless files, then a header row
        ("um", "BTCUSDT", "3d", "2021-11-01", "2022-03-01", 4),
        # the calendar month: folder and file names say 1mo
        ("cm", "BTCUSD_PERP", "1M", "2023-01-01", "2023-07-01", 6),
        ("spot", "ETHUSDT", "1M", "2024-09-01", "2025-03-01", 6),
    ],
)
def test_3d_1w_1mo_klines_from_archive_equal_rest(archive_env, tmp_path, market, symbol, interval,
                                                   start, end, months) -> None:
    fx = archive_env
    fx.reset_stats()
    totals = download(fx, tmp_path / "auto", "auto", market, "klines", symbol, start, end, interval)
    rest_requests = fx.stats()[market]["requests"]
    download(fx, tmp_path / "rest", "rest", market, "klines", symbol, start, end, interval)
    auto, rest = lake(tmp_path / "auto", market, "klines"), lake(tmp_path / "rest", market, "klines")
    # whole past months only: one monthly file each, nothing for REST but the run's
    # exchangeInfo and server time, and on spot, whose exchangeInfo has no onboardDate,
    # the one listing probe (limit 1) that plans the archive from the first kline
    assert totals.extra["archive files"] == months
    assert "files not in archive" not in totals.extra and "rows from REST" not in totals.extra
    assert rest_requests == (3 if market == "spot" else 2)
    assert totals.extra["rows from archive"] == auto.num_rows == rest.num_rows > 0
    assert totals.gaps_found == 0  # months do not start on a 3d/1w open: not a hole
    assert auto.equals(rest)
