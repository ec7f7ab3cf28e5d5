"""Point-in-time universe and funding, on lakes downloaded from the fake exchange.

- the fake exchange's delisted USD-M symbol (SRMUSDT, SETTLING since 2022-11-15 09:00)
  is closed at its last bar's close and never traded afterwards;
- a symbol listed mid-range (spot NEWUSDT, 2025-06-02 10:00) has weight 0 before its
  first bar whatever the strategy returns;
- funding: for `basis` the perp's funding equals sum(qty x mark x rate) over the funding
  times the short was open; a held portfolio's equity with funding is its equity without
  funding minus the funding paid, bit for bit; per unit held, funding equals
  `backtest.run`'s.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.multi_asset.panel import load_panel
from backtest.multi_asset.strategies import basis
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.catalog import Lake

NOW_MS = 1_767_225_600_000  # 2026-01-01


def _download(url: str, root: Path, market: str, dataset: str, symbols: str, start: str,
              end: str, interval: str | None = "1h") -> None:
    req = validate_request(market=market, dataset=dataset, symbols=symbols,
                           interval=interval if dataset == "klines" else None, start=start,
                           end=end, lake=root, base_url=url)
    asyncio.run(run_download(req))


@pytest.fixture(scope="module")
def fx_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pf_fx_lake")
    with FakeExchange(seed=1, now_ms=NOW_MS) as fx:
        for ds in ("klines", "funding"):
            _download(fx.base_url, root, "um", ds, "BTCUSDT,ETHUSDT,SRMUSDT", "2022-01-01",
                      "2023-01-01")
        _download(fx.base_url, root, "spot", "klines", "BTCUSDT", "2022-01-01", "2023-01-01")
        _download(fx.base_url, root, "spot", "klines", "BTCUSDT,NEWUSDT", "2025-05-28",
                  "2025-06-08")
    return root


def _us(text: str) -> int:
    return int(np.datetime64(text, "us").astype(np.int64))


def test_delisted_usdm_symbol_is_closed_at_its_last_bar(fx_lake):
    res = backtest.portfolio("equal_weight", lake=fx_lake, universe="um:ALL", interval="1h",
                             start="2022-01-01", end="2023-01-01", rebalance="1d")
    assert res.asset_names == ["um:BTCUSDT", "um:ETHUSDT", "um:SRMUSDT"]
    k = res.asset_names.index("um:SRMUSDT")
    last = int(np.nonzero(res.time_us == _us("2022-11-15T08:00"))[0][0])
    srm = res.orders.filter(res.orders["asset"] == "um:SRMUSDT")
    assert srm.height > 300  # rebalanced daily while listed
    assert srm["kind"][-1] == "delisting"
    assert srm["time"][-1] == res.equity["open_time"][last]
    assert (srm["kind"] == "delisting").sum() == 1
    assert srm["time"].max() == res.equity["open_time"][last]  # never traded afterwards
    assert res.positions[last - 1, k] > 0 and (res.positions[last:, k] == 0).all()
    assert res.assets["um:SRMUSDT"]["delisted_at"] == "2022-11-15T08:00:00.000000Z"
    assert any("um:SRMUSDT was delisted" in note for note in res.warnings)
    after = res.weights[last + 30]
    np.testing.assert_allclose(after[:2].sum(), 1.0, rtol=2e-3)  # BTC/ETH share it all
    total_pnl = sum(a["pnl"] for a in res.assets.values())
    np.testing.assert_allclose(total_pnl, res.metrics["final_equity"] - 10_000.0, rtol=1e-9)


def test_symbol_listed_mid_range_gets_weight_only_from_its_first_bar(fx_lake):
    def half_each(panel):  # asks for NEW from the start
        return np.full((panel.n_bars, panel.n_assets), 0.5)

    res = backtest.portfolio(half_each, lake=fx_lake, universe="spot:BTCUSDT,spot:NEWUSDT",
                             interval="1h", start="2025-05-28", end="2025-06-08",
                             rebalance="8h")
    first = int(np.nonzero(res.time_us == _us("2025-06-02T10:00"))[0][0])
    assert (res.target_weights[:first, 1][~np.isnan(res.target_weights[:first, 1])] == 0).all()
    assert (res.positions[: first + 1, 1] == 0).all()
    new = res.orders.filter(res.orders["asset"] == "spot:NEWUSDT")
    assert new.height > 0
    assert new["time"].min() > res.equity["open_time"][first]
    assert res.positions[-1, 1] > 0


def _funding_oracle(lake: Path, res, k: int, start: str, end: str) -> float:
    """sum(qty x mark x rate) over the funding events, with the position held at each
    (carried into the bar for an event at its open), from the lake's own records."""
    market, symbol = res.asset_names[k].split(":")
    events = Lake(lake).funding(market, symbol, start, end)
    times = events["funding_time"].dt.epoch("us").to_numpy()
    total = 0.0
    for t_us, rate, mark in zip(times, events["funding_rate"], events["mark_price"],
                                strict=True):
        j = int(np.searchsorted(res.time_us, t_us, side="right")) - 1
        at_open = t_us - res.time_us[j] < 1_000_000
        held = res.positions[j - 1, k] if at_open else res.positions[j, k]
        if j >= 1 or not at_open:
            total += held * mark * rate
    return total


