"""Exact top-down splits of volume, trade count, taker side and quote volume. Pure.

The synthetic path (`synthetic`) is refined day -> hour -> minute -> second. This module
splits a bar's volume, trade count, taker-buy volume and quote volumes among its
children so that the seconds, whose trades carry the prices, quantities and maker flags,
sum to every parent *exactly* in all of them: a kline's quote volume and taker-buy
columns are the decimal sums of its trades' printed values, at every interval, yet no
coarse kline ever looks at its seconds (a whole-life 1d request reads the day table).

Units (`Units`): volumes are counted in lots (`lot` quantity units; spot BTCUSDT's lot is
1e-6 BTC, so that price * quantity of a trade lies on the 1e-8 quote grid), values in
integers that are 1 lot at one "value price" `vp(p)`:
- linear markets (spot, USD-M): vp(p) = p in ticks, and a quote unit of the kline is
  `qf` values (1 unless the product grid is coarser than the printed quote grid);
- COIN-M: every trade is one contract, and its base quantity, printed with 8 decimals
  (`rest.trade_quote_strings`: contract size / price), is vp(p) = round(A / p) units of
  1e-8 with A = contract size * 10**(8 + price decimals). The kline's base-asset volume
  (https://developers.binance.com/docs/derivatives/coin-margined-futures/market-data/rest-api/Kline-Candlestick-Data)
  is the sum over its trades. With the fake's cm ticks A < p**2, so neighbouring ticks
  differ by at most one unit: every integer between vp(high) and vp(low) is some
  price's value (checked; a price below that floor is a ValueError).

Each bar holds two sides, taker buy (volume W_b = tb, value X_b = tq) and taker sell
(W_s = v - tb, X_s = q - tq). With n = the minutes a bar spans, a = min(vp(low),
vp(high)), b = max(...), each side satisfies the invariant

    W >= WMIN * n   and   a * W + MARGIN * n * (b - a) <= X <= b * W - MARGIN * n * (b - a)

(the day table is built so). A parent splits each side's X among its children
(`split_values`): every child starts at its natural value (its lots at its typical
price; the parent's price path is already steered so those add up to nearly X:
`synthetic._steer`) and takes a share of the rest in proportion to its room inside its
own interval; only when the children's own intervals cannot hold X is it split inside
the widest intervals (the parent's a, b), and those children widen their wicks (high
up, low down, never past the parent's) as little as makes their X fit (`widen`; the
parent's whole range always does). All sums are exact (`fix_total`).

A minute is split into 60 flat seconds exactly (`seconds`): 30 buy and 30 sell seconds;
per side, one second at each extreme price absorbs the volume the 26 ordinary ones leave
(`u` lots at the high-value price), and two one-lot "tuning" seconds sit at prices whose
values make up the remainder (every integer in [2a, 2b] is the sum of two values). The
ordinary seconds get as much of the volume as still leaves the pair a solution (a few
shares tried, largest first); with one lot each, and their prices kept inside a window
that depends on X (`_steady`), a solution always exists -- that, with the open and
close seconds' fixed prices, is what MARGIN = 3 pays for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WMIN = 64  # lots per side per minute, at least
MARGIN = 3  # value slack per side per minute, in (b - a) units (`seconds`)
SIDE = 30  # seconds per side per minute
_ALPHAS = (0.85, 0.6, 0.35, 0.15, 0.05, 0.0)  # share of a side's volume on its ordinary seconds


@dataclass(frozen=True)
class Units:
    """How a symbol's path counts volume (lots) and value (see the module docstring)."""

    lot: int  # quantity units per lot
    qf: int  # quote units (10**-quote_decimals) per value unit
    inverse_a: int  # COIN-M: contract size * 10**(8 + price decimals); 0 if linear
    contract_size: int = 0
    price_decimals: int = 0

    @classmethod
    def of(cls, spec) -> Units:
        if spec.contract_size:
            return cls(1, 1, spec.contract_size * 10 ** (8 + spec.price_decimals),
                       spec.contract_size, spec.price_decimals)
        e = spec.price_decimals + spec.qty_decimals - spec.quote_decimals
        return cls(10 ** max(0, e), 10 ** max(0, -e), 0)

    def vp(self, price: np.ndarray) -> np.ndarray:
        """Value price of each (tick) price: the value of one lot traded there."""
        p = np.asarray(price, dtype=np.int64)
        if not self.inverse_a:
            return p
        a = self.inverse_a
        out = (2 * a + p) // (2 * p)  # round half up of A / p
        half = 2 * (a % p) == p  # exact halves: the printed text decides (float formatting)
        if half.any():
            flat, where = out.reshape(-1), np.flatnonzero(half.reshape(-1))
            pf = p.reshape(-1)
            for i in where:
                text = f"{self.contract_size / (int(pf[i]) / 10**self.price_decimals):.8f}"
                flat[i] = int(text.replace(".", ""))
        return out

    def extremes(self, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(a, b): the lowest and highest value price inside [low, high]."""
        if not self.inverse_a:
            return np.asarray(low, dtype=np.int64), np.asarray(high, dtype=np.int64)
        return self.vp(high), self.vp(low)

    def price_at_most(self, value: np.ndarray) -> np.ndarray:
        """A price whose value price is <= value (linear: the price; COIN-M: the
        lowest such price)."""
        v = np.asarray(value, dtype=np.int64)
        if not self.inverse_a:
            return v
        return 2 * self.inverse_a // (2 * v + 1) + 1

    def price_at_least(self, value: np.ndarray) -> np.ndarray:
        """A price whose value price is >= value (COIN-M: the highest such price)."""
        v = np.asarray(value, dtype=np.int64)
        if not self.inverse_a:
            return v
        return 2 * self.inverse_a // np.maximum(2 * v - 1, 1)


def fix_total(parts: np.ndarray, total: np.ndarray, lo: np.ndarray | int, hi: np.ndarray | int) -> np.ndarray:
    """Adjust integer `parts` (P, n) by whole units so each row sums to `total` (P,),
    keeping lo <= parts <= hi. Requires sum(lo) <= total <= sum(hi) per row."""
    lo_b = np.broadcast_to(lo, parts.shape)
    hi_b = np.broadcast_to(hi, parts.shape)
    parts = np.clip(parts, lo_b, hi_b)
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
    short = total - raw.sum(axis=1)
    if ((short >= 0) & (short <= raw.shape[1])).all():  # the usual case: one unit more each
        return raw + (np.arange(raw.shape[1])[None, :] < short[:, None])  # to the first parts
    return fix_total(raw, total, 0, np.iinfo(np.int64).max // 4)


def side_bounds(a: np.ndarray, b: np.ndarray, w: np.ndarray, n_min: int | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The invariant's interval [lo, hi] of a side's value (module docstring)."""
    slack = MARGIN * n_min * (b - a)
    return a * w + slack, b * w - slack


def split_values(x: np.ndarray, w: np.ndarray, natural: np.ndarray, own: tuple[np.ndarray, np.ndarray],
                 widest: tuple[np.ndarray, np.ndarray], n_min: int) -> np.ndarray:
    """Split each parent's side value x (P,) among children of side volumes w (P, n),
    summing exactly: each child at its `natural` value price, moved within its `own`
    range's interval (children's (a, b)) towards the parent's total, in proportion to
    its room; a parent whose children's own intervals cannot hold x is split inside the
    `widest` intervals (the parent's (a, b)), and `widen` then widens the children."""
    lo_max, hi_max = side_bounds(widest[0][:, None], widest[1][:, None], w, n_min)
    lo_own, hi_own = side_bounds(own[0], own[1], w, n_min)
    # inside the widest interval too, so that widening a child for its other side (up to
    # the parent's whole range) keeps this side valid
    lo_own, hi_own = np.maximum(lo_own, lo_max), np.minimum(hi_own, hi_max)
    valid = (lo_own <= hi_own).all(axis=1)
    hi_own = np.maximum(hi_own, lo_own)
    nat = np.clip(w * natural, lo_own, hi_own)
    rest = x - nat.sum(axis=1)
    room = np.where(rest[:, None] > 0, hi_own - nat, nat - lo_own)
    total_room = room.sum(axis=1)
    fits = (valid & (np.abs(rest) <= total_room))[:, None]
    shift = np.floor(np.abs(rest)[:, None].astype(np.float64) * room / np.maximum(total_room, 1)[:, None])
    raw_own = nat + np.sign(rest)[:, None] * np.minimum(shift.astype(np.int64), room)
    if fits.all():
        return fix_total(raw_own, x, lo_own, hi_own)
    raw_max = partition(x, w.astype(np.float64) * natural.astype(np.float64))
    return fix_total(np.where(fits, raw_own, raw_max), x, np.where(fits, lo_own, lo_max),
                     np.where(fits, hi_own, hi_max))


def widen(units: Units, low: np.ndarray, high: np.ndarray, parent_low: np.ndarray, parent_high: np.ndarray,
          sides: list[tuple[np.ndarray, np.ndarray]], n_min: int) -> tuple[np.ndarray, np.ndarray]:
    """Children's (low, high) widened, within the parent's, as little as makes every
    side (w, x) of each child satisfy the invariant with the child's own range."""
    pa, pb = units.extremes(parent_low, parent_high)
    m = MARGIN * n_min

    def ok(lo_p: np.ndarray, hi_p: np.ndarray) -> np.ndarray:
        a, b = units.extremes(lo_p, hi_p)
        good = np.ones(low.shape, dtype=bool)
        for w, x in sides:
            lo_x, hi_x = side_bounds(a, b, w, n_min)
            good &= (lo_x <= x) & (x <= hi_x)
        return good

    for _ in range(6):
        good = ok(low, high)
        if good.all():
            return low, high
        a, b = units.extremes(low, high)
        need_a = np.minimum.reduce([(x - m * b) // (w - m) for w, x in sides])
        a = np.clip(np.minimum(a, need_a), pa, None)
        need_b = np.maximum.reduce([-((m * a - x) // (w - m)) for w, x in sides])
        b = np.clip(np.maximum(b, need_b), None, pb)
        if units.inverse_a:  # the low value is the high price, and the reverse
            new_high, new_low = units.price_at_most(a), units.price_at_least(b)
        else:
            new_low, new_high = a, b
        new_low = np.clip(np.minimum(low, new_low), parent_low, None)
        new_high = np.clip(np.maximum(high, new_high), None, parent_high)
        low, high = np.where(good, low, new_low), np.where(good, high, new_high)
    bad = ~ok(low, high)  # the parent's whole range always satisfies the invariant
    low, high = np.where(bad, parent_low, low), np.where(bad, parent_high, high)
    if not ok(low, high).all():
        raise ValueError("synthetic path: a child's value outside its parent's range")
    return low, high


def _interior_first(secs: np.ndarray) -> np.ndarray:
    edge = (secs == 0) | (secs == 59)
    return np.take_along_axis(secs, np.argsort(edge, axis=1, kind="stable"), axis=1)


def seconds(units: Units, minute: dict[str, np.ndarray], path: np.ndarray, order: np.ndarray,
            weights: np.ndarray, count_weights: np.ndarray) -> dict[str, np.ndarray]:
    """Flat seconds (P, 60) of minute bars that satisfy the invariant: price, lots,
    trades and buy flag per second, their sums the minute's exactly.

    `path` (P, 60) holds prices inside [low, high] (first = open, last = close), `order`
    (P, 60) a random permutation of the seconds (the first 30 are the buy seconds),
    `weights`/`count_weights` (P, 60) positive activity weights."""
    rows = np.arange(len(path))[:, None]
    low, high = minute["l"][:, None], minute["h"][:, None]
    if units.inverse_a and (low * (low + 1) <= units.inverse_a).any():
        raise ValueError("synthetic COIN-M price below the tick floor (contract size / price "
                         "would skip 1e-8 steps between ticks)")
    a, b = units.extremes(low[:, 0], high[:, 0])
    a, b = a[:, None], b[:, None]
    d = b - a
    price = path.copy()
    lots = np.zeros(path.shape, dtype=np.int64)
    buy = np.zeros(path.shape, dtype=bool)
    lo_price, hi_price = (high, low) if units.inverse_a else (low, high)
    sides = ((order[:, :SIDE], minute["wb"], minute["xb"], True),
             (order[:, SIDE:], minute["ws"], minute["xs"], False))
    for secs, w, x, is_buy in sides:
        secs = _interior_first(secs)
        s_hi, s_lo, f1, f2, others = secs[:, :1], secs[:, 1:2], secs[:, 2:3], secs[:, 3:4], secs[:, 4:]
        buy[rows, secs] = is_buy
        price[rows, s_hi], price[rows, s_lo] = hi_price, lo_price
        w, x = w[:, None], x[:, None]
        price[rows, others] = _steady(units, price[rows, others], others, w, x, a, b, low, high)
        value_o = units.vp(price[rows, others])
        w_o = weights[rows, others]
        done = np.zeros((len(path), 1), dtype=bool)
        vo_pick = np.ones(others.shape, dtype=np.int64)
        u_pick = np.zeros((len(path), 1), dtype=np.int64)
        e_pick = np.zeros((len(path), 1), dtype=np.int64)
        share = w_o / w_o.sum(axis=1, keepdims=True)
        for alpha in _ALPHAS:  # the pair takes what the ordinary seconds leave: no exact sum
            extra = np.maximum(np.floor(alpha * (w - (others.shape[1] + 4))), 0)
            vo = 1 + np.floor(extra * share).astype(np.int64)
            wp = w - 2 - vo.sum(axis=1, keepdims=True)
            y = x - (vo * value_o).sum(axis=1, keepdims=True) - a * wp
            u = np.where(d > 0, np.clip((y - 2 * a) // np.maximum(d, 1), 1, wp - 1), wp // 2)
            e = y - d * u
            good = (e >= 2 * a) & (e <= 2 * b) & (wp >= 2) & ~done
            vo_pick = np.where(good, vo, vo_pick)
            u_pick, e_pick = np.where(good, u, u_pick), np.where(good, e, e_pick)
            done |= good
            if done.all():
                break
        if not done.all():
            raise ValueError("synthetic path: a minute's side value cannot be split into seconds")
        wp = w - 2 - vo_pick.sum(axis=1, keepdims=True)
        lots[rows, others], lots[rows, s_hi], lots[rows, s_lo] = vo_pick, u_pick, wp - u_pick
        lots[rows, f1], lots[rows, f2] = 1, 1
        e1 = np.clip(e_pick - a, a, b)
        for sec, val in ((f1, e1), (f2, e_pick - e1)):
            price[rows, sec] = _price_of_value(units, val, low, high)
    if units.inverse_a:
        trades = lots
    else:
        total = minute["t"]
        raw = 1 + partition(total - path.shape[1], count_weights)
        trades = fix_total(raw, total, 1, lots)
    return {"p": price, "lots": lots, "t": trades, "buy": buy}


def _steady(units: Units, prices: np.ndarray, secs: np.ndarray, w: np.ndarray, x: np.ndarray,
            a: np.ndarray, b: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A side's ordinary seconds' prices, clipped so that with one lot each they leave
    the absorbing pair a feasible remainder: sum(vp - a) <= x - a*w - d and sum(b - vp)
    <= b*w - x - d (d = b - a). The first and last seconds (open, close) keep their
    prices and count against those budgets; with the invariant's margin of 3d the free
    seconds' value window [lo, hi] is never empty (w >= WMIN)."""
    d = b - a
    fixed = (secs == 0) | (secs == 59)
    vals = units.vp(prices)
    n_free = np.maximum((~fixed).sum(axis=1, keepdims=True), 1)
    up = x - a * w - d - np.where(fixed, vals - a, 0).sum(axis=1, keepdims=True)
    down = b * w - x - d - np.where(fixed, b - vals, 0).sum(axis=1, keepdims=True)
    hi_v, lo_v = a + up // n_free, b - down // n_free
    if units.inverse_a:  # value falls as the price rises
        lo_p, hi_p = units.price_at_most(hi_v), units.price_at_least(lo_v)
    else:
        lo_p, hi_p = lo_v, hi_v
    clipped = np.clip(np.clip(prices, lo_p, hi_p), low, high)
    return np.where(fixed, prices, clipped)


def _price_of_value(units: Units, value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A price in [low, high] whose value price is exactly `value` (which lies between
    the extremes' values)."""
    if not units.inverse_a:
        return value
    p = np.clip(units.price_at_most(value), low, high)
    for _ in range(4):  # exact halves (printed text) may move a value by one: step to it
        got = units.vp(p)
        if (got == value).all():
            return p
        p = np.clip(np.where(got > value, p + 1, np.where(got < value, p - 1, p)), low, high)
    raise ValueError("synthetic COIN-M: no price has the tuning value")
