"""Seeded fault injection: `--faults 500:0.05,503:0.02,slow:0.02,drop:0.01,truncate:0.01,corrupt-archive:0.1,ws-miss:0.01`.

One uniform draw per request (from a seeded generator, so the sequence of outcomes is
deterministic for a given seed and request order) picks at most one fault; the rates are
the probabilities of each kind and must add up to at most 1.
- `500`/`503`: a 5xx with a Binance-style JSON body; no weight is charged (the request
  never reached the matching engine's accounting).
- `slow`: the normal response after a delay (`slow_s`).
- `drop`: the connection is closed without any response; no weight charged.
- `truncate`: the normal response (weight charged) with a Content-Length larger than the
  body actually sent, then the connection is closed.
- `corrupt-archive`: an archive `.zip` whose bytes no longer match its CHECKSUM
  (applies only to zip downloads; on other requests the draw is no fault).

Stream faults (`ws-*`) share the spec but not the draw: one uniform per stream message
sent (`draw_ws`, from its own seeded generator), and their rates add up to at most 1
separately from the HTTP ones.
- `ws-drop`: the TCP connection is closed without a close frame.
- `ws-silent`: the connection stays open but sends nothing more (no data, no pings) and
  ignores what it receives, until the client gives up.
- `ws-dup`: the message is sent twice.
- `ws-delay`: the message and everything after it are held for `ws_delay_s`.
- `ws-reorder`: the message is sent after the next one.
- `ws-miss`: the message is never sent.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from kline_lake.errors import InputError

HTTP_KINDS = ("500", "503", "slow", "drop", "truncate", "corrupt-archive")
WS_KINDS = ("ws-drop", "ws-silent", "ws-dup", "ws-delay", "ws-reorder", "ws-miss")
KINDS = HTTP_KINDS + WS_KINDS


@dataclass(frozen=True)
class FaultSpec:
    """Fault probabilities by kind."""

    rates: tuple[tuple[str, float], ...] = ()

    @property
    def active(self) -> bool:
        return any(rate > 0 for kind, rate in self.rates if kind in HTTP_KINDS)

    @property
    def ws_active(self) -> bool:
        return any(rate > 0 for kind, rate in self.rates if kind in WS_KINDS)


def parse_faults(spec: str | None) -> FaultSpec:
    """Parse 'kind:rate,...'; InputError on unknown kinds or bad rates."""
    if not spec:
        return FaultSpec()
    rates: dict[str, float] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        kind, sep, rate_text = item.partition(":")
        if not sep or kind not in KINDS:
            raise InputError(f"bad fault {item!r}; expected kind:rate with kind in {', '.join(KINDS)}")
        try:
            rate = float(rate_text)
        except ValueError:
            raise InputError(f"bad fault rate {rate_text!r} for {kind}") from None
        if not 0.0 <= rate <= 1.0:
            raise InputError(f"fault rate for {kind} must be within [0, 1], got {rate}")
        rates[kind] = rate
    if sum(r for k, r in rates.items() if k in HTTP_KINDS) > 1.0 + 1e-9:
        raise InputError("fault rates add up to more than 1")
    if sum(r for k, r in rates.items() if k in WS_KINDS) > 1.0 + 1e-9:
        raise InputError("stream (ws-*) fault rates add up to more than 1")
    return FaultSpec(tuple(rates.items()))


class FaultInjector:
    """Draws the fault (or None) for each request (`draw`) and each stream message
    (`draw_ws`), deterministically from `seed`."""

    def __init__(self, spec: FaultSpec, seed: int) -> None:
        self.spec = spec
        self._rng = random.Random(f"faults:{seed}")
        self._ws_rng = random.Random(f"ws-faults:{seed}")
        self._lock = threading.Lock()

    def draw_ws(self) -> str | None:
        """The stream fault of the next message sent, or None."""
        if not self.spec.ws_active:
            return None
        with self._lock:
            u = self._ws_rng.random()
        acc = 0.0
        for kind, rate in self.spec.rates:
            if kind in WS_KINDS:
                acc += rate
                if u < acc:
                    return kind
        return None

    def draw(self, is_zip: bool) -> str | None:
        if not self.spec.active:
            return None
        with self._lock:
            u = self._rng.random()
        acc = 0.0
        for kind, rate in self.spec.rates:
            if kind not in HTTP_KINDS:
                continue
            acc += rate
            if u < acc:
                if kind == "corrupt-archive" and not is_zip:
                    return None
                return kind
        return None
