"""The fake exchange's bigger universe (``universe_size``) and a portfolio over it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

import backtest
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.universe import UNIVERSE, generated_spec, symbols, utc_ms

NOW_MS = 1_767_225_600_000  # 2026-01-01


def test_default_universe_is_unchanged():
    assert symbols("um") == tuple(s for s in UNIVERSE if s.market == "um")
    assert len(symbols("um")) == 3 and len(symbols("spot")) == 4


def test_generated_symbols_are_deterministic_staggered_with_delistings():
    um = symbols("um", 60)[3:]
    assert [s.symbol for s in um[:3]] == ["X000USDT", "X001USDT", "X002USDT"]
    assert um == symbols("um", 60)[3:]  # same every call
    listed = [s.listed_ms for s in um]
    assert all(b - a == (13 * 24 + 5) * 3_600_000 for a, b in zip(listed, listed[1:],
                                                                  strict=False))
    delisted = [s.symbol for s in um if s.delisted is not None]
    assert delisted == ["X007USDT", "X017USDT", "X027USDT", "X037USDT", "X047USDT",
                        "X057USDT"]
    spot7 = generated_spec("spot", 7)
    assert spot7.listed_ms == generated_spec("um", 7).listed_ms + 86_400_000
    assert len({s.base_price for s in um[:50]}) == 50  # price levels repeat every 50
    with pytest.raises(InputError, match="universe size"):
        symbols("um", 501)


def test_fake_exchange_serves_the_bigger_universe():
    with FakeExchange(seed=1, now_ms=NOW_MS, universe_size=10) as fx:
        info = httpx.get(f"{fx.base_url}/fapi/v1/exchangeInfo").json()
        by_name = {s["symbol"]: s for s in info["symbols"]}
        assert len(by_name) == 13 and by_name["X007USDT"]["status"] == "SETTLING"
        assert by_name["X003USDT"]["onboardDate"] == generated_spec("um", 3).listed_ms
        first = httpx.get(f"{fx.base_url}/fapi/v1/klines",
                          params={"symbol": "X003USDT", "interval": "1h", "startTime": 0,
                                  "limit": 2}).json()
        assert first[0][0] == generated_spec("um", 3).listed_ms
        rates = httpx.get(f"{fx.base_url}/fapi/v1/fundingRate",
                          params={"symbol": "X002USDT", "startTime": utc_ms("2021-01-01 00:00"),
                                  "limit": 6}).json()
        gaps_h = {(b["fundingTime"] - a["fundingTime"]) // 3_600_000
                  for a, b in zip(rates, rates[1:], strict=False)}
        assert gaps_h == {4}  # every third generated perp settles every 4 hours
    with FakeExchange(seed=1, now_ms=NOW_MS) as fx:
        info = httpx.get(f"{fx.base_url}/fapi/v1/exchangeInfo").json()
        assert len(info["symbols"]) == 3  # the default is what it was


def test_cli_universe_size_is_validated():
    import subprocess

    exe = str(Path(sys.executable).with_name("kline-lake"))
    out = subprocess.run([exe, "fake-exchange", "--universe-size", "501"], capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 2
    assert "--universe-size must be within 0..500" in out.stderr


@pytest.fixture(scope="module")
def big_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pf_big")
    names = ",".join(s.symbol for s in symbols("um", 12))
    with FakeExchange(seed=3, now_ms=NOW_MS, universe_size=12) as fx:
        for ds in ("klines", "funding"):
            req = validate_request(market="um", dataset=ds, symbols=names,
                                   interval="4h" if ds == "klines" else None,
                                   start="2020-01-01", end="2022-06-01", lake=root,
                                   base_url=fx.base_url)
            asyncio.run(run_download(req))
    return root


def test_momentum_over_the_point_in_time_universe(big_lake):
    res = backtest.portfolio("momentum_rank", {"lookback": 30, "k": 2}, lake=big_lake,
                             universe="um:ALL", interval="4h", start="2020-01-01",
                             end="2022-06-01", rebalance="1d", leverage=1.0)
    assert len(res.asset_names) == 15
    for name in res.asset_names:
        sym = name.split(":")[1]
        if not sym.startswith("X"):
            continue
        spec = generated_spec("um", int(sym[1:4]))
        k = res.asset_names.index(name)
        before = res.time_us < spec.listed_ms * 1000
        assert (res.positions[before, k] == 0).all()  # nothing before listing
        if spec.delisted_ms is not None and spec.delisted_ms < utc_ms("2022-06-01 00:00"):
            after = res.time_us >= spec.delisted_ms * 1000
            assert (res.positions[after, k] == 0).all()
            assert res.assets[name]["delisted_at"] is not None
    assert res.orders.height > 500
    np.testing.assert_allclose(sum(a["pnl"] for a in res.assets.values()),
                               res.metrics["final_equity"] - 10_000.0, rtol=1e-9)
