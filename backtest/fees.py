"""Fee model: a rate on traded notional, charged on every fill (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from kline_lake.errors import InputError

# Binance's base-tier (VIP 0) rates: spot 0.1 % maker and taker; USD-M futures 0.02 %
# maker / 0.05 % taker; COIN-M 0.02 % / 0.05 %. https://www.binance.com/en/fee/schedule
DEFAULT_RATES: dict[str, tuple[float, float]] = {
    "spot": (0.001, 0.001),
    "us": (0.001, 0.001),
    "um": (0.0002, 0.0005),
    "cm": (0.0002, 0.0005),
}


@dataclass(frozen=True)
class FeeModel:
    """Maker and taker fee rates; `liquidity` picks which one every fill pays.

    Signal fills are market orders, so taker is the default.
    """

    taker_rate: float = 0.0005
    maker_rate: float = 0.0002
    liquidity: str = "taker"

    def __post_init__(self) -> None:
        for name in ("taker_rate", "maker_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise InputError(f"fee rate {name}={value} must be in [0, 1)")
        if self.liquidity not in ("taker", "maker"):
            raise InputError(f"liquidity must be 'taker' or 'maker', not {self.liquidity!r}")

    @property
    def rate(self) -> float:
        """The rate charged on each fill's notional."""
        return self.taker_rate if self.liquidity == "taker" else self.maker_rate

    @classmethod
    def for_market(cls, market: str, taker_rate: float | None = None,
                   maker_rate: float | None = None, liquidity: str = "taker") -> FeeModel:
        """Market defaults, overridden by explicit rates."""
        maker, taker = DEFAULT_RATES.get(market, (0.0002, 0.0005))
        return cls(taker if taker_rate is None else taker_rate,
                   maker if maker_rate is None else maker_rate, liquidity)


def fee(notional: float, fee_rate: float) -> float:
    """Fee on a fill of `notional` (quote currency)."""
    return abs(notional) * fee_rate
