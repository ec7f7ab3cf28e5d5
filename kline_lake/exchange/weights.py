"""Request weight of each REST call, and the page size that buys the most rows per weight.

Pure. The client charges its limiter from this table; the fake exchange has its own
(`kline_lake.fake_exchange.weights`), written separately from the same documentation, so
that a wrong number here fails a test instead of passing every one.
Sources:
- Spot market data: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints
- USD-M futures:    https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api
- COIN-M futures:   https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/rest-api
- Binance.US:       https://docs.binance.us/#market-data-endpoints
"""

from __future__ import annotations

from kline_lake.core.markets import KLINE_DATASETS, Market

# The futures windows that make the fundingRate pool: 500 requests per 5 minutes per IP,
# shared by /fapi/v1/fundingRate and /fapi/v1/fundingInfo.
FUNDING_POOL_REQUESTS = 500
FUNDING_POOL_WINDOW_S = 300
# The USD-M /futures/data statistics (openInterestHist, the long/short ratios,
# takerlongshortRatio): "IP rate limit 1000 requests/5min" (checked on the current pages
# .../usds-margined-futures/market-data/rest-api/Open-Interest-Statistics and
# .../Taker-BuySell-Volume, where the weight reads 0).
FUTURES_DATA_POOL_REQUESTS = 1000
FUTURES_DATA_POOL_WINDOW_S = 300


def futures_kline_weight(limit: int) -> int:
    """USD-M/COIN-M klines (and mark/index/premium klines) weight by LIMIT band:
    [1,100) -> 1, [100,500) -> 2, [500,1000] -> 5, >1000 -> 10."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


def request_weight(market: Market, endpoint: str, limit: int | None = None) -> int:
    """Request weight of one call to `endpoint` (path below the API prefix).

    `limit` matters only for futures klines; pass the effective limit (the default when
    the request omits it).
    """
    if market.is_futures:
        if endpoint in ("klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines",
                        "continuousKlines"):
            return futures_kline_weight(limit if limit is not None else market.kline_default_limit)
        if endpoint in ("aggTrades", "historicalTrades"):  # "Old Trades Lookup": weight 20
            return 20
        if endpoint.startswith("/futures/data/"):
            # USD-M open interest / long-short statistics: "Request Weight 0", limited by
            # their own 1000 requests per 5 minutes instead; COIN-M's pages say weight 1.
            return 1 if market.name == "cm" else 0
        if endpoint in ("fundingRate", "fundingInfo"):
            # USD-M: counted in the separate 500/5min pool only. COIN-M docs give weight 1.
            return 1 if market.name == "cm" else 0
        if endpoint == "exchangeInfo":
            return 1
        return 1
    if market.name == "us":
        # Binance.US documents klines 1, aggTrades 1, exchangeInfo 10 (its rest-api.md, last
        # changed 2023-09-06); Binance.com's 2023 weight increases did not apply there.
        # historicalTrades ("Old trade lookup (MARKET_DATA)"): weight 5 there (rest-api.md of
        # github.com/binance-us/binance-us-api-docs, checked at its 2024-06-17 revision).
        if endpoint == "historicalTrades":
            return 5
        return 10 if endpoint == "exchangeInfo" else 1
    # spot
    if endpoint in ("klines", "uiKlines"):
        return 2
    if endpoint == "aggTrades":
        return 4
    # "Old trade lookup": weight 25 (developers.binance.com/docs/binance-spot-api-docs/
    # rest-api/market-data-endpoints#old-trade-lookup, checked 2026-12).
    if endpoint == "historicalTrades":
        return 25
    if endpoint == "exchangeInfo":
        return 20
    return 1


def best_page_limit(market: Market, dataset: str) -> int:
    """The page size that maximizes rows per weight for `dataset` on `market`.

    Futures klines: 499 rows for weight 2 (249.5 rows/weight) beats 1000 for 5 (200)
    and 1500 for 10 (150). Everything else has a flat weight, so the maximum page wins.
    """
    if dataset in KLINE_DATASETS:
        if market.is_futures:
            return max(
                (499, 99, 1000, market.kline_max_limit),
                key=lambda n: (n / futures_kline_weight(n), n),
            )
        return market.kline_max_limit
    if dataset == "agg_trades":
        return market.agg_trades_max_limit
    if dataset == "trades":
        return market.trades_max_limit
    return market.funding_max_limit
