"""Weight-ledger reservations under concurrency: throughput and event-loop stalls.

Every `RateLimiter.acquire` with a machine-wide ledger (`weight_ledger.SharedLedger`)
takes an exclusive `flock` on a small JSON file and rewrites it. This measures, on the
real clock and a real ledger file in a temporary directory:

- reservations per second (acquire, yield once as sending would, release; weight 1, a
  budget that never binds) for 1, 16 and 64 concurrent tasks;
- the event loop's worst stall while they run: a ticker task sleeps 1 ms at a time and
  records the longest gap between its wake-ups;
- the same with another process contending for the ledger file (it takes the `flock`
  and holds it for `--hold-ms` every 5 ms, as a second download would at worst).

    .venv/bin/python benchmarks/ledger_reservations.py [--seconds 1.5] [--hold-ms 20]

Prints a markdown table and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kline_lake.exchange.rate_limiter import RateLimiter, RateWindow
from kline_lake.exchange.weight_ledger import ledger_for

# Another process on the ledger: lock, hold, unlock, pause; until stdin closes.
CONTENDER = r"""
import fcntl, os, select, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
hold_s = float(sys.argv[2])
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0.005)[0]:
    fcntl.flock(fd, fcntl.LOCK_EX)
    time.sleep(hold_s)
    fcntl.flock(fd, fcntl.LOCK_UN)
"""


async def _measure(directory: Path, tasks: int, seconds: float) -> dict[str, float]:
    ledger = ledger_for("http://bench:1", "/api/v3", directory)
    limiter = RateLimiter([RateWindow("REQUEST_WEIGHT", 10**12, 60.0)], ledger=ledger)
    done = 0
    stop_at = time.monotonic() + seconds
    max_gap_s = 0.0

    async def ticker() -> None:
        nonlocal max_gap_s
        last = time.monotonic()
        while time.monotonic() < stop_at:
            await asyncio.sleep(0.001)
            now = time.monotonic()
            max_gap_s = max(max_gap_s, now - last)
            last = now

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            ticket = await limiter.acquire(1)
            await asyncio.sleep(0)  # the request goes out: other tasks run
            limiter.release(ticket)
            done += 1

    started = time.monotonic()
    await asyncio.gather(ticker(), *(worker() for _ in range(tasks)))
    elapsed = time.monotonic() - started
    close = getattr(ledger, "close", None)
    if close is not None:
        close()
    return {"tasks": tasks, "reservations_per_s": done / elapsed, "max_loop_stall_ms": 1e3 * max_gap_s}


def _run(tasks: int, seconds: float, hold_ms: float | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        contender = None
        if hold_ms is not None:
            path = ledger_for("http://bench:1", "/api/v3", directory).path
            path.parent.mkdir(parents=True, exist_ok=True)
            contender = subprocess.Popen([sys.executable, "-c", CONTENDER, str(path), str(hold_ms / 1e3)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert contender.stdout is not None and contender.stdout.readline().strip() == "ready"
        try:
            row = asyncio.run(_measure(directory, tasks, seconds))
        finally:
            if contender is not None:
                contender.stdin.close()
                contender.wait(timeout=10)
        row["contender_hold_ms"] = hold_ms or 0.0
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--hold-ms", type=float, default=20.0)
    args = parser.parse_args()
    rows = [_run(n, args.seconds, None) for n in (1, 16, 64)]
    rows += [_run(n, args.seconds, args.hold_ms) for n in (1, 16)]
    print("| tasks | other process holds the lock | reservations/s | worst loop stall |")
    print("|---:|---:|---:|---:|")
    for r in rows:
        other = f"{r['contender_hold_ms']:g} ms every 5 ms" if r["contender_hold_ms"] else "no"
        print(f"| {r['tasks']} | {other} | {r['reservations_per_s']:,.0f} | "
              f"{r['max_loop_stall_ms']:.1f} ms |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
