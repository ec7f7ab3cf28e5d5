"""Oracle: bars of the fake exchange's trades == the fake exchange's klines, in all eleven
kline columns (open, high, low, close, volume, quote volume, trade count, taker-buy
volume and taker-buy quote volume, and the times), at 1m, 1h and 1d.

Trades and klines are downloaded from the fake over the wire (the archive's daily zips,
so whole days) into a real lake, and ``Lake.bars(..., source="trades")`` folds the lake's
trades; klines are the lake's rows as the exchange printed them. Days: spot XMRUSDT
2023-03-24 and USD-M SRMUSDT 2022-11-10 and COIN-M ETHUSD_PERP 2023-08-01 have
maintenance gaps (partial hours and a partial day), spot NEWUSDT 2025-07-01 has
microsecond timestamps; SRMUSDT's trade quotes have 4 decimals and its klines print 5;
COIN-M's quote volume is the base-asset volume (the sum of the trades' base quantities).
Float columns are compared with ``==``: the lake sums exact decimals (`lake.time_bars`), so
equality holds only if each kline value is exactly its trades' decimal sum.
"""

from __future__ import annotations

import asyncio

import polars as pl
import pytest

from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.universe import gaps, utc_ms
from kline_lake.lake.catalog import Lake

NOW_MS = 1_760_000_000_000  # 2025-10-09
CASES = [("spot", "XMRUSDT", "2023-03-24"), ("spot", "NEWUSDT", "2025-07-01"),
         ("um", "SRMUSDT", "2022-11-10"), ("cm", "ETHUSD_PERP", "2023-08-01")]
INTERVALS = ("1m", "1h", "1d")
COLUMNS = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
           "trades", "taker_buy_volume", "taker_buy_quote_volume"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("lake")
    mp = pytest.MonkeyPatch()
    mp.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    with FakeExchange(seed=4, now_ms=NOW_MS) as fx:
        for market, symbol, day in CASES:
            end = f"{day[:8]}{int(day[8:]) + 1:02d}"
            for dataset, interval in (("trades", None), ("klines", ",".join(INTERVALS))):
                req = validate_request(market=market, dataset=dataset, symbols=symbol, interval=interval,
                                       start=day, end=end, lake=root, base_url=fx.base_url,
                                       archive_url=fx.base_url, source="archive")
                asyncio.run(run_download(req))
    mp.undo()
    return Lake(root)


def test_the_days_have_the_quirks_they_are_chosen_for() -> None:
    for market, symbol, day in CASES:
        d0 = utc_ms(f"{day} 00:00")
        gapped = any(a < d0 + 86_400_000 and b > d0 for a, b in gaps(market, symbol))
        assert gapped == (symbol != "NEWUSDT"), symbol


@pytest.mark.parametrize(("market", "symbol", "day"), CASES)
def test_trade_bars_equal_klines_in_every_column(lake: Lake, market: str, symbol: str, day: str) -> None:
    n_trades = lake.trades(market, symbol).height
    assert n_trades > 100_000
    for interval in INTERVALS:
        klines = lake.klines(market, symbol, interval).select(COLUMNS)
        bars = lake.bars(market, symbol, "trades", interval).select(COLUMNS)
        assert klines.height > 0 and bars["trades"].sum() == n_trades, interval
        assert bars.equals(klines), (interval, _first_difference(bars, klines))
    if symbol != "NEWUSDT":  # a gap: fewer minutes than a day has, a partial hour
        assert lake.klines(market, symbol, "1m").height < 1440


def test_taker_side_and_quote_are_not_trivial(lake: Lake) -> None:
    """The compared columns carry information: taker-buy volume strictly inside (0,
    volume) for most minutes, quote volume / volume inside [low, high] (linear)."""
    k = lake.klines("um", "SRMUSDT", "1m")
    share = k["taker_buy_volume"] / k["volume"]
    assert ((share > 0) & (share < 1)).mean() > 0.9
    vwap = k["quote_volume"] / k["volume"]
    assert ((vwap >= k["low"] - 1e-9) & (vwap <= k["high"] + 1e-9)).all()


def _first_difference(a: pl.DataFrame, b: pl.DataFrame) -> object:
    if a.height != b.height:
        return ("heights", a.height, b.height)
    for col in a.columns:
        diff = (a[col] != b[col])
        if diff.any():
            i = int(diff.arg_max())
            return (col, a[col][i], b[col][i], a["open_time"][i])
    return None
