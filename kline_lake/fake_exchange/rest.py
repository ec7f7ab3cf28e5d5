"""REST endpoints: parameter rules, weights, and bodies shaped like the real API.

Shapes (field names, order, types) follow the exchange docs and the bodies recorded in
../shared/real_data: klines are 12-element arrays (ints for times and trade count,
strings for prices and quantities); aggTrades objects `a p q f l T m` (+ `M` on spot);
fundingRate objects `symbol fundingTime fundingRate markPrice`; historicalTrades objects
`id price qty quoteQty time isBuyerMaker` (+ `isBestMatch` on spot/us; COIN-M has `baseQty`
for `quoteQty`), answered only with an `X-MBX-APIKEY` header (else 401, code -2014:
https://developers.binance.com/docs/binance-spot-api-docs/errors).

Number formatting: spot prices/quantities with 8 decimals ("60685.22000000"); futures with
the symbol's precision (price "42000.10", quantity "492.363"); COIN-M volume in whole
contracts with the base-asset volume in 8 decimals; mark/index/premium prices,
funding rates and mark prices with 8 decimals.

Venues are named by strings ('spot', 'um', 'cm', 'us'); their weights and page limits
come from the fake's own table (`fake_exchange.weights`), never from the client's.

Data sources implement `specs`, `spec`, `klines`, `agg_trades`, `funding` (see
`SyntheticSource`; `real_data.RealSource` serves files).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from kline_lake.fake_exchange import series, weights
from kline_lake.fake_exchange import trades as trade_stream
from kline_lake.fake_exchange.params import (
    ApiError,
    TimeRange,
    interval_param,
    limit_param,
    mandatory,
    opt_int,
    time_range,
)
from kline_lake.fake_exchange.synthetic import Synthetic
from kline_lake.fake_exchange.universe import SymbolSpec, symbols

PRICE_KLINE_KINDS = {"markPriceKlines": "mark", "indexPriceKlines": "index", "premiumIndexKlines": "premium"}
FUTURES = frozenset({"um", "cm"})
# COIN-M klines: "The difference between startTime and endTime can only be up to 200 days"
# (https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/rest-api/Kline-Candlestick-Data).
KLINE_MAX_WINDOW_DAYS = {"cm": 200}
# Endpoints that need the `X-MBX-APIKEY` header ("Old trade lookup").
KEY_GATED_ENDPOINTS = frozenset({"historicalTrades"})


def missing_key_error() -> ApiError:
    """The exchange's answer to a key-gated call without `X-MBX-APIKEY`."""
    return ApiError(-2014, "API-key format invalid.", status=401)


HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class DataSource(Protocol):
    def specs(self, market: str) -> list[SymbolSpec]: ...

    def spec(self, market: str, symbol: str) -> SymbolSpec | None: ...

    def klines(self, spec: SymbolSpec, interval: str, tr: TimeRange, limit: int, now_ms: int,
               kind: str) -> list[list[Any]]: ...

    def agg_trades(self, spec: SymbolSpec, from_id: int | None, tr: TimeRange, limit: int,
                   now_ms: int) -> list[dict[str, Any]]: ...

    def funding(self, spec: SymbolSpec, tr: TimeRange, limit: int, now_ms: int) -> list[dict[str, Any]]: ...

    def trades(self, spec: SymbolSpec, from_id: int | None, limit: int, now_ms: int) -> list[dict[str, Any]]: ...


