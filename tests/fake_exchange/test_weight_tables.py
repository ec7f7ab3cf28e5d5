"""The client's weight table (`kline_lake.exchange.weights`) against the fake exchange's
own (`kline_lake.fake_exchange.weights`, written separately from the exchange docs).

The fake is the oracle of every integration test, so the two must agree on every endpoint
the client calls, at every limit band boundary, on every market, and a real request
through the client must cost what the fake charges for it.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

import kline_lake.fake_exchange as fake_pkg
from kline_lake.core import markets
from kline_lake.exchange import weights as client_weights
from kline_lake.exchange.client import Session
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange import weights as fake_weights

BOUNDARIES = (1, 99, 100, 499, 500, 1000, 1001, 1500)
SYMBOL = {"spot": "BTCUSDT", "um": "BTCUSDT", "cm": "BTCUSD_PERP", "us": "BTCUSDT"}


def client_endpoints(market: markets.Market) -> list[str]:
    """Every REST endpoint a download on `market` calls."""
    datasets = [d for d in markets.DATASETS if d in markets.ENDPOINTS  # (REST below the API prefix)
                and not (d in markets.FUTURES_ONLY_DATASETS and not market.is_futures)]
    return ["exchangeInfo", "time", *(markets.ENDPOINTS[d] for d in datasets)]


CASES = [(m, e) for m in markets.MARKETS for e in client_endpoints(markets.get_market(m))]


@pytest.mark.parametrize(("market", "endpoint"), CASES)
def test_tables_agree_at_every_band_boundary(market: str, endpoint: str) -> None:
    mkt = markets.get_market(market)
    assert endpoint in fake_weights.WEIGHTS[market], f"the fake does not serve {market} {endpoint}"
    for limit in (None, *BOUNDARIES):
        assert client_weights.request_weight(mkt, endpoint, limit) == fake_weights.weight(market, endpoint, limit), \
            (market, endpoint, limit)


def test_documented_numbers() -> None:
    """Spot-checks of the fake's table against the numbers the docs print (hand-copied)."""
    w = fake_weights.weight
    assert [w("um", "klines", n) for n in BOUNDARIES] == [1, 1, 2, 2, 5, 5, 10, 10]
    assert [w("cm", "premiumIndexKlines", n) for n in BOUNDARIES] == [1, 1, 2, 2, 5, 5, 10, 10]
    assert w("um", "klines") == 5  # default limit 500
    assert (w("spot", "klines", 1000), w("spot", "aggTrades", 1000), w("spot", "exchangeInfo")) == (2, 4, 20)
    assert (w("um", "aggTrades"), w("um", "fundingRate"), w("um", "exchangeInfo")) == (20, 0, 1)
    assert (w("cm", "fundingRate"), w("us", "klines"), w("us", "exchangeInfo")) == (1, 1, 10)


@pytest.mark.parametrize("market", markets.MARKETS)
def test_page_limits_and_budgets_agree(market: str) -> None:
    mkt = markets.get_market(market)
    pages = fake_weights.PAGE_LIMITS[market]
    kline_endpoints = [markets.ENDPOINTS[d] for d in markets.KLINE_DATASETS if d in markets.ENDPOINTS
                       and (mkt.is_futures or d == "klines")]
    for endpoint in kline_endpoints:
        assert pages[endpoint] == (mkt.kline_default_limit, mkt.kline_max_limit), endpoint
    assert pages["aggTrades"] == (mkt.agg_trades_default_limit, mkt.agg_trades_max_limit)
    if mkt.is_futures:
        assert pages["fundingRate"] == (mkt.funding_default_limit, mkt.funding_max_limit)
    assert fake_weights.WEIGHT_PER_MINUTE[market] == mkt.weight_per_minute
    assert (fake_weights.FUNDING_POOL_REQUESTS, fake_weights.FUNDING_POOL_WINDOW_S) == \
        (client_weights.FUNDING_POOL_REQUESTS, client_weights.FUNDING_POOL_WINDOW_S)


