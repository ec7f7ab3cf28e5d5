"""The portfolio HTML report: weights over time, per-asset PnL, embedded data."""

from __future__ import annotations

import json
import re

import numpy as np

import backtest
from backtest.multi_asset.panel import panel_from_arrays
from backtest.multi_asset.report import portfolio_figures, write_portfolio_report


def _result(n: int = 300):
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0))
    t = (1_704_067_200_000 + np.arange(n, dtype=np.int64) * 3_600_000) * 1000
    panel = panel_from_arrays(["um:AUSDT", "um:BUSDT", "spot:CUSDT"], "1h", t, close, close)
    return backtest.portfolio("momentum_rank", {"lookback": 12}, panel=panel, rebalance="8h")


def test_report_has_weights_pnl_and_data(tmp_path):
    res = _result()
    path = write_portfolio_report(res, tmp_path / "p.html")
    text = path.read_text()
    for fig_id in ("fig-equity", "fig-weights", "fig-pnl"):
        assert f'id="{fig_id}"' in text
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', text, re.S).group(1)
                      .replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&"))
    assert data["final_equity"] == res.metrics["final_equity"]
    assert set(data["assets"]) == set(res.asset_names)
    assert 'id="assets"' in text and "um:BUSDT" in text


def test_figures_carry_the_held_weights_and_pnl():
    res = _result()
    figs = portfolio_figures(res, max_points=100)
    traces = figs["fig-weights"].data
    assert [t.name for t in traces] == res.asset_names
    idx = np.arange(0, res.equity.height, 3)
    idx = np.r_[idx, res.equity.height - 1] if idx[-1] != res.equity.height - 1 else idx
    np.testing.assert_allclose(np.asarray(traces[0].y), res.weights[idx, 0])
    bars = figs["fig-pnl"].data[0]
    np.testing.assert_allclose(np.asarray(bars.y), [res.assets[n]["pnl"] for n in res.asset_names])
    # held weights: value / equity, so the net weight is the net exposure over equity
    np.testing.assert_allclose(res.weights.sum(axis=1),
                               res.equity["net_exposure"].to_numpy() / res.equity_curve,
                               rtol=1e-9, atol=1e-12)


def test_json_path_writes_the_result_json(tmp_path):
    res = _result(100)
    path = write_portfolio_report(res, tmp_path / "p.json")
    assert json.loads(path.read_text())["assets"].keys() == res.assets.keys()
