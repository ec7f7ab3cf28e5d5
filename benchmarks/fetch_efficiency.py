"""How close does the REST fetcher get to the exchange's weight ceiling?

Runs `kline-lake download` logic (in-process) against the fake exchange started as a
separate process (its own CPU and GIL), with a short "minute" and a small budget, and
measures for spot and USD-M 1m klines:

    efficiency = rows fetched per window / ceiling
    ceiling    = budget / weight-per-page x rows-per-page   (at the optimal page size:
                 spot 1000 rows for weight 2, futures 499 rows for weight 2)

"Per window" is measured over the steady state: the fixed windows (aligned like the
server's) strictly between the window of the first and of the last klines page, so the
start-up calls (exchangeInfo, time, listing probe) and the partial last window do not
count. The end-to-end figure (all rows / every window touched, the partial first and
last ones counted whole: a lower bound) is printed too.
The server's own counters (GET /fake/stats) must show zero 429 and zero 418.

    .venv/bin/python benchmarks/fetch_efficiency.py [--minute-seconds 2] [--weight-limit 40]
                                                    [--windows 15]
Prints a markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx

from kline_lake.core.markets import get_market
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.exchange.weights import best_page_limit, request_weight

KLINE_LAKE = str(Path(sys.executable).with_name("kline-lake"))


class RecordingTransport(httpx.AsyncBaseTransport):
    """Delegates to the real transport; records (send time, rows) of klines pages."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.pages: list[tuple[float, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        sent = time.time()
        response = await self.inner.handle_async_request(request)
        if request.url.path.endswith("/klines") and request.url.params.get("limit") != "1":
            body = await response.aread()
            rows = 0 if body.strip() == b"[]" else body.count(b"],[") + 1
            if response.status_code == 200:
                self.pages.append((sent, rows))
            return httpx.Response(response.status_code, headers=response.headers, content=body,
                                  request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def start_fake(minute_seconds: int, weight_limit: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [KLINE_LAKE, "fake-exchange", "--port", "0", "--minute-seconds", str(minute_seconds),
         "--weight-limit", str(weight_limit)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "http://" in line:
            url = line[line.index("http://"):].split()[0].rstrip("/")
            return proc, url
    proc.kill()
    raise RuntimeError("the fake exchange did not print its URL")


def measure(market_name: str, minute_seconds: int, weight_limit: int, windows: int) -> dict:
    market = get_market(market_name)
    limit = best_page_limit(market, "klines")
    weight = request_weight(market, "klines", limit)
    ceiling = weight_limit / weight * limit  # rows per window
    pages = math.ceil(windows * weight_limit / weight)
    start_ms = 1_672_531_200_000  # 2023-01-01
    end_ms = start_ms + pages * limit * 60_000
    proc, url = start_fake(minute_seconds, weight_limit)
    try:
        with tempfile.TemporaryDirectory() as lake:
            request = validate_request(
                market=market_name, dataset="klines", symbols="BTCUSDT", interval="1m",
                start=time.strftime("%Y-%m-%dT%H:%M", time.gmtime(start_ms / 1000)),
                end=time.strftime("%Y-%m-%dT%H:%M", time.gmtime(end_ms / 1000)),
                lake=lake, base_url=url)
            transport = RecordingTransport()
            t0 = time.time()
            totals = asyncio.run(run_download(request, transport=transport))
            elapsed = time.time() - t0
        stats = httpx.get(f"{url}/fake/stats").json()[market_name]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    by_window: dict[int, int] = defaultdict(int)
    for sent, rows in transport.pages:
        by_window[math.floor(sent / minute_seconds)] += rows
    first, last = min(by_window), max(by_window)
    steady = [by_window.get(w, 0) for w in range(first + 1, last)]
    steady_rows = sum(steady) / len(steady) if steady else float("nan")
    return {
        "market": market_name, "page_limit": limit, "weight_per_page": weight,
        "budget": weight_limit, "window_s": minute_seconds,
        "ceiling_rows_per_window": ceiling, "rows_per_window": round(steady_rows, 1),
        "efficiency": round(steady_rows / ceiling, 4),
        # every window touched, the partial first and last ones counted whole
        "end_to_end_efficiency": round(totals.rows_written / (last - first + 1) / ceiling, 4),
        "rows": totals.rows_written, "requests": totals.requests, "seconds": round(elapsed, 1),
        "steady_windows": len(steady), "server_429": stats["429"], "server_418": stats["418"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minute-seconds", type=int, default=2)
    parser.add_argument("--weight-limit", type=int, default=40)
    parser.add_argument("--windows", type=int, default=15)
    parser.add_argument("--markets", default="spot,um")
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "fetch_efficiency.json",
                        help="Where to write the results (default: benchmarks/results/).")
    args = parser.parse_args(argv)
    # a private weight ledger: nothing else on this machine shares the fake's budget
    os.environ["KLINE_LAKE_STATE_DIR"] = tempfile.mkdtemp(prefix="kline-lake-bench-")
    results = [measure(m, args.minute_seconds, args.weight_limit, args.windows)
               for m in args.markets.split(",")]
    print("| market | page | weight/page | budget/window | ceiling rows/window | rows/window | "
          "efficiency | end-to-end | 429 | 418 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['market']} | {r['page_limit']} | {r['weight_per_page']} | {r['budget']} per "
              f"{r['window_s']} s | {r['ceiling_rows_per_window']:,.0f} | {r['rows_per_window']:,.0f} | "
              f"{r['efficiency']:.3f} | {r['end_to_end_efficiency']:.3f} | {r['server_429']} | "
              f"{r['server_418']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"fetch_efficiency": results}, indent=1) + "\n")
    print(f"results written to {args.json}")
    ok = all(r["efficiency"] >= 0.9 and r["server_429"] == 0 and r["server_418"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
