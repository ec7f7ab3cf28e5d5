"""Which symbols a request means, read from exchangeInfo. Pure.

`--symbols` entries are exact names (any status: a delisted symbol still has history),
shell-style patterns (`BTC*`, `*USDT`, `ETH?USDT`, `[AB]*`) or `ALL`; `--quote ASSET`
keeps the symbols whose `quoteAsset` is ASSET (alone it means ALL). A decision:
patterns and ALL select TRADING symbols only, as ALL always did; name a delisted symbol
to get it. Every entry must select something, so a typo is an error, not an empty run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from kline_lake.download.request import is_pattern
from kline_lake.errors import InputError
from kline_lake.exchange import exchange_info as xinfo


def quote_assets(info: Mapping[str, Any]) -> dict[str, str | None]:
    """Symbol -> its `quoteAsset` (None when exchangeInfo does not say)."""
    return {e["symbol"]: e.get("quoteAsset") for e in info.get("symbols", [])
            if isinstance(e.get("symbol"), str)}


def select_symbols(info: Mapping[str, Any], requested: Sequence[str], quote: str | None = None,
                   *, by_pair: bool = False) -> list[xinfo.SymbolInfo]:
    """The symbols of `requested` (names, patterns, ALL) with quote asset `quote`.

    Exact names come first in the order given, then pattern matches sorted by name;
    each symbol once. InputError names the entry that selects nothing.
    """
    names = [r for r in requested if r != "ALL" and not is_pattern(r)]
    patterns = ["*" if r == "ALL" else r for r in requested if r == "ALL" or is_pattern(r)]
    quotes = quote_assets(info)
    out = xinfo.resolve_symbols(info, names, by_pair=by_pair) if names else []
    for s in out:
        if quote is not None and s.symbol in quotes and quotes[s.symbol] != quote:
            raise InputError(f"--symbols {s.symbol}: its quote asset is {quotes[s.symbol]}, "
                             f"not --quote {quote}")
    known = xinfo.symbols_of(info)
    seen = {s.symbol for s in out}
    for pattern in patterns:
        hits = sorted((s for s in known.values() if s.trading and fnmatchcase(s.symbol, pattern)
                       and (quote is None or quotes.get(s.symbol) == quote)),
                      key=lambda s: s.symbol)
        if not hits:
            raise InputError(_nothing_matches(pattern, quote, known, quotes))
        out.extend(s for s in hits if s.symbol not in seen)
        seen.update(s.symbol for s in hits)
    return out


def _nothing_matches(pattern: str, quote: str | None, known: Mapping[str, xinfo.SymbolInfo],
                     quotes: Mapping[str, str | None]) -> str:
    what = ("--quote " + quote) if pattern == "*" else (
        f"--symbols {pattern!r}" + (f" --quote {quote}" if quote else ""))
    trading = [s for s in known.values() if s.trading]
    if quote is not None and not any(quotes.get(s.symbol) == quote for s in trading):
        assets = sorted({q for s in trading if (q := quotes.get(s.symbol))})
        return (f"{what}: no TRADING symbol quotes {quote}; the exchange's quote assets are "
                f"{', '.join(assets[:20])}{' ...' if len(assets) > 20 else ''}")
    retired = [s.symbol for s in known.values() if not s.trading and fnmatchcase(s.symbol, pattern)]
    hint = (f" (not trading, name them to download: {', '.join(sorted(retired)[:5])})"
            if retired else "")
    return f"{what} matches no TRADING symbol of the exchange's {len(known)}{hint}"
