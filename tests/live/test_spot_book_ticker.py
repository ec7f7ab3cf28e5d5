"""`follow --data book_ticker` on spot/us: spot's `<symbol>@bookTicker` payload has no event
or transaction time, so the follower records `spot_book_ticker` rows keyed by update id and
stamped with its own receive time (`recv_time`). Oracles: the fake's REST aggregate trades
(each update brackets one trade: bid <= price <= ask, update id = base + 3 * trade id) and
the run's own wall-clock window."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import polars as pl
import pytest

from kline_lake.cli.follow_cmd import build_request
from kline_lake.core.markets import get_market, validate_dataset
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.market_extras import UPDATE_ID_BASE
from kline_lake.lake.catalog import Lake
from kline_lake.lake.scan import scan_series
from kline_lake.lake.verify import verify_lake
from kline_lake.lake.writer import LakeWriter
from kline_lake.live.follower import Follower

T0_MS = 1_767_225_600_000
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def test_spot_book_ticker_is_recorded_with_receive_time(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with FakeExchange(now_ms=T0_MS - 150_000, speed=30, faults="ws-drop:0.01,ws-dup:0.05", seed=6) as fx:
        req = build_request(market="spot", data="book_ticker", interval="1m", symbols=",".join(SYMBOLS),
                            lake=str(lake), base_url=fx.base_url, ws_url=None, duration="3s",
                            flush_seconds="0.5", silence_seconds="3", streams_per_connection="1")
        assert req.dataset == "spot_book_ticker"
        wall0_us = time.time_ns() // 1000
        totals = Follower(req, seed=2).run(threading.Event())
        wall1_us = time.time_ns() // 1000
        stats = fx.stats()["ws"]
        import httpx
        trades = {s: httpx.get(f"{fx.base_url}/api/v3/aggTrades", params={
            "symbol": s, "startTime": T0_MS - 150_000, "endTime": fx.now_ms(), "limit": 1000}).json()
            for s in SYMBOLS}
    assert totals.rest.requests == 2 and stats["ws-dup"] >= 1  # exchange info only: nothing to catch up
    for symbol in SYMBOLS:
        key = SeriesKey("spot", "spot_book_ticker", symbol)
        rows = scan_series(lake, key).collect()
        assert rows.height >= 30 and rows.columns[-1] == "recv_time"
        ids = rows["update_id"].to_list()
        assert all(a < b for a, b in zip(ids, ids[1:], strict=False))  # unique, increasing: dups dropped
        assert (rows["best_bid_price"] <= rows["best_ask_price"]).all()
        recv = rows["recv_time"].cast(pl.Int64)
        assert recv.min() >= wall0_us and recv.max() <= wall1_us  # the follower's clock, not the fake's
        by_id = {UPDATE_ID_BASE + 3 * t["a"]: float(t["p"]) for t in trades[symbol]}
        matched = rows.filter(pl.col("update_id").is_in(list(by_id)))
        assert matched.height >= rows.height // 2
        for uid, bid, ask in matched.select("update_id", "best_bid_price", "best_ask_price").iter_rows():
            assert bid <= by_id[uid] <= ask
        covered = LakeWriter(lake).covered(key)
        assert covered and all(wall0_us <= a < b <= wall1_us + 1000 for a, b in covered)
        assert recv.is_between(covered[0][0], covered[-1][1], closed="left").all()
    counts = Lake(lake).sql("SELECT symbol, count(*) n, count(DISTINCT update_id) u FROM spot_book_ticker "
                            "WHERE market = 'spot' GROUP BY symbol ORDER BY symbol").rows()
    assert [(s, n == u) for s, n, u in counts] == [(s, True) for s in SYMBOLS]
    assert verify_lake(lake).ok


def test_spot_book_ticker_silences_hand_computed(tmp_path: Path) -> None:
    """Silences of recv_time-stamped rows: the same rule (a whole quiet minute) as book_ticker."""
    from kline_lake.core.schemas import conform

    t0_us = T0_MS * 1000
    recv = [t0_us, t0_us + 10_000_000, t0_us + 100_000_000, t0_us + 110_000_000]
    table = pl.DataFrame({"update_id": [11, 12, 15, 19], "best_bid_price": [1.0] * 4, "best_bid_qty": [1.0] * 4,
                          "best_ask_price": [1.5] * 4, "best_ask_qty": [2.0] * 4,
                          "recv_time": pl.Series(recv).cast(pl.Datetime("us", "UTC"))}).to_arrow()
    key = SeriesKey("spot", "spot_book_ticker", "BTCUSDT")
    LakeWriter(tmp_path).commit(key, conform(table, "spot_book_ticker"), [(t0_us, t0_us + 200_000_000)])
    silences = Lake(tmp_path).gaps("spot", "BTCUSDT", dataset="spot_book_ticker")
    # 10 s -> 100 s (90 s: 1 whole minute) and the last update -> the covered end (90 s)
    assert [(int(r[0].timestamp() * 1e6) - t0_us, int(r[1].timestamp() * 1e6) - t0_us, r[2], r[3])
            for r in silences.rows()] == [(10_000_000, 100_000_000, 1, "confirmed"),
                                          (110_000_000, 200_000_000, 1, "confirmed")]
    assert verify_lake(tmp_path).ok


@pytest.mark.parametrize(("market", "data", "needle"), [
    ("spot", "book_ticker", "exists only on futures markets"),  # no archive of spot book ticker
    ("spot", "spot_book_ticker", "cannot be downloaded"),
    ("um", "spot_book_ticker", "exists only on spot markets"),
])
def test_download_refuses_book_tickers_without_history(market: str, data: str, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        validate_dataset(get_market(market), data)
