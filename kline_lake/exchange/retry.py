"""Retry schedule (exponential backoff with full jitter) and the clock/sleep seam.

The schedule is pure: `backoff_delay_s(attempt, policy, unit_random)` maps an attempt
number and a uniform random draw to a delay, so tests pin it exactly. I/O code takes a
`Clock` so tests can run on virtual time.

Backoff follows the "full jitter" scheme (delay drawn uniformly in
[base * 2**attempt * (1 - jitter), base * 2**attempt], capped), which spreads the
retries of many concurrent tasks instead of hammering the server in lock-step.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure (5xx, timeout, drop...)."""

    max_attempts: int = 8  # total tries including the first
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    jitter: float = 0.5  # fraction of each delay that is randomized (0 = none, 1 = full)
    max_rate_limited: int = 20  # 429 answers tolerated for one request before giving up

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within [0, 1]")


def backoff_delay_s(attempt: int, policy: RetryPolicy, unit_random: float) -> float:
    """Delay before retry number `attempt` (0 = the first retry), `unit_random` in [0, 1).

    Pure: exponential growth capped at `max_delay_s`, then the jitter fraction removed
    proportionally to `unit_random`.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not 0.0 <= unit_random <= 1.0:
        raise ValueError("unit_random must be within [0, 1]")
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2.0 ** min(attempt, 60)))
    return ceiling * (1.0 - policy.jitter * unit_random)


def backoff_schedule_s(policy: RetryPolicy, draws: list[float]) -> list[float]:
    """The whole schedule of delays for `policy.max_attempts - 1` retries (pure)."""
    n = policy.max_attempts - 1
    if len(draws) < n:
        raise ValueError(f"need {n} random draws, got {len(draws)}")
    return [backoff_delay_s(i, policy, draws[i]) for i in range(n)]


class Clock(Protocol):
    """Time source and sleeper: the seam tests replace with virtual time."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch (the exchange's windows follow it)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Suspend the calling task for `seconds`."""
        ...

    def random(self) -> float:
        """A uniform draw in [0, 1) for jitter."""
        ...


class SystemClock:
    """The real clock: `time.time`, `time.monotonic`, `asyncio.sleep`, `random.random`."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def random(self) -> float:
        return self._rng.random()


class VirtualClock:
    """A deterministic clock for tests: `sleep` advances virtual time instead of waiting.

    Time only moves forward: a sleeper sets the clock to its own deadline after letting
    the other runnable tasks run once, so concurrent tasks interleave but a long sleep
    may also advance time for others. Good enough for invariants checked at the moment
    of an action (e.g. "weight reserved in this window"), not for exact wake-up order.
    """

    def __init__(self, start_s: float = 1_700_000_000.0, seed: int = 0) -> None:
        self._now_s = float(start_s)
        self._rng = random.Random(seed)

    def time(self) -> float:
        return self._now_s

    def monotonic(self) -> float:
        return self._now_s

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (never backward)."""
        self._now_s += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        target = self._now_s + max(0.0, seconds)
        await asyncio.sleep(0)
        self._now_s = max(self._now_s, target)
        await asyncio.sleep(0)

    def random(self) -> float:
        return self._rng.random()
