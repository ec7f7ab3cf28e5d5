"""Inverse (COIN-M) contracts, simulated exactly by the linear kernel on a mirror.

Binance COIN-M rules: the account, PnL, fees and funding are in the margin coin (BTC
for ``BTCUSD_PERP``); a position is a whole number ``N`` of contracts of
``contractSize`` ``S`` USD each (from exchangeInfo); a long entered at ``p0`` and
closed at ``p1`` makes ``N * S * (1/p0 - 1/p1)`` coin; a fill pays ``fee_rate * N * S /
p`` coin; a funding event pays ``N * S / mark * rate`` coin (a long pays a positive
rate, a short receives it).

The mirror: ``N`` contracts long at USD price ``p`` are ``q = -N * S`` units of a linear
asset priced ``x = 1 / p`` (coin per USD). Then ``q * (x1 - x0) = N * S * (1/p0 - 1/p1)``
(the PnL), ``|q| * x = N * S / p`` (the coin notional, so fees on it), and funding
charged as ``q * (-rate / mark)`` is ``N * S * rate / mark``: the linear kernel
(`backtest.kernels.simulate_nb`) runs unchanged on

- prices ``open' = 1/open``, ``high' = 1/low``, ``low' = 1/high``, ``close' = 1/close``;
- funding sums ``-sum(rate / mark)`` (`backtest.funding.align_funding` with
  ``inverse=True`` gives ``sum(rate / mark)``);
- signals negated and the direction mirrored (``long`` <-> ``short``; a crossover's
  negation is its fast/slow lines swapped: ``cross(slow, fast) == -cross(fast, slow)``);
- the lot step ``S`` (times the exchange's LOT_SIZE step, in contracts): quantities
  are whole contracts, rounded down as the exchange requires;
- equity ``cash + q * close'`` in coin, ``--cash`` in coin.

What is *not* linear in the mirror is what the trader states in USD price space: the
slippage (a real buy at ``p * (1 + slip)`` is a mirrored sell at ``x / (1 + slip)``) and
the stops (a long entered at ``E`` stops at ``E * (1 - sl)``, mirrored ``x_E / (1 -
sl)``, not ``x_E * (1 + sl)``); the kernel's ``inverse`` flag applies both in real
price space. Liquidation (with a maintenance margin rate) uses the linear isolated-margin
formula on the mirror, in coin. `unmirror` turns the kernel's records back into real
units: contracts, USD prices, sides as the trader sees them.

Worked numbers (``tests/backtest/test_inverse.py``): 1 BTC of cash, all-in long at an
open of 40,000 with fee 0.0005 and ``S = 100``: ``1 / (1.0005 / 40,000) / 100 =
399.8`` -> 399 contracts (39,900 USD, 0.9975 BTC of notional); entry fee
``0.0005 * 39,900 / 40,000 = 0.00049875`` BTC; closed at 50,000: PnL ``39,900 *
(1/40,000 - 1/50,000) = 0.1995`` BTC, exit fee ``0.0005 * 39,900 / 50,000 = 0.000399``
BTC, final equity ``1 - 0.00049875 + 0.1995 - 0.000399 = 1.19860225`` BTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backtest.filters import (
    ExchangeFilters,
    load_exchange_info,
)
from kline_lake.errors import InputError

INVERSE_MARKETS = frozenset({"cm"})


def is_inverse(market: str) -> bool:
    """True for the inverse (coin-margined) markets."""
    return market in INVERSE_MARKETS


def mirror_prices(price: np.ndarray) -> np.ndarray:
    """``1 / price`` (coin per USD); a zero price mirrors to inf (never traded)."""
    with np.errstate(divide="ignore"):
        return np.ascontiguousarray(1.0 / np.asarray(price, dtype=np.float64))


@dataclass(frozen=True)
class KernelBars:
    """The price and funding arrays the kernel takes (mirrored for inverse)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    fund_at_open: np.ndarray
    fund_intra: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (self.open, self.high, self.low, self.close)


def mirror_bars(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                fund_at_open: np.ndarray, fund_intra: np.ndarray) -> KernelBars:
    """The mirror of real bars and their ``sum(rate / mark)`` funding (module docstring):
    the high of the mirror is the mirror of the low."""
    return KernelBars(mirror_prices(open_), mirror_prices(low), mirror_prices(high),
                      mirror_prices(close), -np.asarray(fund_at_open, dtype=np.float64),
                      -np.asarray(fund_intra, dtype=np.float64))


