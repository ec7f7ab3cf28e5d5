"""Deterministic synthetic market data: one price/volume path per (seed, market, symbol).

The path is defined top-down on four levels -- day, hour, minute, second -- so any time
range is computed independently, lazily and vectorized (no history is replayed):

- The day level is a table for the symbol's whole life (an Ornstein-Uhlenbeck log-price
  around the symbol's base price; ~8k days, computed once per symbol).
- Each finer level *refines* its parent bar into 24 or 60 children with a Brownian bridge
  from the parent's open to its close, clipped to the parent's range, with the parent's
  high and low placed on one child each; volume, trades, taker volume and quote volumes
  are partitioned *exactly* (integers) among the children. Seconds are flat (open = high
  = low = close: the price of the second's one aggregate trade), the minute's open on its
  first second, its close on its last, its high and low on interior seconds, so the
  trades' prices give every kline's open, high, low and close exactly.

So every bar is, by construction, the exact aggregate of its children (open = first,
high = max, low = min, close = last, sums of the integer volumes): a 1h kline equals the
resample of its 60 1m klines, a 1m kline the resample of its 60 1s klines. Randomness
comes from a counter-based hash (splitmix64) keyed by (seed, market, symbol, level), so
the value of any bar depends only on its index, never on what was asked before.

Units: prices are integer ticks (`10**-price_decimals`), volumes integer units of
`10**-qty_decimals`, quote volumes integer units of `10**-quote_decimals`: sums are exact
and formatting is exact. Every second carries at least one trade and one volume unit,
so 1s klines are never empty.

Aggregate trades: exactly one per data-bearing second, at that second's (only) price,
carrying the second's whole volume and trade count (first/last trade ids are contiguous
over the symbol's life), so aggTrade quantities and trade counts add up to kline volume
and trade counts exactly. Its `m` (buyer is maker) is true when the second's taker-buy
volume is under half its volume. Agg ids count data-bearing seconds since listing.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass

import numpy as np

from kline_lake.fake_exchange.universe import SymbolSpec, segments_s, utc_ms

FIELDS = ("o", "h", "l", "c", "v", "t", "tb", "q", "tq")
SUM_FIELDS = ("v", "t", "tb", "q", "tq")
LEVEL_S = {"day": 86_400, "hour": 3_600, "minute": 60, "second": 1}
_PARENT = {"hour": ("day", 24), "minute": ("hour", 60), "second": ("minute", 60)}
HORIZON_S = utc_ms("2040-01-01 00:00") // 1000  # data exists until then at the latest
PATH_EPOCH_DAY = utc_ms("2017-01-01 00:00") // 86_400_000  # every day table starts here

Bars = dict[str, np.ndarray]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array (wrapping arithmetic)."""
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stable_key(*parts: object) -> np.uint64:
    """A 64-bit key from the parts' text, stable across processes and platforms."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _hash(key: np.uint64, counter: np.ndarray, stream: int) -> np.ndarray:
    ctr = np.asarray(counter, dtype=np.int64).astype(np.uint64)
    salt = np.uint64((int(key) + stream * 0xD1B54A32D192ED03) % 2**64)
    return _mix(ctr * _GOLDEN + salt)


def uniform(key: np.uint64, counter: np.ndarray, stream: int) -> np.ndarray:
    """Uniform floats in (0, 1), a pure function of (key, counter, stream)."""
    h = _hash(key, counter, stream)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 2**53)


def normal(key: np.uint64, counter: np.ndarray, stream: int) -> np.ndarray:
    """Standard normals (Box-Muller on the two 32-bit halves of one hash), a pure
    function of (key, counter, stream)."""
    h = _hash(key, counter, stream + 1000)
    u1 = ((h >> np.uint64(32)).astype(np.float64) + 0.5) * (1.0 / 2**32)
    u2 = (h & np.uint64(0xFFFFFFFF)).astype(np.float64) * (1.0 / 2**32)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def fix_total(parts: np.ndarray, total: np.ndarray, lo: np.ndarray | int, hi: np.ndarray | int) -> np.ndarray:
    """Adjust integer `parts` (P, n) by whole units so each row sums to `total` (P,),
    keeping lo <= parts <= hi. Requires sum(lo) <= total <= sum(hi) per row."""
    parts = parts.copy()
    lo_b = np.broadcast_to(lo, parts.shape)
    hi_b = np.broadcast_to(hi, parts.shape)
    for _ in range(10_000):
        diff = total - parts.sum(axis=1)
        if not diff.any():
            return parts
        need = np.abs(diff)
        room = np.where((diff > 0)[:, None], hi_b - parts, parts - lo_b)
        movable = np.maximum((room > 0).sum(axis=1), 1)
        step = np.minimum(room, (-(-need // movable))[:, None])
        over = np.maximum(np.cumsum(step, axis=1) - need[:, None], 0)
        step = np.clip(step - over, 0, None)
        if not step.any():
            raise ValueError("fix_total: target outside the bounds")
        parts += np.sign(diff)[:, None] * step
    raise ValueError("fix_total did not converge")


def partition(total: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Split non-negative integer totals (P,) into (P, n) non-negative integer parts
    proportional to `weights`, summing exactly."""
    frac = weights / weights.sum(axis=1, keepdims=True)
    raw = np.floor(total[:, None].astype(np.float64) * frac).astype(np.int64)
    raw = np.maximum(raw, 0)
    return fix_total(raw, total, 0, np.iinfo(np.int64).max // 4)


def split_capped(total: np.ndarray, cap: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Parts in [0, cap] near `cap * ratio`, summing exactly to `total` (<= cap.sum())."""
    raw = np.clip(np.floor(cap * ratio), 0, cap).astype(np.int64)
    return fix_total(raw, total, 0, cap)


def _flat_seconds(O: np.ndarray, H: np.ndarray, L: np.ndarray, C: np.ndarray,  # noqa: E741, N803
                  path: np.ndarray) -> np.ndarray:
    """Prices (P, 60) of flat seconds: the parent's open first, its close last, the bridge
    `path` between, and the parent's high and low each placed on an interior second when
    the path misses them (on two different seconds, the low after the high, so placing
    one never removes the other)."""
    p = path.copy()
    p[:, 0], p[:, -1] = O[:, 0], C[:, 0]
    rows = np.arange(len(p))
    inner = p.shape[1] - 2
    j_hi = 1 + np.argmax(p[:, 1:-1], axis=1)
    j_lo = 1 + np.argmin(p[:, 1:-1], axis=1)
    j_lo = np.where(j_lo == j_hi, j_hi % inner + 1, j_lo)
    need = p.max(axis=1) < H[:, 0]
    p[rows[need], j_hi[need]] = H[need, 0]
    need = p.min(axis=1) > L[:, 0]
    p[rows[need], j_lo[need]] = L[need, 0]
    return p


def refine(parent: Bars, parent_idx: np.ndarray, n: int, child_s: int, key: np.uint64) -> Bars:
    """Children bars (P, n) of parent bars (P,), consistent with them exactly."""
    rows = np.arange(len(parent_idx))
    ctr = parent_idx.astype(np.int64)[:, None] * n + np.arange(n)[None, :]
    O, H, L, C = (parent[f][:, None].astype(np.int64) for f in "ohlc")  # noqa: E741 (bar notation)
    k = np.arange(1, n + 1, dtype=np.float64)[None, :]
    walk = np.cumsum(normal(key, ctr, 0), axis=1)
    bridge = walk - (k / n) * walk[:, -1:]
    sigma = (H - L).astype(np.float64) * 0.45 / math.sqrt(n)
    c = np.clip(np.rint(O + (C - O) * (k / n) + sigma * bridge), L, H).astype(np.int64)
    c[:, -1] = C[:, 0]
    if child_s == 1:  # seconds: flat, one aggregate trade's price each (module docstring)
        o = h = lo = c = _flat_seconds(O, H, L, C, c)
    else:
        o = np.concatenate([O, c[:, :-1]], axis=1)
        wick = sigma * 0.6
        h = np.minimum(np.maximum(o, c) + np.rint(np.abs(normal(key, ctr, 1)) * wick).astype(np.int64), H)
        lo = np.maximum(np.minimum(o, c) - np.rint(np.abs(normal(key, ctr, 2)) * wick).astype(np.int64), L)
        h[rows, np.argmax(h, axis=1)] = H[:, 0]
        lo[rows, np.argmin(lo, axis=1)] = L[:, 0]

    w = np.exp(0.5 * normal(key, ctr, 3))
    v = child_s + partition(parent["v"] - n * child_s, w)
    t = child_s + partition(parent["t"] - n * child_s, w * np.exp(0.3 * normal(key, ctr, 4)))
    ratio = np.clip((parent["tb"] / parent["v"])[:, None] + 0.1 * normal(key, ctr, 5), 0.02, 0.98)
    tb = split_capped(parent["tb"], v, ratio)
    q = partition(parent["q"], v * (o + h + lo + c).astype(np.float64))
    tq = split_capped(parent["tq"], q, tb / v)
    return {"o": o, "h": h, "l": lo, "c": c, "v": v, "t": t, "tb": tb, "q": q, "tq": tq}


def combine(bars: Bars) -> dict[str, int]:
    """Aggregate consecutive bars (in time order) into one."""
    out = {"o": int(bars["o"][0]), "h": int(bars["h"].max()), "l": int(bars["l"].min()),
           "c": int(bars["c"][-1])}
    out.update({f: int(bars[f].sum()) for f in SUM_FIELDS})
    return out


def reduce_bars(bars: Bars, starts: np.ndarray) -> Bars:
    """Aggregate runs of bars beginning at `starts` (sorted offsets, first is 0)."""
    ends = np.append(starts[1:], len(bars["o"])) - 1
    out = {"o": bars["o"][starts], "c": bars["c"][ends],
           "h": np.maximum.reduceat(bars["h"], starts), "l": np.minimum.reduceat(bars["l"], starts)}
    out.update({f: np.add.reduceat(bars[f], starts) for f in SUM_FIELDS})
    return out


def decompose(a_s: int, b_s: int) -> list[tuple[str, int, int]]:
    """Cover [a_s, b_s) with runs (level, first index, count) of whole bars, coarsest first."""
    order = ("day", "hour", "minute", "second")
    out = []
    cur = a_s
    while cur < b_s:
        for i, name in enumerate(order):
            size = LEVEL_S[name]
            if cur % size == 0 and cur + size <= b_s:
                stop = b_s
                if i > 0:
                    larger = LEVEL_S[order[i - 1]]
                    stop = min(b_s, -(-cur // larger) * larger) if cur % larger else b_s
                count = (stop - cur) // size
                out.append((name, cur // size, count))
                cur += count * size
                break
    return out


@dataclass
class SymbolPath:
    """The synthetic path of one symbol. Thread-safe: only immutable state after init."""

    spec: SymbolSpec
    seed: int

    def __post_init__(self) -> None:
        s = self.spec
        # Price/volume randomness is keyed by the base asset, not the market, so BTCUSDT
        # spot, the USD-M perpetual and BTCUSD_PERP move together (as the real ones do, up
        # to their tick grids); trade times and funding noise are per market and symbol.
        self.keys = {lvl: stable_key(self.seed, "asset", s.base_asset, lvl) for lvl in LEVEL_S}
        self.keys.update({k: stable_key(self.seed, s.market, s.symbol, k) for k in ("trade", "funding")})
        end_s = min(s.delisted_ms // 1000 if s.delisted_ms else HORIZON_S, HORIZON_S)
        self.first_day = min(PATH_EPOCH_DAY, s.listed_ms // 86_400_000)
        self.last_day = (end_s - 1) // 86_400  # inclusive
        self.days = self._day_table(self.last_day - self.first_day + 1)

    def _day_table(self, n_days: int) -> Bars:
        s, key = self.spec, self.keys["day"]
        idx = np.arange(n_days + 1)
        shocks = normal(key, idx, 0)
        x = np.empty(n_days + 1)
        x[0] = 0.0
        for i in range(n_days):  # OU log-price: mean-reverting around the base price
            x[i + 1] = 0.996 * x[i] + 0.032 * shocks[i]
        tick = 10 ** s.price_decimals
        anchor = np.maximum(np.rint(s.base_price * np.exp(x) * tick), 10).astype(np.int64)
        o, c = anchor[:-1], anchor[1:]
        idx = idx[:-1]
        h = np.rint(np.maximum(o, c) * (1.002 + 0.012 * np.abs(normal(key, idx, 1)))).astype(np.int64)
        lo = np.maximum(np.rint(np.minimum(o, c) * (0.998 - 0.012 * np.abs(normal(key, idx, 2)))), 1).astype(np.int64)
        v = np.rint(s.daily_volume * 10**s.qty_decimals * np.exp(0.35 * normal(key, idx, 3))).astype(np.int64)
        v = np.maximum(v, 3 * 86_400)
        t = 86_400 + np.rint(s.daily_trades * np.exp(0.3 * normal(key, idx, 4))).astype(np.int64)
        tb = np.rint(v * np.clip(0.5 + 0.04 * normal(key, idx, 5), 0.3, 0.7)).astype(np.int64)
        typical = (o + h + lo + c) / 4.0
        q = np.rint(self._quote(v, typical)).astype(np.int64)
        tq = np.rint(q * (tb / v)).astype(np.int64)
        return {"o": o, "h": h, "l": lo, "c": c, "v": v, "t": t, "tb": tb, "q": q, "tq": tq}

    def _quote(self, v: np.ndarray, price_ticks: np.ndarray) -> np.ndarray:
        s = self.spec
        if s.contract_size:  # COIN-M: base-asset volume = contracts * size / price
            return v * s.contract_size / (price_ticks / 10**s.price_decimals) * 10**s.quote_decimals
        return v * price_ticks * 10.0 ** (s.quote_decimals - s.qty_decimals - s.price_decimals)

    def level(self, name: str, idx: np.ndarray) -> Bars:
        """Bars of level `name` at absolute indices `idx` (e.g. epoch minute numbers),
        ignoring gaps (callers select data-bearing time)."""
        idx = np.asarray(idx, dtype=np.int64)
        if name == "day":
            rel = idx - self.first_day
            if len(rel) and (rel.min() < 0 or rel.max() >= len(self.days["o"])):
                raise ValueError(f"day index outside {self.spec.symbol}'s life")
            return {f: self.days[f][rel] for f in FIELDS}
        parent_name, n = _PARENT[name]
        parents, pos = np.unique(idx // n, return_inverse=True)
        pbars = self.level(parent_name, parents)
        children = refine(pbars, parents, n, LEVEL_S[name], self.keys[name])
        return {f: children[f][pos, idx % n] for f in FIELDS}

    def run(self, name: str, first: int, count: int) -> Bars:
        return self.level(name, np.arange(first, first + count, dtype=np.int64))

    def range_bars(self, a_s: int, b_s: int) -> Bars:
        """The covering bars of [a_s, b_s), in time order, concatenated."""
        parts = [self.run(name, first, count) for name, first, count in decompose(a_s, b_s)]
        return {f: np.concatenate([p[f] for p in parts]) for f in FIELDS}

    def aggregate(self, ranges: list[tuple[int, int]]) -> dict[str, int] | None:
        """One bar aggregating the data in the given sorted disjoint [a_s, b_s) ranges."""
        parts = [self.range_bars(a, b) for a, b in ranges if a < b]
        if not parts:
            return None
        return combine({f: np.concatenate([p[f] for p in parts]) for f in FIELDS})

    def segments(self, now_s: int | None) -> list[tuple[int, int]]:
        """Data-bearing [start_s, end_s) of this symbol up to now (inclusive second)."""
        horizon = HORIZON_S if now_s is None else min(HORIZON_S, now_s + 1)
        return segments_s(self.spec, horizon)

    def trade_offset_ms(self, secs: np.ndarray) -> np.ndarray:
        """Millisecond offset of each second's aggregate trade within its second."""
        return np.floor(uniform(self.keys["trade"], secs, 0) * 1000).astype(np.int64)


class Synthetic:
    """All synthetic symbol paths for one seed, built lazily (thread-safe)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._paths: dict[tuple[str, str], SymbolPath] = {}
        self._lock = threading.Lock()

    def path(self, spec: SymbolSpec) -> SymbolPath:
        key = (spec.market, spec.symbol)
        with self._lock:
            p = self._paths.get(key)
            if p is None:
                p = SymbolPath(spec, self.seed)
                self._paths[key] = p
            return p
