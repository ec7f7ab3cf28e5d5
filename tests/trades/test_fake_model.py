"""The fake exchange's data is one stream of trades (issue 17, "Fake exchange"): its
aggTrades aggregate its trades (each aggTrade's f..l are trade ids whose prices, times and
sides it carries and whose quantities sum to it), and its klines of every interval equal
the bars of those trades in every column the trades determine: open, high, low, close,
volume, quote volume, trade count, taker-buy volume and taker-buy quote volume (and the
times). The quote and taker-buy columns are split top-down so exactly that the seconds'
trades sum to them (`fake_exchange.splits`), on spot, USD-M and COIN-M (whose quote
volume is the base-asset volume, the sum of the trades' printed base quantities).

The oracle is the fake's own published files, compared as the exchange prints them: the
archive's daily trades/aggTrades/klines CSVs (the same values its REST and WebSocket
serve; `tests/fake_exchange` checks archive == REST). Bars come from
`kline_lake.lake.bars.build_bars` over the parsed trades; volumes are also summed from
the printed strings as integers. Days with a maintenance gap (partial klines) and a spot
day of 2025 (microsecond timestamps) are included.
"""

from __future__ import annotations

import io
import zipfile

import polars as pl
import pytest

from kline_lake.archive.csv import parse_archive_csv
from kline_lake.fake_exchange.archive import SyntheticArchive
from kline_lake.fake_exchange.rest import SyntheticSource
from kline_lake.lake.bars import build_bars

NOW_MS = 1_760_000_000_000  # 2025-10-09
ROOT = {"spot": "spot", "um": "futures/um", "cm": "futures/cm"}
# (market, symbol, day): spot 2023-03-24, um 2022-11-10 and cm 2023-08-01 have
# maintenance gaps; NEWUSDT 2025 is a microsecond spot day; SRMUSDT's quote grid (1e-4)
# is coarser than its klines print (5 decimals).
CASES = [
    ("spot", "XMRUSDT", "2023-03-24"),
    ("spot", "NEWUSDT", "2025-07-01"),
    ("um", "SRMUSDT", "2022-11-10"),
    ("cm", "ETHUSD_PERP", "2023-08-01"),
]


@pytest.fixture(scope="module")
def archive() -> SyntheticArchive:
    return SyntheticArchive(SyntheticSource(seed=11))


def _csv(archive: SyntheticArchive, market: str, dataset: str, symbol: str, day: str,
         interval: str | None = None) -> bytes:
    folder = f"{symbol}/{interval}" if interval else symbol
    name = f"{symbol}-{interval or dataset}-{day}"
    data = archive.get(f"/data/{ROOT[market]}/daily/{dataset}/{folder}/{name}.zip", NOW_MS)
    assert data is not None, name
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(zf.namelist()[0])


def _raw(data: bytes, names: list[str]) -> pl.DataFrame:
    """A CSV's columns as the printed strings (header row, if any, dropped)."""
    frame = pl.read_csv(io.BytesIO(data), has_header=False, infer_schema=False)
    frame = frame.select(frame.columns[: len(names)])
    frame.columns = names
    return frame.filter(pl.col(names[0]).str.contains(r"^\d+$"))


def _units(col: str) -> pl.Expr:
    """A printed decimal as an integer count of its last digit (all rows share a grid)."""
    return pl.col(col).str.replace(".", "", literal=True).cast(pl.Int64)


def _dec(col: str) -> pl.Expr:
    """A printed decimal, exactly (trade quotes and kline quote volumes print different
    numbers of decimals)."""
    return pl.col(col).cast(pl.Decimal(38, 12))


ALL = ["open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
       "taker_buy_volume", "taker_buy_quote_volume"]