def mirror_lot(contract_size: float, qty_step: float, min_qty: float,
               min_notional: float) -> tuple[float, float, float]:
    """The kernel's ``(qty_step, min_qty, min_notional)`` in mirror units: steps and
    minimums in contracts times ``contract_size`` (whole contracts even without exchange
    filters), the minimum notional (coin) as given."""
    step = contract_size * (qty_step if qty_step > 0 else 1.0)
    return step, contract_size * min_qty, min_notional


def unmirror(sim: dict, contract_size: float) -> dict:
    """A kernel run on the mirror (`backtest.engine.simulate`'s dict) in real units:
    positions and quantities in contracts, prices in USD, sides as traded; cash, equity,
    fees, funding and PnL are already coin."""
    out = dict(sim)
    out["position"] = -sim["position"] / contract_size
    orders = sim["orders"].copy()
    orders["side"] = -orders["side"]
    orders["qty"] = orders["qty"] / contract_size
    orders["price"] = 1.0 / orders["price"]
    trades = sim["trades"].copy()
    trades["side"] = -trades["side"]
    trades["qty"] = trades["qty"] / contract_size
    trades["entry_price"] = 1.0 / trades["entry_price"]
    trades["exit_price"] = 1.0 / trades["exit_price"]
    out.update(orders=orders, trades=trades)
    return out


def buy_hold_equity(cash: float, open0: float, close: np.ndarray) -> np.ndarray:
    """Coin equity of a 1x long of ``cash * open0`` USD of contracts held from the first
    open (fees and whole-contract rounding aside): ``cash * (2 - open0 / close)``."""
    return cash * (2.0 - open0 / close)


def margin_coin(symbol: str, entry: dict | None = None) -> str:
    """The margin coin: exchangeInfo's ``marginAsset``, else the symbol's base
    (``BTCUSD_PERP`` -> ``BTC``)."""
    if entry and entry.get("marginAsset"):
        return str(entry["marginAsset"])
    return symbol.split("USD")[0] or symbol


def symbol_entry(lake: str | Path | None, symbol: str) -> dict | None:
    """`symbol`'s entry in the cm exchangeInfo cached in the lake (None if none)."""
    if lake is None:
        return None
    info = load_exchange_info(lake, "cm")
    if info is None:
        return None
    return next((s for s in info.get("symbols", []) if s.get("symbol") == symbol), None)


def check_contract_size(value: float | None) -> float | None:
    """A given contract size as a float; InputError unless finite and positive."""
    if value is None:
        return None
    try:
        size = float(value)
    except (TypeError, ValueError):
        raise InputError(f"contract size must be a number of USD, got {value!r}") from None
    if not (np.isfinite(size) and size > 0):
        raise InputError(f"contract size must be positive (USD per contract), got {value!r}")
    return size


def check_contract_filters(filters: ExchangeFilters) -> None:
    """InputError unless a cm LOT_SIZE step and minimum are whole contracts (0 = off)."""
    for name in ("qty_step", "min_qty"):
        value = getattr(filters, name)
        if value and (value < 1 or value != int(value)):
            raise InputError(f"cm exchange filter {name} is in contracts and must be a whole "
                             f"number, got {value:g}")


def resolve_contract_size(given: float | None, lake: str | Path | None, symbol: str
                          ) -> tuple[float, str]:
    """``(contractSize, margin coin)`` of a cm symbol: the lake's cached exchangeInfo,
    or `given` (``contract_size=``) when there is none; InputError when neither is
    known or they disagree."""
    entry = symbol_entry(lake, symbol)
    known = None
    if entry is not None and entry.get("contractSize") not in (None, "", 0, "0"):
        known = check_contract_size(entry["contractSize"])
    if known is None and given is None:
        raise InputError(f"cm {symbol}: contract size unknown (no cached cm exchangeInfo "
                         "lists it: download any cm series into the lake, or pass "
                         "contract_size=USD per contract)")
    if known is not None and given is not None and known != given:
        raise InputError(f"cm {symbol}: contract_size {given:g} disagrees with the "
                         f"exchange's contractSize {known:g}")
    return (known if known is not None else given), margin_coin(symbol, entry)
