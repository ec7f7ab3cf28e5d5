"""Settings validation, fee defaults and the pure-Python switch."""

from __future__ import annotations

import pytest

import backtest
from backtest.engine import make_config, use_jit
from backtest.fees import FeeModel, fee
from backtest.fills import fill_price, validate_fill
from kline_lake.errors import InputError
from tests.support.backtest import make_bars


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, "size"), ({"size": 1.5}, "size"), ({"leverage": 0.5}, "leverage"),
    ({"cash": -1}, "cash"), ({"fee": -0.001}, "fee"), ({"slippage_bps": -1}, "slippage"),
    ({"maintenance_margin_rate": 1.5}, "maintenance"), ({"direction": "up"}, "direction"),
    ({"fill": "open"}, "fill"), ({"market": "spot", "leverage": 2}, "spot"),
    ({"market": "mars"}, "mars"),
])
def test_invalid_settings_raise_input_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        make_config(**kwargs)


def test_fee_defaults_per_market_and_maker_option():
    assert make_config(market="um").fee_rate == 0.0005
    assert make_config(market="spot").fee_rate == 0.001
    assert make_config(market="um", liquidity="maker").fee_rate == 0.0002
    assert make_config(market="um", fee=0.0004, maker_fee=0.0001,
                       liquidity="maker").fee_rate == 0.0001
    assert FeeModel.for_market("cm").rate == 0.0005
    assert fee(-2000.0, 0.0005) == pytest.approx(1.0)


def test_fill_model():
    assert fill_price(100.0, 1, 10) == pytest.approx(100.1)
    assert fill_price(100.0, -1, 10) == pytest.approx(99.9)
    assert validate_fill("close") and not validate_fill("next_open")


def test_env_var_switches_to_pure_python(monkeypatch):
    monkeypatch.setenv("BACKTEST_NO_JIT", "1")
    assert use_jit(None) is False
    assert use_jit(True) is True
    bars = make_bars(100, seed=1)
    a = backtest.run("sma_cross", {"fast": 3, "slow": 9}, bars=bars)
    monkeypatch.delenv("BACKTEST_NO_JIT")
    b = backtest.run("sma_cross", {"fast": 3, "slow": 9}, bars=bars)
    assert a.metrics == b.metrics or a.equity.equals(b.equity)
