"""`download` against the fake exchange over loopback: the lake equals what the server
holds, gaps, listing and delisting, the open kline, faults, index/mark klines, agg trades
with contiguous ids, funding with mark price."""

from __future__ import annotations

from pathlib import Path

import pytest

from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us, parse_utc_ms
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange import universe as uni
from tests.support.fetch import (
    NOW_MS,
    assert_same_lake,
    covered,
    download,
    read_series,
    server_agg_trades,
    server_funding,
    server_klines,
)

MIN_MS = 60_000
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=3, now_ms=NOW_MS) as server:
        yield server


def test_round_trip_spot_with_maintenance_gap(fx, tmp_path: Path) -> None:
    start, end = parse_utc_ms("2023-03-23"), parse_utc_ms("2023-03-25T06:00")
    totals = download(fx.base_url, tmp_path, start="2023-03-23", end="2023-03-25T06:00")
    key = SeriesKey("spot", "klines", "BTCUSDT", "1m")
    lake = read_series(tmp_path, key)
    oracle = server_klines(fx.base_url, "spot", "klines", "BTCUSDT", "1m", start, end)
    assert lake.equals(oracle)
    (g0, g1), = [g for g in uni.gaps("spot", "BTCUSDT") if start <= g[0] < end]
    assert lake.num_rows == (end - start - (g1 - g0)) // MIN_MS
    opens = lake.column("open_time").cast("int64").to_pylist()
    assert not any(ms_to_us(g0) <= t < ms_to_us(g1) for t in opens)
    # the gap is confirmed (covered), not left for a rerun to ask again
    assert covered(tmp_path, key) == [(ms_to_us(start), ms_to_us(end))]
    assert totals.gaps_found == 1 and totals.rate_limited_429 == 0
    assert totals.rows_written == lake.num_rows
    rerun = download(fx.base_url, tmp_path, start="2023-03-23", end="2023-03-25T06:00")
    assert rerun.rows_written == 0 and rerun.requests == 1  # only the server clock


def test_open_kline_excluded_and_rerun_fetches_only_the_new_part(tmp_path: Path) -> None:
    clock = {"now": NOW_MS}
    with FakeExchange(seed=3, now_ms=lambda: clock["now"]) as fx:
        download(fx.base_url, tmp_path, start="2024-06-01T10:00")
        key = SeriesKey("spot", "klines", "BTCUSDT", "1m")
        lake = read_series(tmp_path, key)
        last_open = parse_utc_ms("2024-06-01T11:59")
        assert lake.column("open_time").cast("int64")[-1].as_py() == ms_to_us(last_open)
        assert lake.num_rows == 120
        assert covered(tmp_path, key)[-1][1] == ms_to_us(parse_utc_ms("2024-06-01T12:00"))
        clock["now"] = NOW_MS + 10 * MIN_MS
        totals = download(fx.base_url, tmp_path, start="2024-06-01T10:00")
        assert totals.rows_written == 10
        assert read_series(tmp_path, key).num_rows == 130


