"""Markets, datasets, endpoints and page limits: the exchange's rules as data.

Request weights (what each call costs) live in `kline_lake.exchange.weights`.

Pure: no I/O. Sources (keep these links next to the numbers they justify):
- Spot market data: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints
- Spot limits:      https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
- USD-M futures:    https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api
- COIN-M futures:   https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/rest-api
- Binance.US:       https://docs.binance.us/#market-data-endpoints
- Archive layout:   https://github.com/binance/binance-public-data
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from kline_lake.errors import InputError

MARKETS: tuple[str, ...] = ("spot", "um", "cm", "us")
DATASETS: tuple[str, ...] = (
    "klines",
    "agg_trades",
    "funding",
    "mark_klines",
    "index_klines",
    "premium_klines",
    "trades",
    "book_ticker",
    "metrics",
    "book_depth",
    "mark_price",
    "spot_book_ticker",
)
KLINE_DATASETS: frozenset[str] = frozenset({"klines", "mark_klines", "index_klines", "premium_klines"})
PRICE_KLINE_DATASETS: frozenset[str] = frozenset({"mark_klines", "index_klines", "premium_klines"})
# book_ticker, metrics, book_depth: published for USD-M and COIN-M only (archive folders
# bookTicker, metrics, bookDepth below data/futures/{um,cm}/; https://github.com/binance/binance-public-data)
MARKET_EXTRA_DATASETS: frozenset[str] = frozenset({"book_ticker", "metrics", "book_depth"})
# mark_price: the `<symbol>@markPrice@1s` stream (USD-M, COIN-M) recorded by `kline-lake
# follow`; the exchange neither archives it nor serves its history over REST, so the lake
# holds only what a follower recorded (a reconnect is an unrecorded gap, never backfilled).
# spot_book_ticker: spot/us `<symbol>@bookTicker` (no exchange times; stamped with the
# follower's receive time), recorded by `follow --data book_ticker` on spot and us.
STREAM_ONLY_DATASETS: frozenset[str] = frozenset({"mark_price", "spot_book_ticker"})
SPOT_ONLY_DATASETS: frozenset[str] = frozenset({"spot_book_ticker"})
FUTURES_ONLY_DATASETS: frozenset[str] = frozenset({"funding", *PRICE_KLINE_DATASETS,
                                                   *MARKET_EXTRA_DATASETS, "mark_price"})
# Datasets the exchange has no REST history for: the archive is their only source.
ARCHIVE_ONLY_DATASETS: frozenset[str] = frozenset({"book_ticker", "book_depth"})

DEFAULT_ARCHIVE_URL = "https://data.binance.vision"
ENV_BASE_URL = "KLINE_LAKE_BASE_URL"  # overrides every market at once
ENV_ARCHIVE_URL = "KLINE_LAKE_ARCHIVE_URL"



@dataclass(frozen=True)
class Market:
    """One Binance market: where it lives and the limits its docs publish."""

    name: str
    default_base_url: str
    api_prefix: str  # path prefix of the REST API, e.g. "/api/v3"
    archive_prefix: str | None  # below the archive's "data/" root; None = no archive
    weight_per_minute: int  # REQUEST_WEIGHT budget advertised in exchangeInfo
    kline_max_limit: int
    kline_default_limit: int
    agg_trades_max_limit: int = 1000
    agg_trades_default_limit: int = 500
    # historicalTrades: spot/us "Default 500; max 1000"; futures "Default 100; max 500"
    trades_max_limit: int = 1000
    trades_default_limit: int = 500
    funding_max_limit: int = 1000
    funding_default_limit: int = 100
    # COIN-M klines: "the difference between startTime and endTime can only be up to 200 days".
    kline_max_window_days: int | None = None
    # Below a base URL shared by every market (KLINE_LAKE_BASE_URL, --base-url), where the
    # market's API root lives: Binance.US has spot's paths (/api/v3) on its own host, so a
    # server for every market (the fake exchange) serves it under "/us" (resolve_base_url).
    shared_root: str = ""
    # WebSocket market streams (https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams,
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams):
    # the default host, and where the market's streams live below a server shared by every
    # market (the fake exchange: the paths /ws and /stream are the same on every host).
    default_ws_url: str = ""
    ws_shared_root: str = ""

    @property
    def is_futures(self) -> bool:
        return self.name in ("um", "cm")

    @property
    def env_var(self) -> str:
        return f"KLINE_LAKE_{self.name.upper()}_URL"

    @property
    def ws_env_var(self) -> str:
        return f"KLINE_LAKE_{self.name.upper()}_WS_URL"


SPOT = Market("spot", "https://api.binance.com", "/api/v3", "spot", 6000, 1000, 500,
              default_ws_url="wss://stream.binance.com:9443")
UM = Market("um", "https://fapi.binance.com", "/fapi/v1", "futures/um", 2400, 1500, 500,
            trades_max_limit=500, trades_default_limit=100,
            default_ws_url="wss://fstream.binance.com", ws_shared_root="/fstream")
CM = Market(
    "cm", "https://dapi.binance.com", "/dapi/v1", "futures/cm", 2400, 1500, 500,
    kline_max_window_days=200, trades_max_limit=500, trades_default_limit=100,
    default_ws_url="wss://dstream.binance.com", ws_shared_root="/dstream",
)
US = Market("us", "https://api.binance.us", "/api/v3", None, 1200, 1000, 500, shared_root="/us",
            default_ws_url="wss://stream.binance.us:9443", ws_shared_root="/us")

_BY_NAME: dict[str, Market] = {m.name: m for m in (SPOT, UM, CM, US)}

# REST endpoint (path below api_prefix) per dataset.
ENDPOINTS: dict[str, str] = {
    "klines": "klines",
    "agg_trades": "aggTrades",
    "funding": "fundingRate",
    "mark_klines": "markPriceKlines",
    "index_klines": "indexPriceKlines",
    "premium_klines": "premiumIndexKlines",
    # needs an API key (X-MBX-APIKEY, env BINANCE_API_KEY); pages by fromId only
    "trades": "historicalTrades",
}

# Archive dataset folder names (data.binance.vision) per dataset.
ARCHIVE_NAMES: dict[str, str] = {
    "klines": "klines",
    "agg_trades": "aggTrades",
    "funding": "fundingRate",
    "mark_klines": "markPriceKlines",
    "index_klines": "indexPriceKlines",
    "premium_klines": "premiumIndexKlines",
    "trades": "trades",
    "book_ticker": "bookTicker",
    "metrics": "metrics",
    "book_depth": "bookDepth",
}

# Datasets whose REST endpoint needs an API key header (`X-MBX-APIKEY`), read from this
# variable; never logged, never written.
KEY_GATED_DATASETS: frozenset[str] = frozenset({"trades"})
ENV_API_KEY = "BINANCE_API_KEY"


# Binance symbols are upper-case letters and digits, COIN-M adds "_" (BTCUSD_PERP,
# BTCUSD_250328), and a few recent spot listings use non-ASCII letters. `\w` (Unicode)
# admits all of those and no path character ("/", "\\", ".", "=", whitespace...).
_SYMBOL_RE = re.compile(r"\w{1,64}")


def validate_symbol(symbol: str) -> str:
    """Return `symbol` if it is safe as a path component, else raise InputError."""
    if not isinstance(symbol, str) or not _SYMBOL_RE.fullmatch(symbol):
        raise InputError(
            f"invalid symbol {symbol!r}: expected letters, digits and '_' only (e.g. BTCUSDT)"
        )
    return symbol


def get_market(name: str) -> Market:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InputError(f"unknown market {name!r}; expected one of {', '.join(MARKETS)}") from None


def validate_dataset(market: Market, dataset: str) -> str:
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if dataset in FUTURES_ONLY_DATASETS and not market.is_futures:
        raise InputError(f"dataset {dataset!r} exists only on futures markets (um, cm), not {market.name!r}")
    if dataset in SPOT_ONLY_DATASETS and market.is_futures:
        raise InputError(f"dataset {dataset!r} exists only on spot markets (spot, us), not {market.name!r}")
    if dataset in STREAM_ONLY_DATASETS:
        raise InputError(f"dataset {dataset!r} cannot be downloaded: the exchange keeps no history of it; "
                         f"record it with kline-lake follow --data "
                         f"{'book_ticker' if dataset == 'spot_book_ticker' else dataset}")
    return dataset


def resolve_base_url(
    market: Market, override: str | None = None, env: Mapping[str, str] | None = None
) -> str:
    """REST base URL: explicit override, then KLINE_LAKE_<MARKET>_URL, then
    KLINE_LAKE_BASE_URL, then the exchange default.

    The override and KLINE_LAKE_BASE_URL name one server for every market, so the
    market's `shared_root` is appended (Binance.US: `<url>/us`, never spot's `/api/v3`),
    unless the URL is the market's own default host. KLINE_LAKE_<MARKET>_URL names that
    market's own API root and is used as given.
    """
    env = os.environ if env is None else env
    own = env.get(market.env_var)
    shared = override or (None if own else env.get(ENV_BASE_URL))
    if not shared:
        return (own or market.default_base_url).rstrip("/")
    shared = shared.rstrip("/")
    return shared if shared == market.default_base_url else shared + market.shared_root


def resolve_archive_url(override: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (override or env.get(ENV_ARCHIVE_URL) or DEFAULT_ARCHIVE_URL).rstrip("/")


def resolve_ws_url(market: Market, override: str | None = None, base_url: str | None = None,
                   env: Mapping[str, str] | None = None) -> str:
    """WebSocket streams root: explicit override, then KLINE_LAKE_<MARKET>_WS_URL, then
    the same host and port as a shared REST base URL (`base_url`, else KLINE_LAKE_BASE_URL;
    http -> ws, https -> wss, plus the market's `ws_shared_root`), then the exchange
    default. InputError when the result is not a ws:// or wss:// URL."""
    env = os.environ if env is None else env
    url = override or env.get(market.ws_env_var)
    if not url:
        shared = base_url or env.get(ENV_BASE_URL)
        if shared and shared.rstrip("/") != market.default_base_url:
            scheme, sep, rest = shared.rstrip("/").partition("://")
            if sep and scheme in ("http", "https"):
                url = ("ws" if scheme == "http" else "wss") + "://" + rest + market.ws_shared_root
    url = (url or market.default_ws_url).rstrip("/")
    if not re.match(r"wss?://[^/\s]+", url):
        raise InputError(f"WebSocket URL must start with ws:// or wss://, got {url!r}")
    return url
