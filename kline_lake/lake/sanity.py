"""Value sanity of stored rows: the checks ``verify`` runs on every data file. Pure.

A file can be readable, well-typed and sorted and still hold values no exchange ever
sent: a zeroed page decodes to prices like ``2e-322``, a bad parser swaps columns. Each
rule below is a property every genuine row has; a row that breaks one is reported with
its position in the file (0-based row number) and the offending values.

- klines: open/high/low/close positive and finite (a subnormal float such as 2e-322 is
  not a price: it is what zeroed bytes decode to), ``low <= open, close <= high``,
  volumes, quote volumes and trade counts ``>= 0`` and finite, taker-buy volume <= volume
  (base and quote), ``open_time <= close_time < next open`` of the interval.
- mark/index klines: the price and close-time rules; premium-index klines: the same but
  their prices need only be finite (a premium is negative whenever the perpetual trades
  below the index).
- agg_trades: price and quantity positive and finite.
- funding: funding rate finite (it may be negative or zero).
- book_ticker: best bid and ask positive and finite, ``bid <= ask`` (a crossed book is
  not a best bid/ask).
- book_depth: cumulative depth and notional ``>= 0`` and finite. metrics: none (every
  column may be null in the archive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from kline_lake.core.intervals import INTERVAL_MS
from kline_lake.core.markets import KLINE_DATASETS
from kline_lake.core.schemas import TIME_COLUMNS
from kline_lake.core.timeutil import US_PER_MS

PRICES = ("open", "high", "low", "close")
VOLUMES = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume", "trades")
# The smallest normal float64 (2.2e-308): below it a "price" is a denormal, i.e. bits of
# a zeroed or shifted page, never a quote (the smallest tick on Binance is 1e-8).
_MIN_NORMAL = np.finfo(np.float64).tiny


@dataclass(frozen=True)
class Violation:
    """Rows of one file that break one rule: how many, the first one, its values."""

    rule: str
    rows: int
    first_row: int
    values: str

    def message(self, time_col: str, first_time: str) -> str:
        return (f"{self.rows} row(s) break \"{self.rule}\"; first at row {self.first_row} "
                f"({time_col} {first_time}): {self.values}")


def _num(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_numpy()


def _positive(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) & (values >= _MIN_NORMAL)


def next_open_us(open_us: np.ndarray, interval: str) -> np.ndarray:
    """Vectorised next open (us) of klines opening at `open_us` (calendar months for 1M)."""
    if interval == "1M":
        month = open_us.astype("datetime64[us]").astype("datetime64[M]") + 1
        return month.astype("datetime64[us]").astype(np.int64)
    return open_us + INTERVAL_MS[interval] * US_PER_MS


def _kline_rules(table: pa.Table, dataset: str, interval: str | None) -> list[tuple]:
    px = {c: _num(table, c) for c in PRICES}
    price_ok = (np.logical_and.reduce([np.isfinite(v) for v in px.values()])
                if dataset == "premium_klines"
                else np.logical_and.reduce([_positive(v) for v in px.values()]))
    rules = [
        ("prices finite" if dataset == "premium_klines" else "prices > 0 and finite",
         ~price_ok, PRICES),
        ("low <= open, close <= high",
         ~((px["low"] <= px["open"]) & (px["low"] <= px["close"])
           & (px["open"] <= px["high"]) & (px["close"] <= px["high"])), PRICES),
    ]
    if dataset == "klines":
        vols = {c: _num(table, c) for c in VOLUMES}
        vol_ok = np.logical_and.reduce([np.isfinite(v) & (v >= 0) for v in vols.values()])
        taker_ok = ((vols["taker_buy_volume"] <= vols["volume"])
                    & (vols["taker_buy_quote_volume"] <= vols["quote_volume"]))
        rules += [("volumes >= 0 and finite", ~vol_ok, VOLUMES),
                  ("taker-buy <= volume", ~taker_ok,
                   ("volume", "taker_buy_volume", "quote_volume", "taker_buy_quote_volume"))]
    if interval is not None:
        opens, closes = _num(table, "open_time"), _num(table, "close_time")
        inside = (opens <= closes) & (closes < next_open_us(opens, interval))
        rules.append((f"close_time inside the {interval} kline", ~inside,
                      ("open_time", "close_time")))
    return rules


def _rules(table: pa.Table, dataset: str, interval: str | None) -> list[tuple]:
    if dataset in KLINE_DATASETS:
        return _kline_rules(table, dataset, interval)
    if dataset in ("agg_trades", "trades"):
        ok = _positive(_num(table, "price")) & _positive(_num(table, "quantity"))
        return [("price and quantity > 0 and finite", ~ok, ("price", "quantity"))]
    if dataset == "funding":
        return [("funding rate finite", ~np.isfinite(_num(table, "funding_rate")),
                 ("funding_rate",))]
    if dataset in ("book_ticker", "spot_book_ticker"):
        bid, ask = _num(table, "best_bid_price"), _num(table, "best_ask_price")
        ok = _positive(bid) & _positive(ask)
        return [("best bid and ask > 0 and finite", ~ok, ("best_bid_price", "best_ask_price")),
                ("best bid <= best ask", ok & (bid > ask), ("best_bid_price", "best_ask_price"))]
    if dataset == "book_depth":
        depth, notional = _num(table, "depth"), _num(table, "notional")
        ok = np.isfinite(depth) & np.isfinite(notional) & (depth >= 0) & (notional >= 0)
        return [("depth and notional >= 0 and finite", ~ok, ("depth", "notional"))]
    return []


def check_values(table: pa.Table, dataset: str, interval: str | None = None) -> list[Violation]:
    """Every rule (see the module docstring) the rows of `table` break, with the first
    offending row of each. `table` has the dataset's schema; `interval` is the kline
    interval (None for agg_trades and funding)."""
    if table.num_rows == 0:
        return []
    out = []
    for rule, bad, columns in _rules(table, dataset, interval):
        count = int(np.count_nonzero(bad))
        if not count:
            continue
        row = int(np.flatnonzero(bad)[0])
        values = ", ".join(f"{c}={_text(table.column(c)[row].as_py())}" for c in columns)
        out.append(Violation(rule, count, row, values))
    return out


def _text(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else repr(value)


def first_time_text(table: pa.Table, dataset: str, row: int) -> str:
    """The time column of `row` as ISO text (for messages)."""
    return _text(table.column(TIME_COLUMNS[dataset])[row].as_py())
