"""Helpers for the fetcher's integration tests: run downloads, read lakes back, and ask
the fake exchange directly (the oracle the lake is compared with)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from kline_lake.core.markets import ENDPOINTS, get_market
from kline_lake.core.schemas import KEYS
from kline_lake.core.series import SeriesKey
from kline_lake.download.orchestrate import run_download
from kline_lake.download.progress import RunTotals
from kline_lake.download.request import validate_request
from kline_lake.download.rest_rows import (
    parse_rest_agg_trades,
    parse_rest_funding,
    parse_rest_klines,
)
from kline_lake.lake.writer import LakeWriter

KLINE_LAKE = str(Path(sys.executable).with_name("kline-lake"))
# 2024-06-01T12:00:30Z: the 12:00 kline is still open
NOW_MS = 1_717_243_230_000


def download(fx_url: str, lake: Path, *, market: str = "spot", dataset: str = "klines",
             symbols: str = "BTCUSDT", interval: str | None = "1m", start: str, end: str | None = None,
             **kwargs) -> RunTotals:
    """Run a download in-process against the fake exchange."""
    if dataset in ("agg_trades", "funding"):
        interval = None
    request = validate_request(market=market, dataset=dataset, symbols=symbols, interval=interval,
                               start=start, end=end, lake=lake, base_url=fx_url)
    return asyncio.run(run_download(request, **kwargs))


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `kline-lake` in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([KLINE_LAKE, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, check=False)


def read_series(lake: Path, key: SeriesKey) -> pa.Table:
    """Every row of one series, sorted by key (None-safe: empty table if absent)."""
    base = lake / key.market / key.dataset / f"symbol={key.symbol}"
    if key.interval is not None:
        base = base / f"interval={key.interval}"
    files = sorted(base.rglob("*.parquet"))
    if not files:
        return pa.table({})
    table = pa.concat_tables([pq.read_table(f, partitioning=None) for f in files])
    return table.sort_by(KEYS[key.dataset])


def lake_snapshot(lake: Path) -> dict[str, object]:
    """Data files' rows and coverage of every series: what "identical lakes" compares."""
    out: dict[str, object] = {}
    for path in sorted(lake.rglob("*.parquet")):
        if "_meta" in path.parts:
            continue
        out[str(path.relative_to(lake))] = pq.read_table(path, partitioning=None)
    cov_dir = lake / "_meta" / "coverage"
    for path in sorted(cov_dir.rglob("*.json")) if cov_dir.exists() else []:
        out[str(path.relative_to(lake))] = path.read_text()
    return out


def assert_same_lake(a: Path, b: Path) -> None:
    sa, sb = lake_snapshot(a), lake_snapshot(b)
    assert sorted(sa) == sorted(sb)
    for name in sa:
        if isinstance(sa[name], pa.Table):
            assert sa[name].equals(sb[name]), name
        else:
            assert sa[name] == sb[name], name


def covered(lake: Path, key: SeriesKey) -> list[tuple[int, int]]:
    return LakeWriter(lake).covered(key)


def server_klines(fx_url: str, market: str, dataset: str, symbol: str, interval: str,
                  start_ms: int, end_ms: int, now_ms: int = NOW_MS) -> pa.Table:
    """The oracle: every closed kline the server holds in [start, end), fetched page by
    page with plain httpx and parsed directly."""
    mkt = get_market(market)
    rows: list = []
    cursor = start_ms
    key = "pair" if dataset == "index_klines" else "symbol"
    with httpx.Client(base_url=fx_url) as http:
        while cursor < end_ms:
            page = http.get(f"{mkt.api_prefix}/{ENDPOINTS[dataset]}", params={
                key: symbol, "interval": interval, "startTime": cursor,
                "endTime": min(end_ms, cursor + 100 * 86_400_000) - 1, "limit": 499}).json()
            if not page:
                cursor = min(end_ms, cursor + 100 * 86_400_000)
                continue
            rows.extend(r for r in page if r[6] < now_ms)
            cursor = page[-1][6] + 1
    return parse_rest_klines(rows, dataset)


def server_agg_trades(fx_url: str, market: str, symbol: str, start_ms: int, end_ms: int) -> pa.Table:
    mkt = get_market(market)
    rows: list = []
    with httpx.Client(base_url=fx_url) as http:
        t = start_ms
        first: list = []
        while not first and t < end_ms:
            first = http.get(f"{mkt.api_prefix}/aggTrades", params={
                "symbol": symbol, "startTime": t, "endTime": min(end_ms, t + 3_600_000) - 1,
                "limit": 1}).json()
            t += 3_600_000
        if not first:
            return parse_rest_agg_trades([])
        from_id = first[0]["a"]
        while True:
            page = http.get(f"{mkt.api_prefix}/aggTrades",
                            params={"symbol": symbol, "fromId": from_id, "limit": 1000}).json()
            rows.extend(r for r in page if r["T"] < end_ms)
            if not page or page[-1]["T"] >= end_ms or len(page) < 1000:
                break
            from_id = page[-1]["a"] + 1
    return parse_rest_agg_trades(rows)


def server_funding(fx_url: str, market: str, symbol: str, start_ms: int, end_ms: int) -> pa.Table:
    mkt = get_market(market)
    with httpx.Client(base_url=fx_url) as http:
        rows = http.get(f"{mkt.api_prefix}/fundingRate", params={
            "symbol": symbol, "startTime": start_ms, "endTime": end_ms - 1, "limit": 1000}).json()
    return parse_rest_funding(rows)
