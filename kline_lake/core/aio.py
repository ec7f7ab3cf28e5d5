"""Small asyncio helpers shared by the download sources."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence


async def gather_or_cancel(coros: Sequence[Awaitable[None]], limit: int | None = None) -> None:
    """Run `coros` (at most `limit` at once when given); the first failure (or a
    cancellation, e.g. Ctrl-C) cancels the rest, waits for them to unwind (what they
    committed stays) and is re-raised. Coroutines that never got to start are closed, so
    no "coroutine ... was never awaited" warning follows an interrupt.

    The wait for the others to unwind survives further cancellations: with nested calls
    (series of chunks) a Ctrl-C reaches an inner call twice, once through the task
    running it and once more when the outer call cancels what is left after its first
    task ended; leaving at the second would skip the unwinding and the closing.
    """
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
        await _unwind(tasks)
        raise
    finally:
        for c in coros:
            if inspect.iscoroutine(c):
                c.close()  # a no-op for those that ran; marks the unstarted ones closed


async def _unwind(tasks: Sequence[asyncio.Future]) -> None:
    """Wait until every one of `tasks` has ended, however often this wait is cancelled
    meanwhile (the caller re-raises what stopped it), and retrieve their outcomes."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            pending = {t for t in pending if not t.done()}
    for t in tasks:
        if not t.cancelled():
            t.exception()  # retrieved: no "exception was never retrieved" at exit