@pytest.mark.parametrize("market", markets.MARKETS)
def test_best_page_limit_is_optimal_under_the_fake_table(market: str) -> None:
    """The client's page size buys the most rows per weight the fake charges (ties go to
    the larger page); a free endpoint (weight 0) takes the largest page."""
    mkt = markets.get_market(market)
    for dataset in markets.DATASETS:
        if (dataset in markets.FUTURES_ONLY_DATASETS and not mkt.is_futures) \
                or dataset not in markets.ENDPOINTS:
            continue
        endpoint = markets.ENDPOINTS[dataset]
        _, maximum = fake_weights.page_limits(market, endpoint)

        def value(n: int, endpoint: str = endpoint) -> tuple[float, int]:
            w = fake_weights.weight(market, endpoint, n)
            return (float("inf") if w == 0 else n / w, n)

        best = max(range(1, maximum + 1), key=value)
        assert client_weights.best_page_limit(mkt, dataset) == best, (market, dataset)


def test_fake_exchange_never_imports_the_client_tables() -> None:
    """No module of kline_lake.fake_exchange imports the client's markets or weights."""
    banned = ("kline_lake.exchange", "kline_lake.core.markets", "kline_lake.download")
    for path in Path(fake_pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(banned), f"{path.name} imports {name}"


def _params(market: str, endpoint: str, limit: int | None) -> dict[str, object]:
    params: dict[str, object] = {}
    if endpoint in ("klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines"):
        params["interval"] = "1h"
        params["startTime"] = 1_700_000_000_000
    if endpoint == "indexPriceKlines":
        params["pair"] = SYMBOL[market].split("_")[0]
    elif endpoint not in ("exchangeInfo", "time"):
        params["symbol"] = SYMBOL[market]
    if limit is not None:
        params["limit"] = limit
    return params


async def _charges(fx: FakeExchange, base_url: str, market: str) -> list[tuple[str, int | None, int, int]]:
    """(endpoint, limit, client weight, server weight) of one real call per endpoint and
    valid limit boundary."""
    mkt = markets.get_market(market)
    out = []
    async with Session(share_budget=False) as session:
        client = session.client(mkt, base_url)
        for endpoint in client_endpoints(mkt):
            paged = endpoint in fake_weights.PAGE_LIMITS[market]
            top = fake_weights.page_limits(market, endpoint)[1] if paged else 0
            for limit in (None, *(n for n in BOUNDARIES if n <= top)):
                before_c, before_s = client.stats.weight, fx.stats()[market]["weight"]
                key_gated = endpoint in (markets.ENDPOINTS[d] for d in markets.KEY_GATED_DATASETS)
                await client.get(endpoint, _params(market, endpoint, limit),
                                 headers={"X-MBX-APIKEY": "test-key"} if key_gated else None)
                out.append((endpoint, limit, client.stats.weight - before_c,
                            fx.stats()[market]["weight"] - before_s))
    return out


@pytest.mark.parametrize("market", ["spot", "um", "cm"])
def test_client_pays_what_the_fake_charges_over_the_wire(market: str, now_ms: int) -> None:
    with FakeExchange(seed=2, now_ms=now_ms) as fx:
        charges = asyncio.run(_charges(fx, fx.base_url, market))
    assert len(charges) >= 9
    assert [c for c in charges if c[2] != c[3]] == []
    assert any(c[3] > 1 for c in charges)  # the comparison saw real weights, not only 1s


def test_client_pays_what_the_fake_charges_binance_us(now_ms: int) -> None:
    with FakeExchange(seed=2, now_ms=now_ms) as fx:
        charges = asyncio.run(_charges(fx, markets.resolve_base_url(markets.US, fx.base_url), "us"))
        assert fx.stats()["spot"]["requests"] == 0
    assert len(charges) >= 9
    assert [c for c in charges if c[2] != c[3]] == []
    assert ("exchangeInfo", None, 10, 10) in charges
