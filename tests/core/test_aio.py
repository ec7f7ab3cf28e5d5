"""`kline_lake.core.aio.gather_or_cancel`: a failure or a cancellation cancels the rest,
waits for every one of them to unwind, closes the coroutines that never started, and
re-raises; also when a Ctrl-C reaches nested calls twice (the race behind a "coroutine
'_kline_chunk' was never awaited" warning after Ctrl-C under load)."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from kline_lake.core.aio import gather_or_cancel


async def _idle() -> None:
    await asyncio.sleep(30)


def _run_recording_warnings(coro_factory) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(coro_factory())
        gc.collect()
    return [str(w.message) for w in caught]


def test_nested_cancel_waits_for_the_slow_unwind_and_closes_the_unstarted() -> None:
    """Two series of chunks, one chunk at a time each. Ctrl-C: series A's chunk ends at
    once, series B's is in a commit that takes 0.2 s to land. The outer call's gather ends
    with A and cancels B a second time while B unwinds; B must still wait for its commit
    and close its four unstarted chunks."""
    landed: list[str] = []

    async def commit() -> None:
        done = asyncio.ensure_future(asyncio.sleep(0.2))
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            while not done.done():  # as RunContext.commit: a started commit lands
                try:
                    await asyncio.wait([done])
                except asyncio.CancelledError:
                    continue
            landed.append("B")
            raise

    async def series(first) -> None:
        await gather_or_cancel([first(), *(_idle() for _ in range(4))], 1)

    state: dict[str, object] = {}

    async def main() -> None:
        outer = asyncio.ensure_future(gather_or_cancel([series(_idle), series(commit)]))
        await asyncio.sleep(0.05)
        outer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await outer
        state["pending"] = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    messages = _run_recording_warnings(main)
    assert landed == ["B"]
    assert state["pending"] == []  # nothing left running when the call re-raised
    assert not [m for m in messages if "never awaited" in m or "never retrieved" in m], messages


def test_a_failure_cancels_the_rest_and_is_raised_once_all_ended() -> None:
    ended: list[int] = []

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("page 3 failed")

    async def slow_to_stop(i: int) -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.sleep(0.05)
            ended.append(i)

    async def main() -> None:
        with pytest.raises(ValueError, match="page 3 failed"):
            await gather_or_cancel([slow_to_stop(0), fails(), slow_to_stop(1), _idle()], 3)

    messages = _run_recording_warnings(main)
    assert sorted(ended) == [0, 1]
    assert not [m for m in messages if "never awaited" in m], messages


def test_all_succeed_within_the_limit() -> None:
    running, peak, done = [0], [0], []

    async def job(i: int) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        await asyncio.sleep(0.01)
        running[0] -= 1
        done.append(i)

    async def main() -> None:
        await gather_or_cancel([job(i) for i in range(7)], 2)

    assert _run_recording_warnings(main) == []
    assert sorted(done) == list(range(7)) and peak[0] == 2
