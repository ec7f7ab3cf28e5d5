"""USD-M `/futures/data/...` statistics on the fake exchange: the five endpoints the lake's
`metrics` come from (openInterestHist, topLongShortAccountRatio, topLongShortPositionRatio,
globalLongShortAccountRatio, takerlongshortRatio). Pure apart from the data source.

As documented (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics
and the pages beside it): `symbol` and `period` ("5m".."1d") mandatory, `limit` default 30,
max 500, `startTime`/`endTime` inclusive, only the latest 30 days; weight 0. Rows are the
same values the archive's daily `metrics` files print (`market_extras`). A data source
without synthetic paths (`--data-dir`) answers no rows: real metrics files are served
from the archive tree only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kline_lake.fake_exchange import extras_files
from kline_lake.fake_exchange.params import ApiError, limit_param, mandatory, opt_int

FUTURES_DATA = "futures/data/"
ENDPOINTS = frozenset(FUTURES_DATA + name for name in extras_files.METRICS_ENDPOINTS)


def handle(source: Any, venue: str, endpoint: str, params: Mapping[str, str], now_ms: int) -> Any:
    """The JSON body of `GET /futures/data/<name>` on `venue` (USD-M only)."""
    if venue != "um" or endpoint not in ENDPOINTS:
        raise ApiError(-5000, f"Path /{endpoint}, Method GET is invalid", status=404)
    symbol = mandatory(params, "symbol")
    period = mandatory(params, "period")
    if period not in extras_files.PERIOD_MS:
        raise ApiError(-1120, "Invalid interval.")
    limit = limit_param(params, 30, 500, True)
    for name in ("startTime", "endTime"):
        opt_int(params, name)  # -1100 etc. for a malformed number
    spec = source.spec(venue, symbol)
    if spec is None:
        raise ApiError(-1121, "Invalid symbol.")
    synthetic = getattr(source, "synthetic", None)
    if synthetic is None:
        return []
    window = extras_files.metrics_window(params, now_ms, limit)
    return extras_files.metrics_rows(spec, synthetic.path(spec), endpoint[len(FUTURES_DATA):],
                                     window)
