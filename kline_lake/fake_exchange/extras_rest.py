"""USD-M `/futures/data/...` statistics on the fake exchange: the five endpoints the lake's
`metrics` come from (openInterestHist, topLongShortAccountRatio, topLongShortPositionRatio,
globalLongShortAccountRatio, takerlongshortRatio). Pure apart from the data source.

As documented (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics
and the pages beside it): `symbol` and `period` ("5m".."1d") mandatory, `limit` default 30,
max 500, `startTime`/`endTime` inclusive, only the latest 30 days; weight 0. Rows are the
same values the archive's daily `metrics` files print (`market_extras`). With
`--data-dir`, the rows come from the real daily `metrics` files in the directory (read
through the source's archive tree), numbers as printed there; `longAccount`/`shortAccount`
are derived from the ratio (`r / (1 + r)`), and the taker endpoint carries no
`buyVol`/`sellVol` (the files do not hold them).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
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
    window = extras_files.metrics_window(params, now_ms, limit)
    name = endpoint[len(FUTURES_DATA):]
    synthetic = getattr(source, "synthetic", None)
    if synthetic is None:
        return _file_rows(source, spec.symbol, name, window, now_ms)
    return extras_files.metrics_rows(spec, synthetic.path(spec), name, window)


# archive metrics column (by position) each endpoint reports
_FILE_COLUMN = {"topLongShortAccountRatio": 4, "topLongShortPositionRatio": 5,
                "globalLongShortAccountRatio": 6, "takerlongshortRatio": 7}


def _file_rows(source: Any, symbol: str, name: str, window: tuple[int, int, int],
               now_ms: int) -> list[dict[str, Any]]:
    """The answer from the daily metrics files a `--data-dir` source serves."""
    first, last, step = window
    out = []
    for day_ms in range(first - first % 86_400_000, last + 1, 86_400_000):
        day = datetime.fromtimestamp(day_ms / 1000, tz=UTC).strftime("%Y-%m-%d")
        data = source.get(f"/data/futures/um/daily/metrics/{symbol}/{symbol}-metrics-{day}.zip", now_ms)
        if data is None:
            continue
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            text = b"".join(zf.read(n) for n in zf.namelist() if n.endswith(".csv")).decode()
        for line in text.splitlines():
            row = line.strip().split(",")
            if len(row) != 8 or not row[0][:1].isdigit():
                continue  # the header, a blank line
            ts = int(datetime.strptime(row[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()) * 1000
            if first <= ts <= last and (ts - first) % step == 0:
                item = _file_item(symbol, name, row, ts)
                if item is not None:
                    out.append(item)
    return sorted(out, key=lambda r: r["timestamp"])


def _file_item(symbol: str, name: str, row: list[str], ts: int) -> dict[str, Any] | None:
    if name == "openInterestHist":
        if not row[2] or not row[3]:
            return None
        return {"symbol": symbol, "sumOpenInterest": row[2], "sumOpenInterestValue": row[3],
                "timestamp": ts}
    value = row[_FILE_COLUMN[name]]
    if not value:
        return None
    if name == "takerlongshortRatio":
        return {"buySellRatio": value, "timestamp": ts}
    share = float(value) / (1 + float(value))
    return {"symbol": symbol, "longShortRatio": value, "longAccount": f"{share:.4f}",
            "shortAccount": f"{1 - share:.4f}", "timestamp": ts}
