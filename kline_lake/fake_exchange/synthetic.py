"""Deterministic synthetic market data: one price/volume path per (seed, market, symbol).

The path is defined top-down on four levels -- day, hour, minute, second -- so any time
range is computed independently, lazily and vectorized (no history is replayed):

- The day level is a table for the symbol's whole life (an Ornstein-Uhlenbeck log-price
  around the symbol's base price; ~8k days, computed once per symbol).
- Each finer level *refines* its parent bar into 24 or 60 children with a Brownian bridge
  from the parent's open to its close, steered (a bump, zero at both ends) so that its
  volume-weighted price is the parent's, clipped to the parent's range, with the parent's
  high and low placed on one child each; volume, trades, taker volume and quote volumes
  are split *exactly* (integers) among the children by `splits`, which also widens a
  child's wicks where its share of the quote volume needs it. Seconds are flat (open =
  high = low = close: the price of the second's one aggregate trade), the minute's open on
  its first second, its close on its last, its high and low on interior seconds; each
  second is all taker buy or all taker sell (30 of each a minute). So the trades' prices,
  quantities and maker flags give every kline's open, high, low, close, volume, count,
  taker-buy volume, quote volume and taker-buy quote volume exactly (`splits` docstring:
  the invariant that makes the top-down split reach the seconds exactly).

So every bar is, by construction, the exact aggregate of its children (open = first,
high = max, low = min, close = last, sums of the integer volumes): a 1h kline equals the
resample of its 60 1m klines, a 1m kline the resample of its 60 1s klines, and a 1d
kline the bars of its trades -- yet a 1d kline is read from the day table, never from
its seconds. Randomness comes from a counter-based hash (splitmix64) keyed by (seed, market, symbol, level), so
the value of any bar depends only on its index, never on what was asked before.

Units: prices are integer ticks (`10**-price_decimals`), volumes integer units of
`10**-qty_decimals` (whole lots: `splits.Units`), quote volumes integer units of
`10**-quote_decimals`: sums are exact and formatting is exact. Every second carries at
least one trade and one lot per trade, so 1s klines are never empty and no trade is.

Aggregate trades: exactly one per data-bearing second, at that second's (only) price,
carrying the second's whole volume and trade count (first/last trade ids are contiguous
over the symbol's life), so aggTrade quantities and trade counts add up to kline volume
and trade counts exactly. Its `m` (buyer is maker) is true when the second is a taker
sell second (its taker-buy volume is 0). Agg ids count data-bearing seconds since listing.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass

import numpy as np

from kline_lake.fake_exchange import splits
from kline_lake.fake_exchange.splits import fix_total, partition
from kline_lake.fake_exchange.universe import SymbolSpec, segments_s, utc_ms

FIELDS = ("o", "h", "l", "c", "v", "t", "tb", "q", "tq")
SUM_FIELDS = ("v", "t", "tb", "q", "tq")
LEVEL_S = {"day": 86_400, "hour": 3_600, "minute": 60, "second": 1}
_PARENT = {"hour": ("day", 24), "minute": ("hour", 60), "second": ("minute", 60)}
HORIZON_S = utc_ms("2040-01-01 00:00") // 1000  # data exists until then at the latest
DAY_MINUTES = 1440
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


def refine(parent: Bars, parent_idx: np.ndarray, n: int, child_s: int, key: np.uint64,
           units: splits.Units) -> Bars:
    """Children bars (P, n) of parent bars (P,), consistent with them exactly."""
    rows = np.arange(len(parent_idx))
    ctr = parent_idx.astype(np.int64)[:, None] * n + np.arange(n)[None, :]
    O, H, L, C = (parent[f][:, None].astype(np.int64) for f in "ohlc")  # noqa: E741 (bar notation)
    k = np.arange(1, n + 1, dtype=np.float64)[None, :]
    walk = np.cumsum(normal(key, ctr, 0), axis=1)
    bridge = walk - (k / n) * walk[:, -1:]
    sigma = (H - L).astype(np.float64) * 0.45 / math.sqrt(n)
    drift = O + (C - O) * (k / n) + sigma * bridge
    side = _sides(parent, units)
    target = _vwap_price(units, side)
    w = np.exp(0.5 * normal(key, ctr, 3))
    count_w = w if units.inverse_a else w * np.exp(0.3 * normal(key, ctr, 4))  # cm: counts = lots
    if child_s == 1:  # flat seconds, one aggregate trade's price each (module docstring)
        c = _steer(drift, w, target, O, L, H, C, flat=True)
        c[:, 0] = O[:, 0]
        order = np.argsort(uniform(key, ctr, 6), axis=1)
        sec = splits.seconds(units, {**side, "l": parent["l"], "h": parent["h"]}, c, order, w, count_w)
        p, lots = sec["p"], sec["lots"]
        q = units.vp(p) * lots
        return _bars(p, p, p, p, np.where(sec["buy"], lots, 0), np.where(~sec["buy"], lots, 0),
                     np.where(sec["buy"], q, 0), np.where(~sec["buy"], q, 0), sec["t"], units)

    n_min = child_s // 60
    ratio = np.clip((parent["tb"] / parent["v"])[:, None] + 0.1 * normal(key, ctr, 5), 0.02, 0.98)
    base = splits.WMIN * n_min
    wb = base + partition(side["wb"] - base * n, w * ratio)
    ws = base + partition(side["ws"] - base * n, w * (1.0 - ratio))
    if units.inverse_a:  # COIN-M: every trade is one contract
        t = wb + ws
    else:  # at least one trade per second, at least one lot per trade
        t = fix_total(child_s + partition(side["t"] - n * child_s, count_w), side["t"], child_s, wb + ws)
    c = _steer(drift, wb + ws, target, O, L, H, C, flat=False)
    o = np.concatenate([O, c[:, :-1]], axis=1)
    wick = sigma * 0.6
    h = np.minimum(np.maximum(o, c) + np.rint(np.abs(normal(key, ctr, 1)) * wick).astype(np.int64), H)
    lo = np.maximum(np.minimum(o, c) - np.rint(np.abs(normal(key, ctr, 2)) * wick).astype(np.int64), L)
    h[rows, np.argmax(h, axis=1)] = H[:, 0]
    lo[rows, np.argmin(lo, axis=1)] = L[:, 0]
    a, b = units.extremes(parent["l"], parent["h"])
    own = units.extremes(lo, h)
    natural = units.vp((o + h + lo + c) // 4)
    xb = splits.split_values(side["xb"], wb, natural, own, (a, b), n_min)
    xs = splits.split_values(side["xs"], ws, natural, own, (a, b), n_min)
    lo, h = splits.widen(units, lo, h, L, H, [(wb, xb), (ws, xs)], n_min)
    return _bars(o, h, lo, c, wb, ws, xb, xs, t, units)


def _vwap_price(units: splits.Units, side: dict[str, np.ndarray]) -> np.ndarray:
    """(P, 1) the (tick) price whose value price is the bar's volume-weighted value."""
    w, x = side["wb"] + side["ws"], side["xb"] + side["xs"]
    if units.inverse_a:
        return (units.inverse_a * w.astype(np.float64) / x)[:, None]
    return (x / w)[:, None]


