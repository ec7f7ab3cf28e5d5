"""The exact top-down splits (`fake_exchange.splits`), property-tested on random bars
that satisfy the invariant: a minute's flat seconds sum to it exactly in every column
(lots, trade count, taker side, value), keep its open, high, low and close, and carry
at least one lot per trade; a parent's side values split among its children sum exactly
and every child satisfies the invariant with its own (widened) range. Linear (spot,
USD-M) and COIN-M (value = round(A / price)) units both."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake.fake_exchange import splits
from kline_lake.fake_exchange.universe import get_symbol

UNITS = {"linear": splits.Units.of(get_symbol("spot", "BTCUSDT")),
         "srm": splits.Units.of(get_symbol("um", "SRMUSDT")),
         "cm": splits.Units.of(get_symbol("cm", "BTCUSD_PERP"))}


def _minute(draw, units: splits.Units) -> dict[str, np.ndarray]:
    low = draw(st.integers(20_000_000, 40_000_000)) if units.inverse_a else draw(st.integers(10, 5_000_000))
    high = low + draw(st.sampled_from([0, 1, 2, 3, 7, 50, 4_000]))
    o, c = draw(st.integers(low, high)), draw(st.integers(low, high))
    a, b = units.extremes(np.array([low]), np.array([high]))
    bar = {"o": o, "h": high, "l": low, "c": c}
    for side in "bs":
        w = draw(st.integers(splits.WMIN, 50_000))
        lo, hi = splits.side_bounds(a, b, np.array([w]), 1)
        bar["w" + side] = w
        bar["x" + side] = draw(st.integers(int(lo[0]), int(hi[0])))
    lots = bar["wb"] + bar["ws"]
    bar["t"] = lots if units.inverse_a else draw(st.integers(60, lots))
    return {k: np.array([v], dtype=np.int64) for k, v in bar.items()}


@settings(max_examples=200, deadline=None)
@given(st.data(), st.sampled_from(sorted(UNITS)))
def test_seconds_sum_to_the_minute_exactly(data, kind: str) -> None:
    units = UNITS[kind]
    m = _minute(data.draw, units)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    path = rng.integers(m["l"][0], m["h"][0] + 1, size=(1, 60))
    path[0, 0], path[0, -1] = m["o"][0], m["c"][0]
    order = rng.permutation(60)[None, :]
    weights = np.exp(rng.normal(0, 0.5, size=(1, 60)))
    sec = splits.seconds(units, m, path, order, weights, weights * np.exp(rng.normal(0, 0.3, (1, 60))))
    p, lots, t, buy = sec["p"][0], sec["lots"][0], sec["t"][0], sec["buy"][0]
    value = units.vp(p) * lots
    assert buy.sum() == 30
    assert lots[buy].sum() == m["wb"][0] and lots[~buy].sum() == m["ws"][0]
    assert value[buy].sum() == m["xb"][0] and value[~buy].sum() == m["xs"][0]
    assert t.sum() == m["t"][0] and (t >= 1).all() and (t <= lots).all()
    assert p[0] == m["o"][0] and p[-1] == m["c"][0]
    assert p.max() == m["h"][0] and p.min() == m["l"][0]


@settings(max_examples=100, deadline=None)
@given(st.data(), st.sampled_from(sorted(UNITS)))
def test_children_sum_exactly_and_keep_the_invariant(data, kind: str) -> None:
    """60 minute children of an hour whose side values satisfy the invariant, with
    children's ranges drawn inside the hour's (narrow ones too): after the split and the
    widening each child's sides fit its own range, and the values sum exactly."""
    units = UNITS[kind]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = 60
    low = data.draw(st.integers(20_000_000, 40_000_000)) if units.inverse_a else data.draw(st.integers(10, 5_000_000))
    high = low + data.draw(st.sampled_from([0, 1, 5, 300, 20_000]))
    c_low = rng.integers(low, high + 1, size=(1, n))
    c_high = np.minimum(c_low + rng.integers(0, 3, size=(1, n)) * rng.integers(0, high - low + 1, size=(1, n)), high)
    c_low[0, 0], c_high[0, -1] = low, high  # the hour's extremes are some child's
    a, b = units.extremes(np.array([low]), np.array([high]))
    sides = []
    for _ in range(2):
        w = splits.WMIN + rng.integers(0, 5_000, size=(1, n))
        lo, hi = splits.side_bounds(a, b, w.sum(axis=1), n)
        x = np.array([data.draw(st.integers(int(lo[0]), int(hi[0])))])
        natural = units.vp((c_low + c_high) // 2)
        xs = splits.split_values(x, w, natural, units.extremes(c_low, c_high), (a, b), 1)
        assert xs.sum() == x[0]
        sides.append((w, xs))
    new_low, new_high = splits.widen(units, c_low, c_high, np.array([[low]]), np.array([[high]]), sides, 1)
    assert (new_low <= c_low).all() and (new_high >= c_high).all()
    assert new_low.min() >= low and new_high.max() <= high
    ca, cb = units.extremes(new_low, new_high)
    for w, xs in sides:
        lo, hi = splits.side_bounds(ca, cb, w, 1)
        assert ((lo <= xs) & (xs <= hi)).all()


def test_coin_m_values_are_the_printed_base_quantities() -> None:
    """vp(p) is the trade's baseQty as `rest.trade_quote_strings` prints it, in 1e-8,
    exact halves included; neighbouring ticks differ by at most one unit."""
    from kline_lake.fake_exchange.rest import trade_quote_strings

    spec = get_symbol("cm", "ETHUSD_PERP")
    units = splits.Units.of(spec)
    prices = np.arange(4_000_000, 4_003_000, dtype=np.int64)  # 400.0000 .. 400.2999
    half = np.array([2**14 * 5**k for k in (3, 4, 5)], dtype=np.int64)  # A / p = n + 1/2 exactly
    assert (2 * (units.inverse_a % half) == half).all()
    for p in (prices, half):
        text = trade_quote_strings(spec, p, np.ones_like(p))
        assert units.vp(p).tolist() == [int(t.replace(".", "")) for t in text]
    steps = -np.diff(units.vp(prices))
    assert steps.min() >= 0 and steps.max() <= 1