def test_basis_funding_received_equals_qty_mark_rate(fx_lake):
    start, end = "2022-03-01", "2022-04-01"
    res = backtest.portfolio("basis", lake=fx_lake, universe="spot:BTCUSDT,um:BTCUSDT",
                             interval="1h", start=start, end=end, rebalance="1d")
    perp = res.assets["um:BTCUSDT"]
    assert res.positions[-1, 1] < 0 < res.positions[-1, 0]  # long spot, short perp
    expected = _funding_oracle(fx_lake, res, 1, start, end)
    assert abs(expected) > 1.0  # a real amount, not an empty sum
    np.testing.assert_allclose(perp["funding_paid"], expected, rtol=1e-12)
    assert res.assets["spot:BTCUSDT"]["funding_paid"] == 0.0
    assert res.metrics["funding_paid"] == perp["funding_paid"]


def test_held_portfolio_equity_with_funding_is_without_minus_funding_paid(fx_lake):
    def held_basis(panel):
        w = basis(panel)
        w[1:] = np.nan  # set once, then held
        return w

    kw = {"lake": fx_lake, "universe": "spot:BTCUSDT,um:BTCUSDT,um:ETHUSDT",
          "interval": "1h", "start": "2022-02-01", "end": "2022-06-01"}
    on = backtest.portfolio(held_basis, funding=True, **kw)
    off = backtest.portfolio(held_basis, funding=False, **kw)
    fund = on.equity["cum_funding"].to_numpy()
    assert fund[-1] != 0.0 and on.metrics["funding_paid"] == fund[-1]
    assert np.array_equal(on.equity_curve, off.equity_curve - fund)
    assert off.metrics["funding_paid"] == 0.0


def test_funding_per_unit_held_equals_backtest_run(fx_lake):
    """One long perp held: funding / quantity (= sum of rate x mark) as in `run`."""
    start, end = "2022-05-01", "2022-07-01"
    ours = backtest.portfolio(lambda p: np.where(np.arange(p.n_bars)[:, None] == 0, 1.0,
                                                 np.nan), lake=fx_lake, universe="um:BTCUSDT",
                              interval="1h", start=start, end=end)
    run = backtest.run("hold", lake=fx_lake, market="um", symbol="BTCUSDT", interval="1h",
                       start=start, end=end, exchange_filters=False)
    run_qty = run.equity["position"].to_numpy()[-1]
    per_unit_run = run.metrics["funding_paid"] / run_qty
    per_unit_ours = ours.metrics["funding_paid"] / ours.positions[-1, 0]
    assert per_unit_run != 0.0
    # run enters at bar 1's open as we do, so both hold from the same bar
    np.testing.assert_allclose(per_unit_ours, per_unit_run, rtol=1e-12)


def test_panel_funding_rate_is_the_rate_settled_in_each_bar(fx_lake):
    panel = load_panel(fx_lake, "um:BTCUSDT,um:ETHUSDT", "1h", "2022-03-01", "2022-03-03")
    events = Lake(fx_lake).funding("um", "ETHUSDT", "2022-03-01", "2022-03-03")
    assert events.height == 12  # ETHUSDT settles every 4 hours on the fake exchange
    assert np.count_nonzero(panel.funding_rate[:, 1]) == 12
    np.testing.assert_allclose(panel.funding_rate[:, 1].sum(), events["funding_rate"].sum(),
                               rtol=1e-12)
