"""exchangeInfo: fetch, cache in the lake, symbol lookup and the budgets it advertises.

`exchangeInfo` lists symbols (status TRADING, BREAK, SETTLING...; `onboardDate` and
`pair` on futures) and `rateLimits`. It is cached under the lake's `_meta/` together with
where and when it was fetched; a cache younger than `max_age_s` from the same base URL is
reused, otherwise it is fetched again.
Docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/general-endpoints#exchange-information
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kline_lake.core.markets import Market, validate_symbol
from kline_lake.errors import BinanceAPIError, InputError
from kline_lake.exchange.client import ExchangeClient
from kline_lake.exchange.rate_limiter import RateWindow, parse_rate_limits
from kline_lake.exchange.weights import (
    FUNDING_POOL_REQUESTS,
    FUNDING_POOL_WINDOW_S,
    FUTURES_DATA_POOL_REQUESTS,
    FUTURES_DATA_POOL_WINDOW_S,
)

CACHE_META_KEY = "_kline_lake"
DEFAULT_MAX_AGE_S = 3600.0
TRADING = "TRADING"


@dataclass(frozen=True)
class SymbolInfo:
    """What the downloader needs to know about one symbol."""

    symbol: str
    status: str
    pair: str  # index price klines are asked by pair (COIN-M BTCUSD_PERP -> BTCUSD)
    onboard_ms: int | None  # futures only; informative (the first kline may be earlier)

    @property
    def trading(self) -> bool:
        return self.status == TRADING


def symbols_of(info: Mapping[str, Any]) -> dict[str, SymbolInfo]:
    """Every symbol of an exchangeInfo answer, by name."""
    out = {}
    for entry in info.get("symbols", []):
        name = entry.get("symbol")
        if not isinstance(name, str):
            continue
        onboard = entry.get("onboardDate")
        out[name] = SymbolInfo(
            symbol=name,
            status=str(entry.get("status") or entry.get("contractStatus") or "UNKNOWN"),
            pair=str(entry.get("pair") or name),
            onboard_ms=int(onboard) if onboard is not None else None,
        )
    return out


def rate_windows(info: Mapping[str, Any]) -> list[RateWindow]:
    """The REQUEST_WEIGHT / RAW_REQUESTS budgets it advertises (may be empty)."""
    return parse_rate_limits(info.get("rateLimits", []))


def resolve_symbols(info: Mapping[str, Any], requested: Sequence[str], *,
                    by_pair: bool = False) -> list[SymbolInfo]:
    """The symbols to download: `["ALL"]` = every TRADING symbol; otherwise each name
    must exist (any status: a delisted symbol still has history). With `by_pair`
    (index price klines) a pair name such as COIN-M `BTCUSD` is accepted too."""
    known = symbols_of(info)
    if [s.upper() for s in requested] == ["ALL"]:
        chosen = sorted((s for s in known.values() if s.trading), key=lambda s: s.symbol)
        if not chosen:
            raise InputError("--symbols ALL: the exchange lists no TRADING symbol")
        return chosen
    pairs = {s.pair: s for s in known.values()}
    out = []
    for name in requested:
        validate_symbol(name)
        if name in known:
            out.append(known[name])
        elif by_pair and name in pairs:
            out.append(SymbolInfo(name, pairs[name].status, name, pairs[name].onboard_ms))
        else:
            raise InputError(f"unknown symbol {name!r}: not listed in the exchange's exchangeInfo")
    return out


def cache_is_fresh(cached: Mapping[str, Any] | None, base_url: str, now_s: float,
                   max_age_s: float = DEFAULT_MAX_AGE_S) -> bool:
    """True if a cached exchangeInfo came from `base_url` less than `max_age_s` ago."""
    if not cached:
        return False
    meta = cached.get(CACHE_META_KEY) or {}
    fetched = meta.get("fetched_at_s")
    return (meta.get("base_url") == base_url and isinstance(fetched, int | float)
            and 0 <= now_s - fetched < max_age_s)


def with_cache_meta(info: Mapping[str, Any], base_url: str, now_s: float) -> dict[str, Any]:
    """`info` plus where/when it was fetched, as stored in the lake."""
    out = dict(info)
    out[CACHE_META_KEY] = {"base_url": base_url, "fetched_at_s": now_s}
    return out


async def fetch_exchange_info(client: ExchangeClient) -> dict[str, Any]:
    """GET exchangeInfo (weight per the market's docs) and apply its rate limits.

    A 404 means the base URL serves no API of this market (e.g. Binance.US asked of a
    server without `/us`, see `markets.resolve_base_url`): InputError, one line.
    """
    try:
        info = await client.get("exchangeInfo", expect=dict)
    except BinanceAPIError as exc:
        if exc.status != 404:
            raise
        market = client.market
        hint = (f"; a server for every market serves it under {market.shared_root}, or set "
                f"{market.env_var} to its own API root" if market.shared_root else "")
        raise InputError(f"market {market.name!r}: no {market.name} API at {client.base_url} "
                         f"(GET {exc.url} answered HTTP 404){hint}") from None
    apply_rate_limits(client, info)
    return info


def apply_rate_limits(client: ExchangeClient, info: Mapping[str, Any]) -> None:
    """Configure the client's limiter from an exchangeInfo (fresh or cached)."""
    windows = rate_windows(info)
    if windows:
        client.limiter.set_windows([*windows, *extra_pools(client.market)])


def extra_pools(market: Market) -> list[RateWindow]:
    """Budgets exchangeInfo does not advertise: the futures fundingRate pool
    (500 requests per 5 minutes per IP, shared with fundingInfo) and the `/futures/data`
    statistics' pool (1000 requests per 5 minutes, `download.rest_metrics`)."""
    if not market.is_futures:
        return []
    return [RateWindow("FUNDING", FUNDING_POOL_REQUESTS, float(FUNDING_POOL_WINDOW_S),
                       counts="requests", pool="funding"),
            RateWindow("FUTURES_DATA", FUTURES_DATA_POOL_REQUESTS,
                       float(FUTURES_DATA_POOL_WINDOW_S), counts="requests", pool="futures_data")]


async def server_time_ms(client: ExchangeClient) -> int:
    """The exchange's clock (GET time, weight 1)."""
    answer = await client.get("time", weight=1, expect=dict)
    try:
        return int(answer["serverTime"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"unexpected /time answer: {answer!r}") from None
