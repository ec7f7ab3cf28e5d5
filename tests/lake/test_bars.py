"""Bars from trades (`kline_lake.lake.bars`): hand-computed time and information bars,
chunking never changes a result (streaming), and against the fake exchange: bars from
trades == bars from aggTrades, and 1m bars == the exchange's 1m klines in every column."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from kline_lake.core.schemas import KLINES
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.bars import build_bars, parse_rule
from kline_lake.lake.catalog import Lake

T0 = 1_700_000_040_000_000  # a whole minute, in us
_TS = pl.Datetime("us", "UTC")


def trades_frame(rows: list[tuple[int, float, float, bool]], first_id: int = 100) -> pl.DataFrame:
    """(time offset us, price, qty, is_buyer_maker) -> a trades frame."""
    return pl.DataFrame({
        "trade_id": [first_id + i for i in range(len(rows))],
        "price": [r[1] for r in rows], "quantity": [r[2] for r in rows],
        "quote_quantity": [round(r[1] * r[2], 8) for r in rows],
        "time": pl.Series([T0 + r[0] for r in rows]).cast(_TS),
        "is_buyer_maker": [r[3] for r in rows], "is_best_match": [True] * len(rows),
    })


ROWS = [(0, 10.0, 1.0, False), (100_000, 12.0, 0.5, True), (300_000, 9.0, 2.0, False),
        (61_000_000, 11.0, 0.25, True), (61_200_000, 11.5, 4.0, False)]


def test_one_minute_bars_by_hand() -> None:
    bars = build_bars([trades_frame(ROWS)], "trades", "1m")
    assert bars.schema == pl.from_arrow(KLINES.empty_table()).schema
    assert bars.to_dicts() == [
        {"open_time": bars["open_time"][0], "open": 10.0, "high": 12.0, "low": 9.0, "close": 9.0,
         "volume": 3.5, "close_time": bars["close_time"][0], "quote_volume": 34.0, "trades": 3,
         "taker_buy_volume": 3.0, "taker_buy_quote_volume": 28.0},
        {"open_time": bars["open_time"][1], "open": 11.0, "high": 11.5, "low": 11.0, "close": 11.5,
         "volume": 4.25, "close_time": bars["close_time"][1], "quote_volume": 48.75, "trades": 2,
         "taker_buy_volume": 4.0, "taker_buy_quote_volume": 46.0},
    ]
    opens = bars["open_time"].cast(pl.Int64).to_list()
    assert opens == [T0, T0 + 60_000_000]
    assert bars["close_time"].cast(pl.Int64).to_list() == [T0 + 59_999_000, T0 + 119_999_000]


def test_sub_minute_bars_by_hand() -> None:
    bars = build_bars([trades_frame(ROWS)], "trades", "250ms")
    # trades at 0 and 100 ms share [0, 250 ms); 300 ms opens [250, 500); 61 s and 61.2 s
    assert bars["open_time"].cast(pl.Int64).to_list() == [T0, T0 + 250_000, T0 + 61_000_000]
    assert bars["trades"].to_list() == [2, 1, 2]
    assert bars["close_time"].cast(pl.Int64).to_list()[0] == T0 + 249_000


def test_information_bars_by_hand() -> None:
    tick = build_bars([trades_frame(ROWS)], "trades", "tick:2")
    assert tick["trades"].to_list() == [2, 2, 1]  # the last bar has not reached 2
    vol = build_bars([trades_frame(ROWS)], "trades", "volume:1.5")
    # running volume 1.0, 1.5 -> close; 2.0 -> close; 0.25, 4.25 -> close
    assert vol["volume"].to_list() == [1.5, 2.0, 4.25]
    assert vol["open_time"].cast(pl.Int64).to_list() == [T0, T0 + 300_000, T0 + 61_000_000]
    assert vol["close_time"].cast(pl.Int64).to_list() == [T0 + 100_000, T0 + 300_000, T0 + 61_200_000]
    dollar = build_bars([trades_frame(ROWS)], "trades", "dollar:20")
    # quotes 10, 6 (16), 18 -> 34 close; 2.75, 46 -> close
    assert dollar["quote_volume"].to_list() == [34.0, 48.75]


@pytest.mark.parametrize("rule", ["1m", "250ms", "7s", "tick:2", "volume:1.5", "dollar:20"])
def test_chunking_never_changes_the_bars(rule: str) -> None:
    whole = trades_frame(ROWS)
    for cut in range(1, len(ROWS)):
        parts = [whole.slice(0, cut), whole.slice(cut)]
        assert build_bars(parts, "trades", rule).equals(build_bars([whole], "trades", rule)), cut


@pytest.mark.parametrize("rule", ["", "1x", "0m", "tick:0", "tick:1.5", "volume:-3", "dollar",
                                  "m1", "1 m"])
def test_bad_rules_are_one_line_input_errors(rule: str) -> None:
    with pytest.raises(InputError) as err:
        parse_rule(rule)
    assert "\n" not in str(err.value)


def test_cli_bad_rule_exits_2(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("kline-lake"))
    r = subprocess.run([exe, "bars", "--lake", str(tmp_path), "--market", "spot", "--symbol",
                        "BTCUSDT", "--rule", "5parsecs"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "bar rule" in r.stderr


@pytest.fixture(scope="module")
def fake_lake(tmp_path_factory):
    """um SRMUSDT, 2022-06-01 02:00..05:00: 1m klines, agg_trades and trades from the fake."""
    lake = tmp_path_factory.mktemp("lake")
    mp = pytest.MonkeyPatch()
    mp.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
    mp.setenv("BINANCE_API_KEY", "test-key")
    with FakeExchange(seed=4, now_ms=1_740_000_000_000) as fx:
        for dataset, interval in (("klines", "1m"), ("agg_trades", None), ("trades", None)):
            req = validate_request(market="um", dataset=dataset, symbols="SRMUSDT", interval=interval,
                                   start="2022-06-01T02:00", end="2022-06-01T05:00", lake=lake,
                                   base_url=fx.base_url, source="rest")
            asyncio.run(run_download(req))
    mp.undo()
    return Lake(lake)


def test_fake_exchange_trades_and_agg_trades_give_the_same_bars(fake_lake) -> None:
    for rule in ("1m", "10s", "250ms", "1h"):
        a = fake_lake.bars("um", "SRMUSDT", "trades", rule)
        b = fake_lake.bars("um", "SRMUSDT", "agg_trades", rule)
        assert a.height >= 3 and a.equals(b), rule


def test_fake_exchange_information_bars_close_at_the_threshold(fake_lake) -> None:
    """From every trade a tick bar holds exactly N trades; from aggregate trades it closes
    on the aggregate that reaches N (so N or more); both cover every trade once."""
    total = fake_lake.trades("um", "SRMUSDT").height
    a = fake_lake.bars("um", "SRMUSDT", "trades", "tick:500")
    b = fake_lake.bars("um", "SRMUSDT", "agg_trades", "tick:500")
    assert set(a["trades"][:-1].to_list()) == {500} and a["trades"].sum() == total
    assert min(b["trades"][:-1].to_list()) >= 500 and b["trades"].sum() == total
    v = fake_lake.bars("um", "SRMUSDT", "trades", "volume:200")
    last_qty = fake_lake.trades("um", "SRMUSDT").filter(
        pl.col("time").is_in(v["close_time"][:-1].implode()))["quantity"].max()
    assert (v["volume"][:-1] >= 200).all() and (v["volume"][:-1] < 200 + last_qty).all()


def test_fake_exchange_1m_bars_equal_klines(fake_lake) -> None:
    """Bars of the fake's trades (downloaded over REST) equal its 1m klines in every
    column: prices (flat seconds), volumes, counts, and quote and taker-buy volumes (the
    fake splits those top-down so exactly that its trades sum to them: `fake_exchange.
    splits`; whole archive days, 1h/1d and every market in tests/lake/test_bars_exact.py)."""
    bars = fake_lake.bars("um", "SRMUSDT", "trades", "1m")
    klines = fake_lake.klines("um", "SRMUSDT", "1m")
    assert bars.height == klines.height == 180
    assert bars.equals(klines.select(bars.columns))


def test_bars_bad_source_and_unknown_series(fake_lake) -> None:
    with pytest.raises(InputError):
        fake_lake.bars("um", "SRMUSDT", "klines", "1m")
    with pytest.raises(InputError):
        fake_lake.bars("um", "NOPEUSDT", "trades", "1m")


def test_trades_view_gaps_and_verify_cover_trades(fake_lake) -> None:
    """DuckDB view `trades`, trade-id gaps (none: ids contiguous), sanity rules."""
    n = fake_lake.trades("um", "SRMUSDT").height
    got = fake_lake.sql("SELECT count(*) AS n, max(trade_id) - min(trade_id) + 1 AS span, "
                        "count(DISTINCT trade_id) AS d FROM trades WHERE market = 'um'")
    assert got.row(0) == (n, n, n)
    assert fake_lake.gaps("um", "SRMUSDT", dataset="trades").is_empty()
    # a hole in the ids is found: drop trades from a copy of the lake's rows
    from kline_lake.lake.event_gaps import agg_trade_gaps

    ids = fake_lake.trades("um", "SRMUSDT")["trade_id"].to_numpy()
    holed = agg_trade_gaps(ids[ids % 1000 != 7], ids[ids % 1000 != 7] * 0 + 1, [])
    assert holed.height == (ids % 1000 == 7).sum() and (holed["missing"] == 1).all()


def test_coin_m_bars_from_aggregate_trades_are_refused_in_one_line(tmp_path: Path) -> None:
    """A COIN-M kline's quote column is the sum of each trade's base quantity, which an
    aggregate trade lacks: refused before anything is read (Python and CLI, exit 2)."""
    with pytest.raises(InputError, match="COIN-M bars need source trades") as err:
        Lake(tmp_path).bars("cm", "BTCUSD_PERP", "agg_trades", "1m")
    assert "\n" not in str(err.value)
    exe = str(Path(sys.executable).with_name("kline-lake"))
    r = subprocess.run([exe, "bars", "--lake", str(tmp_path), "--market", "cm", "--symbol",
                        "BTCUSD_PERP", "--source", "agg_trades", "--rule", "1m"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "aggregate trades carry no base quantity" in r.stderr
