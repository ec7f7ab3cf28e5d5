"""CSV text of the archive's `trades` and `aggTrades` files, built column-wise. Pure.

A day of trades is hundreds of thousands of rows; the text is assembled by Polars from
integer columns (`fmt_units_series` prints a grid integer as the exchange's decimal string,
the same text as `rest.fmt_units`), so a day's file takes a fraction of a second instead of
a Python loop per row. Columns and their order follow
https://github.com/binance/binance-public-data (trades: `id,price,qty,quote_qty,time,
is_buyer_maker[,is_best_match]`, aggTrades: `agg_trade_id,price,quantity,first_trade_id,
last_trade_id,transact_time,is_buyer_maker[,is_best_match]`); spot files carry the last
column and Python-style `True`/`False`, futures files lower-case `true`/`false`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kline_lake.fake_exchange.rest import display_decimals, trade_quote_strings
from kline_lake.fake_exchange.splits import Units
from kline_lake.fake_exchange.universe import SymbolSpec


def fmt_units_series(values: np.ndarray, grid: int, display: int) -> pl.Series:
    """Integers in units of 10**-grid -> decimal strings with `display` (>= grid) decimals."""
    v = np.asarray(values, dtype=np.int64)
    a = pl.Series(np.abs(v))
    tail = "0" * (display - grid)
    if grid:
        scale = 10**grid
        text = (a // scale).cast(pl.String) + "." + (a % scale).cast(pl.String).str.zfill(grid) + tail
    else:
        text = a.cast(pl.String) + (f".{tail}" if display else "")
    if (v < 0).any():
        text = pl.select(pl.when(pl.Series(v < 0)).then("-" + text).otherwise(text)).to_series()
    return text


def _quote_series(spec: SymbolSpec, price_units: np.ndarray, qty_units: np.ndarray) -> pl.Series:
    """The trades' quote quantities as `rest.trade_quote_strings` prints them (price *
    qty exactly on the product's grid; COIN-M's base quantity with 8 decimals)."""
    p, q = np.asarray(price_units, dtype=np.int64), np.asarray(qty_units, dtype=np.int64)
    if spec.contract_size and (q == 1).all():  # one-contract trades (the synthetic ones):
        # their base quantity is `splits.Units.vp`, the same text (tests/fake_exchange/test_splits.py)
        return fmt_units_series(Units.of(spec).vp(p), 8, 8)
    if spec.contract_size:  # a float formatted by Python: keep its exact text
        return pl.Series(trade_quote_strings(spec, p, q))
    grid = spec.price_decimals + spec.qty_decimals
    display = max(grid, 8) if spec.market in ("spot", "us") else grid
    if grid > display:  # as trade_quote_strings (never with the universe's decimals)
        return pl.Series(trade_quote_strings(spec, p, q))
    return fmt_units_series(p * q, grid, display)


def _flags(spec: SymbolSpec, maker: np.ndarray) -> pl.Series:
    spot = spec.market == "spot"
    yes, no = ("True", "False") if spot else ("true", "false")
    return pl.Series(np.where(maker, yes, no))


def _text(columns: dict[str, pl.Series], spot: bool, header: str | None) -> bytes:
    frame = pl.DataFrame(columns)
    if spot:
        frame = frame.with_columns(pl.lit("True").alias("best_match"))
    body = frame.write_csv(include_header=False, quote_style="never", line_terminator="\n")
    return ((header + "\n") if header else "").encode() + body.encode()


def trades_csv(spec: SymbolSpec, cols: dict[str, np.ndarray], us: bool, header: str | None) -> bytes:
    """A trades file of trade columns (`trades.expand`: id, p, q, T, m in grid units)."""
    pd_, qd, _ = display_decimals(spec)
    return _text({
        "id": pl.Series(cols["id"]), "price": fmt_units_series(cols["p"], spec.price_decimals, pd_),
        "qty": fmt_units_series(cols["q"], spec.qty_decimals, qd),
        "quote": _quote_series(spec, cols["p"], cols["q"]),
        "time": pl.Series(cols["T"] * 1000 if us else cols["T"]), "m": _flags(spec, cols["m"]),
    }, spec.market == "spot", header)


def agg_trades_csv(spec: SymbolSpec, cols: dict[str, np.ndarray], us: bool, header: str | None) -> bytes:
    """An aggTrades file of aggTrade columns (`series.trades_for_seconds`)."""
    pd_, qd, _ = display_decimals(spec)
    return _text({
        "a": pl.Series(cols["a"]), "price": fmt_units_series(cols["p"], spec.price_decimals, pd_),
        "qty": fmt_units_series(cols["q"], spec.qty_decimals, qd),
        "f": pl.Series(cols["f"]), "l": pl.Series(cols["l"]),
        "time": pl.Series(cols["T"] * 1000 if us else cols["T"]), "m": _flags(spec, cols["m"]),
    }, spec.market == "spot", header)
