"""Bars from trades: time bars of any width and information-driven bars, streamed.

``build_bars(frames, source, rule)`` turns an iterable of trade frames (time order, e.g.
one per daily lake file) into one Polars frame in the kline schema (``schemas.KLINES``):
open_time, open, high, low, close, volume, close_time, quote_volume, trades,
taker_buy_volume, taker_buy_quote_volume. ``Lake.bars`` feeds it the lake's daily files,
so memory holds one day of trades plus the bars, never the month.

Rules (``parse_rule``; anything else is an InputError of one line):
- time bars ``<n><unit>`` with unit ``ms``, ``s``, ``m``, ``h``, ``d`` (``1m``, ``10s``,
  ``250ms``): bars open at multiples of the width since the epoch (UTC), a bar exists only
  when it holds a trade, ``close_time = open_time + width - 1 ms`` (the exchange's kline
  convention, ``schemas`` module docstring);
- information bars ``tick:N`` (trades), ``volume:X`` (base quantity), ``dollar:X`` (quote
  quantity): a bar closes on the trade that takes its running count/volume/quote to at
  least the threshold, then the next bar starts from zero (Lopez de Prado, Advances in
  Financial Machine Learning, 2018, ch. 2.3). open_time/close_time are the first/last
  trade's times; the last bar of the range may not have reached the threshold.

Sources: ``trades`` (every trade: one count each, the exchange's quote quantity) or
``agg_trades`` (count = last_trade_id - first_trade_id + 1, quote = price * quantity:
every trade of an aggregate trade has its price; refused on COIN-M, whose kline quote
column is the sum of each trade's base quantity, which aggregate trades lack). Taker-buy volume is the volume of rows
whose buyer is not the maker. For ``tick:N`` on agg_trades a bar closes on the aggregate
trade that takes the count to N or more.

Exactness: base quantities are summed as integers in units of 1e-8 (the exchange's finest
grid), quote quantities as Decimal(38, 16) (exact price * quantity products), so a time
bar equals the exchange's kline in every column trades determine, not just to rounding.

Speed: time bars of ``trades`` take the one-pass Numba path (``time_bars``: five columns
read, no hashing, integer sums of 1e-8 units); aggregate trades (whose quote is a
price * quantity product beyond int64) and information bars take the Polars path.

Pure: frames in, frame out (``Lake.bars`` does the reading).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from kline_lake.core.schemas import KLINES
from kline_lake.errors import InputError
from kline_lake.lake import time_bars

SOURCES = ("trades", "agg_trades")
_UNIT_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}
_TIME_RULE = re.compile(r"(\d+)(ms|s|m|h|d)")
_INFO_RULE = re.compile(r"(tick|volume|dollar):(\d+(?:\.\d+)?)")
QTY_SCALE = 10**8  # base quantities as integer units of 1e-8
_QUOTE = pl.Decimal(38, 16)
_TS = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class BarRule:
    """A parsed rule: kind 'time' (width_us) or 'tick'/'volume'/'dollar' (threshold)."""

    kind: str
    width_us: int = 0
    threshold: float = 0.0


def parse_rule(rule: str) -> BarRule:
    """``"1m"``, ``"250ms"``, ``"tick:1000"``, ``"volume:50"``, ``"dollar:5e6"``-like
    rules -> BarRule; InputError (one line) for anything else."""
    text = str(rule).strip()
    m = _TIME_RULE.fullmatch(text)
    if m:
        width = int(m[1]) * _UNIT_US[m[2]]
        if width <= 0:
            raise InputError(f"bar rule {rule!r}: the width must be positive")
        return BarRule("time", width_us=width)
    m = _INFO_RULE.fullmatch(text)
    if m:
        threshold = float(m[2])
        if threshold <= 0 or (m[1] == "tick" and not threshold.is_integer()):
            raise InputError(f"bar rule {rule!r}: the threshold must be a positive "
                             f"{'whole number' if m[1] == 'tick' else 'number'}")
        return BarRule(m[1], threshold=threshold)
    raise InputError(f"bad bar rule {rule!r}: expected a width like 1m, 10s, 250ms, 1h, 1d "
                     "or tick:N, volume:X, dollar:X")


def _normalise(frame: pl.DataFrame | pl.LazyFrame, source: str) -> pl.LazyFrame:
    """Trade rows -> (time_us, price, qty_u, quote, n, buy): one shape for both sources."""
    lf = frame.lazy()
    qty_u = (pl.col("quantity") * QTY_SCALE).round().cast(pl.Int64)
    if source == "trades":
        quote = pl.col("quote_quantity").cast(pl.Decimal(38, 8)).cast(_QUOTE)
        time, n = pl.col("time"), pl.lit(1, pl.Int64)
    elif source == "agg_trades":
        quote = pl.col("price").cast(pl.Decimal(38, 8)).cast(_QUOTE) * \
            pl.col("quantity").cast(pl.Decimal(38, 8)).cast(_QUOTE)
        time, n = pl.col("transact_time"), pl.col("last_trade_id") - pl.col("first_trade_id") + 1
    else:
        raise InputError(f"unknown bar source {source!r}; expected one of {', '.join(SOURCES)}")
    return lf.select(time.cast(pl.Int64).alias("t"), pl.col("price").alias("p"), qty_u.alias("qu"),
                     quote.alias("qq"), n.alias("n"), (~pl.col("is_buyer_maker")).alias("buy"))


def _aggregate(lf: pl.LazyFrame, by: str) -> pl.LazyFrame:
    """Partial bars of one chunk, grouped by `by` (kept, plus first/last trade time)."""
    buy = pl.col("buy")
    return lf.group_by(by, maintain_order=True).agg(
        pl.col("t").first().alias("t0"), pl.col("t").last().alias("t1"),
        pl.col("p").first().alias("open"), pl.col("p").max().alias("high"),
        pl.col("p").min().alias("low"), pl.col("p").last().alias("close"),
        pl.col("qu").sum().alias("qu"), pl.col("qq").sum().alias("qq"),
        pl.col("n").sum().alias("trades"),
        pl.col("qu").filter(buy).sum().alias("bqu"), pl.col("qq").filter(buy).sum().alias("bqq"),
    )


def _merge(parts: list[pl.DataFrame], by: str) -> pl.DataFrame:
    """Partial bars of consecutive chunks (a bar may straddle two) -> whole bars."""
    frame = pl.concat(parts) if parts else None
    if frame is None or frame.is_empty():
        return pl.DataFrame()
    return frame.group_by(by, maintain_order=True).agg(
        pl.col("t0").first(), pl.col("t1").last(), pl.col("open").first(), pl.col("high").max(),
        pl.col("low").min(), pl.col("close").last(),
        *(pl.col(c).sum() for c in ("qu", "qq", "trades", "bqu", "bqq")),
    )


@njit(cache=True)
def _info_bar_ids_nb(metric: np.ndarray, threshold: float, acc: float, first_id: int,
                     out: np.ndarray) -> tuple[float, int]:
    """Bar id of each row: a bar closes on the row that takes `acc` to >= threshold.
    Returns the carry (acc, next bar id) for the next chunk. Status via the return."""
    bar = first_id
    for i in range(metric.shape[0]):
        out[i] = bar
        acc += metric[i]
        if acc >= threshold:
            acc = 0.0
            bar += 1
    return acc, bar


def _info_metric(chunk: pl.DataFrame, kind: str) -> np.ndarray:
    if kind == "tick":
        return chunk["n"].cast(pl.Float64).to_numpy()
    if kind == "volume":
        return chunk["qu"].cast(pl.Float64).to_numpy() / QTY_SCALE
    return chunk["qq"].cast(pl.Float64).to_numpy()


def build_bars(frames: Iterable[pl.DataFrame | pl.LazyFrame], source: str, rule: str | BarRule) -> pl.DataFrame:
    """Bars of `rule` over trade `frames` (consecutive, time-ordered chunks of one series)
    in the kline schema; see the module docstring."""
    spec = rule if isinstance(rule, BarRule) else parse_rule(rule)
    if source == "trades" and spec.kind == "time":
        return _time_bars_of_trades(frames, spec)
    parts: list[pl.DataFrame] = []
    acc, next_id = 0.0, 0
    for frame in frames:
        lf = _normalise(frame, source)
        if spec.kind == "time":
            lf = lf.with_columns((pl.col("t") - pl.col("t") % spec.width_us).alias("bar"))
        else:
            chunk = lf.collect()
            if chunk.is_empty():
                continue
            ids = np.empty(chunk.height, dtype=np.int64)
            acc, next_id = _info_bar_ids_nb(_info_metric(chunk, spec.kind), spec.threshold,
                                            acc, next_id, ids)
            lf = chunk.with_columns(pl.Series("bar", ids)).lazy()
        parts.append(_aggregate(lf, "bar").collect())
    return _to_klines(_merge(parts, "bar"), spec)


def _time_bars_of_trades(frames: Iterable[pl.DataFrame | pl.LazyFrame], spec: BarRule) -> pl.DataFrame:
    """Time bars of every trade in one Numba pass per chunk (`time_bars`), reading only
    the five columns they need."""
    parts = []
    for frame in frames:
        chunk = frame.lazy().select(time_bars.COLUMNS).collect()
        if chunk.height:
            parts.extend(time_bars.chunk_bars(chunk, spec.width_us))
    bars = time_bars.merge_chunks(parts)
    schema = pl.from_arrow(KLINES.empty_table()).schema
    if not len(bars["bar"]):
        return pl.DataFrame(schema=schema)
    return time_bars.to_frame(bars, spec.width_us, schema)


def _units_to_float(units: pl.Series) -> pl.Series:
    """Integer 1e-8 units -> the nearest float64 of the decimal (NumPy's true division;
    Polars divides a column by a scalar through its reciprocal, one ulp off at times)."""
    return pl.Series(units.name, units.cast(pl.Int64).to_numpy() / QTY_SCALE)


def _to_klines(bars: pl.DataFrame, spec: BarRule) -> pl.DataFrame:
    if bars.is_empty():
        return pl.from_arrow(KLINES.empty_table())
    if spec.kind == "time":
        open_us, close_us = pl.col("bar"), pl.col("bar") + spec.width_us - 1_000
    else:
        open_us, close_us = pl.col("t0"), pl.col("t1")
    bars = bars.sort("bar")
    bars = bars.with_columns(_units_to_float(bars["qu"]), _units_to_float(bars["bqu"]))
    return bars.select(
        open_us.cast(_TS).alias("open_time"), "open", "high", "low", "close", pl.col("qu").alias("volume"),
        close_us.cast(_TS).alias("close_time"),
        pl.col("qq").round(8).cast(pl.Float64).alias("quote_volume"),
        pl.col("trades").cast(pl.Int64),
        pl.col("bqu").alias("taker_buy_volume"),
        pl.col("bqq").round(8).cast(pl.Float64).alias("taker_buy_quote_volume"),
    )


DAY_US = 86_400_000_000
_TIME_COLUMN = {"trades": "time", "agg_trades": "transact_time"}


def lake_bars(lake, market: str, symbol: str, source: str, rule: str, start=None,
              end=None) -> pl.DataFrame:
    """``Lake.bars``: the rule is checked first, then the series' trades are read one UTC
    day at a time (the lake's daily files) and folded into bars."""
    from kline_lake.core.timeutil import to_us

    spec = parse_rule(rule)
    if source not in SOURCES:
        raise InputError(f"unknown bar source {source!r}; expected one of {', '.join(SOURCES)}")
    if market == "cm" and source == "agg_trades":
        # a COIN-M kline's quote column is the base-asset volume, the sum of each trade's
        # printed baseQty (contracts x contractSize / price, rounded per trade): an
        # aggregate trade has no baseQty, so its bars' quote columns would be wrong
        raise InputError("COIN-M bars need source trades: aggregate trades carry no base "
                         "quantity, so their quote volumes cannot equal the klines'")
    col = _TIME_COLUMN[source]
    start_us, end_us = to_us(start, "start"), to_us(end, "end")
    bounds = lake.read(market, source, symbol, None, start_us, end_us, lazy=True) \
        .select(pl.col(col).min().alias("a"), pl.col(col).max().alias("b")).collect()
    lo, hi = bounds["a"][0], bounds["b"][0]
    if lo is None:
        return build_bars([], source, spec)
    lo_us = int(lo.timestamp() * 1_000_000) if not isinstance(lo, int) else lo
    hi_us = int(hi.timestamp() * 1_000_000) + 1 if not isinstance(hi, int) else hi + 1
    first_day = lo_us - lo_us % DAY_US

    def days():
        for day in range(first_day, hi_us, DAY_US):
            a = day if start_us is None else max(day, start_us)
            b = day + DAY_US if end_us is None else min(day + DAY_US, end_us)
            if a < b:
                yield lake.read(market, source, symbol, None, a, b, lazy=True)

    return build_bars(days(), source, spec)
