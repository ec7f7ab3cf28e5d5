"""`exchangeInfo` bodies shaped like the real ones (field names and order as recorded in
../shared/real_data/exchange_info: spot 2021-12-17, USD-M 2024-10-20; COIN-M per its docs,
which name the status field `contractStatus`)."""

from __future__ import annotations

from kline_lake.fake_exchange.ratelimit import rate_limit_entry
from kline_lake.fake_exchange.universe import SymbolSpec

PERPETUAL_DELIVERY_MS = 4133404800000  # 2100-12-25, what the exchange shows for perpetuals

# Order filters as in the recorded files: spot LOT_SIZE stepSize = minQty (2021-12-17:
# BTCUSDT 0.00001, ETHUSDT 0.0001, XMRUSDT 0.001; a symbol priced near 1-10 USDT such as
# SRMUSDT had 0.1) and MIN_NOTIONAL 10; USD-M MIN_NOTIONAL `notional` (2024-10-20:
# BTCUSDT 100, ETHUSDT 20, 338 of 347 symbols 5). COIN-M lists no MIN_NOTIONAL (orders
# are whole contracts).
SPOT_LOT_STEP = {"BTCUSDT": "0.00001000", "ETHUSDT": "0.00010000", "XMRUSDT": "0.00100000"}
SPOT_DEFAULT_LOT_STEP = "0.10000000"
SPOT_MIN_NOTIONAL = "10.00000000"
UM_MIN_NOTIONAL = {"BTCUSDT": "100", "ETHUSDT": "20"}
UM_DEFAULT_MIN_NOTIONAL = "5"


def _step(decimals: int) -> str:
    return "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"


def _spot_symbol(s: SymbolSpec) -> dict[str, object]:
    tick = f"{10 ** -s.price_decimals:.8f}"
    lot = SPOT_LOT_STEP.get(s.symbol, SPOT_DEFAULT_LOT_STEP)
    return {
        "symbol": s.symbol, "status": s.status, "baseAsset": s.base_asset, "baseAssetPrecision": 8,
        "quoteAsset": s.quote_asset, "quotePrecision": 8, "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": lot, "maxQty": "9000.00000000", "stepSize": lot},
            {"filterType": "MIN_NOTIONAL", "minNotional": SPOT_MIN_NOTIONAL, "applyToMarket": True,
             "avgPriceMins": 5},
        ],
        "permissions": ["SPOT"],
    }


def _futures_filters(s: SymbolSpec) -> list[dict[str, object]]:
    tick, step = _step(s.price_decimals), _step(s.qty_decimals)
    filters: list[dict[str, object]] = [
        {"minPrice": tick, "maxPrice": "4529764", "filterType": "PRICE_FILTER", "tickSize": tick},
        {"minQty": step, "maxQty": "1000", "stepSize": step, "filterType": "LOT_SIZE"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "120", "stepSize": step},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
    ]
    if s.market == "um":
        notional = UM_MIN_NOTIONAL.get(s.symbol, UM_DEFAULT_MIN_NOTIONAL)
        filters.append({"notional": notional, "filterType": "MIN_NOTIONAL"})
    return filters


def _um_symbol(s: SymbolSpec) -> dict[str, object]:
    return {
        "symbol": s.symbol, "pair": s.symbol, "contractType": "PERPETUAL",
        "deliveryDate": s.delisted_ms or PERPETUAL_DELIVERY_MS, "onboardDate": s.listed_ms,
        "status": s.status, "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": s.base_asset, "quoteAsset": s.quote_asset, "marginAsset": s.quote_asset,
        "pricePrecision": s.price_decimals, "quantityPrecision": s.qty_decimals,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
        "underlyingSubType": [], "triggerProtect": "0.0500", "liquidationFee": "0.012500",
        "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000, "filters": _futures_filters(s),
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
    }


def _cm_symbol(s: SymbolSpec) -> dict[str, object]:
    return {
        "symbol": s.symbol, "pair": s.symbol.split("_")[0], "contractType": "PERPETUAL",
        "deliveryDate": s.delisted_ms or PERPETUAL_DELIVERY_MS, "onboardDate": s.listed_ms,
        "contractStatus": s.status, "contractSize": s.contract_size, "marginAsset": s.base_asset,
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": s.base_asset, "quoteAsset": s.quote_asset,
        "pricePrecision": s.price_decimals, "quantityPrecision": 0, "baseAssetPrecision": 8,
        "quotePrecision": 8, "equalQtyPrecision": 4, "triggerProtect": "0.0500",
        "underlyingType": "COIN", "underlyingSubType": [], "filters": _futures_filters(s),
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"], "liquidationFee": "0.010000",
        "marketTakeBound": "0.05",
    }


def exchange_info(
    market: str, specs: list[SymbolSpec], server_time_ms: int, weight_limit: int, window_s: int
) -> dict[str, object]:
    """The exchangeInfo body of `market` listing `specs`, advertising the weight window."""
    weight = rate_limit_entry(weight_limit, window_s)
    if market == "us":
        return _us_info(specs, server_time_ms, weight)
    if market == "spot":
        return {
            "timezone": "UTC", "serverTime": server_time_ms,
            "rateLimits": [
                weight,
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
            ],
            "exchangeFilters": [], "symbols": [_spot_symbol(s) for s in specs],
        }
    limits = [
        weight,
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ]
    if market == "um":
        assets = sorted({s.quote_asset for s in specs})
        return {
            "timezone": "UTC", "serverTime": server_time_ms, "futuresType": "U_MARGINED",
            "rateLimits": limits, "exchangeFilters": [],
            "assets": [{"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"} for a in assets],
            "symbols": [_um_symbol(s) for s in specs],
        }
    return {
        "timezone": "UTC", "serverTime": server_time_ms, "rateLimits": limits,
        "exchangeFilters": [], "symbols": [_cm_symbol(s) for s in specs],
    }


def _us_info(specs: list[SymbolSpec], server_time_ms: int, weight: dict[str, object]) -> dict[str, object]:
    """Binance.US's own exchangeInfo: its symbols and limits as its docs print them
    (github.com/binance-us/binance-us-api-docs rest-api.md: REQUEST_WEIGHT 1200 per minute,
    ORDERS 10 per second, RAW_REQUESTS 5000 per 5 minutes; top-level `permissions` and
    self-trade-prevention modes)."""
    return {
        "timezone": "UTC", "serverTime": server_time_ms,
        "rateLimits": [
            weight,
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 10},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 5000},
        ],
        "exchangeFilters": [], "symbols": [_spot_symbol(s) for s in specs],
        "permissions": ["SPOT"], "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }
