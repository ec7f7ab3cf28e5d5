"""The fake exchange's own rule book: request weight, page limits and weight budgets of
every endpoint it serves, per venue, as plain data.

Written from the exchange documentation, separately from the client's table
(`kline_lake.exchange.weights`), and importing nothing of the client: the fake exchange is
the oracle of every integration test, so a wrong number in the client must meet a 429 or
a failing `tests/fake_exchange/test_weight_tables.py`, not a fake that agrees with it.

Pure: data and two lookups, no I/O. Sources, per venue:
- spot (`/api/v3`):
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints
  (klines and uiKlines weight 2, aggTrades 4, limits "Default 500; max 1000"; "Old trade
  lookup" historicalTrades weight 25, "Default 500; max 1000", needs X-MBX-APIKEY),
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints
  (ping 1, time 1, exchangeInfo 20) and
  https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
  (REQUEST_WEIGHT 6000 per minute).
- um, USD-M futures (`/fapi/v1`):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api
  (klines, markPriceKlines, indexPriceKlines, premiumIndexKlines: weight "based on
  parameter LIMIT", [1,100) 1, [100,500) 2, [500,1000] 5, > 1000 10, "Default 500; max
  1500"; aggTrades 20; "Old Trades Lookup" historicalTrades 20, "Default 100; max 500";
  fundingRate and fundingInfo weight 0, they "share 500/5min/IP rate
  limit"; exchangeInfo 1; REQUEST_WEIGHT 2400 per minute).
- cm, COIN-M futures (`/dapi/v1`):
  https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/rest-api
  (the same kline bands and limits; aggTrades 20; historicalTrades 20, "Default 100; max
  500"; fundingRate weight 1, "Default 100;
  max 1000"; exchangeInfo 1; REQUEST_WEIGHT 2400 per minute).
- us, Binance.US (`/api/v3` on api.binance.us): https://docs.binance.us/ , whose text is
  also published as github.com/binance-us/binance-us-api-docs `rest-api.md` (last
  changed 2023-09-06): ping 1, time 1, exchangeInfo 10, aggTrades 1, klines 1, limits
  "Default 500; max 1000", historicalTrades 5 ("Default 500; max 1000"),
  REQUEST_WEIGHT 1200 per minute. Binance.com raised its spot
  weights on 2023-08-25; Binance.US documents no such change.
"""

from __future__ import annotations

# A weight band: (lowest limit, highest limit or None for "and above", weight).
Band = tuple[int, int | None, int]

# Futures klines of every kind, USD-M and COIN-M alike:
# "[1,100) 1 | [100, 500) 2 | [500, 1000] 5 | > 1000 10".
FUTURES_KLINE_BANDS: tuple[Band, ...] = ((1, 99, 1), (100, 499, 2), (500, 1000, 5), (1001, None, 10))

_FUTURES_KLINES = ("klines", "markPriceKlines", "indexPriceKlines", "premiumIndexKlines")

# venue -> endpoint (path below the venue's API prefix) -> weight, or weight bands by limit.
# An endpoint missing here is not served by the fake exchange on that venue.
WEIGHTS: dict[str, dict[str, int | tuple[Band, ...]]] = {
    "spot": {"ping": 1, "time": 1, "exchangeInfo": 20, "klines": 2, "aggTrades": 4,
             "historicalTrades": 25},
    "us": {"ping": 1, "time": 1, "exchangeInfo": 10, "klines": 1, "aggTrades": 1,
           "historicalTrades": 5},
    "um": {
        "ping": 1, "time": 1, "exchangeInfo": 1, "aggTrades": 20, "historicalTrades": 20,
        **dict.fromkeys(_FUTURES_KLINES, FUTURES_KLINE_BANDS),
        "fundingRate": 0, "fundingInfo": 0,  # paid from the funding pool below instead
        # /futures/data statistics ("Request Weight 0"; own 1000 requests/5min pool)
        **dict.fromkeys(("futures/data/openInterestHist", "futures/data/topLongShortAccountRatio",
                         "futures/data/topLongShortPositionRatio",
                         "futures/data/globalLongShortAccountRatio",
                         "futures/data/takerlongshortRatio"), 0),
    },
    "cm": {
        "ping": 1, "time": 1, "exchangeInfo": 1, "aggTrades": 20, "historicalTrades": 20,
        **dict.fromkeys(_FUTURES_KLINES, FUTURES_KLINE_BANDS),
        "fundingRate": 1,
    },
}

# venue -> endpoint -> (default limit, maximum limit) of the paged endpoints.
_SPOT_PAGES = {"klines": (500, 1000), "aggTrades": (500, 1000), "historicalTrades": (500, 1000)}
_FUTURES_PAGES = {**dict.fromkeys(_FUTURES_KLINES, (500, 1500)), "aggTrades": (500, 1000),
                  "historicalTrades": (100, 500), "fundingRate": (100, 1000)}
_FUTURES_DATA_PAGES = {f"futures/data/{name}": (30, 500) for name in (  # "default 30, max 500"
    "openInterestHist", "topLongShortAccountRatio", "topLongShortPositionRatio",
    "globalLongShortAccountRatio", "takerlongshortRatio")}
PAGE_LIMITS: dict[str, dict[str, tuple[int, int]]] = {
    "spot": _SPOT_PAGES, "us": dict(_SPOT_PAGES), "um": {**_FUTURES_PAGES, **_FUTURES_DATA_PAGES},
    "cm": dict(_FUTURES_PAGES),
}

# REQUEST_WEIGHT budget per minute, advertised in exchangeInfo `rateLimits`.
WEIGHT_PER_MINUTE: dict[str, int] = {"spot": 6000, "um": 2400, "cm": 2400, "us": 1200}

# USD-M's separate pool: 500 requests per 5 minutes per IP, shared by these endpoints.
FUNDING_POOL_REQUESTS = 500
FUNDING_POOL_WINDOW_S = 300
# USD-M /futures/data statistics: "IP rate limit 1000 requests/5min".
FUTURES_DATA_POOL_REQUESTS = 1000
FUTURES_DATA_POOL_WINDOW_S = 300
FUNDING_POOL_ENDPOINTS: dict[str, frozenset[str]] = {"um": frozenset({"fundingRate", "fundingInfo"})}


def page_limits(venue: str, endpoint: str) -> tuple[int, int]:
    """(default, maximum) `limit` of a paged endpoint; KeyError if it has none."""
    return PAGE_LIMITS[venue][endpoint]


def weight(venue: str, endpoint: str, limit: int | None = None) -> int:
    """The weight the exchange charges for one call; `limit` None means the default.

    A limit above the maximum is charged as the maximum (spot caps it; futures reject it
    with -1130 after charging). KeyError for an endpoint the venue does not serve.
    """
    rule = WEIGHTS[venue][endpoint]
    if isinstance(rule, int):
        return rule
    default, maximum = page_limits(venue, endpoint)
    n = min(default if limit is None else limit, maximum)
    for low, high, w in rule:
        if n >= low and (high is None or n <= high):
            return w
    raise ValueError(f"limit {limit} is in no weight band of {venue} {endpoint}")
