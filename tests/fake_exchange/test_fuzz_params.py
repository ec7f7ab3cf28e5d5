"""Any parameter combination gets a 200 with a well-formed body or a 400 with a real
error body: never a 500, never a malformed answer (Hypothesis over the wire)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kline_lake.fake_exchange import FakeExchange


@pytest.fixture(scope="module")
def fuzz_client(now_ms: int) -> Iterator[httpx.Client]:
    """An exchange of its own with a budget that fuzzing cannot exhaust."""
    with FakeExchange(seed=1, now_ms=now_ms, weight_limit=10**9) as fx, \
            httpx.Client(base_url=fx.base_url, timeout=30) as c:
        yield c


TIMES = st.one_of(st.none(), st.integers(0, 2_300_000_000_000))
ROUTES = st.sampled_from([
    ("/api/v3/klines", ["BTCUSDT", "XMRUSDT", "NEWUSDT", "NOPE"]),
    ("/fapi/v1/klines", ["BTCUSDT", "SRMUSDT"]),
    ("/dapi/v1/klines", ["BTCUSD_PERP"]),
    ("/fapi/v1/markPriceKlines", ["ETHUSDT"]),
    ("/dapi/v1/premiumIndexKlines", ["ETHUSD_PERP"]),
    ("/api/v3/aggTrades", ["BTCUSDT", "XMRUSDT"]),
    ("/fapi/v1/aggTrades", ["ETHUSDT"]),
    ("/fapi/v1/fundingRate", ["BTCUSDT", "SRMUSDT", ""]),
    ("/dapi/v1/fundingRate", ["BTCUSD_PERP"]),
])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=ROUTES,
    data=st.data(),
    interval=st.sampled_from(["1s", "1m", "3m", "1h", "8h", "1d", "3d", "1w", "1M", "7m"]),
    start=TIMES,
    end=TIMES,
    limit=st.one_of(st.none(), st.integers(-1, 1600)),
    from_id=st.one_of(st.none(), st.integers(0, 10**10)),
)
def test_never_500(fuzz_client: httpx.Client, route, data, interval, start, end, limit, from_id) -> None:
    path, symbols = route
    params = {"symbol": data.draw(st.sampled_from(symbols))}
    if "klines" in path.lower():
        params["interval"] = interval
    elif "aggTrades" in path and from_id is not None:
        params["fromId"] = from_id
    for name, value in (("startTime", start), ("endTime", end), ("limit", limit)):
        if value is not None:
            params[name] = value
    r = fuzz_client.get(path, params=params)
    assert r.status_code in (200, 400), (path, params, r.text)
    body = r.json()
    if r.status_code == 400:
        assert list(body) == ["code", "msg"] and body["code"] < 0
        return
    assert isinstance(body, list)
    if limit is not None and limit > 0:
        assert len(body) <= limit
    if body and isinstance(body[0], list):
        opens = [row[0] for row in body]
        assert opens == sorted(set(opens))
        if start is not None:
            assert opens[0] >= start
        if end is not None:
            assert opens[-1] <= end
    elif body and "a" in body[0]:
        ids = [row["a"] for row in body]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
