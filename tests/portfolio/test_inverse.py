"""COIN-M inverse contracts in the portfolio engine: hand-computed worked numbers.

The account is in coin (BTC); positions are whole contracts of contractSize USD;
PnL = contracts x contractSize x (1/entry - 1/exit); fees fee_rate x contracts x
contractSize / price; funding contracts x contractSize / mark x rate, all in BTC.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.multi_asset.panel import AssetInfo, load_panel, panel_from_arrays
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.catalog import Lake

T0_US = 1_704_067_200_000_000
BTC = AssetInfo(status="TRADING", contract_size=100.0, margin_asset="BTC", base_asset="BTC")


def _panel(open_, close, fund_at_open=None):
    open_ = np.asarray(open_, float)[:, None]
    close = np.asarray(close, float)[:, None]
    t = T0_US + np.arange(open_.shape[0], dtype=np.int64) * 3_600_000_000
    fao = None if fund_at_open is None else np.asarray(fund_at_open, float)[:, None]
    return panel_from_arrays(["cm:BTCUSD_PERP"], "1h", t, open_, close, fund_at_open=fao,
                             info=(BTC,))


def _once(value):
    def strat(panel):
        w = np.full((panel.n_bars, 1), np.nan)
        w[0] = value
        return w
    return strat


def test_long_half_equity_worked_numbers():
    # bar 1 opens at 40,000: 0.5 BTC of notional = 0.5 x 40,000 / 100 = 200 contracts;
    # fee 0.0005 x 200 x 100 / 40,000 = 0.00025 BTC; at 50,000 the PnL is
    # 200 x 100 x (1/40,000 - 1/50,000) = 0.1 BTC
    panel = _panel([40_000, 40_000, 45_000], [40_000, 40_000, 50_000])
    res = backtest.portfolio(_once(0.5), panel=panel, cash=1.0, fee=0.0005, funding=False)
    assert res.positions[:, 0].tolist() == [0.0, 200.0, 200.0]
    np.testing.assert_allclose(res.equity_curve, [1.0, 1.0 - 0.00025, 1.09975], rtol=1e-12)
    assert res.config["account"] == "coin"
    o = res.orders.row(0, named=True)
    assert (o["side"], o["qty"], o["kind"]) == (1, 200.0, "rebalance")
    np.testing.assert_allclose([o["price"], o["fee"]], [40_000.0, 0.00025], rtol=1e-12)
    a = res.assets["cm:BTCUSD_PERP"]
    np.testing.assert_allclose([a["pnl"], a["fees_paid"], a["turnover"]],
                               [0.09975, 0.00025, 0.5], rtol=1e-12)
    assert a["final_position"] == 200.0
    np.testing.assert_allclose(res.equity["net_exposure"][2], 200 * 100 / 50_000, rtol=1e-12)


def test_short_with_slippage_and_whole_contracts():
    # 0.5 x 40,100 / 100 = 200.5 -> 200 contracts (toward zero); a short sells at
    # 40,100 x (1 - 0.001) = 40,059.9; fee 0.0005 x 20,000 / 40,059.9;
    # at 36,000: PnL 20,000 x (1/36,000 - 1/40,059.9)
    panel = _panel([40_100, 40_100, 36_000], [40_100, 40_100, 36_000])
    res = backtest.portfolio(_once(-0.5), panel=panel, cash=1.0, fee=0.0005,
                             slippage_bps=10.0, funding=False)
    entry = 40_100 * (1 - 0.001)
    fee = 0.0005 * 20_000 / entry
    assert res.positions[-1, 0] == -200.0
    o = res.orders.row(0, named=True)
    assert o["side"] == -1 and o["qty"] == 200.0
    np.testing.assert_allclose([o["price"], o["fee"]], [entry, fee], rtol=1e-12)
    # a short gains when the price falls: -200 x 100 x (1/entry - 1/exit) > 0
    expected = 1.0 - fee - 200 * 100 * (1 / entry - 1 / 36_000)
    np.testing.assert_allclose(res.equity_curve[-1], expected, rtol=1e-12)
    assert res.equity_curve[-1] > 1.0


def test_funding_in_coin_worked_numbers():
    # 200 contracts long; an 8h funding at bar 3's open, rate 0.0001, mark 50,000:
    # paid 200 x 100 / 50,000 x 0.0001 = 0.00004 BTC
    rate, mark = 0.0001, 50_000.0
    fao = [0, 0, 0, rate / mark, 0]
    px = [40_000, 40_000, 50_000, 50_000, 50_000]
    panel = _panel(px, px, fund_at_open=fao)
    on = backtest.portfolio(_once(0.5), panel=panel, cash=1.0, fee=0.0)
    off = backtest.portfolio(_once(0.5), panel=panel, cash=1.0, fee=0.0, funding=False)
    np.testing.assert_allclose(on.metrics["funding_paid"], 0.00004, rtol=1e-12)
    np.testing.assert_allclose(on.equity_curve[3:], off.equity_curve[3:] - 0.00004, rtol=1e-12)
    assert np.array_equal(on.equity_curve[:3], off.equity_curve[:3])


def test_cm_lake_funding_equals_contracts_size_over_mark_times_rate(tmp_path: Path):
    with FakeExchange(seed=1, now_ms=1_767_225_600_000) as fx:
        for ds in ("klines", "funding"):
            req = validate_request(market="cm", dataset=ds, symbols="BTCUSD_PERP",
                                   interval="1h" if ds == "klines" else None,
                                   start="2023-03-01", end="2023-04-01", lake=tmp_path,
                                   base_url=fx.base_url)
            asyncio.run(run_download(req))
    panel = load_panel(tmp_path, "cm:BTCUSD_PERP", "1h", "2023-03-01", "2023-04-01")
    assert panel.contract_size.tolist() == [100.0]  # from the cached exchangeInfo
    res = backtest.portfolio(_once(1.0), panel=panel, cash=2.0)
    contracts = res.positions[-1, 0]
    assert contracts > 0 and contracts == int(contracts)
    events = Lake(tmp_path).funding("cm", "BTCUSD_PERP", "2023-03-01", "2023-04-01")
    t = events["funding_time"].dt.epoch("us").to_numpy()
    held = t > res.time_us[1]  # held from bar 1's open; events at that open are not charged
    expected = float((contracts * 100 / events["mark_price"].to_numpy()
                      * events["funding_rate"].to_numpy())[held].sum())
    assert expected != 0.0
    np.testing.assert_allclose(res.metrics["funding_paid"], expected, rtol=1e-12)


def test_cm_needs_contract_sizes():
    t = T0_US + np.arange(3, dtype=np.int64) * 3_600_000_000
    px = np.full((3, 1), 100.0)
    panel = panel_from_arrays(["cm:BTCUSD_PERP"], "1h", t, px, px)
    with pytest.raises(ValueError, match="contract sizes unknown"):
        backtest.portfolio("equal_weight", panel=panel)
