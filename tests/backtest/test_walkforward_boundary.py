"""A walk-forward fold closes its open position at the test window's last close
(`backtest.walkforward_oos.close_at_boundary`); the kernel is the oracle: the same
run with an exit signal filled at that close ends on the same equity and trade PnL,
for a linear (um) and a coin-margined inverse (cm) account, long and short."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from backtest.data import Bars
from backtest.walkforward_oos import close_at_boundary

H_US = 3_600_000_000
T0_US = 1_704_067_200_000_000
ROWS = [(40_000.0, 40_400.0, 39_800.0, 40_100.0), (40_100.0, 41_900.0, 40_000.0, 41_700.0),
        (41_700.0, 42_000.0, 38_000.0, 38_900.0), (38_900.0, 43_500.0, 38_800.0, 43_250.0)]


def _bars(market: str, symbol: str) -> Bars:
    o, h, lo, c = (np.array(col) for col in zip(*ROWS, strict=True))
    return Bars(market, symbol, "1h", T0_US + np.arange(len(ROWS), dtype=np.int64) * H_US,
                o, h, lo, c, np.ones(len(ROWS)))


@pytest.mark.parametrize("side", [1, -1])
@pytest.mark.parametrize(("market", "symbol", "extra"), [
    ("um", "BTCUSDT", {"cash": 10_000.0}),
    ("cm", "BTCUSD_PERP", {"cash": 1.0, "contract_size": 100.0}),
])
def test_boundary_close_equals_the_kernels_own_close(market, symbol, extra, side):
    kw = {"fee": 0.0005, "slippage_bps": 7.0, "fill": "close", "funding": False,
          "exchange_filters": False, "direction": "long" if side > 0 else "short"} | extra
    held = np.array([side, 0, 0, 0], dtype=np.int8)
    closed = np.array([side, 0, 0, -side], dtype=np.int8)
    open_run = backtest.run(lambda b: held, bars=_bars(market, symbol), **kw)
    oracle = backtest.run(lambda b: closed, bars=_bars(market, symbol), **kw)
    assert open_run.equity["position"][-1] != 0.0 and oracle.equity["position"][-1] == 0.0
    equity, position, trades, fee = close_at_boundary(open_run)
    assert position[-1] == 0.0
    np.testing.assert_allclose(equity, oracle.equity_curve, rtol=1e-12)
    t = oracle.trades.row(0, named=True)
    np.testing.assert_allclose([trades[-1]["exit_price"], trades[-1]["exit_fee"],
                                trades[-1]["pnl"]], [t["exit_price"], t["exit_fee"], t["pnl"]],
                               rtol=1e-12)
    assert fee == pytest.approx(t["exit_fee"], rel=1e-12)
