"""COIN-M inverse contracts in `backtest.run` and `backtest.sweep`: hand-computed numbers.

The account is in coin (BTC); positions are whole contracts of contractSize USD;
PnL = contracts x contractSize x (1/entry - 1/exit) for a long (the negative for a
short); fee = fee_rate x contracts x contractSize / price; funding paid = contracts x
contractSize / mark x rate; all in BTC (`backtest.inverse`).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backtest
from backtest.data import Bars, FundingEvents
from kline_lake.errors import InputError
from tests.support.backtest import make_bars

H_US = 3_600_000_000
T0_US = 1_704_067_200_000_000


def _bars(rows) -> Bars:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*rows, strict=True))
    n = len(rows)
    return Bars("cm", "BTCUSD_PERP", "1h", T0_US + np.arange(n, dtype=np.int64) * H_US,
                o, h, lo, c, np.ones(n))


def _run(rows, sig, direction="long", **kw):
    raw = np.array(sig, dtype=np.int8)
    kw = {"cash": 1.0, "fee": 0.0005, "contract_size": 100.0, "funding": False,
          "exchange_filters": False} | kw
    return backtest.run(lambda b: raw, bars=_bars(rows), direction=direction, **kw)


FLAT = (40_000.0, 40_100.0, 39_900.0, 40_000.0)


def test_long_contracts_pnl_and_fees_in_coin():
    # 1 BTC all-in at 40,000: 1 / (1.0005 / 40,000) / 100 = 399.8 -> 399 contracts
    # (39,900 USD = 0.9975 BTC); entry fee 0.0005 x 39,900 / 40,000 = 0.00049875 BTC;
    # out at 50,000: PnL 39,900 x (1/40,000 - 1/50,000) = 0.1995 BTC, exit fee
    # 0.0005 x 39,900 / 50,000 = 0.000399 BTC -> 1.19860225 BTC
    rows = [FLAT, (40_000, 41_500, 39_500, 41_000), (50_000, 50_500, 49_500, 50_000),
            (50_000,) * 4]
    res = _run(rows, [1, -1, 0, 0])
    t = res.trades.row(0, named=True)
    assert (t["side"], t["qty"]) == ("long", 399.0)
    np.testing.assert_allclose([t["entry_price"], t["exit_price"], t["entry_fee"],
                                t["exit_fee"], t["pnl"]],
                               [40_000, 50_000, 0.00049875, 0.000399, 0.19860225], rtol=1e-12)
    assert res.orders["side"].to_list() == ["buy", "sell"] and res.orders["qty"].to_list() == [399, 399]
    assert res.equity["position"].to_list() == [0.0, 399.0, 0.0, 0.0]
    # the trade's return is on its coin notional, 39,900 / 40,000 = 0.9975 BTC
    np.testing.assert_allclose(t["return"], 0.19860225 / 0.9975, rtol=1e-12)
    bar1 = 1 - 0.00049875 + 39_900 * (1 / 40_000 - 1 / 41_000)  # marked at the 41,000 close
    np.testing.assert_allclose(res.equity_curve, [1.0, bar1, 1.19860225, 1.19860225],
                               rtol=1e-12)
    np.testing.assert_allclose(res.metrics["fees_paid"], 0.00049875 + 0.000399, rtol=1e-12)
    assert res.config["account"] == "coin" and res.config["margin_coin"] == "BTC"
    assert res.config["contract_size"] == 100.0
    # the buy-and-hold benchmark is a 1x long held in coin: 1 x (2 - 40,000 / close)
    np.testing.assert_allclose(res.equity["buy_hold_equity"][2], 2 - 40_000 / 50_000, rtol=1e-12)


def test_short_with_slippage_gains_when_the_price_falls():
    # sell at 40,000 x (1 - 0.001) = 39,960: all-in 0.999 / (1.0005 x 2.5e-5) = 39,940
    # USD -> 399 contracts, fee 0.0005 x 39,900 / 39,960; cover at 36,000 x 1.001 =
    # 36,036: PnL 39,900 x (1/36,036 - 1/39,960), fee 0.0005 x 39,900 / 36,036
    rows = [FLAT, FLAT, (36_000, 36_100, 35_900, 36_000), (36_000,) * 4]
    res = _run(rows, [-1, 1, 0, 0], direction="short", slippage_bps=10.0)
    t = res.trades.row(0, named=True)
    fee_in, fee_out = 0.0005 * 39_900 / 39_960, 0.0005 * 39_900 / 36_036
    pnl = 39_900 * (1 / 36_036 - 1 / 39_960)
    assert (t["side"], t["qty"]) == ("short", 399.0)
    np.testing.assert_allclose([t["entry_price"], t["exit_price"], t["entry_fee"],
                                t["exit_fee"], t["pnl"]],
                               [39_960, 36_036, fee_in, fee_out, pnl - fee_in - fee_out],
                               rtol=1e-12)
    np.testing.assert_allclose(res.metrics["final_equity"], 1 + pnl - fee_in - fee_out,
                               rtol=1e-12)
    assert res.metrics["final_equity"] > 1.0 and res.equity["position"][1] == -399.0


def test_funding_in_coin_long_pays_short_receives():
    # no fee: 1 BTC x 40,000 / 100 = 400 contracts held from bar 1's open; funding at
    # bar 3's open, rate 0.0001 at a mark of 50,000: 400 x 100 / 50,000 x 0.0001 =
    # 0.00008 BTC paid (a short receives it)
    rows = [FLAT] * 5
    events = FundingEvents(np.array([T0_US + 3 * H_US]), np.array([0.0001]),
                           np.array([50_000.0]))
    for side, direction in ((1, "long"), (-1, "short")):
        kw = dict(fee=0.0, direction=direction)
        on = _run(rows, [side, 0, 0, 0, 0], funding=True, funding_events=events, **kw)
        off = _run(rows, [side, 0, 0, 0, 0], **kw)
        np.testing.assert_allclose(on.metrics["funding_paid"], side * 8e-5, rtol=1e-12)
        np.testing.assert_allclose(on.equity_curve[3:], off.equity_curve[3:] - side * 8e-5,
                                   rtol=1e-12)
        assert np.array_equal(on.equity_curve[:3], off.equity_curve[:3])
        np.testing.assert_allclose(on.trades["funding_paid"][0], side * 8e-5, rtol=1e-12)


def test_stops_are_levels_of_the_real_price():
    # 400 contracts (no fee) long from 40,000: stop-loss 2% -> 39,200 (not 40,000 /
    # 1.02 = 39,216), take-profit 5% -> 42,000 (not 40,000 / 0.95 = 42,105): a bar
    # reaching 42,050 takes the profit, 40,000 x (1/40,000 - 1/42,000) BTC
    tp_bar = (40_500, 42_050, 40_400, 41_000)
    res = _run([FLAT, FLAT, tp_bar, FLAT], [1, 0, 0, 0], fee=0.0, sl_stop=0.02, tp_stop=0.05)
    t = res.trades.row(0, named=True)
    assert t["reason"] == "tp"
    np.testing.assert_allclose([t["exit_price"], t["pnl"]],
                               [42_000, 40_000 * (1 / 40_000 - 1 / 42_000)], rtol=1e-12)
    sl_bar = (39_800, 40_000, 39_000, 39_500)
    t = _run([FLAT, FLAT, sl_bar, FLAT], [1, 0, 0, 0], fee=0.0, sl_stop=0.02).trades.row(0, named=True)
    assert t["reason"] == "sl"
    np.testing.assert_allclose([t["exit_price"], t["pnl"]],
                               [39_200, 40_000 * (1 / 40_000 - 1 / 39_200)], rtol=1e-12)
    # a short at 40,000: its take-profit 5% below, 38,000; a bar opening at 37,000 gaps
    # through it and exits at the open
    gap = (37_000, 37_500, 36_800, 37_200)
    t = _run([FLAT, FLAT, gap, FLAT], [-1, 0, 0, 0], "short", fee=0.0, sl_stop=0.02,
             tp_stop=0.05).trades.row(0, named=True)
    assert t["reason"] == "tp" and t["side"] == "short"
    np.testing.assert_allclose(t["exit_price"], 37_000, rtol=1e-12)
    # trailing: long at 40,000 with a 10% stop; a bar's high of 48,000 moves it to
    # 43,200, the next bar's low of 43,000 exits there
    up, down = (44_000, 48_000, 43_900, 47_000), (46_000, 46_500, 43_000, 44_000)
    t = _run([FLAT, FLAT, up, down, FLAT], [1, 0, 0, 0, 0], fee=0.0, sl_stop=0.1,
             sl_trail=True).trades.row(0, named=True)
    assert (t["reason"], t["exit_idx"]) == ("trail", 3)
    np.testing.assert_allclose(t["exit_price"], 43_200, rtol=1e-12)


def _cm_bars(n=900, seed=7):
    b = make_bars(n, seed=seed, market="cm")
    return Bars("cm", "BTCUSD_PERP", b.interval, b.open_time_us, b.open, b.high, b.low,
                b.close, b.volume)


@pytest.mark.parametrize("strategy,params", [
    ("sma_cross", {"fast": [5, 9], "slow": [20, 35]}),
    ("donchian", {"window": [10, 25]}),
])
def test_cm_sweep_rows_equal_runs(strategy, params):
    bars = _cm_bars()
    t = bars.open_time_us[::8]
    rng = np.random.default_rng(3)
    events = FundingEvents(t, rng.normal(1e-4, 2e-4, t.shape[0]), bars.open[::8] * 1.0001)
    kw = dict(bars=bars, cash=2.0, contract_size=10.0, fee=0.0005, slippage_bps=3.0,
              direction="both", funding_events=events, exchange_filters=False, sl_trail=True)
    res = backtest.sweep(strategy, params, sl_stop=[0.01, 0.03], tp_stop=0.04, **kw)
    frame = res.to_frame()
    assert res.config["account"] == "coin" and frame.height == 2 * len(list(
        itertools.product(*params.values())))
    assert frame["n_trades"].min() > 0 and (frame["funding_paid"] != 0).sum() >= 4
    for row in frame.iter_rows(named=True):
        one = backtest.run(strategy, {k: row[k] for k in params}, sl_stop=row["sl_stop"],
                           tp_stop=0.04, **kw)
        assert (one.trades["qty"] == one.trades["qty"].round()).all()  # whole contracts
        for name in ("final_equity", "sharpe", "fees_paid", "funding_paid", "n_trades",
                     "n_sl_exits", "n_tp_exits", "n_trail_exits", "max_drawdown"):
            assert row[name] == pytest.approx(one.metrics[name], rel=1e-12, nan_ok=True)


def test_cm_bad_input_is_one_clear_error():
    bars = _bars([FLAT] * 4)
    with pytest.raises(InputError, match="contract size unknown"):
        backtest.run("hold", bars=bars, funding=False, exchange_filters=False)
    with pytest.raises(InputError, match="contract size must be positive"):
        backtest.run("hold", bars=bars, contract_size=0.0, funding=False)
    um = Bars("um", "BTCUSDT", "1h", bars.open_time_us, bars.open, bars.high, bars.low,
              bars.close, bars.volume)
    with pytest.raises(InputError, match="cm .inverse. contracts only"):
        backtest.run("hold", bars=um, contract_size=100.0, funding=False)
    with pytest.raises(InputError, match="cash must be positive"):
        backtest.sweep("donchian", {"window": [2]}, bars=bars, cash=0.0, contract_size=100.0)
    from backtest.filters import ExchangeFilters

    with pytest.raises(InputError, match="whole number"):
        backtest.run("hold", bars=bars, contract_size=100.0, funding=False,
                     exchange_filters=ExchangeFilters(qty_step=0.5))


def test_cm_from_the_lake_cli_json_says_coin(tmp_path, capsys):
    import asyncio
    import json

    from backtest.cli import main
    from kline_lake.download.orchestrate import run_download
    from kline_lake.download.request import validate_request
    from kline_lake.fake_exchange import FakeExchange
    from kline_lake.lake.catalog import Lake

    with FakeExchange(seed=1, now_ms=1_767_225_600_000) as fx:
        for ds in ("klines", "funding"):
            req = validate_request(market="cm", dataset=ds, symbols="BTCUSD_PERP",
                                   interval="1h" if ds == "klines" else None,
                                   start="2023-03-01", end="2023-03-15", lake=tmp_path,
                                   base_url=fx.base_url)
            asyncio.run(run_download(req))
    out = tmp_path / "run.json"
    argv = ["run", "--lake", str(tmp_path), "--market", "cm", "--symbol", "BTCUSD_PERP",
            "--interval", "1h", "--start", "2023-03-01", "--end", "2023-03-15",
            "--strategy", "hold", "--cash", "2", "--json", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "BTC (account in coin, contracts of 100 USD)" in capsys.readouterr().out
    data = json.loads(out.read_text())
    cfg = data["config"]
    assert (cfg["account"], cfg["margin_coin"], cfg["contract_size"]) == ("coin", "BTC", 100.0)
    assert cfg["exchange_filters"]["qty_step"] == 1.0  # LOT_SIZE in contracts
    res = backtest.run("hold", lake=tmp_path, market="cm", symbol="BTCUSD_PERP",
                       interval="1h", start="2023-03-01", end="2023-03-15", cash=2.0)
    contracts = res.trades["qty"][0]
    entry = res.trades["entry_price"][0]
    # all-in: 2 BTC x entry / (1 + fee) / 100 USD, rounded down to whole contracts
    assert contracts == np.floor(2.0 * entry / (1 + res.config["fee_rate"]) / 100 + 1e-9)
    events = Lake(tmp_path).funding("cm", "BTCUSD_PERP", "2023-03-01", "2023-03-15")
    t = events["funding_time"].dt.epoch("us").to_numpy()
    held = t > res.equity["open_time"].dt.epoch("us")[1]
    expected = float((contracts * 100 / events["mark_price"].to_numpy()
                      * events["funding_rate"].to_numpy())[held].sum())
    assert expected != 0.0
    np.testing.assert_allclose(data["funding_paid"], expected, rtol=1e-12)
    np.testing.assert_allclose(res.metrics["funding_paid"], expected, rtol=1e-12)
    lake_kw = dict(lake=tmp_path, market="cm", symbol="BTCUSD_PERP", interval="1h",
                   start="2023-03-01", end="2023-03-15", cash=2.0, direction="both")
    rows = backtest.sweep("sma_cross", {"fast": [5, 10], "slow": [30]}, sl_stop=[0.01, 0.02],
                          **lake_kw).to_frame()
    for row in rows.iter_rows(named=True):
        one = backtest.run("sma_cross", {"fast": row["fast"], "slow": 30},
                           sl_stop=row["sl_stop"], **lake_kw)
        assert row["final_equity"] == pytest.approx(one.metrics["final_equity"], rel=1e-12)
        assert row["funding_paid"] == pytest.approx(one.metrics["funding_paid"], rel=1e-12)
    with pytest.raises(InputError, match="disagrees with the exchange"):
        backtest.run("hold", lake=tmp_path, market="cm", symbol="BTCUSD_PERP",
                     interval="1h", start="2023-03-01", end="2023-03-15", contract_size=10)


def test_cm_result_is_not_handed_to_vectorbt():
    res = _run([FLAT] * 3, [1, 0, 0])
    with pytest.raises(InputError, match="linear contracts only"):
        res.to_vectorbt()


def test_liquidation_is_the_linear_formula_on_the_mirror():
    # 10x long, no fee: 10 BTC x 40,000 / 100 = 4,000 contracts, margin 1 BTC. On the
    # mirror (a short of q = 400,000 at x = 1/40,000) isolated margin liquidates at
    # x_L = x (1 + 1/10) / (1 + mmr): the real price 40,000 x 1.005 / 1.1 = 36,545.45;
    # what is left is the maintenance margin in coin, 0.005 x 400,000 / 36,545.45
    p_liq = 40_000 * 1.005 / 1.1
    rows = [FLAT, FLAT, (39_000, 39_500, 36_000, 37_000), FLAT]
    res = _run(rows, [1, 0, 0, 0], fee=0.0, leverage=10.0, maintenance_margin_rate=0.005)
    t = res.trades.row(0, named=True)
    assert (t["qty"], t["reason"], t["exit_idx"]) == (4_000.0, "liquidation", 2)
    np.testing.assert_allclose(t["exit_price"], p_liq, rtol=1e-12)
    left = 1 + 400_000 * (1 / 40_000 - 1 / p_liq)
    np.testing.assert_allclose([res.metrics["final_equity"], left],
                               [left, 0.005 * 400_000 / p_liq], rtol=1e-9)
