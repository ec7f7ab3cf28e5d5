"""The exchange's published rules, as encoded in kline_lake.core.markets and kline_lake.exchange.weights."""

import pytest

from kline_lake.core import markets
from kline_lake.errors import InputError
from kline_lake.exchange import weights


@pytest.mark.parametrize(
    ("limit", "weight"),
    [(1, 1), (99, 1), (100, 2), (499, 2), (500, 5), (1000, 5), (1001, 10), (1500, 10)],
)
def test_futures_kline_weight_bands(limit, weight):
    assert weights.futures_kline_weight(limit) == weight
    assert weights.request_weight(markets.UM, "klines", limit) == weight
    assert weights.request_weight(markets.CM, "markPriceKlines", limit) == weight


def test_spot_weights():
    assert weights.request_weight(markets.SPOT, "klines", 1000) == 2
    assert weights.request_weight(markets.SPOT, "aggTrades", 1000) == 4
    assert weights.request_weight(markets.UM, "aggTrades", 1000) == 20


def test_best_page_limit_maximizes_rows_per_weight():
    # 499 rows for weight 2 = 249.5 rows/weight beats 1000/5 = 200 and 1500/10 = 150.
    assert weights.best_page_limit(markets.UM, "klines") == 499
    assert weights.best_page_limit(markets.CM, "premium_klines") == 499
    assert weights.best_page_limit(markets.SPOT, "klines") == 1000
    assert weights.best_page_limit(markets.UM, "agg_trades") == 1000
    assert weights.best_page_limit(markets.UM, "funding") == 1000


def test_budgets():
    assert [markets.get_market(m).weight_per_minute for m in markets.MARKETS] == [6000, 2400, 2400, 1200]


def test_unknown_market_and_dataset_are_input_errors():
    with pytest.raises(InputError, match="unknown market 'eu'"):
        markets.get_market("eu")
    with pytest.raises(InputError, match="futures"):
        markets.validate_dataset(markets.SPOT, "funding")


def test_base_url_resolution_order():
    env = {"KLINE_LAKE_BASE_URL": "http://127.0.0.1:1/", "KLINE_LAKE_UM_URL": "http://127.0.0.1:2"}
    assert markets.resolve_base_url(markets.UM, None, env) == "http://127.0.0.1:2"
    assert markets.resolve_base_url(markets.SPOT, None, env) == "http://127.0.0.1:1"
    assert markets.resolve_base_url(markets.SPOT, "http://x/", env) == "http://x"
    assert markets.resolve_base_url(markets.CM, None, {}) == "https://dapi.binance.com"
    assert markets.resolve_archive_url(None, {}) == "https://data.binance.vision"
