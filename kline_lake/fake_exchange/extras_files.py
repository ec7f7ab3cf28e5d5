"""The fake exchange's book ticker, book depth and metrics as the exchange prints them:
archive CSV text and the USD-M `/futures/data/...` JSON bodies. Pure.

Archive CSVs (https://github.com/binance/binance-public-data, `data/futures/{um,cm}/`):
`bookTicker` (daily, monthly; the futures header rule: a header row from 2022 on, none
before), `metrics` and `bookDepth` (daily, always with their header; metrics rows are not
in time order in real files: the fake moves the first row to the end). REST bodies follow
https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics
and the Long/Short Ratio and Taker Buy/Sell Volume pages beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kline_lake.fake_exchange import market_extras as mx
from kline_lake.fake_exchange.synthetic import SymbolPath
from kline_lake.fake_exchange.universe import SymbolSpec

BOOK_TICKER_HEADER = ("update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,"
                      "transaction_time,event_time")
METRICS_HEADER = ("create_time,symbol,sum_open_interest,sum_open_interest_value,"
                  "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
                  "count_long_short_ratio,sum_taker_long_short_vol_ratio")
BOOK_DEPTH_HEADER = "timestamp,percentage,depth,notional"
EXTRA_ARCHIVE_DATASETS = {"bookTicker": ("daily", "monthly"), "metrics": ("daily",),
                          "bookDepth": ("daily",)}
# endpoint below /futures/data/ -> the metrics field it reports
METRICS_ENDPOINTS = ("openInterestHist", "topLongShortAccountRatio", "topLongShortPositionRatio",
                     "globalLongShortAccountRatio", "takerlongshortRatio")
PERIOD_MS = {"5m": 300_000, "15m": 900_000, "30m": 1_800_000, "1h": 3_600_000,
             "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "12h": 43_200_000,
             "1d": 86_400_000}


def _units(values: np.ndarray, decimals: int) -> list[str]:
    scale = 10**decimals
    return [f"{v / scale:.{decimals}f}" for v in np.asarray(values, dtype=np.int64).tolist()]


def _fixed(values: np.ndarray, decimals: int) -> list[str]:
    return [f"{v:.{decimals}f}" for v in np.asarray(values, dtype=np.float64).tolist()]


def _text(lines: list[str], header: str | None) -> bytes | None:
    if not lines:
        return None
    return ("\n".join(([header] if header else []) + lines) + "\n").encode()


def archive_csv(spec: SymbolSpec, path: SymbolPath, dataset: str, start_ms: int, end_ms: int,
                header: bool) -> bytes | None:
    """CSV bytes of archive folder `dataset` for [start_ms, end_ms), None when empty."""
    if dataset == "metrics":
        return _metrics_csv(spec, path, start_ms, end_ms)
    aggs = mx.aggs_between(path, start_ms, end_ms)
    if dataset == "bookTicker":
        return _book_ticker_csv(spec, aggs, header)
    return _book_depth_csv(spec, aggs, start_ms, end_ms)


def _book_ticker_csv(spec: SymbolSpec, aggs: dict[str, np.ndarray], header: bool) -> bytes | None:
    rows = mx.book_ticker(spec, aggs)
    pd_, qd = spec.price_decimals, spec.qty_decimals
    cols = [rows["update_id"].tolist(), _units(rows["bid"], pd_), _units(rows["bid_qty"], qd),
            _units(rows["ask"], pd_), _units(rows["ask_qty"], qd), rows["T"].tolist(),
            rows["E"].tolist()]
    lines = [",".join(map(str, r)) for r in zip(*cols, strict=True)]
    return _text(lines, BOOK_TICKER_HEADER if header else None)


def _book_depth_csv(spec: SymbolSpec, aggs: dict[str, np.ndarray], start_ms: int,
                    end_ms: int) -> bytes | None:
    times = mx.depth_times_s(aggs, start_ms, end_ms)
    if not len(times):
        return None
    rows = mx.book_depth(spec, aggs, times)
    texts = mx.text_time_s(rows["time_s"])
    lines = [f"{t},{p},{d},{n}" for t, p, d, n in zip(
        texts, rows["percentage"].tolist(), _fixed(rows["depth"], 8), _fixed(rows["notional"], 8),
        strict=True)]
    return _text(lines, BOOK_DEPTH_HEADER)


def _metrics_csv(spec: SymbolSpec, path: SymbolPath, start_ms: int, end_ms: int) -> bytes | None:
    times = mx.metrics_times_ms(path, start_ms, end_ms)
    if not len(times):
        return None
    m = mx.metrics(spec, path, times)
    texts = mx.text_time_s(times // 1000)
    lines = [",".join(r) for r in zip(
        texts, [spec.symbol] * len(texts), _fixed(m["oi"], 8), _fixed(m["oi_value"], 8),
        _fixed(m["top_account"], 4), _fixed(m["top_position"], 4),
        _fixed(m["global_account"], 4), _fixed(m["taker"], 4), strict=True)]
    lines = lines[1:] + lines[:1]  # the real files' rows are not in time order
    return _text(lines, METRICS_HEADER)


def metrics_window(params: Mapping[str, str], now_ms: int, limit: int) -> tuple[int, int, int]:
    """(first slot ms, last slot ms inclusive, step ms) a metrics request asks for: its
    period, `startTime`/`endTime` (inclusive), at most `limit` slots, none older than
    REST_METRICS_DAYS ("Only the data of the latest 30 days is available")."""
    step = PERIOD_MS[params.get("period", "")]
    oldest = -(-(now_ms - mx.REST_METRICS_DAYS * 86_400_000) // step) * step
    newest = (now_ms // step) * step
    end = min(int(params["endTime"]), newest) if "endTime" in params else newest
    end = (end // step) * step
    if "startTime" in params:
        start = max(-(-int(params["startTime"]) // step) * step, oldest)
        return start, min(end, start + (limit - 1) * step), step
    return max(oldest, end - (limit - 1) * step), end, step


def metrics_rows(spec: SymbolSpec, path: SymbolPath, endpoint: str, window: tuple[int, int, int]
                 ) -> list[dict[str, Any]]:
    """The JSON objects of one `/futures/data/<endpoint>` answer (ascending timestamps)."""
    first, last, step = window
    if first > last:
        return []
    slots = np.arange(first, last + 1, step, dtype=np.int64)
    times = mx.metrics_times_ms(path, first, last + 1)
    times = times[np.isin(times, slots)]
    m = mx.metrics(spec, path, times)
    ts = times.tolist()
    if endpoint == "openInterestHist":
        return [{"symbol": spec.symbol, "sumOpenInterest": oi, "sumOpenInterestValue": v,
                 "timestamp": t} for oi, v, t in zip(_fixed(m["oi"], 8), _fixed(m["oi_value"], 8),
                                                     ts, strict=True)]
    if endpoint == "takerlongshortRatio":
        buy = np.round(m["oi"] / 40 * m["taker"] / (1 + m["taker"]), 3)
        sell = np.round(buy / m["taker"], 3)
        return [{"buySellRatio": r, "buyVol": b, "sellVol": s, "timestamp": t}
                for r, b, s, t in zip(_fixed(m["taker"], 4), _fixed(buy, 4), _fixed(sell, 4), ts,
                                      strict=True)]
    field = {"topLongShortAccountRatio": "top_account", "topLongShortPositionRatio": "top_position",
             "globalLongShortAccountRatio": "global_account"}[endpoint]
    ratio = m[field]
    long_share = np.round(ratio / (1 + ratio), 4)
    return [{"symbol": spec.symbol, "longShortRatio": r, "longAccount": la, "shortAccount": sa,
             "timestamp": t} for r, la, sa, t in zip(
                 _fixed(ratio, 4), _fixed(long_share, 4), _fixed(1 - long_share, 4), ts, strict=True)]
