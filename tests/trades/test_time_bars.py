"""The one-pass time-bar path (`kline_lake.lake.time_bars`, used by `build_bars` for
time bars of every trade) against the general Polars path and by hand: same bars from
aggregate trades of one trade each, whatever the chunking; sums beyond int64 exact;
chunks out of time order sorted first."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import polars as pl
import pytest

from kline_lake.lake.bars import build_bars

_TS = pl.Datetime("us", "UTC")
T0 = 1_700_000_000_000_000 - 1_700_000_000_000_000 % 3_600_000_000  # a whole hour, us


def _trades(n: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """n trades (prices 2 decimals, quantities 5: every quote has <= 8 decimals) and the
    same trades as aggregate trades of one trade each."""
    rng = np.random.default_rng(seed)
    cents = 6_000_000 + np.cumsum(rng.integers(-3, 4, n))
    lots = rng.integers(1, 300_000, n)
    t_us = T0 + np.sort(rng.integers(0, 3 * 3_600_000_000, n))
    maker = rng.random(n) < 0.45
    price, qty = cents / 100, lots / 100_000
    quote = np.array([float(Fraction(int(c) * int(q), 10**7)) for c, q in zip(cents, lots, strict=True)])
    ids = np.arange(10_000, 10_000 + n)
    time = pl.Series(t_us).cast(_TS)
    trades = pl.DataFrame({"trade_id": ids, "price": price, "quantity": qty, "quote_quantity": quote,
                           "time": time, "is_buyer_maker": maker, "is_best_match": [True] * n})
    aggs = pl.DataFrame({"agg_id": ids, "price": price, "quantity": qty, "first_trade_id": ids,
                         "last_trade_id": ids, "transact_time": time, "is_buyer_maker": maker,
                         "is_best_match": [True] * n})
    return trades, aggs


@pytest.mark.parametrize("rule", ["1m", "7s", "250ms", "1h", "1d"])
def test_one_pass_bars_equal_the_general_path(rule: str) -> None:
    trades, aggs = _trades(20_000, seed=3)
    want = build_bars([aggs], "agg_trades", rule)  # the Polars path (exact decimals)
    assert want.height > 1
    cuts = [0, 1, 4_999, 5_000, 12_345, 20_000]  # chunks whose bars straddle the cuts
    chunks = [trades.slice(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False)]
    for frames in ([trades], chunks, [c.lazy() for c in chunks]):
        got = build_bars(frames, "trades", rule)
        assert got.equals(want), rule


def test_sums_beyond_int64_are_exact() -> None:
    """3,000 trades of 99,999,999.99999999 base units each: the 1e-8 sums pass 2**62
    (4.6e18) and carry; the bar's volume is still the exact decimal sum, rounded once."""
    n = 3_000
    qty = 99_999_999.99999999  # as a double: 100000000.0 (the nearest)
    frame = pl.DataFrame({
        "trade_id": np.arange(n), "price": [1.0] * n, "quantity": [qty] * n,
        "quote_quantity": [qty] * n, "time": pl.Series([T0 + i for i in range(n)]).cast(_TS),
        "is_buyer_maker": [i % 3 == 0 for i in range(n)], "is_best_match": [True] * n})
    bars = build_bars([frame.slice(0, 1_000), frame.slice(1_000)], "trades", "1m")
    units = round(qty * 10**8)  # each trade's 1e-8 units, as the kernel reads them
    assert bars["volume"].to_list() == [float(Fraction(units * n, 10**8))]
    assert bars["quote_volume"].to_list() == [float(Fraction(units * n, 10**8))]
    buys = sum(1 for i in range(n) if i % 3)
    assert bars["taker_buy_volume"].to_list() == [float(Fraction(units * buys, 10**8))]
    assert bars["trades"].to_list() == [n]


def test_a_chunk_out_of_time_order_is_sorted_first() -> None:
    rows = [(30, 11.0), (10, 10.0), (20, 12.0), (70_000_000, 9.0)]  # us offsets, prices
    frame = pl.DataFrame({
        "trade_id": [1, 2, 3, 4], "price": [p for _, p in rows], "quantity": [1.0] * 4,
        "quote_quantity": [p for _, p in rows],
        "time": pl.Series([T0 + t for t, _ in rows]).cast(_TS),
        "is_buyer_maker": [False] * 4, "is_best_match": [True] * 4})
    bars = build_bars([frame], "trades", "1m")
    # by time: 10.0 (t=10), 12.0 (t=20), 11.0 (t=30) in the first minute, 9.0 in the next
    assert bars.select("open", "high", "low", "close", "trades").rows() == [
        (10.0, 12.0, 10.0, 11.0, 3), (9.0, 9.0, 9.0, 9.0, 1)]