def fmt_units(values: np.ndarray, grid: int, display: int) -> list[str]:
    """Integers in units of 10**-grid -> decimal strings with `display` (>= grid) decimals."""
    v = np.asarray(values, dtype=np.int64)
    a = np.abs(v)
    tail = "0" * (display - grid)
    if grid:
        scale = 10**grid
        fmt = f"%d.%0{grid}d{tail}"
        out = [fmt % pair for pair in zip((a // scale).tolist(), (a % scale).tolist(), strict=True)]
    else:
        fmt = f"%d.{tail}" if display else "%d"
        out = [fmt % x for x in a.tolist()]
    neg = v < 0
    if neg.any():
        out = ["-" + text if n else text for text, n in zip(out, neg.tolist(), strict=True)]
    return out


def display_decimals(spec: SymbolSpec) -> tuple[int, int, int]:
    """(price, quantity, quote) decimals the market prints."""
    if spec.market in ("spot", "us"):
        return 8, 8, 8
    return spec.price_decimals, spec.qty_decimals, spec.quote_decimals


class SyntheticSource:
    """REST data from the deterministic synthetic paths."""

    def __init__(self, seed: int, universe_size: int = 0) -> None:
        self.synthetic = Synthetic(seed)
        self.universe_size = universe_size  # generated symbols served (universe.symbols)
        symbols("um", universe_size)  # validates the size (InputError)

    def specs(self, market: str) -> list[SymbolSpec]:
        return list(symbols(market, self.universe_size))

    def spec(self, market: str, symbol: str) -> SymbolSpec | None:
        return next((s for s in symbols(market, self.universe_size) if s.symbol == symbol),
                    None)

    def klines(self, spec: SymbolSpec, interval: str, tr: TimeRange, limit: int, now_ms: int,
               kind: str = "klines") -> list[list[Any]]:
        path = self.synthetic.path(spec)
        segs = path.segments(now_ms // 1000)
        opens = series.select_kline_opens(segs, interval, tr.start_ms, tr.end_ms, limit)
        bars = series.kline_bars(path, interval, opens, segs)
        closes = (series.close_ms_of(opens, interval) - 1).tolist()
        if kind != "klines":
            return self._price_rows(spec, opens, closes, bars, kind)
        pd_, qd, qq = display_decimals(spec)
        o, h, lo, c = (fmt_units(bars[f], spec.price_decimals, pd_) for f in "ohlc")
        v, tb = fmt_units(bars["v"], spec.qty_decimals, qd), fmt_units(bars["tb"], spec.qty_decimals, qd)
        q, tq = fmt_units(bars["q"], spec.quote_decimals, qq), fmt_units(bars["tq"], spec.quote_decimals, qq)
        trades = bars["t"].tolist()
        return [
            [int(opens[i]), o[i], h[i], lo[i], c[i], v[i], closes[i], q[i], trades[i], tb[i], tq[i], "0"]
            for i in range(len(opens))
        ]

    @staticmethod
    def _price_rows(spec: SymbolSpec, opens: np.ndarray, closes: list[int], bars: Any, kind: str) -> list[list[Any]]:
        o, h, lo, c = (
            fmt_units(series.price_units(bars[f], spec.price_decimals, kind, spec.base_price), 8, 8)
            for f in "ohlc"
        )
        counts = ((np.asarray(closes) + 1 - opens) // 1000).tolist()
        return [
            [int(opens[i]), o[i], h[i], lo[i], c[i], "0", closes[i], "0", counts[i], "0", "0", "0"]
            for i in range(len(opens))
        ]

    def agg_trades(self, spec: SymbolSpec, from_id: int | None, tr: TimeRange, limit: int,
                   now_ms: int) -> list[dict[str, Any]]:
        path = self.synthetic.path(spec)
        cols = series.agg_trades(path, from_id, tr.start_ms, tr.end_ms, limit, now_ms)
        pd_, qd, _ = display_decimals(spec)
        prices = fmt_units(cols["p"], spec.price_decimals, pd_)
        qtys = fmt_units(cols["q"], spec.qty_decimals, qd)
        spot = spec.market in ("spot", "us")
        rows = []
        for i, (a, f, la, t, m) in enumerate(zip(cols["a"].tolist(), cols["f"].tolist(), cols["l"].tolist(),
                                                  cols["T"].tolist(), cols["m"].tolist(), strict=True)):
            row = {"a": a, "p": prices[i], "q": qtys[i], "f": f, "l": la, "T": t, "m": m}
            if spot:
                row["M"] = True
            rows.append(row)
        return rows

    def trades(self, spec: SymbolSpec, from_id: int | None, limit: int, now_ms: int) -> list[dict[str, Any]]:
        cols = trade_stream.trades(self.synthetic.path(spec), from_id, limit, now_ms)
        return trade_rows(spec, cols)

    def funding(self, spec: SymbolSpec, tr: TimeRange, limit: int, now_ms: int) -> list[dict[str, Any]]:
        path = self.synthetic.path(spec)
        times = series.funding_times_s(path, tr.start_ms, tr.end_ms, limit, now_ms)
        rate, mark = series.funding_values(path, times)
        rates, marks = fmt_units(rate, 8, 8), fmt_units(mark, 8, 8)
        return [
            {"symbol": spec.symbol, "fundingTime": int(t) * 1000, "fundingRate": rates[i], "markPrice": marks[i]}
            for i, t in enumerate(times.tolist())
        ]


def _param_limit(params: Mapping[str, str], default: int) -> int:
    try:
        value = int(params.get("limit", default))
    except ValueError:
        return default
    return value if value > 0 else default


def weight_of(venue: str, endpoint: str, params: Mapping[str, str]) -> int:
    """The request weight the exchange charges for this call (per the fake's own table,
    `fake_exchange.weights`; a malformed `limit` is charged as the default)."""
    limit = None
    if endpoint in weights.PAGE_LIMITS[venue]:
        limit = _param_limit(params, weights.page_limits(venue, endpoint)[0])
    return weights.weight(venue, endpoint, limit)


def is_futures(venue: str) -> bool:
    return venue in FUTURES


def _page_limit(params: Mapping[str, str], venue: str, endpoint: str) -> int:
    default, maximum = weights.page_limits(venue, endpoint)
    return limit_param(params, default, maximum, is_futures(venue))


def _symbol(source: DataSource, venue: str, params: Mapping[str, str], name: str = "symbol") -> SymbolSpec:
    text = mandatory(params, name)
    if name == "pair" and venue == "cm":
        text = f"{text}_PERP"
    spec = source.spec(venue, text)
    if spec is None:
        raise ApiError(-1121, "Invalid symbol.")
    return spec


def _klines(source: DataSource, venue: str, endpoint: str, params: Mapping[str, str], now_ms: int) -> Any:
    kind = PRICE_KLINE_KINDS.get(endpoint, "klines")
    pair_endpoint = kind == "index" and "symbol" not in params
    spec = _symbol(source, venue, params, "pair" if pair_endpoint else "symbol")
    interval = interval_param(params, venue)
    limit = _page_limit(params, venue, endpoint)
    tr = time_range(params)
    max_days = KLINE_MAX_WINDOW_DAYS.get(venue)
    if (max_days and tr.start_ms is not None and tr.end_ms is not None
            and tr.end_ms - tr.start_ms > max_days * DAY_MS):
        raise ApiError(-1127, f"More than {max_days} days between startTime and endTime.")
    return source.klines(spec, interval, tr, limit, now_ms, kind)


def _agg_trades(source: DataSource, venue: str, params: Mapping[str, str], now_ms: int) -> Any:
    spec = _symbol(source, venue, params)
    limit = _page_limit(params, venue, "aggTrades")
    from_id = opt_int(params, "fromId")
    tr = time_range(params)
    if from_id is not None and (tr.start_ms is not None or tr.end_ms is not None):
        raise ApiError(-1128, "Combination of optional parameters invalid.")
    if (is_futures(venue) and tr.start_ms is not None and tr.end_ms is not None
            and tr.end_ms - tr.start_ms >= HOUR_MS):
        raise ApiError(-1127, "More than 1 hours between startTime and endTime.")
    return source.agg_trades(spec, from_id, tr, limit, now_ms)


def trade_quote_strings(spec: SymbolSpec, price_units: np.ndarray, qty_units: np.ndarray) -> list[str]:
    """Each trade's quote quantity as the exchange prints it: price * qty exactly (spot
    with 8 decimals, USD-M on the product's own grid); COIN-M's `baseQty`, contracts *
    contract size / price, with 8 decimals."""
    p, q = np.asarray(price_units, dtype=np.int64), np.asarray(qty_units, dtype=np.int64)
    if spec.contract_size:
        base = q * spec.contract_size / (p / 10**spec.price_decimals)
        return [f"{x:.8f}" for x in base.tolist()]
    grid = spec.price_decimals + spec.qty_decimals
    display = max(grid, 8) if spec.market in ("spot", "us") else grid
    if grid > display:  # never with the universe's decimals; round half up if it were
        scale = 10 ** (grid - display)
        return fmt_units((p * q + scale // 2) // scale, display, display)
    return fmt_units(p * q, grid, display)


def trade_rows(spec: SymbolSpec, cols: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Trade columns (`trades.trades`) -> historicalTrades JSON objects."""
    pd_, qd, _ = display_decimals(spec)
    prices = fmt_units(cols["p"], spec.price_decimals, pd_)
    qtys = fmt_units(cols["q"], spec.qty_decimals, qd)
    quotes = trade_quote_strings(spec, cols["p"], cols["q"])
    spot = spec.market in ("spot", "us")
    quote_name = "baseQty" if spec.contract_size else "quoteQty"
    rows = []
    for i, (tid, t, m) in enumerate(zip(cols["id"].tolist(), cols["T"].tolist(), cols["m"].tolist(),
                                        strict=True)):
        row = {"id": tid, "price": prices[i], "qty": qtys[i], quote_name: quotes[i], "time": t,
               "isBuyerMaker": m}
        if spot:
            row["isBestMatch"] = True
        rows.append(row)
    return rows


def _historical_trades(source: DataSource, venue: str, params: Mapping[str, str], now_ms: int) -> Any:
    spec = _symbol(source, venue, params)
    limit = _page_limit(params, venue, "historicalTrades")
    return source.trades(spec, opt_int(params, "fromId"), limit, now_ms)


def _funding(source: DataSource, venue: str, params: Mapping[str, str], now_ms: int) -> Any:
    limit = _page_limit(params, venue, "fundingRate")
    tr = time_range(params)
    if params.get("symbol"):
        return source.funding(_symbol(source, venue, params), tr, limit, now_ms)
    rows = [r for s in source.specs(venue) for r in source.funding(s, tr, limit, now_ms)]
    rows.sort(key=lambda r: (r["fundingTime"], r["symbol"]))
    return rows[:limit] if tr.start_ms is not None else rows[-limit:]


def _funding_info(source: DataSource, venue: str) -> Any:
    return [
        {"symbol": s.symbol, "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
         "fundingIntervalHours": s.funding_hours, "disclaimer": False}
        for s in source.specs(venue) if s.funding_hours != 8
    ]


def _info_symbols(source: DataSource, venue: str, params: Mapping[str, str]) -> list[SymbolSpec]:
    """exchangeInfo's symbol list; spot and Binance.US accept `symbol=X` or `symbols=["X","Y"]`."""
    specs = source.specs(venue)
    if is_futures(venue) or not (params.get("symbol") or params.get("symbols")):
        return specs
    if params.get("symbol"):
        wanted = [params["symbol"]]
    else:
        try:
            wanted = json.loads(params["symbols"])
        except ValueError:
            raise ApiError(-1100, "Illegal characters found in parameter 'symbols'; legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.") from None
        if not isinstance(wanted, list):
            raise ApiError(-1100, "Illegal characters found in parameter 'symbols'.")
    by_name = {s.symbol: s for s in specs}
    if any(w not in by_name for w in wanted):
        raise ApiError(-1121, "Invalid symbol.")
    return [by_name[w] for w in wanted]


def known_endpoint(venue: str, endpoint: str) -> bool:
    """True if `venue` serves `endpoint` (the fake's weight table lists exactly those)."""
    return endpoint in weights.WEIGHTS.get(venue, {})


def handle(source: DataSource, venue: str, endpoint: str, params: Mapping[str, str], now_ms: int,
           exchange_info: Any) -> Any:
    """The JSON body of a REST call to `venue` ('spot', 'um', 'cm', 'us'); ApiError for
    the caller's mistakes."""
    if endpoint == "ping":
        return {}
    if endpoint == "time":
        return {"serverTime": now_ms}
    if endpoint == "exchangeInfo":
        return exchange_info(_info_symbols(source, venue, params))
    if endpoint == "klines" or endpoint in PRICE_KLINE_KINDS:
        return _klines(source, venue, endpoint, params, now_ms)
    if endpoint == "aggTrades":
        return _agg_trades(source, venue, params, now_ms)
    if endpoint == "historicalTrades":
        return _historical_trades(source, venue, params, now_ms)
    if endpoint == "fundingRate":
        return _funding(source, venue, params, now_ms)
    if endpoint == "fundingInfo":
        return _funding_info(source, venue)
    raise ApiError(-5000, f"Path {endpoint}, Method GET is invalid", status=404)