@pytest.mark.parametrize(("market", "symbol", "day"), CASES)
def test_klines_agree_with_the_bars_of_the_trades(archive, market: str, symbol: str, day: str) -> None:
    trades = pl.from_arrow(parse_archive_csv(_csv(archive, market, "trades", symbol, day), "trades"))
    assert trades.height > 10_000
    for interval in ("1m", "1h", "1d"):
        klines = pl.from_arrow(parse_archive_csv(
            _csv(archive, market, "klines", symbol, day, interval), "klines"))
        bars = build_bars([trades], "trades", interval)
        assert bars.height == klines.height > 0, interval
        assert bars.select(ALL).equals(klines.select(ALL)), interval


@pytest.mark.parametrize(("market", "symbol", "day"), CASES)
def test_kline_columns_are_the_sums_of_the_printed_trades(
        archive, market: str, symbol: str, day: str) -> None:
    trades = _raw(_csv(archive, market, "trades", symbol, day),
                  ["id", "price", "qty", "quote", "time", "is_buyer_maker"])
    kl = _raw(_csv(archive, market, "klines", symbol, day, "1m"),
              ["open_time", "o", "h", "l", "c", "v", "close_time", "q", "n", "tb", "tq", "x"])
    minute = 60_000_000 if len(kl["open_time"][0]) == 16 else 60_000  # us from 2025 on spot
    buy = pl.col("is_buyer_maker").str.to_lowercase() == "false"
    sums = trades.group_by((pl.col("time").cast(pl.Int64) // minute * minute).alias("open")).agg(
        _units("qty").sum().alias("v"), pl.len().alias("n"), pl.col("price").first().alias("o"),
        _units("price").max().alias("h"), _units("price").min().alias("l"),
        pl.col("price").last().alias("c"), _dec("quote").sum().alias("q"),
        _units("qty").filter(buy).sum().alias("tb"), _dec("quote").filter(buy).sum().alias("tq"),
    ).sort("open")
    want = kl.select(pl.col("open_time").cast(pl.Int64).alias("open"), _units("v").alias("v"),
                     pl.col("n").cast(pl.UInt32).alias("n"), "o", _units("h").alias("h"),
                     _units("l").alias("l"), "c", _dec("q").alias("q"), _units("tb").alias("tb"),
                     _dec("tq").alias("tq"))
    assert sums.equals(want)


@pytest.mark.parametrize(("market", "symbol", "day"), CASES)
def test_agg_trades_aggregate_the_trades(archive, market: str, symbol: str, day: str) -> None:
    trades = _raw(_csv(archive, market, "trades", symbol, day),
                  ["id", "price", "qty", "quote", "time", "m"]).with_columns(pl.col("id").cast(pl.Int64))
    aggs = _raw(_csv(archive, market, "aggTrades", symbol, day),
                ["a", "price", "qty", "f", "l", "time", "m"]).with_columns(
        pl.col("a", "f", "l").cast(pl.Int64))
    ids = trades["id"]
    assert ids.diff().drop_nulls().eq(1).all(), "trade ids contiguous"
    assert aggs["a"].diff().drop_nulls().eq(1).all()
    assert aggs["f"][0] == ids[0] and aggs["l"][-1] == ids[-1]
    assert (aggs["f"].shift(-1) == aggs["l"] + 1).drop_nulls().all(), "f..l ranges tile the ids"
    grouped = trades.join_asof(aggs.select("f", "a").sort("f"), left_on="id", right_on="f").group_by(
        "a").agg(pl.col("price").unique().alias("p"), pl.col("time").unique().alias("t"),
                 pl.col("m").unique().alias("mm"), _units("qty").sum().alias("q"), pl.len().alias("n"))
    joined = aggs.join(grouped, on="a", how="left").sort("a")
    assert joined.height == aggs.height
    assert joined["p"].list.len().eq(1).all() and joined["t"].list.len().eq(1).all()
    assert (joined["p"].list.first() == joined["price"]).all()
    assert (joined["t"].list.first() == joined["time"]).all()
    assert (joined["mm"].list.first() == joined["m"]).all()
    assert (joined["n"] == joined["l"] - joined["f"] + 1).all()
    assert (joined["q"] == joined.select(_units("qty"))["qty"]).all()
