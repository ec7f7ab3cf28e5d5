"""Exchange order filters: the smallest order and the quantity grid a symbol accepts.

Binance rejects an order whose quantity is not a multiple of ``LOT_SIZE.stepSize``, is
below ``LOT_SIZE.minQty``, or whose notional (quantity x price) is below the minimum
notional (spot ``MIN_NOTIONAL.minNotional`` or ``NOTIONAL.minNotional``, USD-M futures
``MIN_NOTIONAL.notional``). The backtester sizes an entry, rounds its quantity DOWN to
the step (as a client must) and places no order below the minimum. Docs:
https://developers.binance.com/docs/binance-spot-api-docs/filters and
https://developers.binance.com/docs/derivatives/usds-margined-futures/common-definition#filters

Decisions where the exchange leaves a choice to the client:

- The filters come from the exchangeInfo the downloader cached in the lake
  (``_meta/exchange_info/<market>.json``): today's filters are applied to all history
  (the exchange does not publish their history).
- Fills are market orders: a spot minimum with ``applyToMarket``/``applyMinToMarket``
  false does not apply. ``MARKET_LOT_SIZE`` (same step on futures, step 0 = "use
  LOT_SIZE" on spot) and the maximum quantities are not modelled.
- Closing a position is always allowed (its quantity is already on the step grid;
  Binance exempts reduce-only orders from the futures minimum notional).
- COIN-M (``cm``) quantities are contracts: LOT_SIZE's step and minimum are read in
  contracts and applied to the whole contracts the inverse mirror trades
  (`backtest.inverse.mirror_lot`); cm lists no minimum notional. Without them the
  positions are whole contracts all the same.
- No cached exchangeInfo (or the symbol is not in it, or bars were passed without a
  lake): the run goes on without filters and the result's warnings say so; pass
  ``exchange_filters=False`` to silence it, or an `ExchangeFilters` to give them.

Pure except `load_exchange_info`, which reads the lake's cache file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kline_lake.errors import InputError, LakeError
from kline_lake.lake import layout


@dataclass(frozen=True)
class ExchangeFilters:
    """One symbol's order filters; 0 disables each (``ExchangeFilters()`` = none).

    `qty_step` and `min_qty` are in base units, `min_notional` in quote currency.
    `source` says where they came from (shown in the result's config).
    """

    qty_step: float = 0.0
    min_qty: float = 0.0
    min_notional: float = 0.0
    source: str = "off"

    def __post_init__(self) -> None:
        for name in ("qty_step", "min_qty", "min_notional"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InputError(f"exchange filter {name} must be a number >= 0, got {value!r}")

    @property
    def active(self) -> bool:
        """True if any filter constrains orders."""
        return self.qty_step > 0 or self.min_qty > 0 or self.min_notional > 0

    def kernel_args(self) -> tuple[float, float, float]:
        """(qty_step, min_qty, min_notional) as `simulate_nb` takes them."""
        return float(self.qty_step), float(self.min_qty), float(self.min_notional)


FILTERS_OFF = ExchangeFilters()


def _number(entry: Mapping[str, Any], key: str) -> float:
    try:
        value = float(entry.get(key) or 0.0)
    except (TypeError, ValueError):
        raise InputError(f"exchangeInfo filter {entry.get('filterType')}: {key}="
                         f"{entry.get(key)!r} is not a number") from None
    return value if math.isfinite(value) and value > 0 else 0.0


def _applies_to_market(f: Mapping[str, Any]) -> bool:
    """Spot MIN_NOTIONAL (until 2023) says ``applyToMarket``, NOTIONAL (since)
    ``applyMinToMarket``: false means market orders are exempt."""
    return bool(f.get("applyToMarket", f.get("applyMinToMarket", True)))


def symbol_filters(info: Mapping[str, Any], symbol: str, source: str = "exchangeInfo"
                   ) -> ExchangeFilters | None:
    """The filters of `symbol` in an exchangeInfo body (None if it does not list it)."""
    entry = next((s for s in info.get("symbols", []) if s.get("symbol") == symbol), None)
    if entry is None:
        return None
    step = min_qty = min_notional = 0.0
    for f in entry.get("filters", []):
        kind = f.get("filterType")
        if kind == "LOT_SIZE":
            step, min_qty = _number(f, "stepSize"), _number(f, "minQty")
        elif kind == "MIN_NOTIONAL" and "notional" in f:  # futures
            min_notional = max(min_notional, _number(f, "notional"))
        elif kind in ("MIN_NOTIONAL", "NOTIONAL") and _applies_to_market(f):  # spot
            min_notional = max(min_notional, _number(f, "minNotional"))
    return ExchangeFilters(step, min_qty, min_notional, source)


def load_exchange_info(lake: str | Path, market: str) -> dict | None:
    """The exchangeInfo of `market` cached in the lake, or None if there is none."""
    if "://" in str(lake) and not str(lake).startswith("file://"):  # an object store
        from kline_lake.lake.writer import LakeWriter

        info = LakeWriter(str(lake)).load_exchange_info(market)
        return info if isinstance(info, dict) else None
    path = layout.exchange_info_path(Path(lake), market)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        raise LakeError(f"cannot read cached exchangeInfo {path}: {exc}") from exc
    return info if isinstance(info, dict) else None


def resolve_filters(choice: bool | ExchangeFilters, lake: str | Path | None, market: str,
                    symbol: str) -> tuple[ExchangeFilters, list[str]]:
    """The filters a run applies and the notes to show: `choice` True reads the lake's
    cached exchangeInfo, False applies none, an `ExchangeFilters` is used as given."""
    if isinstance(choice, ExchangeFilters):
        return choice, []
    if not isinstance(choice, bool):
        raise InputError(f"exchange_filters must be True, False or ExchangeFilters, "
                         f"not {choice!r}")
    if not choice:
        return FILTERS_OFF, []
    off = "exchange filters (LOT_SIZE, MIN_NOTIONAL) not applied"
    if market == "cm":
        off = "exchange filters (LOT_SIZE) not applied (positions are whole contracts all the same)"
    if lake is None:
        return FILTERS_OFF, [f"{off}: bars were given without a lake to read exchangeInfo "
                             "from (pass exchange_filters=ExchangeFilters(...) or False)"]
    info = load_exchange_info(lake, market)
    if info is None:
        return FILTERS_OFF, [f"{off}: the lake has no cached {market} exchangeInfo (any "
                             f"`kline-lake download --market {market}` caches it)"]
    found = symbol_filters(info, symbol, f"lake exchangeInfo ({market})")
    if found is None:
        return FILTERS_OFF, [f"{off}: {symbol} is not listed in the lake's cached {market} "
                             "exchangeInfo"]
    return found, []
