"""slippage="book_ticker" (backtest.spread): every signal fill at the best ask (buys) /
best bid (sells) of the book-ticker update in force at the fill time, hand-computed;
a quote of constant half-spread equals the fixed-bps model; missing quotes refuse or
fall back (flagged); stops and spot are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.cli import main
from backtest.data import Bars
from kline_lake.core.series import SeriesKey
from kline_lake.errors import CoverageError, InputError
from kline_lake.lake.writer import LakeWriter
from tests.backtest.test_inputs import ticker_table
from tests.support.backtest import T0_MS, iso, make_bars, write_klines

H_US = 3_600_000_000
T0 = T0_MS * 1000


def hand_bars() -> Bars:
    o = np.array([100.0, 101.0, 102.0, 103.0, 104.0])
    c = np.array([100.5, 101.5, 102.5, 103.5, 104.5])
    t = T0 + np.arange(5, dtype=np.int64) * H_US
    return Bars("um", "BTCUSDT", "1h", t, o, c + 1.0, o - 1.0, c, np.ones(5))


def write_book(root: Path, times_us, bid, ask, covered=None, market="um",
               symbol="BTCUSDT") -> None:
    lo, hi = covered or (int(min(times_us)) - 60_000_000, int(max(times_us)) + 2 * H_US)
    LakeWriter(root).commit(SeriesKey(market, "book_ticker", symbol),
                            ticker_table(list(times_us), list(bid), list(ask)), [(lo, hi)])


def signals(*pairs):
    def strategy(b):
        out = np.zeros(len(b))
        for i, s in pairs:
            out[i] = s
        return out
    return strategy


def _run(root: Path, bars: Bars, strategy, **kw):
    return backtest.run(strategy, lake=root, symbol=bars.symbol, interval=bars.interval,
                        market=bars.market, start=iso(bars.open_time_us[0]),
                        end=iso(bars.open_time_us[-1] + 1), funding=False,
                        exchange_filters=False, fee=0.0, slippage="book_ticker", **kw)


# updates: (time offset from T0 in ms, bid, ask)
HAND_BOOK = [(-10_000, 99.9, 100.1), (3_590_000, 100.9, 101.2), (3_600_000, 100.95, 101.05),
             (3_600_001, 90.0, 110.0), (9_000_000, 102.5, 102.7), (10_799_999, 102.8, 103.1),
             (10_800_001, 80.0, 120.0)]


def _hand_lake(root: Path) -> Bars:
    bars = hand_bars()
    write_klines(root, bars)
    times = [T0 + ms * 1000 for ms, _, _ in HAND_BOOK]
    write_book(root, times, [b for _, b, _ in HAND_BOOK], [a for _, _, a in HAND_BOOK])
    return bars


def test_next_open_fills_at_the_ask_and_bid_in_force_at_the_open(tmp_path: Path) -> None:
    bars = _hand_lake(tmp_path)
    # long: +1 on bar 0 -> buy at bar 1's open (01:00:00): the update stamped exactly
    # 01:00:00 is in force (ask 101.05), the one 1 ms later is not; -1 on bar 2 -> sell
    # at bar 3's open (03:00:00): the update at 02:59:59.999 (bid 102.8)
    res = _run(tmp_path, bars, signals((0, 1), (2, -1)))
    np.testing.assert_allclose(res.orders["price"].to_numpy(), [101.05, 102.8], rtol=1e-14)
    assert res.orders["side"].to_list() == ["buy", "sell"]
    qty = 10_000.0 / 101.05
    np.testing.assert_allclose(res.metrics["final_equity"], qty * 102.8, rtol=1e-12)
    assert res.config["slippage_model"] == "book_ticker"
    # both ways: the reversal at bar 3's open sells twice at the bid
    res = _run(tmp_path, bars, signals((0, 1), (2, -1)), direction="both")
    np.testing.assert_allclose(res.orders["price"].to_numpy(), [101.05, 102.8, 102.8],
                               rtol=1e-14)


def test_close_fills_at_the_quote_in_force_at_the_kline_close_time(tmp_path: Path) -> None:
    bars = _hand_lake(tmp_path)
    # fill=close: bar 0 closes at 00:59:59.999 -> ask of 00:59:50 (101.2), not 01:00's;
    # bar 2 closes at 02:59:59.999 -> the update stamped then (bid 102.8)
    res = _run(tmp_path, bars, signals((0, 1), (2, -1)), fill="close")
    np.testing.assert_allclose(res.orders["price"].to_numpy(), [101.2, 102.8], rtol=1e-14)


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_constant_half_spread_equals_fixed_bps(tmp_path: Path, fill: str) -> None:
    bars = make_bars(300, seed=3)
    write_klines(tmp_path, bars)
    h = 7.5e-4  # 7.5 bps either side of the fill reference price
    at = bars.open_time_us if fill == "next_open" else bars.open_time_us + H_US - 1000
    px = bars.open if fill == "next_open" else bars.close
    write_book(tmp_path, at, px * (1 - h), px * (1 + h),
               covered=(T0 - 60_000_000, int(at[-1]) + H_US))
    common = dict(params={"fast": 5, "slow": 20}, direction="both", fill=fill)
    book = _run(tmp_path, bars, "sma_cross", **common)
    fixed = backtest.run("sma_cross", bars=bars, funding=False, exchange_filters=False,
                         fee=0.0, slippage_bps=h * 1e4, **common)
    assert book.metrics["n_trades"] > 10
    np.testing.assert_allclose(book.orders["price"].to_numpy(),
                               fixed.orders["price"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(book.equity["equity"].to_numpy(),
                               fixed.equity["equity"].to_numpy(), rtol=1e-10)


def test_cm_constant_half_spread_equals_fixed_bps(tmp_path: Path) -> None:
    """The inverse mirror: a real buy still pays the ask, a real sell gets the bid."""
    bars = make_bars(200, seed=5, market="cm")
    bars = Bars("cm", "BTCUSD_PERP", *list(bars.__dict__.values())[2:])
    write_klines(tmp_path, bars)
    h = 5e-4
    write_book(tmp_path, bars.open_time_us, bars.open * (1 - h), bars.open * (1 + h),
               market="cm", symbol="BTCUSD_PERP")
    common = dict(params={"fast": 5, "slow": 20}, direction="both", contract_size=100.0,
                  cash=10.0)
    book = _run(tmp_path, bars, "sma_cross", **common)
    fixed = backtest.run("sma_cross", bars=bars, funding=False, exchange_filters=False,
                         fee=0.0, slippage_bps=h * 1e4, **common)
    assert book.metrics["n_trades"] > 5
    np.testing.assert_allclose(book.orders["price"].to_numpy(),
                               fixed.orders["price"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(book.metrics["final_equity"], fixed.metrics["final_equity"],
                               rtol=1e-10)
    # an asymmetric quote tells the sides apart: a long (a real buy) pays the ask
    asym = tmp_path / "asym"
    write_klines(asym, bars)
    write_book(asym, bars.open_time_us[1:2], bars.open[1:2] * 0.99, bars.open[1:2] * 1.02,
               covered=(T0, T0 + 300 * H_US), market="cm", symbol="BTCUSD_PERP")
    long_ = _run(asym, bars, "hold", contract_size=100.0, cash=10.0)
    np.testing.assert_allclose(long_.orders["price"][0], bars.open[1] * 1.02, rtol=1e-12)
    short = _run(asym, bars, "hold", contract_size=100.0, cash=10.0, direction="short")
    np.testing.assert_allclose(short.orders["price"][0], bars.open[1] * 0.99, rtol=1e-12)


def test_missing_quotes_refuse_or_fall_back_flagged(tmp_path: Path) -> None:
    bars = hand_bars()
    write_klines(tmp_path, bars)
    # quotes only from 02:30: bar 1's and bar 2's opens have none in force
    write_book(tmp_path, [T0 + 9_000_000_000], [102.5], [102.7], covered=(T0, T0 + 5 * H_US))
    with pytest.raises(CoverageError, match=r"no best bid/ask in force at 2 fill time"):
        backtest.run(signals((0, 1), (2, -1)), lake=tmp_path, start=iso(T0),
                     end=iso(T0 + 5 * H_US), funding=False, exchange_filters=False,
                     slippage="book_ticker")
    res = _run(tmp_path, bars, signals((0, 1), (2, -1)), slippage_bps=10.0, allow_gaps=True)
    np.testing.assert_allclose(res.orders["price"].to_numpy(), [101.0 * 1.001, 102.5],
                               rtol=1e-14)
    assert res.config["slippage_fallback_bars"] == 2
    assert any("fills there used --slippage-bps" in w for w in res.warnings)


def test_unknown_book_refuses(tmp_path: Path) -> None:
    bars = hand_bars()
    write_klines(tmp_path, bars)
    # fetched up to 03:00 only: 03:00..05:00 of the bars' span is a silence nobody fetched
    write_book(tmp_path, [T0 + 1000, T0 + 2 * H_US], [99.0, 101.0], [101.0, 103.0],
               covered=(T0 - 60_000_000, T0 + 3 * H_US))
    with pytest.raises(CoverageError, match=r"never fetched its book_ticker .*--data book_ticker"):
        _run(tmp_path, bars, signals((0, 1)))
    res = _run(tmp_path, bars, signals((0, 1)), allow_gaps=True)
    assert any("rests on book_ticker the lake never fetched" in w for w in res.warnings)


def test_bad_slippage_settings(tmp_path: Path) -> None:
    bars = hand_bars()
    with pytest.raises(InputError, match="unknown slippage model 'ask'"):
        backtest.run("hold", bars=bars, slippage="ask")
    with pytest.raises(InputError, match="stops"):
        backtest.run("hold", bars=bars, slippage="book_ticker", sl_stop=0.05)
    spot = Bars("spot", *list(bars.__dict__.values())[1:])
    with pytest.raises(InputError, match="um and cm only"):
        backtest.run("hold", bars=spot, slippage="book_ticker")
    with pytest.raises(InputError, match="read from the lake"):
        backtest.run("hold", bars=bars, slippage="book_ticker")


def test_cli_slippage_book(tmp_path: Path, capsys) -> None:
    _hand_lake(tmp_path)
    out = tmp_path / "run.json"
    argv = ["run", "--lake", str(tmp_path), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(T0), "--end", iso(T0 + 5 * H_US), "--no-funding",
            "--no-exchange-filters", "--strategy", "hold", "--slippage", "book"]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--json", str(out)])
    assert exc.value.code == 0
    data = json.loads(out.read_text())
    assert data["config"]["slippage_model"] == "book_ticker"
    assert data["trades"][0]["entry_price"] == pytest.approx(101.05, rel=1e-14)
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--sl-stop", "0.1"])
    assert exc.value.code == 2
    assert "stops" in capsys.readouterr().err
