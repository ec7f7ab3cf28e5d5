"""The REST source of `metrics`: USD-M's five `/futures/data/...` statistics, 5-minute period.

Endpoints (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics,
.../Top-Long-Short-Account-Ratio, .../Top-Trader-Long-Short-Ratio, .../Long-Short-Ratio,
.../Taker-BuySell-Volume), each `GET /futures/data/<name>?symbol=&period=5m&limit=&startTime=&endTime=`,
"limit default 30, max 500", "Request Weight 0", "Only the data of the latest 30 days is
available". They sit outside `/fapi/v1` (the client takes the absolute path) and have
their own budget instead of the weight: "IP rate limit 1000 requests/5min" (the
binance-docs Open Interest Statistics and Long/Short Ratio sections), the limiter's
`futures_data` pool (`kline_lake.exchange.exchange_info.extra_pools`).

One page is one window of up to 500 slots (41 h 40 min) asked of all five endpoints; the
answers are joined on their `timestamp` into the archive's metrics columns:

| lake column (archive name)          | endpoint                      | field                |
|---|---|---|
| sum_open_interest                   | openInterestHist              | sumOpenInterest      |
| sum_open_interest_value             | openInterestHist              | sumOpenInterestValue |
| count_toptrader_long_short_ratio    | topLongShortAccountRatio      | longShortRatio       |
| sum_toptrader_long_short_ratio      | topLongShortPositionRatio     | longShortRatio       |
| count_long_short_ratio              | globalLongShortAccountRatio   | longShortRatio       |
| sum_taker_long_short_vol_ratio      | takerlongshortRatio           | buySellRatio         |

Limits, decisions:
- Only the last 30 days are asked for (one slot of margin); older parts of a range are
  skipped with one line (the archive's daily files serve them under `--source auto`).
- The newest slot is left for the next run (it may not be published yet): ranges end at
  the 5-minute slot before the server's current one, as an open kline is never stored.
- COIN-M is archive-only here: its `/futures/data` statistics take `pair` and
  `contractType` and report a pair across contract types (and it has `takerBuySellVol`
  with other fields instead of `takerlongshortRatio`), so they are not one symbol's rows.

The pure part (`merge_metrics_pages`, `metrics_windows`) is tested without a network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from kline_lake.core import ranges as rg
from kline_lake.core import schemas
from kline_lake.core.aio import gather_or_cancel
from kline_lake.core.ranges import Range
from kline_lake.core.schemas import ts_column
from kline_lake.core.timeutil import MS_PER_DAY
from kline_lake.download.context import RunContext, SeriesTask
from kline_lake.errors import InputError

FUTURES_DATA_PREFIX = "/futures/data/"
METRICS_PERIOD = "5m"
METRICS_STEP_MS = 300_000
METRICS_PAGE_LIMIT = 500  # "limit default 30, max 500"
REST_HISTORY_MS = 30 * MS_PER_DAY  # "Only the data of the latest 30 days is available."
FUTURES_DATA_POOL = "futures_data"
WINDOWS_IN_FLIGHT = 2  # pages of one series at once (each is five requests)
# endpoint -> [(lake column, JSON field)]
METRICS_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "openInterestHist": (("sum_open_interest", "sumOpenInterest"),
                         ("sum_open_interest_value", "sumOpenInterestValue")),
    "topLongShortAccountRatio": (("count_toptrader_long_short_ratio", "longShortRatio"),),
    "topLongShortPositionRatio": (("sum_toptrader_long_short_ratio", "longShortRatio"),),
    "globalLongShortAccountRatio": (("count_long_short_ratio", "longShortRatio"),),
    "takerlongshortRatio": (("sum_taker_long_short_vol_ratio", "buySellRatio"),),
}


def metrics_endpoint(name: str) -> str:
    """The absolute path of a `/futures/data` endpoint (outside the API prefix)."""
    return FUTURES_DATA_PREFIX + name


def _floor_slot(ms: int) -> int:
    return ms - ms % METRICS_STEP_MS


def _ceil_slot(ms: int) -> int:
    return -(-ms // METRICS_STEP_MS) * METRICS_STEP_MS


def rest_reach_ms(now_ms: int) -> tuple[int, int]:
    """[oldest, end) ms that REST metrics can answer at server time `now_ms`: from a slot
    after the 30-day horizon up to (not including) the current, maybe unpublished slot."""
    return _ceil_slot(now_ms - REST_HISTORY_MS) + METRICS_STEP_MS, _floor_slot(now_ms)


def metrics_windows(ranges_ms: Sequence[Range]) -> list[Range]:
    """Half-open windows of at most METRICS_PAGE_LIMIT slots covering `ranges_ms`. Pure."""
    out: list[Range] = []
    span = METRICS_PAGE_LIMIT * METRICS_STEP_MS
    for a, b in ranges_ms:
        cursor = a
        while cursor < b:  # [cursor, cursor + span) holds exactly 500 slots, aligned or not
            end = min(b, cursor + span)
            out.append((cursor, end))
            cursor = end
    return out


def merge_metrics_pages(pages: Mapping[str, Sequence[Mapping[str, Any]]], start_ms: int,
                        end_ms: int) -> pa.Table:
    """The five endpoints' answers for one window -> metrics rows in [start_ms, end_ms),
    joined on `timestamp` (a slot missing from one endpoint has nulls there). Pure;
    InputError for a malformed answer."""
    values: dict[int, dict[str, float]] = {}
    try:
        for endpoint, fields in METRICS_FIELDS.items():
            for row in pages.get(endpoint, ()):
                ts = int(row["timestamp"])
                if start_ms <= ts < end_ms:
                    slot = values.setdefault(ts, {})
                    for column, key in fields:
                        slot[column] = float(row[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"malformed /futures/data answer: {exc!r}") from exc
    times = sorted(values)
    columns = {c for fields in METRICS_FIELDS.values() for c, _ in fields}
    table = pa.table({
        "create_time": ts_column(np.asarray(times, dtype=np.int64)),
        **{c: pa.array([values[t].get(c) for t in times], pa.float64()) for c in sorted(columns)},
    })
    return schemas.conform(table, "metrics")


async def fetch_metrics_rest(ctx: RunContext, task: SeriesTask, sink, ranges_ms: list[Range],
                             get, parse) -> None:
    """Fetch `ranges_ms` of a metrics series (see the module docstring). `get`/`parse` are
    rest_source's call and parse wrappers."""
    if ctx.market.name != "um":
        _skip(ctx, task, ranges_ms, "COIN-M metrics come from the archive only (its /futures/data "
              "statistics are per pair and contract type, not per symbol); REST skipped")
        return
    oldest, reach_end = rest_reach_ms(ctx.server_now_ms)
    ranges = rg.clip(ranges_ms, task.start_ms, min(task.end_ms, reach_end))
    too_old = rg.clip(ranges, -(2**62), oldest)
    if too_old:
        _skip(ctx, task, too_old, "REST keeps the last 30 days of metrics only; older "
              "ranges skipped (--source auto takes them from the archive)")
    windows = metrics_windows(rg.clip(ranges, oldest, reach_end))
    await gather_or_cancel([_window(ctx, task, sink, w, get, parse) for w in windows],
                           WINDOWS_IN_FLIGHT)


async def _window(ctx: RunContext, task: SeriesTask, sink, window: Range, get, parse) -> None:
    start, end = window
    params = {"symbol": task.key.symbol, "period": METRICS_PERIOD, "startTime": start,
              "endTime": end - 1, "limit": METRICS_PAGE_LIMIT}

    answers: dict[str, Any] = {}

    async def one(name: str) -> None:
        endpoint = metrics_endpoint(name)
        answers[name] = await get(ctx, task, endpoint, params, weight=ctx.client.weight_of(endpoint),
                                  pools=(FUTURES_DATA_POOL,), expect=list)

    await gather_or_cancel([one(name) for name in METRICS_FIELDS])
    table = parse(merge_metrics_pages, answers, start, end)
    await sink.add(table, [window])


def _skip(ctx: RunContext, task: SeriesTask, ranges: Sequence[Range], why: str) -> None:
    ctx.progress.note(f"{task.label}: {why}")
    name = "ranges skipped (not on REST)"
    ctx.totals.extra[name] = ctx.totals.extra.get(name, 0) + len(ranges)
