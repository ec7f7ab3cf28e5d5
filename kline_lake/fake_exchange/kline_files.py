"""CSV text of the archive's kline files (klines and the futures price klines), built
column-wise. Pure.

A month of 1m klines is 43,200 rows; formatting them row by row in Python (as the REST
rows are) took most of a monthly zip's build. Here the period's klines are computed as
arrays (`series.select_kline_opens`, `series.kline_bars`) and Polars prints every column
in one pass (`trade_files.fmt_units_series`: the same text as `rest.fmt_units`), so the
text is byte-for-byte what `rest.SyntheticSource.klines` rows joined by commas give (the
oracle test in tests/fake_exchange/test_kline_files.py checks that), spot's microsecond
quirk included (open x 1000, close x 1000 + 999).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from kline_lake.fake_exchange import series
from kline_lake.fake_exchange.rest import display_decimals
from kline_lake.fake_exchange.synthetic import SymbolPath
from kline_lake.fake_exchange.trade_files import fmt_units_series


def kline_columns(path: SymbolPath, interval: str, kind: str, start_ms: int, end_ms: int,
                  limit: int, now_ms: int) -> dict[str, pl.Series] | None:
    """The columns of the (at most `limit`) klines opening in [start_ms, end_ms), as the
    exchange prints them at `now_ms`; None when there are none."""
    spec = path.spec
    segs = path.segments(now_ms // 1000)
    opens = series.select_kline_opens(segs, interval, start_ms, end_ms - 1, limit)
    if not len(opens):
        return None
    bars = series.kline_bars(path, interval, opens, segs)
    closes = series.close_ms_of(opens, interval) - 1
    zero = pl.repeat("0", len(opens), eager=True)
    if kind != "klines":  # mark / index / premium: prices only, count = seconds
        o, h, lo, c = (fmt_units_series(series.price_units(bars[f], spec.price_decimals, kind,
                                                           spec.base_price), 8, 8) for f in "ohlc")
        return {"open_time": pl.Series(opens), "o": o, "h": h, "l": lo, "c": c, "v": zero,
                "close_time": pl.Series(closes), "q": zero,
                "n": pl.Series((closes + 1 - opens) // 1000), "tb": zero, "tq": zero,
                "ignore": zero}
    pd_, qd, qq = display_decimals(spec)
    o, h, lo, c = (fmt_units_series(bars[f], spec.price_decimals, pd_) for f in "ohlc")
    return {"open_time": pl.Series(opens), "o": o, "h": h, "l": lo, "c": c,
            "v": fmt_units_series(bars["v"], spec.qty_decimals, qd),
            "close_time": pl.Series(closes),
            "q": fmt_units_series(bars["q"], spec.quote_decimals, qq),
            "n": pl.Series(np.asarray(bars["t"], dtype=np.int64)),
            "tb": fmt_units_series(bars["tb"], spec.qty_decimals, qd),
            "tq": fmt_units_series(bars["tq"], spec.quote_decimals, qq), "ignore": zero}


def klines_csv(path: SymbolPath, interval: str, kind: str, start_ms: int, end_ms: int,
               limit: int, now_ms: int, us: bool, header: str | None) -> bytes | None:
    """The CSV bytes of a kline file (`kline_columns`, one row a line, `header` first when
    given); `us`: spot's microsecond open and close times. None when it holds no kline."""
    cols = kline_columns(path, interval, kind, start_ms, end_ms, limit, now_ms)
    if cols is None:
        return None
    if us:  # close + 1 is the next open: in us, the next open - 1
        cols["open_time"] = cols["open_time"] * 1000
        cols["close_time"] = cols["close_time"] * 1000 + 999
    body = pl.DataFrame(cols).write_csv(include_header=False, quote_style="never",
                                        line_terminator="\n")
    return ((header + "\n") if header else "").encode() + body.encode()
