"""What `backtest.engine.run` adds for strategy inputs (`backtest.inputs`) and the
book-ticker slippage model (`backtest.spread`): validation before the bars are read,
then the aligned columns, the kernel's per-bar slippage, notes and the config entries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backtest.data import Bars
from backtest.inputs import check_rows, load_inputs, read_rows, validate_inputs, with_inputs
from backtest.spread import BookSlippage, book_slippage, fallback_notes, validate_slippage
from kline_lake.errors import InputError


@dataclass(frozen=True)
class RunInputs:
    """The bars a strategy sees (`backtest.inputs.InputBars` when inputs were asked),
    the kernel's book-ticker slippage (None: the fixed bps), notes and config entries."""

    bars: Bars
    book: BookSlippage | None = None
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def check(inputs: Iterable[str], strategy_inputs: Iterable[str], slippage: str,
          config: Any) -> tuple[str, ...]:
    """Validate before reading anything: the input names (the run's and those the
    strategy needs) and the slippage model against the config's stops and market."""
    validate_slippage(slippage, config.sl_stop, config.tp_stop)
    if slippage == "book_ticker" and config.market not in ("um", "cm"):
        raise InputError(f"slippage book_ticker: the lake has book tickers for um and cm "
                         f"only, not {config.market!r}")
    names = validate_inputs([*inputs, *strategy_inputs])
    if names and config.market not in ("um", "cm"):
        raise InputError(f"strategy inputs ({', '.join(names)}) exist for um and cm "
                         f"futures only, not {config.market!r}")
    return names


def prepare(lake: str | Path | None, bars: Bars, names: tuple[str, ...], slippage: str,
            config: Any, allow_gaps: bool = False) -> RunInputs:
    """Load the inputs `names` aligned to `bars` and, for ``slippage="book_ticker"``, the
    kernel's per-bar buy/sell fractions (the book ticker is read once for both)."""
    if not names and slippage == "fixed":
        return RunInputs(bars)
    if lake is None:
        raise InputError("strategy inputs and book-ticker slippage are read from the "
                         "lake: give lake=... (--lake)")
    rows = {}
    notes: list[str] = []
    book = None
    entries: dict[str, Any] = {}
    if slippage == "book_ticker":
        rows["book_ticker"] = read_rows(lake, "book_ticker", config.market, bars.symbol, bars)
        notes += check_rows(rows["book_ticker"], str(lake), config.market, bars.symbol,
                            "slippage book_ticker", allow_gaps)
        book = book_slippage(rows["book_ticker"], bars, config.fill == "close",
                             config.slippage_bps, allow_gaps)
        notes += fallback_notes(book)
        entries["slippage_model"] = "book_ticker"
        entries["slippage_fallback_bars"] = book.n_fallback
    loaded = load_inputs(lake, config.market, bars.symbol, bars, names,
                         allow_gaps=allow_gaps, rows=rows)
    notes += loaded.notes
    if names:
        entries["inputs"] = loaded.summary()
        bars = with_inputs(bars, loaded.columns)
    return RunInputs(bars, book, notes, entries)
