"""Shared, weight-aware request limiter: one per (host, API) across all concurrent tasks.

Binance counts request weight per IP in fixed windows aligned to the wall clock
(`REQUEST_WEIGHT`, e.g. 6000 per 1 MINUTE on spot, 2400 on futures) and reports the
running total of the current window in every response header `X-MBX-USED-WEIGHT-(n)(u)`
(`1M` for a one-minute window, `10S` for ten seconds...). Exceeding it earns a 429 with
`Retry-After`; sending anything during that back-off earns a 418 IP ban (2 minutes to
3 days). Docs: https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
and https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info#limits

How this limiter stays under the budget:
- Budgets come from `exchangeInfo.rateLimits` (generic interval parsing: SECOND, MINUTE,
  HOUR, DAY times `intervalNum`), `RAW_REQUESTS` included, plus the separate
  fundingRate pool (500 requests per 5 minutes) as a window that only tagged requests
  pay into.
- Weight is *reserved before sending*, under one lock, against the window the request is
  sent in; a request that does not fit waits for the next window. Many concurrent tasks
  therefore never overshoot: the sum reserved in any window is at most `limit - margin`.
- The server header is followed: `used - reserved_here` is weight someone else spent
  from this IP in this window (another process, a request that straddled the window
  boundary); it is added to the estimate so we stop early rather than earn a 429.
- After a 429 nothing is sent until `Retry-After` has passed (and the window is marked
  full). A 418 is waited out when short, otherwise `BannedError`.

`WindowCounter` is the pure bookkeeping (times passed in); `RateLimiter` adds the lock,
the clock and the waiting.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kline_lake.errors import BannedError, KlineLakeError
from kline_lake.exchange.retry import Clock, SystemClock
from kline_lake.exchange.weight_ledger import SharedLedger

log = logging.getLogger(__name__)

INTERVAL_UNIT_S: dict[str, float] = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86400.0}
HEADER_UNIT_S: dict[str, float] = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_USED_WEIGHT_RE = re.compile(r"x-mbx-used-weight-(\d+)([smhd])", re.IGNORECASE)

DEFAULT_MARGIN_FRACTION = 0.05
DEFAULT_MIN_MARGIN = 2
DEFAULT_MAX_BAN_WAIT_S = 150.0
# Sleep a hair past a window's end so the server (whose clock may be slightly behind)
# has switched windows too.
WINDOW_GUARD_S = 0.02
# Pacing (a token bucket inside each window's cap): at most BURST_FRACTION of the usable
# budget goes out at once, refilled at a rate that would spend the whole budget in
# PACE_FRACTION of a window. Another process on the same IP then shows up in the weight
# header before either of us has spent the window, instead of both bursting the whole
# budget at the same instant (which would earn a 429, then 418s for both).
BURST_FRACTION = 0.25
PACE_FRACTION = 0.8


@dataclass(frozen=True)
class RateWindow:
    """One budget: at most `limit` units per fixed window of `window_s` seconds.

    `counts` is "weight" or "requests"; `pool` None means every request pays, a name
    (e.g. "funding") means only requests tagged with that pool pay.
    """

    name: str
    limit: int
    window_s: float
    counts: str = "weight"
    pool: str | None = None

    def __post_init__(self) -> None:
        if self.limit <= 0 or self.window_s <= 0:
            raise ValueError(f"rate window {self.name}: limit and window must be > 0")
        if self.counts not in ("weight", "requests"):
            raise ValueError(f"rate window {self.name}: counts must be 'weight' or 'requests'")


def interval_seconds(interval: str, interval_num: int) -> float:
    """`rateLimits` interval ("SECOND", "MINUTE", "HOUR", "DAY") x intervalNum -> seconds."""
    try:
        unit_s = INTERVAL_UNIT_S[str(interval).upper()]
    except KeyError:
        raise ValueError(f"unknown rate-limit interval {interval!r}") from None
    if int(interval_num) <= 0:
        raise ValueError(f"rate-limit intervalNum must be > 0, got {interval_num!r}")
    return unit_s * int(interval_num)


def parse_rate_limits(rate_limits: Iterable[Mapping]) -> list[RateWindow]:
    """The REQUEST_WEIGHT and RAW_REQUESTS windows of an exchangeInfo `rateLimits` list.

    ORDERS limits concern order placement and are ignored.
    """
    windows = []
    for entry in rate_limits:
        kind = entry.get("rateLimitType")
        if kind not in ("REQUEST_WEIGHT", "RAW_REQUESTS"):
            continue
        window_s = interval_seconds(entry["interval"], entry.get("intervalNum", 1))
        counts = "weight" if kind == "REQUEST_WEIGHT" else "requests"
        windows.append(RateWindow(kind, int(entry["limit"]), window_s, counts))
    return windows


def used_weight_from_headers(headers: Mapping[str, str]) -> dict[float, int]:
    """`X-MBX-USED-WEIGHT-(n)(unit)` headers -> {window seconds: used weight}."""
    used: dict[float, int] = {}
    for name, value in headers.items():
        match = _USED_WEIGHT_RE.fullmatch(name.strip())
        if match is None:
            continue
        try:
            used[int(match.group(1)) * HEADER_UNIT_S[match.group(2).lower()]] = int(value)
        except ValueError:
            continue  # a garbled header is ignored; our own bookkeeping still holds
    return used


def usable_limit(limit: int, margin_fraction: float, min_margin: int) -> int:
    """The part of a budget we allow ourselves: `limit` minus the safety margin."""
    margin = max(min_margin, math.ceil(limit * margin_fraction))
    return max(1, limit - margin)


@dataclass
class WindowCounter:
    """Pure bookkeeping of one fixed-window budget. Windows are aligned to the epoch
    (`phase_s` shifts them), as the exchange aligns them to the wall-clock minute."""

    window: RateWindow
    usable: int
    phase_s: float = 0.0
    pace: bool = True
    _index: int = field(default=-(2**62), init=False)
    _reserved: int = field(default=0, init=False)
    _external: int = field(default=0, init=False)
    _tokens: float | None = field(default=None, init=False)
    _tokens_at_s: float = field(default=0.0, init=False)
    # growth of others' weight in this window, to extrapolate what they sent since the
    # last header (another process's requests in flight that no answer has shown yet)
    _ext_first: tuple[float, int] | None = field(default=None, init=False)
    _ext_rate: float = field(default=0.0, init=False)
    _ext_seen_s: float = field(default=0.0, init=False)
    _lag_s: float = field(default=0.0, init=False)

    def index(self, now_s: float) -> int:
        return math.floor((now_s - self.phase_s) / self.window.window_s)

    def window_end_s(self, now_s: float) -> float:
        return (self.index(now_s) + 1) * self.window.window_s + self.phase_s

    def _roll(self, now_s: float) -> None:
        idx = self.index(now_s)
        if idx != self._index:
            self._index, self._reserved, self._external = idx, 0, 0
            self._ext_first, self._ext_rate = None, 0.0

    def cost_of(self, weight: int, pools: frozenset[str]) -> int:
        """What one request of `weight`, tagged with `pools`, costs in this window."""
        if self.window.pool is not None and self.window.pool not in pools:
            return 0
        return weight if self.window.counts == "weight" else 1

    def estimate(self, now_s: float, carry: int = 0) -> int:
        """Units believed used in the current window (ours plus others'); `carry` is the
        cost of our requests sent in earlier windows and still unanswered (the server
        may count them in this one)."""
        self._roll(now_s)
        unseen = 0
        if self._ext_rate > 0:
            horizon = now_s - self._ext_seen_s + self._lag_s
            unseen = min(self.usable, math.ceil(self._ext_rate * max(0.0, horizon)))
        return self._reserved + self._external + carry + unseen

    @property
    def _bucket_cap(self) -> float:
        return BURST_FRACTION * self.usable

    @property
    def _refill_per_s(self) -> float:
        return self.usable / (PACE_FRACTION * self.window.window_s)

    def _refill(self, now_s: float) -> float:
        if self._tokens is None:
            self._tokens = self._bucket_cap
        else:
            gained = max(0.0, now_s - self._tokens_at_s) * self._refill_per_s
            self._tokens = min(self._bucket_cap, self._tokens + gained)
        self._tokens_at_s = now_s
        return self._tokens

    def wait_s(self, now_s: float, cost: int, carry: int = 0) -> float:
        """0 if `cost` fits now; else seconds until it may (paced) or the next window."""
        if cost <= 0:
            return 0.0
        est = self.estimate(now_s, carry)
        # a request dearer than the margin-deducted budget may still go alone in an
        # untouched window (it fits the real limit)
        if est + cost > self.usable and not (est == 0 and cost <= self.window.limit):
            return max(0.0, self.window_end_s(now_s) - now_s)
        if not self.pace:
            return 0.0
        tokens = self._refill(now_s)
        # a request dearer than the whole burst goes once the bucket is full
        need = min(float(cost), self._bucket_cap)
        if tokens >= need - 1e-9:
            return 0.0
        return (need - tokens) / self._refill_per_s + 1e-6

    def reserve(self, now_s: float, cost: int) -> None:
        self._roll(now_s)
        self._reserved += cost
        if self.pace and cost > 0:
            self._tokens = self._refill(now_s) - cost

    def observe_used(self, now_s: float, used: int, latency_s: float = 0.0) -> None:
        """Follow the server's count for the current window: anything above what we
        reserved here was spent by someone else (or straddled the boundary).

        When that foreign weight grows, its rate times (time since this header + the
        request's latency) is added to the estimate: what the other sender has most
        likely sent meanwhile, not yet visible in any header.
        """
        self._roll(now_s)
        self._external = max(self._external, used - self._reserved)
        if self._ext_first is None:
            self._ext_first = (now_s, self._external)
        elif now_s > self._ext_first[0]:
            t0, v0 = self._ext_first
            self._ext_rate = max(0.0, (self._external - v0) / (now_s - t0))
        self._ext_seen_s = now_s
        self._lag_s = max(0.0, latency_s)

    def add_external(self, now_s: float, cost: int) -> None:
        """Count `cost` as spent in the current window by something other than a
        reservation made in it (a request of an earlier window answered only now)."""
        self._roll(now_s)
        self._external += cost

    def exhaust(self, now_s: float) -> None:
        """The server said 429: treat the current window as full."""
        self._roll(now_s)
        self._external = max(self._external, self.usable - self._reserved)


@dataclass(eq=False)
class Ticket:
    """A reservation: per window, the window index it was sent in and its cost.
    Hand it back with `RateLimiter.release` once the answer (or failure) is in."""

    indices: tuple[int, ...]
    costs: tuple[int, ...]
    sent_s: float = 0.0


class RateLimiter:
    """Async limiter shared by every task talking to one (host, API prefix).

    `acquire(weight, pools=...)` waits until the request fits every window and reserves
    it; call it immediately before sending. Feed every response's headers to
    `observe_headers`, and 429/418 answers to `on_429`/`on_418` (the caller counts
    them: `request_stats.RequestStats`). `waited_s` is the time spent waiting for budget.

    Reservations are serialised by one asyncio lock, held from the budget check to the
    reservation. The machine-wide ledger's `flock` and file I/O run on the ledger's own
    thread meanwhile (`SharedLedger.reserve_async`), so the event loop keeps answering
    other tasks; what they changed in between (a 429, a header, a new window) is checked
    again before the request may go.
    """

    def __init__(
        self,
        windows: Sequence[RateWindow],
        *,
        clock: Clock | None = None,
        margin_fraction: float = DEFAULT_MARGIN_FRACTION,
        min_margin: int = DEFAULT_MIN_MARGIN,
        max_ban_wait_s: float = DEFAULT_MAX_BAN_WAIT_S,
        ledger: SharedLedger | None = None,
    ) -> None:
        if not 0.0 <= margin_fraction < 1.0:
            raise ValueError("margin_fraction must be within [0, 1)")
        self.clock: Clock = clock or SystemClock()
        self.margin_fraction = margin_fraction
        self.min_margin = min_margin
        self.max_ban_wait_s = max_ban_wait_s
        self.waited_s = 0.0
        self.ledger = ledger
        self._lock = asyncio.Lock()
        self._blocked_until_s = 0.0
        self._counters: list[WindowCounter] = []
        self._in_flight: list[Ticket] = []
        # window seconds -> (send time, used) of the latest X-MBX-USED-WEIGHT-* header
        self._last_used: dict[float, tuple[float, int]] = {}
        self._latency_s = 0.0  # moving average of request latency (send -> answer)
        self.set_windows(windows)

    @property
    def windows(self) -> list[RateWindow]:
        return [c.window for c in self._counters]

    def set_windows(self, windows: Sequence[RateWindow]) -> None:
        """Replace the budgets (e.g. once exchangeInfo is known), keeping this window's
        reservations so a switch never double-spends."""
        if not windows:
            raise ValueError("a rate limiter needs at least one window")
        now = self.clock.time()
        old = {(c.window.name, c.window.pool): c for c in self._counters}
        counters = []
        for window in windows:
            counter = WindowCounter(
                window, usable_limit(window.limit, self.margin_fraction, self.min_margin)
            )
            previous = old.get((window.name, window.pool))
            if previous is not None and previous.window.window_s == window.window_s:
                counter.observe_used(now, previous.estimate(now))
            seen = self._last_used.get(window.window_s)
            if seen is not None and window.pool is None and window.counts == "weight":
                sent_s, used = seen
                if counter.index(sent_s) == counter.index(now):
                    counter.observe_used(now, used)  # e.g. the exchangeInfo answer's header
            counters.append(counter)
        self._counters = counters
        self._in_flight = []  # old tickets refer to the old windows; they stay reserved

    def usable(self, name: str = "REQUEST_WEIGHT") -> int:
        """The usable (margin-deducted) budget of the window called `name`."""
        for counter in self._counters:
            if counter.window.name == name:
                return counter.usable
        raise KeyError(name)

    def _carry(self, i: int, now_s: float) -> int:
        current = self._counters[i].index(now_s)
        return sum(t.costs[i] for t in self._in_flight
                   if len(t.costs) > i and t.indices[i] < current)

    async def acquire(self, weight: int, *, pools: Iterable[str] = ()) -> Ticket:
        """Wait until a request of `weight` fits every budget, reserve it, and return the
        ticket to `release` when the request is over."""
        tags = frozenset(pools)
        for counter in self._counters:
            if counter.cost_of(weight, tags) > counter.window.limit:
                raise KlineLakeError(
                    f"a request of weight {weight} can never fit the exchange's "
                    f"{counter.window.name} limit of {counter.window.limit} per "
                    f"{counter.window.window_s:g} s"
                )
        async with self._lock:
            while True:
                now = self.clock.time()
                ticket, wait = await self._try_reserve(now, weight, tags)
                if ticket is not None:
                    return ticket
                now = self.clock.time()  # the ledger call may have taken a while
                if any(c.window_end_s(now) <= now + wait + 1e-9 for c in self._counters):
                    wait += WINDOW_GUARD_S  # waiting for a new window: let the server switch too
                self.waited_s += wait
                await self.clock.sleep(wait)

    async def _try_reserve(self, now: float, weight: int,
                           tags: frozenset[str]) -> tuple[Ticket | None, float]:
        """Reserve now if every budget (ours, then the machine-wide ledger) allows it;
        else (None, seconds to wait). Called with `self._lock` held."""
        counters = self._counters
        costs = tuple(c.cost_of(weight, tags) for c in counters)
        wait = self._local_wait_s(now, costs)
        if wait > 0:
            return None, wait
        if self.ledger is None:
            return self._reserve_local(now, weight, costs), 0.0
        entries = self._ledger_entries(now, costs)
        full = await self.ledger.reserve_async(entries)
        if full is not None:
            # other processes hold the rest of this window: wait for the next one
            counter = (counters[full] if full < len(counters)
                       else min(counters, key=lambda c: c.window_end_s(now)))
            return None, max(1e-3, counter.window_end_s(now) - now)
        # Other tasks ran while the ledger call was away: a 429 may have blocked sending,
        # a header may have filled the window, the window may have ended. Send only if the
        # request still fits now and the ledger holds what it costs now. Otherwise try
        # again; the ledger keeps the unused charge (more conservative, never less).
        later = self.clock.time()
        if self._counters is not counters:
            return None, 0.0
        wait = self._local_wait_s(later, costs)
        if wait > 0:
            return None, wait
        if not set(self._ledger_entries(later, costs)) <= set(entries):
            return None, 0.0
        return self._reserve_local(later, weight, costs), 0.0

    def _local_wait_s(self, now: float, costs: Sequence[int]) -> float:
        """0 if a request costing `costs` fits this process's budgets now, else the
        seconds to wait (the 429 back-off, pacing, the next window)."""
        blocked = self._blocked_until_s - now
        if blocked > 0:
            return blocked
        return max(c.wait_s(now, cost, self._carry(i, now))
                   for i, (c, cost) in enumerate(zip(self._counters, costs, strict=True)))

    def _reserve_local(self, now: float, weight: int, costs: Sequence[int]) -> Ticket:
        for counter, cost in zip(self._counters, costs, strict=True):
            counter.reserve(now, cost)
        ticket = Ticket(tuple(c.index(now) for c in self._counters), tuple(costs), now)
        self._in_flight.append(ticket)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("reserve t=%.3f w=%d est=%s", now, weight,
                      [c.estimate(now) for c in self._counters])
        return ticket

    def _ledger_entries(self, now: float, costs: Sequence[int]) -> list[tuple[str, int, int, int]]:
        """Ledger entries of one request: its window, and also the next one when it is
        sent so close to the window's end that the server may count it there (within
        twice the recent latency): another process cannot know it is still in flight."""
        entries, tail = [], []
        for counter, cost in zip(self._counters, costs, strict=True):
            name = f"{counter.window.name}:{counter.window.pool}:{counter.window.window_s:g}"
            index = counter.index(now)
            cap = max(counter.usable, cost)  # a dear request may go alone (see wait_s)
            entries.append((name, index, cost, cap))
            tail_s = min(0.5 * counter.window.window_s,
                         max(0.02 * counter.window.window_s, 2.0 * self._latency_s))
            if cost and counter.window_end_s(now) - now < tail_s:
                tail.append((name, index + 1, cost, cap))
        return entries + tail

    def release(self, ticket: Ticket) -> None:
        """The request of `ticket` is answered (or failed): stop counting it as in flight.

        A request sent in an earlier window may have been counted by the server in this
        one (it straddled the boundary): its cost stays charged to the current window.
        """
        if ticket not in self._in_flight:  # absent if the windows were replaced since
            return
        self._in_flight.remove(ticket)
        now = self.clock.time()
        for counter, index, cost in zip(self._counters, ticket.indices, ticket.costs, strict=False):
            if cost and index < counter.index(now):
                counter.add_external(now, cost)

    def observe_headers(self, headers: Mapping[str, str], ticket: Ticket | None = None) -> None:
        """Follow `X-MBX-USED-WEIGHT-*` from a response received now to the request of
        `ticket`. A response to a request sent in an earlier window is ignored: its count
        may be that window's (see `release` for how such a request is charged)."""
        used = used_weight_from_headers(headers)
        if not used:
            return
        now = self.clock.time()
        sent_s = ticket.sent_s if ticket is not None else now
        self._latency_s = 0.8 * self._latency_s + 0.2 * max(0.0, now - sent_s)
        for window_s, value in used.items():
            self._last_used[window_s] = (sent_s, value)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("header t=%.3f sent=%.3f used=%s", now, sent_s, used)
        for i, counter in enumerate(self._counters):
            window = counter.window
            if window.pool is not None or window.counts != "weight" or window.window_s not in used:
                continue
            if ticket is not None and i < len(ticket.indices) and ticket.indices[i] != counter.index(now):
                continue
            counter.observe_used(now, used[window.window_s], now - sent_s)

    def on_429(self, retry_after_s: float) -> None:
        """Stop sending for `retry_after_s` and treat the current weight windows as full.

        Request-count windows (RAW_REQUESTS, 5 minutes) are left alone: the Retry-After
        already covers whichever limit was hit ("the number of seconds required to wait
        to prevent a ban"), and marking a 5-minute window full would wait up to 300 s
        after every 429.
        """
        now = self.clock.time()
        self._blocked_until_s = max(self._blocked_until_s, now + max(retry_after_s, 0.0) + WINDOW_GUARD_S)
        for counter in self._counters:
            if counter.window.pool is None and counter.window.counts == "weight":
                counter.exhaust(now)

    def on_418(self, retry_after_s: float, url: str = "") -> None:
        """Wait out a short ban; raise BannedError if it is longer than we accept."""
        if retry_after_s > self.max_ban_wait_s:
            raise BannedError(retry_after_s, url)
        self.on_429(retry_after_s)

    def time_to_window_end_s(self) -> float:
        """Seconds until the longest all-request weight window ends (a 429 fallback
        back-off, and what a 429 makes the limiter wait for besides Retry-After)."""
        now = self.clock.time()
        ends = [c.window_end_s(now) - now for c in self._counters
                if c.window.pool is None and c.window.counts == "weight"]
        return max(ends, default=1.0)

    def blocked_for_s(self) -> float:
        """Seconds left in the current back-off (0 when free to send)."""
        return max(0.0, self._blocked_until_s - self.clock.time())