def _steer(drift: np.ndarray, weights: np.ndarray, target: np.ndarray, O: np.ndarray,  # noqa: E741, N803
           L: np.ndarray, H: np.ndarray, C: np.ndarray, flat: bool) -> np.ndarray:  # noqa: N803
    """Children's closes: the bridge `drift` plus a bump (zero at both ends) scaled so the
    `weights`-averaged price (mid of open and close; the close itself if `flat`) is the
    bar's volume-weighted price, clipped to [L, H], the last one = C. So the prices sit
    where the volume traded, and the exact value split (`splits`) only nudges."""
    n = drift.shape[1]
    bump = np.sin(np.pi * np.arange(1, n + 1) / n)[None, :]
    if flat:
        m0, mb = drift, bump
    else:
        m0 = (np.concatenate([O, drift[:, :-1]], axis=1) + drift) / 2
        mb = (np.concatenate([np.zeros((1, 1)), bump[:, :-1]], axis=1) + bump) / 2
    wsum = weights.sum(axis=1, keepdims=True)
    beta = (target * wsum - (weights * m0).sum(axis=1, keepdims=True)) / (weights * mb).sum(axis=1, keepdims=True)
    c = np.clip(np.rint(drift + beta * bump), L, H).astype(np.int64)
    c[:, -1] = C[:, 0]
    return c


def _sides(bars: Bars, units: splits.Units) -> dict[str, np.ndarray]:
    """A bar's two taker sides in the path's own units: lots (wb, ws), values (xb, xs)."""
    return {"wb": bars["tb"] // units.lot, "ws": (bars["v"] - bars["tb"]) // units.lot,
            "xb": bars["tq"] // units.qf, "xs": (bars["q"] - bars["tq"]) // units.qf, "t": bars["t"]}


def _bars(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray, wb: np.ndarray, ws: np.ndarray,
          xb: np.ndarray, xs: np.ndarray, t: np.ndarray, units: splits.Units) -> Bars:
    """Bars in kline units: volumes in quantity units, quote volumes in 10**-quote_decimals."""
    return {"o": o, "h": h, "l": lo, "c": c, "v": (wb + ws) * units.lot, "t": t, "tb": wb * units.lot,
            "q": (xb + xs) * units.qf, "tq": xb * units.qf}


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
        self.units = splits.Units.of(s)
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
        u = self.units
        scale = s.daily_volume * 10**s.qty_decimals / u.lot
        lots = np.maximum(np.rint(scale * np.exp(0.35 * normal(key, idx, 3))).astype(np.int64),
                          3 * splits.WMIN * DAY_MINUTES)
        side_min = splits.WMIN * DAY_MINUTES
        wb = np.clip(np.rint(lots * np.clip(0.5 + 0.04 * normal(key, idx, 5), 0.3, 0.7)).astype(np.int64),
                     side_min, lots - side_min)
        ws = lots - wb
        if u.inverse_a:  # COIN-M: one contract per trade
            t = lots
        else:  # at least one trade per second, at most one per lot
            t = np.minimum(86_400 + np.rint(s.daily_trades * np.exp(0.3 * normal(key, idx, 4))).astype(np.int64),
                           lots)
        a, b = u.extremes(lo, h)
        natural = u.vp((o + h + lo + c) // 4)
        xb = np.clip(wb * natural, *splits.side_bounds(a, b, wb, DAY_MINUTES))
        xs = np.clip(ws * natural, *splits.side_bounds(a, b, ws, DAY_MINUTES))
        return _bars(o, h, lo, c, wb, ws, xb, xs, t, u)

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
        children = refine(pbars, parents, n, LEVEL_S[name], self.keys[name], self.units)
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