def test_listing_clamp_and_delisted_symbol(fx, tmp_path: Path) -> None:
    listed, delisted = uni.listing_ms("um", "SRMUSDT"), uni.delisted_ms("um", "SRMUSDT")
    totals = download(fx.base_url, tmp_path, market="um", symbols="SRMUSDT", interval="1h",
                      start="2020-01-01", end="2023-01-01")
    key = SeriesKey("um", "klines", "SRMUSDT", "1h")
    lake = read_series(tmp_path, key)
    opens = lake.column("open_time").cast("int64").to_pylist()
    assert opens[0] == ms_to_us(listed) and opens[-1] == ms_to_us(delisted - HOUR_MS)
    oracle = server_klines(fx.base_url, "um", "klines", "SRMUSDT", "1h", listed, delisted)
    assert lake.equals(oracle)
    # before the listing and after the delisting: confirmed empty, nothing to refetch
    assert covered(tmp_path, key) == [(ms_to_us(parse_utc_ms("2020-01-01")),
                                       ms_to_us(parse_utc_ms("2023-01-01")))]
    pages = -(-lake.num_rows // 499)
    # probe + exchangeInfo + time + pages (+ a few empty chunks after the delisting)
    assert totals.requests <= pages + 3 + 8
    assert totals.gaps_found == len(uni.gaps("um", "SRMUSDT"))


def test_coin_m_index_klines_by_pair_and_200_day_window(fx, tmp_path: Path) -> None:
    totals = download(fx.base_url, tmp_path, market="cm", dataset="index_klines",
                      symbols="BTCUSD_PERP", interval="1d", start="2020-01-01", end="2023-06-01")
    key = SeriesKey("cm", "index_klines", "BTCUSD_PERP", "1d")
    lake = read_series(tmp_path, key)
    listed = uni.listing_ms("cm", "BTCUSD_PERP")
    oracle = server_klines(fx.base_url, "cm", "index_klines", "BTCUSD", "1d",
                           parse_utc_ms("2020-01-01"), parse_utc_ms("2023-06-01"))
    assert lake.num_rows > 1000 and lake.equals(oracle)
    assert lake.column("open_time").cast("int64")[0].as_py() >= ms_to_us(listed - 86_400_000)
    assert totals.rate_limited_429 == 0


def test_mark_klines_um(fx, tmp_path: Path) -> None:
    download(fx.base_url, tmp_path, market="um", dataset="mark_klines", symbols="ETHUSDT",
             interval="15m", start="2024-01-01", end="2024-01-20")
    key = SeriesKey("um", "mark_klines", "ETHUSDT", "15m")
    oracle = server_klines(fx.base_url, "um", "mark_klines", "ETHUSDT", "15m",
                           parse_utc_ms("2024-01-01"), parse_utc_ms("2024-01-20"))
    assert read_series(tmp_path, key).equals(oracle) and oracle.num_rows == 19 * 96


def test_agg_trades_um_contiguous_ids(fx, tmp_path: Path) -> None:
    start, end = parse_utc_ms("2024-05-15T02:40"), parse_utc_ms("2024-05-15T05:10")  # spans a gap
    totals = download(fx.base_url, tmp_path, market="um", dataset="agg_trades",
                      start="2024-05-15T02:40", end="2024-05-15T05:10")
    key = SeriesKey("um", "agg_trades", "BTCUSDT")
    lake = read_series(tmp_path, key)
    oracle = server_agg_trades(fx.base_url, "um", "BTCUSDT", start, end)
    assert lake.num_rows > 1000 and lake.equals(oracle)
    ids = lake.column("agg_id").to_pylist()
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous, no duplicates
    assert totals.id_holes == 0
    assert covered(tmp_path, key) == [(ms_to_us(start), ms_to_us(end))]


def test_funding_keeps_mark_price(fx, tmp_path: Path) -> None:
    download(fx.base_url, tmp_path, market="um", dataset="funding", symbols="ETHUSDT",
             start="2023-01-01", end="2024-01-01")
    key = SeriesKey("um", "funding", "ETHUSDT")
    lake = read_series(tmp_path, key)
    first = server_funding(fx.base_url, "um", "ETHUSDT", parse_utc_ms("2023-01-01"),
                           parse_utc_ms("2024-01-01"))
    assert lake.num_rows == 365 * 6  # every 4 h: more than one page of 1000
    assert lake.slice(0, first.num_rows).equals(first)
    assert lake.column("mark_price").null_count == 0


def test_faults_survived_with_identical_lake(fx, tmp_path: Path) -> None:
    clean, faulty = tmp_path / "clean", tmp_path / "faulty"
    args = {"market": "um", "symbols": "BTCUSDT,ETHUSDT", "interval": "5m",
            "start": "2024-01-01", "end": "2024-03-01"}
    download(fx.base_url, clean, **args)
    with FakeExchange(seed=3, now_ms=NOW_MS, slow_s=0.3,
                      faults="500:0.05,slow:0.02,drop:0.02,truncate:0.02") as bad:
        totals = download(bad.base_url, faulty, **args)
        stats = bad.stats()["um"]
    assert totals.retries > 0 and stats["418"] == 0
    assert_same_lake(clean, faulty)


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", "interval", "start", "end"), [
    ("klines", "1m", "2024-01-01", "2024-01-16"),  # 44 pages of 499, weight 2: ~5 windows
    ("agg_trades", None, "2024-01-01T00:00", "2024-01-01T02:00"),  # weight 20 per page
])
def test_small_budget_short_window_never_429(tmp_path: Path, dataset, interval, start, end) -> None:
    with FakeExchange(seed=3, now_ms=NOW_MS, minute_seconds=2, weight_limit=50) as small:
        totals = download(small.base_url, tmp_path, market="um", dataset=dataset,
                          interval=interval, start=start, end=end)
        stats = small.stats()["um"]
        assert stats["429"] == 0 and stats["418"] == 0
        assert totals.rate_limited_429 == 0 and totals.requests >= 10
        # weight per server window never exceeded: the server would have said 429
        assert stats["weight"] <= totals.weight


def test_all_symbols_means_trading_ones(fx, tmp_path: Path) -> None:
    totals = download(fx.base_url, tmp_path, market="um", symbols="ALL", interval="1d",
                      start="2022-11-01", end="2022-11-20")
    trading = sorted(s.symbol for s in uni.symbols("um") if s.status == "TRADING")
    assert "SRMUSDT" not in trading and totals.series == len(trading)
    assert sorted(p.name.split("=")[1] for p in (tmp_path / "um" / "klines").iterdir()) == trading
