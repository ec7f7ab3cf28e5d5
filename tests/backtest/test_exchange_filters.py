"""Exchange filters (LOT_SIZE step/minimum, MIN_NOTIONAL) and ruin, by hand and end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import backtest
from backtest.cli import main
from backtest.data import Bars
from backtest.filters import ExchangeFilters, resolve_filters, symbol_filters
from backtest.kernels import STATUS_BELOW_MIN, STATUS_RUINED, floor_to_step_nb
from kline_lake.errors import InputError
from tests.support.backtest import T0_MS, cache_exchange_info, iso, write_klines

H_US = 3_600_000_000
T0_US = T0_MS * 1000


def _bars(open_, close, symbol="BTCUSDT", market="um") -> Bars:
    open_, close = np.asarray(open_, float), np.asarray(close, float)
    n = open_.shape[0]
    return Bars(market, symbol, "1h", T0_US + np.arange(n, dtype=np.int64) * H_US, open_,
                np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999, close,
                np.ones(n))


FIVE = _bars([100.0, 110.0, 120.0, 130.0, 125.0], [105.0, 115.0, 125.0, 128.0, 126.0])


def _enter_bar0_exit_bar2(b):
    return np.array([1, 0, -1, 0, 0], dtype=np.int8)


def _short_bar0_cover_bar2(b):
    return np.array([-1, 0, 1, 0, 0], dtype=np.int8)


@pytest.mark.parametrize("fn", [floor_to_step_nb, floor_to_step_nb.py_func])
def test_floor_to_step_rounds_down_to_the_grid(fn):
    assert fn(0.0123456, 0.001) == 0.012
    assert fn(0.009, 0.001) == 0.009  # 0.009 / 0.001 = 8.999999999999998 in floats
    assert fn(0.0089999, 0.001) == 0.008
    assert fn(9.0818, 0.01) == 9.08
    assert fn(1.7, 0.5) == 1.5
    assert fn(129.0, 10.0) == 120.0
    assert fn(2.9999999, 1.0) == 2.0
    assert fn(0.0004, 0.001) == 0.0
    assert fn(0.123, 0.0) == 0.123  # no step: unchanged


def test_step_rounding_long_by_hand():
    f = ExchangeFilters(qty_step=0.01, min_qty=0.01, min_notional=50.0, source="test")
    res = backtest.run(_enter_bar0_exit_bar2, bars=FIVE, cash=1000.0, fee=0.001,
                       funding=False, exchange_filters=f)
    # all-in would buy (1000 / 1.001) / 110 = 9.0818... units: rounded down to 9.08
    qty = 9.08
    cash = 1000.0 - 9.08 * 110.0 * 1.001  # 0.2012 left over
    final = cash + 9.08 * 130.0 * 0.999  # exit at bar 3's open
    assert res.orders["qty"].to_list() == [qty, qty]
    (trade,) = res.trades.iter_rows(named=True)
    assert trade["qty"] == qty and trade["entry_fee"] == pytest.approx(0.9988, rel=1e-12)
    assert trade["pnl"] == pytest.approx(20.0 * 9.08 - 0.9988 - 1.1804, rel=1e-12)
    eq = res.equity_curve
    assert eq[1] == pytest.approx(cash + 9.08 * 115.0, rel=1e-12)
    assert eq[4] == pytest.approx(final, rel=1e-12) and final == pytest.approx(1179.4208)
    assert res.config["exchange_filters"] == {"qty_step": 0.01, "min_qty": 0.01,
                                              "min_notional": 50.0, "source": "test"}
    assert res.warnings == [] and not res.metrics["ruined"]


def test_step_rounding_short_by_hand():
    f = ExchangeFilters(qty_step=0.01)
    res = backtest.run(_short_bar0_cover_bar2, bars=FIVE, cash=1000.0, fee=0.001,
                       direction="short", funding=False, exchange_filters=f)
    # short 1000 / (110 * 1.001) = 9.0818... -> 9.08 units; proceeds 998.8 minus 0.9988 fee
    cash = 1000.0 + 998.8 - 0.9988
    final = cash - 9.08 * 130.0 * 1.001
    assert res.trades["qty"].to_list() == [9.08]
    assert res.metrics["final_equity"] == pytest.approx(final, rel=1e-12)
    assert final == pytest.approx(816.2208)


@pytest.mark.parametrize("filters", [ExchangeFilters(min_notional=999.5),
                                     ExchangeFilters(qty_step=0.01, min_qty=9.09),
                                     ExchangeFilters(qty_step=0.01, min_notional=999.0)])
def test_an_entry_below_the_minimum_is_not_placed(filters):
    # all-in is 1000 / 1.001 = 999.001 USDT of notional (9.0818 units); on a 0.01 grid
    # 9.08 units for 998.8 USDT: each case is just under its minimum
    res = backtest.run(_enter_bar0_exit_bar2, bars=FIVE, cash=1000.0, fee=0.001,
                       funding=False, exchange_filters=filters)
    assert res.orders.height == 0 and res.trades.height == 0
    np.testing.assert_array_equal(res.equity_curve, 1000.0)
    assert res.status & STATUS_BELOW_MIN and not res.status & STATUS_RUINED
    assert any("below the exchange's minimum" in w for w in res.warnings)
    assert not res.metrics["ruined"]  # it never traded; nothing was lost


def test_an_entry_at_the_minimum_is_placed():
    res = backtest.run(_enter_bar0_exit_bar2, bars=FIVE, cash=1000.0, fee=0.001,
                       funding=False, exchange_filters=ExchangeFilters(0.01, 9.08, 998.0))
    assert res.trades["qty"].to_list() == [9.08]


def test_ruin_when_what_is_left_cannot_buy_the_minimum_order():
    # long 0.9 units at 110 (99 USDT, 1 left), sold at 50: 46 USDT < 50 minimum notional
    bars = _bars([100.0, 110.0, 100.0, 50.0, 60.0, 70.0, 80.0],
                 [105.0, 108.0, 90.0, 55.0, 65.0, 75.0, 85.0])

    def sig(b):
        return np.array([1, 0, -1, 0, 1, 0, 0], dtype=np.int8)

    res = backtest.run(sig, bars=bars, cash=100.0, fee=0.0, funding=False,
                       exchange_filters=ExchangeFilters(0.01, 0.01, 50.0))
    assert res.orders["qty"].to_list() == [0.9, 0.9]  # no entry at bar 5
    assert res.metrics["ruined"] and res.metrics["ruin_idx"] == 3
    assert res.metrics["ruin_time"] == "2024-01-01T03:00:00.000000Z"
    np.testing.assert_allclose(res.equity_curve[3:], 46.0, rtol=1e-12)
    assert math.isnan(res.metrics["sharpe"]) and math.isnan(res.metrics["calmar"])
    assert res.metrics["total_return"] == pytest.approx(-0.54, rel=1e-12)
    assert any(w.startswith("account ruined at 2024-01-01T03:00") for w in res.warnings)
    # without filters the 45.45 left (100 / 110 units sold at 50) buys again at bar 5's
    # open (70) and is marked at 85
    free = backtest.run(sig, bars=bars, cash=100.0, fee=0.0, funding=False,
                        exchange_filters=False)
    assert not free.metrics["ruined"]
    assert free.metrics["final_equity"] == pytest.approx(100 / 110 * 50 / 70 * 85, rel=1e-12)


def _sawtooth(cycles: int = 25) -> Bars:
    """ETH-like prices: 15 bars up 0.5 % each, then a 9 % crash bar; at 20x leverage
    every entry is liquidated in the crash and keeps ~8 % of the equity."""
    close, p = [], 2400.0
    for _ in range(cycles):
        for _ in range(15):
            p *= 1.005
            close.append(p)
        p *= 0.91
        close.append(p)
    close_arr = np.array(close)
    return _bars(np.r_[2400.0, close_arr[:-1]], close_arr, symbol="ETHUSDT")


def test_the_issue_scenario_leverage_20_mmr_0005_is_ruin_on_the_cli(tmp_path, capsys):
    bars = _sawtooth()
    write_klines(tmp_path, bars)
    info = cache_exchange_info(tmp_path, "um")  # ETHUSDT: step 0.001, minNotional 20
    assert symbol_filters(info, "ETHUSDT") == ExchangeFilters(0.001, 0.001, 20.0,
                                                              "exchangeInfo")
    args = ["run", "--lake", str(tmp_path), "--symbol", "ETHUSDT", "--interval", "1h",
            "--start", iso(bars.open_time_us[0]), "--end", iso(bars.open_time_us[-1] + H_US),
            "--param", "fast=3", "--param", "slow=8", "--leverage", "20", "--mmr", "0.005",
            "--no-funding"]
    runs = {}
    for flag in ("--exchange-filters", "--no-exchange-filters"):
        out = tmp_path / f"{flag}.json"
        with pytest.raises(SystemExit) as exc:
            main([*args, flag, "--json", str(out)])
        assert exc.value.code == 0
        runs[flag] = json.loads(out.read_text())
    err = capsys.readouterr().err
    on, off = runs["--exchange-filters"], runs["--no-exchange-filters"]
    assert on["ruined"] is True and on["ruin_time"] is not None
    assert on["sharpe"] is None and on["sortino"] is None and on["calmar"] is None
    assert "account ruined at" in err
    qty = np.array([t["qty"] for t in on["trades"]])
    assert qty.min() >= 0.001  # never a position of 2e-15 coins
    np.testing.assert_allclose(qty * 1000, np.round(qty * 1000), rtol=0, atol=1e-9)
    ruin_idx = on["ruin_idx"]
    assert max(t["exit_idx"] for t in on["trades"]) == ruin_idx  # nothing after the ruin
    assert on["config"]["exchange_filters"]["min_notional"] == 20.0
    # the unfiltered run is the issue's: it trades dust down to 1e-20 coins
    assert not off["ruined"] and min(t["qty"] for t in off["trades"]) < 1e-15
    assert off["final_equity"] < 1e-15 < on["final_equity"]


def test_sweep_reports_ruined_rows_like_run():
    bars = _sawtooth(12)
    f = ExchangeFilters(0.001, 0.001, 20.0)
    kw = dict(bars=bars, leverage=20, maintenance_margin_rate=0.005, funding=False,
              exchange_filters=f)
    res = backtest.sweep("sma_cross", {"fast": [3], "slow": [8, 40]}, **kw)
    rows = res.to_frame().rows(named=True)
    for row in rows:
        one = backtest.run("sma_cross", {"fast": row["fast"], "slow": row["slow"]}, **kw)
        assert row["ruined"] == one.metrics["ruined"]
        assert row["ruin_idx"] == one.metrics["ruin_idx"]
        assert row["final_equity"] == pytest.approx(one.metrics["final_equity"], rel=1e-12)
    assert rows[0]["ruined"] and math.isnan(rows[0]["sharpe"])
    assert any("combinations ruined the account" in w for w in res.warnings)


def test_filters_are_read_from_the_lake_or_the_result_says_why_not(tmp_path):
    notes = resolve_filters(True, tmp_path, "um", "BTCUSDT")
    assert notes[0] == backtest.filters.FILTERS_OFF
    assert "no cached um exchangeInfo" in notes[1][0]
    cache_exchange_info(tmp_path, "um")
    found, none = resolve_filters(True, tmp_path, "um", "BTCUSDT")
    assert (found.qty_step, found.min_qty, found.min_notional) == (0.001, 0.001, 100.0)
    assert none == []
    missing = resolve_filters(True, tmp_path, "um", "DOGEUSDT")
    assert "DOGEUSDT is not listed" in missing[1][0]
    assert "whole contracts" in resolve_filters(True, tmp_path, "cm", "BTCUSD_PERP")[1][0]
    assert resolve_filters(False, tmp_path, "um", "BTCUSDT")[1] == []
    assert "without a lake" in resolve_filters(True, None, "um", "BTCUSDT")[1][0]
    with pytest.raises(InputError, match="exchange_filters"):
        resolve_filters("yes", tmp_path, "um", "BTCUSDT")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="min_notional"):
        ExchangeFilters(min_notional=-1.0)
    # through run: bars without a lake go on unfiltered, and say so
    res = backtest.run(_enter_bar0_exit_bar2, bars=FIVE, funding=False)
    assert any("not applied" in w for w in res.warnings)
    assert res.config["exchange_filters"]["source"] == "off"


# The real entries come from the vendored exchangeInfo files (USD-M 2024-10-20, spot
# 2021-12-17); NOTIONAL has the shape the spot docs give since 2023.
def _real_symbol(real_data, name: str, symbol: str) -> dict:
    info = json.loads((real_data / "exchange_info" / name).read_text())
    return next(s for s in info["symbols"] if s["symbol"] == symbol)


SPOT_NOTIONAL = {"symbol": "XUSDT", "filters": [
    {"filterType": "LOT_SIZE", "minQty": "0.10000000", "maxQty": "9000.0", "stepSize": "0.1"},
    {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": False,
     "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5}]}


def test_symbol_filters_parse_real_exchange_info_entries(real_data):
    um_eth = _real_symbol(real_data, "usdm_exchangeInfo_2024-10-20.json", "ETHUSDT")
    spot_eth = _real_symbol(real_data, "spot_exchangeInfo_2021-12-17_body.json", "ETHUSDT")
    info = {"symbols": [um_eth]}
    assert symbol_filters(info, "ETHUSDT", "um") == ExchangeFilters(0.001, 0.001, 20.0, "um")
    assert symbol_filters({"symbols": [spot_eth]}, "ETHUSDT") == ExchangeFilters(
        0.0001, 0.0001, 10.0, "exchangeInfo")
    # a minimum that does not apply to market orders is not a minimum for our fills
    assert symbol_filters({"symbols": [SPOT_NOTIONAL]}, "XUSDT").min_notional == 0.0
    assert symbol_filters(info, "BTCUSDT") is None
    bad = {"symbols": [{"symbol": "ETHUSDT", "filters": [
        {"filterType": "LOT_SIZE", "stepSize": "one", "minQty": "0"}]}]}
    with pytest.raises(InputError, match="stepSize"):
        symbol_filters(bad, "ETHUSDT")
