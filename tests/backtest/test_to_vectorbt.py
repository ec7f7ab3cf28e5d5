"""`RunResult.to_vectorbt()`: our fills as a vectorbt Portfolio with the same equity."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from backtest.data import FundingEvents
from backtest.filters import ExchangeFilters
from tests.support.backtest import make_bars

REL = 1e-9
CASES = {
    "long": dict(direction="long"),
    "short_leveraged_liquidated": dict(direction="short", leverage=10,
                                       maintenance_margin_rate=0.02),
    "both_at_close_with_filters": dict(direction="both", fill="close", leverage=3,
                                       exchange_filters=ExchangeFilters(0.01, 0.01, 50.0)),
    "ruined": dict(direction="both", leverage=25, maintenance_margin_rate=0.005,
                   exchange_filters=ExchangeFilters(0.001, 0.001, 20.0)),
}


def _run(case: str, funding_events=None):
    bars = make_bars(900, seed=5, vol=0.02)
    raw = np.random.default_rng(9).choice(np.array([-1, 0, 0, 0, 1], dtype=np.int8), 900)
    settings = {"exchange_filters": False, **CASES[case]}
    return backtest.run(lambda b: raw, bars=bars, fee=0.0005, slippage_bps=2,
                        funding=funding_events is not None, funding_events=funding_events,
                        **settings)


@pytest.mark.parametrize("case", list(CASES))
def test_vectorbt_portfolio_of_our_fills_has_our_equity(case):
    res = _run(case)
    pf = res.to_vectorbt()
    np.testing.assert_allclose(pf.value().to_numpy(), res.equity_curve, rtol=REL, atol=1e-9)
    np.testing.assert_allclose(pf.assets().to_numpy(), res.equity["position"].to_numpy(),
                               rtol=REL, atol=1e-12)
    assert pf.orders.count() == res.orders.height > 10
    trades = pf.trades.records_readable
    assert len(trades) == res.metrics["n_trades"]
    np.testing.assert_allclose(trades["PnL"].to_numpy(), res.trades["pnl"].to_numpy(),
                               rtol=REL, atol=1e-9)
    assert pf.total_return() == pytest.approx(res.metrics["total_return"], rel=REL)
    assert -pf.max_drawdown() == pytest.approx(res.metrics["max_drawdown"], rel=REL)
    if case == "short_leveraged_liquidated":
        assert "liquidation" in res.orders["kind"].to_list()
    if case == "ruined":
        assert res.metrics["ruined"]
    else:  # both annualize hourly returns over 365 days
        assert pf.sharpe_ratio() == pytest.approx(res.metrics["sharpe"], rel=1e-6)


def test_with_funding_vectorbt_value_is_equity_plus_funding_paid():
    bars = make_bars(900, seed=5, vol=0.02)
    t = bars.open_time_us[::8]
    ev = FundingEvents(t, np.random.default_rng(3).normal(1e-4, 5e-4, t.shape[0]),
                       np.full(t.shape[0], np.nan))
    res = _run("long", funding_events=ev)
    cum_funding = res.equity["cum_funding"].to_numpy()
    assert np.abs(cum_funding).max() > 1.0  # funding moved the equity
    value = res.to_vectorbt().value().to_numpy()
    np.testing.assert_allclose(value, res.equity_curve + cum_funding, rtol=REL, atol=1e-9)


def test_vectorbt_analysis_and_plots_apply():
    res = _run("long")
    pf = res.to_vectorbt()
    stats = pf.stats()
    assert stats["Total Return [%]"] == pytest.approx(100 * res.metrics["total_return"],
                                                      rel=REL)
    assert stats["Total Trades"] == res.metrics["n_trades"]
    assert str(pf.wrapper.freq) == "0 days 01:00:00"
    assert list(pf.wrapper.columns) == ["BTCUSDT"]
    fig = pf.plot()
    assert len(fig.data) >= 3  # orders, trades and value traces
