"""Small asyncio helpers shared by the download sources."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence


async def gather_or_cancel(coros: Sequence[Awaitable[None]], limit: int | None = None) -> None:
    """Run `coros` (at most `limit` at once when given); the first failure (or a
    cancellation, e.g. Ctrl-C) cancels the rest, waits for them to unwind (what they
    committed stays) and is re-raised. Coroutines that never got to start are closed, so
    no "coroutine ... was never awaited" warning follows an interrupt."""
    gate = asyncio.Semaphore(limit) if limit else None

    async def guarded(c: Awaitable[None]) -> None:
        if gate is None:
            await c
            return
        async with gate:
            await c

    tasks = [asyncio.ensure_future(guarded(c)) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in coros:
            if inspect.iscoroutine(c):
                c.close()  # a no-op for those that ran; marks the unstarted ones closed
        raise
