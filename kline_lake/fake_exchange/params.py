"""Request parameter validation with the exchange's real error codes and messages.

Error codes: https://developers.binance.com/docs/binance-spot-api-docs/errors
- -1100 ILLEGAL_CHARS, -1101 TOO_MANY_PARAMETERS (duplicates), -1102 MANDATORY_PARAM_EMPTY_OR_MALFORMED,
  -1120 BAD_INTERVAL, -1121 BAD_SYMBOL, -1127 INVALID_INTERVAL (lookup window too big),
  -1128 BAD_COMBINATION of optional parameters, -1130 INVALID_PARAMETER (data sent not valid).

Decision on `limit` above the maximum: spot (and Binance.US) silently cap it at the maximum,
futures reject it with -1130 (as observed by client libraries); 0 or negative is -1130 on all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

from kline_lake.core.intervals import ALL_INTERVALS


class ApiError(Exception):
    """An error the fake exchange answers with `{"code": ..., "msg": ...}`."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


def parse_query(query: str) -> dict[str, str]:
    """Query string -> {name: value}; a repeated name is -1101."""
    raw = parse_qs(query, keep_blank_values=True)
    out = {}
    for name, values in raw.items():
        if len(values) > 1:
            raise ApiError(-1101, "Duplicate values for a parameter detected.")
        out[name] = values[0]
    return out


def mandatory(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if value == "":
        raise ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def opt_int(params: Mapping[str, str], name: str) -> int | None:
    """An optional non-negative integer parameter."""
    value = params.get(name)
    if value is None:
        return None
    if value == "":
        raise ApiError(-1105, f"Parameter '{name}' was empty.")
    if not value.isdigit() or len(value) > 20:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(value)


def interval_param(params: Mapping[str, str], market: str) -> str:
    interval = mandatory(params, "interval")
    # 1s klines are spot-only: futures never had them, and Binance.US removed them
    # (its CHANGELOG, 2023-09-06: "Interval for `1s` klines has been removed").
    if interval not in ALL_INTERVALS or (interval == "1s" and market != "spot"):
        raise ApiError(-1120, "Invalid interval.")
    return interval


def limit_param(params: Mapping[str, str], default: int, maximum: int, futures: bool) -> int:
    value = params.get("limit")
    if value is not None and value.startswith("-") and value[1:].isdigit():
        raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    limit = opt_int(params, "limit")
    if limit is None:
        return default
    if limit <= 0 or (futures and limit > maximum):
        raise ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, maximum)


@dataclass(frozen=True)
class TimeRange:
    start_ms: int | None
    end_ms: int | None


def time_range(params: Mapping[str, str]) -> TimeRange:
    start, end = opt_int(params, "startTime"), opt_int(params, "endTime")
    if start is not None and end is not None and start > end:
        raise ApiError(-1128, "Combination of optional parameters invalid.")
    return TimeRange(start, end)
