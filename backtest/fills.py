"""Fill model: when and at what price an order fills (pure).

A signal computed on bar t's close fills at bar t+1's open (``next_open``, the default:
no look-ahead) or, if asked, at bar t's close (``close``). The price moves against the
trader by the slippage: buys pay ``price * (1 + bps / 1e4)``, sells get
``price * (1 - bps / 1e4)``.
"""

from __future__ import annotations

from kline_lake.errors import InputError

FILL_MODES = ("next_open", "close")


def slippage_fraction(slippage_bps: float) -> float:
    """Basis points -> fraction, validated."""
    if not 0.0 <= slippage_bps < 10_000.0:
        raise InputError(f"slippage must be in [0, 10000) bps, got {slippage_bps}")
    return slippage_bps / 10_000.0


def fill_price(price: float, side: int, slippage_bps: float) -> float:
    """Price a buy (side > 0) or sell (side < 0) actually gets."""
    slip = slippage_fraction(slippage_bps)
    return price * (1.0 + slip) if side > 0 else price * (1.0 - slip)


def validate_fill(fill: str) -> bool:
    """True when fills happen at the bar's close; raises InputError on unknown modes."""
    if fill not in FILL_MODES:
        raise InputError(f"unknown fill {fill!r}; expected one of {', '.join(FILL_MODES)}")
    return fill == "close"
