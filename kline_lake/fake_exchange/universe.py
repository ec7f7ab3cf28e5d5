"""The fake exchange's synthetic symbols: listing dates, delistings and maintenance gaps.

A small fixed table, so tests and other code can ask programmatically what exists:
`symbols(market)`, `get_symbol(market, symbol)`, `listing_ms(market, symbol)`,
`delisted_ms(market, symbol)` and `gaps(market, symbol)`.

A bigger universe on request (`symbols(market, universe_size=N)`, the fake exchange's
``universe_size``, ``kline-lake fake-exchange --universe-size N``): N more synthetic
base assets ``X000`` .. ``X{N-1}``, each with a spot pair (``X000USDT``) and a USD-M
perpetual (``X000USDT``), listed on a staggered schedule (`generated_spec`), every
tenth one delisted, each with its own price path and funding (the synthetic paths are
keyed by market and symbol). The default (N = 0) is the fixed table alone.

Decisions (the real exchange is messier; these keep the oddities testable):
- Listing, delisting and maintenance boundaries fall on whole UTC hours.
- Maintenance gaps are exchange-wide per market: every symbol of the market has no
  klines and no trades in `[start_ms, end_ms)`. `gaps()` returns only the windows that
  intersect the symbol's listed life.
- The delisted spot symbol has status BREAK; the delisted USD-M one SETTLING (what the
  futures API shows for a contract that stopped trading). Their data ends at `delisted_ms`.
- Binance.US (`us`) lists BTCUSDT and ETHUSDT from its launch in September 2019.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from kline_lake.errors import InputError


def utc_ms(text: str) -> int:
    """'YYYY-MM-DD HH:MM' (UTC) -> epoch milliseconds."""
    dt = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1000


@dataclass(frozen=True)
class SymbolSpec:
    """One synthetic symbol and the parameters of its price/volume path.

    Prices are integers on a grid of `10**-price_decimals`; quantities on a grid of
    `10**-qty_decimals` (contracts for COIN-M, where `qty_decimals` is 0); quote volumes
    (base-asset volume for COIN-M) on a grid of `10**-quote_decimals`.

    COIN-M: every synthetic trade is one contract (so a day's trade count is its volume
    in contracts), and the ticks are finer than the real ones (0.001 BTC, 0.0001 ETH) so
    that contract size / price moves by at most 1e-8 from one tick to the next: the
    exact top-down quote split of `fake_exchange.splits` needs that.
    """

    market: str
    symbol: str
    base_asset: str
    quote_asset: str
    listed: str  # 'YYYY-MM-DD HH:MM' UTC
    delisted: str | None
    base_price: float
    daily_volume: float  # typical base volume (contracts for COIN-M) per day
    daily_trades: int
    price_decimals: int
    qty_decimals: int
    quote_decimals: int = 8
    funding_hours: int = 8  # futures only
    contract_size: int = 0  # COIN-M: USD per contract

    @property
    def listed_ms(self) -> int:
        return utc_ms(self.listed)

    @property
    def delisted_ms(self) -> int | None:
        return utc_ms(self.delisted) if self.delisted else None

    @property
    def status(self) -> str:
        if self.delisted is None:
            return "TRADING"
        return "BREAK" if self.market in ("spot", "us") else "SETTLING"


_SPOT_USDT = {"quote_asset": "USDT", "qty_decimals": 8}
_UM = {"quote_asset": "USDT", "qty_decimals": 3, "quote_decimals": 5}
_CM = {"quote_asset": "USD", "qty_decimals": 0}

UNIVERSE: tuple[SymbolSpec, ...] = (
    SymbolSpec("spot", "BTCUSDT", "BTC", listed="2017-08-17 04:00", delisted=None,
               base_price=42_000.0, daily_volume=30_000.0, daily_trades=600_000,
               price_decimals=2, **_SPOT_USDT),
    SymbolSpec("spot", "ETHUSDT", "ETH", listed="2017-08-17 04:00", delisted=None,
               base_price=2_400.0, daily_volume=300_000.0, daily_trades=400_000,
               price_decimals=2, **_SPOT_USDT),
    SymbolSpec("spot", "XMRUSDT", "XMR", listed="2019-03-15 04:00", delisted="2024-02-20 03:00",
               base_price=150.0, daily_volume=40_000.0, daily_trades=120_000,
               price_decimals=2, **_SPOT_USDT),
    SymbolSpec("spot", "NEWUSDT", "NEW", listed="2025-06-02 10:00", delisted=None,
               base_price=1.5, daily_volume=20_000_000.0, daily_trades=150_000,
               price_decimals=4, **_SPOT_USDT),
    SymbolSpec("us", "BTCUSDT", "BTC", listed="2019-09-23 00:00", delisted=None,
               base_price=42_000.0, daily_volume=800.0, daily_trades=100_000,
               price_decimals=2, **_SPOT_USDT),
    SymbolSpec("us", "ETHUSDT", "ETH", listed="2019-09-23 00:00", delisted=None,
               base_price=2_400.0, daily_volume=9_000.0, daily_trades=100_000,
               price_decimals=2, **_SPOT_USDT),
    SymbolSpec("um", "BTCUSDT", "BTC", listed="2019-09-08 18:00", delisted=None,
               base_price=42_000.0, daily_volume=200_000.0, daily_trades=1_500_000,
               price_decimals=2, **_UM),
    SymbolSpec("um", "ETHUSDT", "ETH", listed="2019-11-27 07:00", delisted=None,
               base_price=2_400.0, daily_volume=2_000_000.0, daily_trades=1_000_000,
               price_decimals=2, funding_hours=4, **_UM),
    SymbolSpec("um", "SRMUSDT", "SRM", listed="2020-09-14 07:00", delisted="2022-11-15 09:00",
               base_price=2.0, daily_volume=5_000_000.0, daily_trades=150_000,
               price_decimals=4, **{**_UM, "qty_decimals": 0}),
    SymbolSpec("cm", "BTCUSD_PERP", "BTC", listed="2020-08-10 08:00", delisted=None,
               base_price=42_000.0, daily_volume=400_000.0, daily_trades=400_000,
               price_decimals=3, contract_size=100, **_CM),
    SymbolSpec("cm", "ETHUSD_PERP", "ETH", listed="2020-08-14 08:00", delisted=None,
               base_price=2_400.0, daily_volume=300_000.0, daily_trades=300_000,
               price_decimals=4, contract_size=10, **_CM),
)

# Exchange-wide maintenance windows per market, [start, end) on whole hours, UTC.
MAINTENANCE: dict[str, tuple[tuple[str, str], ...]] = {
    "spot": (
        ("2018-02-08 00:00", "2018-02-08 08:00"),
        ("2019-05-15 02:00", "2019-05-15 06:00"),
        ("2020-02-19 12:00", "2020-02-19 15:00"),
        ("2021-04-25 04:00", "2021-04-25 07:00"),
        ("2022-07-01 02:00", "2022-07-01 04:00"),
        ("2023-03-24 12:00", "2023-03-24 14:00"),
        ("2024-08-06 01:00", "2024-08-06 03:00"),
        ("2025-03-12 06:00", "2025-03-12 08:00"),
    ),
    "us": (
        ("2020-06-10 03:00", "2020-06-10 05:00"),
        ("2023-01-18 02:00", "2023-01-18 04:00"),
    ),
    "um": (
        ("2020-06-04 03:00", "2020-06-04 05:00"),
        ("2021-04-25 04:00", "2021-04-25 07:00"),
        ("2022-11-10 02:00", "2022-11-10 04:00"),
        ("2023-08-01 06:00", "2023-08-01 09:00"),
        ("2024-05-15 03:00", "2024-05-15 05:00"),
        ("2025-09-09 02:00", "2025-09-09 04:00"),
    ),
    "cm": (
        ("2021-04-25 04:00", "2021-04-25 07:00"),
        ("2023-08-01 06:00", "2023-08-01 09:00"),
        ("2025-09-09 02:00", "2025-09-09 04:00"),
    ),
}


MAX_UNIVERSE_SIZE = 500
GENERATED_MARKETS = ("spot", "um")
_GENERATED = re.compile(r"^X(\d{3})USDT$")
_FIRST_LISTING_MS = utc_ms("2020-01-06 00:00")
_LISTING_STEP_H = 13 * 24 + 5  # 13 days 5 hours between listings: staggered hours too
_LIFE_DAYS = 700  # a delisted generated symbol trades this long


def generated_spec(market: str, index: int) -> SymbolSpec:
    """The `index`-th generated symbol of `market` ('spot' or 'um'), deterministic.

    Listing: 2020-01-06 00:00 UTC plus ``index`` x 13 d 5 h (the spot pair a day after
    the perpetual); every tenth (index % 10 == 7) is delisted 700 days after listing.
    Base price ``0.05 .. 5000`` spread over the indices; perps settle funding every 8 h
    (every third one every 4 h).
    """
    if market not in GENERATED_MARKETS or not 0 <= index < MAX_UNIVERSE_SIZE:
        raise InputError(f"no generated symbol {index} on market {market!r}")
    listed_ms = _FIRST_LISTING_MS + index * _LISTING_STEP_H * 3_600_000
    if market == "spot":
        listed_ms += 24 * 3_600_000
    delisted_ms = listed_ms + _LIFE_DAYS * 86_400_000 if index % 10 == 7 else None
    price = 0.05 * 10 ** ((index * 7 % 50) / 10.0)  # 0.05 .. ~4000, scattered
    decimals = 2 if price >= 100 else 4 if price >= 1 else 6
    fmt = "%Y-%m-%d %H:%M"
    as_text = (lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt))  # noqa: E731
    common = {"base_price": round(price, decimals), "daily_trades": 50_000 + 1_000 * index,
              "daily_volume": round(2_000_000.0 / price, 3), "price_decimals": decimals}
    name, base = f"X{index:03d}USDT", f"X{index:03d}"
    listed, delisted = as_text(listed_ms), as_text(delisted_ms) if delisted_ms else None
    if market == "spot":
        return SymbolSpec("spot", name, base, listed=listed, delisted=delisted, **common,
                          **_SPOT_USDT)
    return SymbolSpec("um", name, base, listed=listed, delisted=delisted,
                      funding_hours=4 if index % 3 == 2 else 8, **common, **_UM)


def _check_size(universe_size: int) -> int:
    if int(universe_size) != universe_size or not 0 <= universe_size <= MAX_UNIVERSE_SIZE:
        raise InputError(f"universe size must be an integer within 0..{MAX_UNIVERSE_SIZE}, "
                         f"got {universe_size}")
    return int(universe_size)


def symbols(market: str, universe_size: int = 0) -> tuple[SymbolSpec, ...]:
    """All synthetic symbols of `market` ('spot', 'um', 'cm', 'us'), delisted included;
    with `universe_size` N, plus the first N generated ones (spot and um)."""
    size = _check_size(universe_size)
    fixed = tuple(s for s in UNIVERSE if s.market == market)
    if market not in GENERATED_MARKETS:
        return fixed
    return fixed + tuple(generated_spec(market, j) for j in range(size))


def get_symbol(market: str, symbol: str) -> SymbolSpec:
    """The symbol's spec (fixed table or generated); InputError if there is none."""
    for spec in UNIVERSE:
        if spec.market == market and spec.symbol == symbol:
            return spec
    match = _GENERATED.match(symbol)
    if match and market in GENERATED_MARKETS:
        return generated_spec(market, int(match.group(1)))
    raise InputError(f"no synthetic symbol {symbol!r} on market {market!r}")


