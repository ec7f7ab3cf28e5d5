"""The book-ticker slippage model: a buy fills at the best ask and a sell at the best bid
in force at the fill time, instead of a fixed number of basis points.

``backtest.run(..., slippage="book_ticker")`` (CLI ``--slippage book``). The fill time
is the bar's open for ``fill="next_open"`` and its kline close time (``open + bar - 1
ms``) for ``fill="close"``; the quote in force at ``t`` is the last book-ticker update
with ``transaction_time <= t`` (`backtest.inputs.book_at`). The kernel
(`backtest.kernels.simulate_nb`) takes it as two per-bar fractions of the fill
reference price ``px`` (the bar's open or close): ``slip_buy = ask / px - 1`` and
``slip_sell = 1 - bid / px``, so a buy fills at ``px * (1 + slip_buy) = ask`` and a sell
at ``px * (1 - slip_sell) = bid`` (to rounding). With a quote of constant half-spread
``h`` around ``px`` this is the fixed model with ``slippage_bps = h * 1e4``.

Decisions where the issue is silent: sl/tp stops fill at a level inside the bar where
no quote is known, so they are refused with this model (use the fixed bps); a bar
whose fill time has no quote in force (none since 60 s before the first bar, or a
crossed/non-positive quote) refuses the run unless ``allow_gaps``, and then fills on
those bars use ``slippage_bps`` (the fixed model) and a note counts them. Sweeps keep
the fixed model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.data import Bars
from backtest.inputs import Rows, book_at, close_times_us
from kline_lake.core.timeutil import format_us
from kline_lake.errors import CoverageError, InputError

SLIPPAGE_MODELS = ("fixed", "book_ticker")


def validate_slippage(model: str, sl_stop: float | None = None,
                      tp_stop: float | None = None) -> str:
    """The model name, validated: ``fixed`` or ``book_ticker``; book-ticker fills refuse
    sl/tp stops (module docstring)."""
    if model not in SLIPPAGE_MODELS:
        raise InputError(f"unknown slippage model {model!r}; expected one of "
                         f"{', '.join(SLIPPAGE_MODELS)}")
    if model == "book_ticker" and (sl_stop is not None or tp_stop is not None):
        raise InputError("slippage book_ticker: sl/tp stops fill inside a bar where no "
                         "quote is known; use the fixed --slippage-bps with stops")
    return model


@dataclass(frozen=True)
class BookSlippage:
    """Per-bar fractions of the fill reference price for buys and sells (kernel input),
    and how many bars fell back to the fixed model."""

    slip_buy: np.ndarray
    slip_sell: np.ndarray
    n_fallback: int = 0

    def kernel_args(self) -> tuple[np.ndarray, np.ndarray]:
        return self.slip_buy, self.slip_sell


def fill_times_us(bars: Bars, fill_close: bool) -> np.ndarray:
    """When each bar's fills happen: its open, or its kline close time."""
    return close_times_us(bars) if fill_close else bars.open_time_us


def book_fractions(bid: np.ndarray, ask: np.ndarray, px: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ask / px - 1, 1 - bid / px, usable)``; a quote is usable when finite with
    ``0 < bid <= ask``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        usable = np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid) & (px > 0)
        return ask / px - 1.0, 1.0 - bid / px, usable


def book_slippage(rows: Rows, bars: Bars, fill_close: bool, slippage_bps: float,
                  allow_gaps: bool = False) -> BookSlippage:
    """The kernel's per-bar fractions from the book-ticker `rows` (module docstring);
    CoverageError when a fill time has no usable quote, unless `allow_gaps`."""
    at = fill_times_us(bars, fill_close)
    bid, ask = book_at(rows, at)
    px = bars.close if fill_close else bars.open
    buy, sell, usable = book_fractions(bid, ask, px)
    missing = ~usable
    # next_open: bar 0's open is never a fill time (its signal is from before the range)
    if not fill_close and len(missing):
        missing[0] = False
    n_missing = int(missing.sum())
    if n_missing and not allow_gaps:
        first = format_us(int(at[np.argmax(missing)]))
        raise CoverageError(
            f"slippage book_ticker: no best bid/ask in force at {n_missing} fill time(s) "
            f"of the range (first {first}); download the book_ticker "
            "(kline-lake download --data book_ticker) or pass --allow-gaps to use "
            "--slippage-bps there")
    fixed = slippage_bps / 10_000.0
    fallback = missing | ~usable
    buy = np.where(fallback, fixed, buy)
    sell = np.where(fallback, fixed, sell)
    return BookSlippage(np.ascontiguousarray(buy), np.ascontiguousarray(sell), n_missing)


def fallback_notes(book: BookSlippage) -> list[str]:
    """A note when some fills fell back to the fixed model."""
    if not book.n_fallback:
        return []
    return [f"allow_gaps: {book.n_fallback} bar(s) had no best bid/ask in force at the "
            "fill time; fills there used --slippage-bps"]
