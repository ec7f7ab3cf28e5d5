"""Request-weight accounting: per-client fixed windows, 429 then escalating 418 bans.

Rules (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits):
- Each request costs its weight in the current fixed window (windows aligned on multiples
  of the window length since the epoch, like the exchange's calendar minutes).
- A request that would take the window over the limit gets 429 and `Retry-After` =
  whole seconds to the window's end; it is not charged. Until then the client must back
  off.
- A request during that back-off gets 418 (an IP ban). Bans escalate: the first lasts
  `ban_base_s` (the exchange's 2 minutes, scaled with the fake minute), each later one
  doubles, capped at `ban_max_s` (3 days, scaled). Requests during a ban get 418 with
  the remaining time and do not lengthen it.

Pure logic with an injected clock, so the window arithmetic is testable without sleeping.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    """Outcome of one request: status 200, 429 or 418; weight used in the window after it;
    Retry-After seconds (0 when allowed)."""

    status: int
    used: int
    retry_after_s: int


@dataclass
class _ClientState:
    window: int = -1
    used: int = 0
    backoff_until: float = 0.0
    ban_until: float = 0.0
    bans: int = 0


class WeightLimiter:
    """Fixed-window weight budget per client key (thread-safe)."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        ban_base_s: float,
        ban_max_s: float,
        clock: Callable[[], float],
    ) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("limit and window_s must be positive")
        self.limit = limit
        self.window_s = window_s
        self.ban_base_s = ban_base_s
        self.ban_max_s = ban_max_s
        self._clock = clock
        self._state: dict[str, _ClientState] = {}
        self._lock = threading.Lock()

    def _roll(self, st: _ClientState, now: float) -> None:
        window = math.floor(now / self.window_s)
        if window != st.window:
            st.window, st.used = window, 0

    def charge(self, client: str, weight: int) -> Decision:
        """Account one request of `weight` for `client` and decide its status."""
        with self._lock:
            now = self._clock()
            st = self._state.setdefault(client, _ClientState())
            self._roll(st, now)
            if now < st.ban_until:
                return Decision(418, st.used, _ceil_s(st.ban_until - now))
            if now < st.backoff_until:
                duration = min(self.ban_base_s * 2**st.bans, self.ban_max_s)
                st.bans += 1
                st.ban_until = now + duration
                st.backoff_until = 0.0
                return Decision(418, st.used, _ceil_s(duration))
            if st.used + weight > self.limit:
                st.backoff_until = (st.window + 1) * self.window_s
                return Decision(429, st.used, _ceil_s(st.backoff_until - now))
            st.used += weight
            return Decision(200, st.used, 0)

    def used(self, client: str) -> int:
        """Weight used by `client` in the current window."""
        with self._lock:
            st = self._state.setdefault(client, _ClientState())
            self._roll(st, self._clock())
            return st.used


def _ceil_s(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


def header_suffix(window_s: int) -> str:
    """The interval part of the weight header and rateLimits: 60 -> '1M', 10 -> '10S'."""
    if window_s % 60 == 0:
        return f"{window_s // 60}M"
    return f"{window_s}S"


def rate_limit_entry(limit: int, window_s: int) -> dict[str, object]:
    """The REQUEST_WEIGHT entry of exchangeInfo's rateLimits for this window."""
    if window_s % 60 == 0:
        interval, num = "MINUTE", window_s // 60
    else:
        interval, num = "SECOND", window_s
    return {"rateLimitType": "REQUEST_WEIGHT", "interval": interval, "intervalNum": num, "limit": limit}