def listing_ms(market: str, symbol: str) -> int:
    """Open time of the symbol's first kline (epoch ms)."""
    return get_symbol(market, symbol).listed_ms


def delisted_ms(market: str, symbol: str) -> int | None:
    """End (exclusive) of the symbol's data, or None while it trades."""
    return get_symbol(market, symbol).delisted_ms


def gaps(market: str, symbol: str) -> list[tuple[int, int]]:
    """Maintenance windows `[start_ms, end_ms)` with no klines and no trades for the symbol,
    clipped to its listed life, sorted."""
    return spec_gaps(get_symbol(market, symbol))


def spec_gaps(spec: SymbolSpec) -> list[tuple[int, int]]:
    """`gaps` of a spec (generated symbols included)."""
    market = spec.market
    life_end = spec.delisted_ms if spec.delisted_ms is not None else 2**62
    out = []
    for start, end in MAINTENANCE.get(market, ()):
        a, b = max(utc_ms(start), spec.listed_ms), min(utc_ms(end), life_end)
        if a < b:
            out.append((a, b))
    return sorted(out)


def segments_s(spec: SymbolSpec, now_s: int | None = None) -> list[tuple[int, int]]:
    """The symbol's data-bearing time as sorted disjoint `[start_s, end_s)` seconds:
    listing to delisting (or `now_s`, exclusive) minus maintenance gaps."""
    start = spec.listed_ms // 1000
    end = spec.delisted_ms // 1000 if spec.delisted_ms is not None else 2**40
    if now_s is not None:
        end = min(end, now_s)
    out: list[tuple[int, int]] = []
    cur = start
    for g0, g1 in spec_gaps(spec):
        g0s, g1s = g0 // 1000, g1 // 1000
        if g0s > cur:
            out.append((cur, min(g0s, end)))
        cur = max(cur, g1s)
    out.append((cur, end))
    return [(a, b) for a, b in out if a < b]
