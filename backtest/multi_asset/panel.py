"""The aligned universe panel: every asset of a portfolio on one time grid.

`load_panel` reads each ``market:SYMBOL`` of the universe through the lake's scan API
(`backtest.data`, which uses `kline_lake.lake.scan.scan_series`), lists ``market:ALL``
from the lake's inventory (`kline_lake.lake.catalog.Lake`), and reads listing,
delisting and ``contractSize`` from the exchangeInfo cached in the lake
(`kline_lake.lake.writer.LakeWriter.load_exchange_info`).

Decisions where the issue is silent:

- The grid is the union of every asset's bar open times in ``[start, end)``; a time at
  which no asset has a bar (an exchange-wide maintenance gap) is not a bar.
- ``tradable[t, a]``: the asset has a bar at t, t is at or after its listing
  (exchangeInfo ``onboardDate`` when cached) and before its delivery/delisting date.
- An asset is *delisted in range* when exchangeInfo gives it a status other than
  TRADING and its last bar ends before the grid's last bar: the engine closes the
  position at that bar's close (`delist_idx`).
- Coverage is checked per asset exactly as `backtest.run` checks it
  (`backtest.data.load_lake_data`): a never-fetched hole in an asset's klines or funding
  refuses the whole portfolio (naming the asset, the holes and the download command)
  unless `allow_gaps`; stretches the exchange confirmed empty (before listing, after
  delisting, maintenance) are history. A ``market:ALL`` member without any kline in the
  range is left out; one the lake covers only partly is not (it refuses like the others).
  The notes of every asset (resampled source interval, allowed holes) reach the result.
- Funding uses `backtest.funding` exactly as `backtest.run` does (same mark-price
  fallback chain, same at-open / intra-bar mapping), per asset on its own bars, then
  scattered onto the grid.

Pure except for reading the lake (a directory or an object-store URL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from backtest.data import (
    Bars,
    check_range,
    load_funding,
    load_lake_data,
    load_mark_opens,
    parse_time_us,
)
from backtest.funding import align_funding, event_bars
from kline_lake.core.intervals import INTERVAL_MS, validate_interval
from kline_lake.core.markets import get_market
from kline_lake.core.timeutil import MS_PER_DAY
from kline_lake.errors import CoverageError, InputError
from kline_lake.lake.catalog import Lake
from kline_lake.lake.storage import split_url
from kline_lake.lake.writer import LakeWriter

LakeRoot = str | Path  # a local directory, or an object-store URL (s3://bucket/prefix)

SPOT_MARKETS = ("spot", "us")
LIVE_STATUSES = ("TRADING", "PENDING_TRADING")


@dataclass(frozen=True)
class AssetInfo:
    """What the exchangeInfo cache says about one asset (defaults when absent)."""

    status: str | None = None
    listed_us: int | None = None
    delivery_us: int | None = None
    contract_size: float = 0.0
    margin_asset: str | None = None
    base_asset: str | None = None


@dataclass(frozen=True)
class Panel:
    """Bars x assets arrays of a universe (NaN where an asset has no bar).

    What a strategy reads: ``assets`` (``market:SYMBOL``, universe order), ``time_us``,
    ``open``/``high``/``low``/``close``/``volume``, ``tradable`` and ``funding_rate``
    (the sum of the rates settled within each bar, 0 where none). The rest feeds the
    kernel: per-bar ``sum(rate * mark)`` at the open and inside the bar
    (``fund_at_open``/``fund_intra``, ``sum(rate / mark)`` for inverse contracts),
    ``delist_idx`` (the bar whose close ends a delisted asset, -1 if none).
    """

    assets: tuple[str, ...]
    interval: str
    time_us: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    tradable: np.ndarray
    funding_rate: np.ndarray
    fund_at_open: np.ndarray
    fund_intra: np.ndarray
    delist_idx: np.ndarray
    info: tuple[AssetInfo, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # coverage notes per asset (load_panel)
    unknown_gaps: int = 0  # never-fetched holes run through with allow_gaps

    @property
    def n_bars(self) -> int:
        return int(self.time_us.shape[0])

    @property
    def n_assets(self) -> int:
        return len(self.assets)

    @property
    def markets(self) -> tuple[str, ...]:
        return tuple(a.split(":", 1)[0] for a in self.assets)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(a.split(":", 1)[1] for a in self.assets)

    @property
    def is_perp(self) -> np.ndarray:
        return np.array([m not in SPOT_MARKETS for m in self.markets], dtype=np.bool_)

    @property
    def is_inverse(self) -> np.ndarray:
        return np.array([m == "cm" for m in self.markets], dtype=np.bool_)

    @property
    def contract_size(self) -> np.ndarray:
        return np.array([i.contract_size for i in self.info], dtype=np.float64)

    @property
    def bar_ms(self) -> int:
        return INTERVAL_MS.get(self.interval, 30 * MS_PER_DAY)

    @property
    def bar_days(self) -> float:
        return self.bar_ms / MS_PER_DAY

    def base_asset(self, k: int) -> str:
        """The asset's base coin (exchangeInfo, else the symbol minus its quote)."""
        info = self.info[k] if self.info else AssetInfo()
        if info.base_asset:
            return info.base_asset
        sym = self.symbols[k]
        for quote in ("USD_PERP", "USDT", "USDC", "BUSD", "USD"):
            if sym.endswith(quote) and len(sym) > len(quote):
                return sym[: -len(quote)]
        return sym


def parse_universe(universe: str | list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """'um:BTCUSDT,spot:ETHUSDT' (or a list) -> [(market, SYMBOL)], in order."""
    items = universe.split(",") if isinstance(universe, str) else list(universe)
    out: list[tuple[str, str]] = []
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        market, sep, symbol = item.partition(":")
        if not sep or not symbol.strip():
            raise InputError(f"universe entry {item!r}: expected market:SYMBOL or market:ALL")
        get_market(market.strip())
        out.append((market.strip(), symbol.strip().upper()))
    if not out:
        raise InputError("the universe is empty: give market:SYMBOL entries")
    return out


def _exchange_infos(lake: LakeRoot, markets: set[str]) -> dict[str, dict[str, dict] | None]:
    writer = LakeWriter(lake)
    out: dict[str, dict[str, dict] | None] = {}
    for market in markets:
        raw = writer.load_exchange_info(market)
        out[market] = None if raw is None else {s["symbol"]: s for s in raw.get("symbols", [])}
    return out


def asset_info(entry: dict | None) -> AssetInfo:
    """exchangeInfo symbol entry -> AssetInfo (status, onboard/delivery dates, size)."""
    if entry is None:
        return AssetInfo()
    status = entry.get("status", entry.get("contractStatus"))
    onboard, delivery = entry.get("onboardDate"), entry.get("deliveryDate")
    return AssetInfo(status=status,
                     listed_us=int(onboard) * 1000 if onboard else None,
                     delivery_us=int(delivery) * 1000 if delivery else None,
                     contract_size=float(entry.get("contractSize", 0) or 0),
                     margin_asset=entry.get("marginAsset"), base_asset=entry.get("baseAsset"))


def _lake_symbols(lake: LakeRoot, market: str, interval: str) -> list[str]:
    inv = Lake(lake).inventory()
    rows = inv.filter((pl.col("market") == market) & (pl.col("dataset") == "klines")
                      & (pl.col("interval") == interval))
    return sorted(rows.get_column("symbol").unique().to_list())


def expand_universe(lake: LakeRoot, entries: list[tuple[str, str]], interval: str,
                    infos: dict[str, dict[str, dict] | None]) -> list[tuple[str, str, bool]]:
    """Entries with ``market:ALL`` expanded to the lake's symbols: (market, symbol,
    explicit). Unknown symbols (not in a cached exchangeInfo) are InputError."""
    out: list[tuple[str, str, bool]] = []
    seen: set[tuple[str, str]] = set()
    for market, symbol in entries:
        validate_interval(interval, market)
        if symbol == "ALL":
            names = _lake_symbols(lake, market, interval)
            if not names:
                raise InputError(f"{market}:ALL: the lake {lake} holds no {market} "
                                 f"{interval} klines")
            expanded = [(market, s, False) for s in names]
        else:
            known = infos.get(market)
            if known is not None and symbol not in known:
                raise InputError(f"unknown symbol {market}:{symbol}: not in the {market} "
                                 "exchangeInfo cached in the lake")
            expanded = [(market, symbol, True)]
        for m, s, explicit in expanded:
            if (m, s) not in seen:
                seen.add((m, s))
                out.append((m, s, explicit))
    return out


def _inverse_sums(bars: Bars, events, marks) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar ``sum(rate / mark)`` at the open and inside the bar (inverse contracts:
    funding in coin is ``contracts * contractSize * rate / mark``): the mark fallback
    chain and bar mapping of `backtest.funding.align_funding`, shared with `run`."""
    return align_funding(bars, events, marks, inverse=True)


def _asset_funding(lake: LakeRoot, bars: Bars, start_us: int, end_us: int, inverse: bool
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(at-open sums, intra-bar sums, settled rate) per bar of one perpetual."""
    events = load_funding(lake, bars.market, bars.symbol, start_us, end_us)
    marks = load_mark_opens(lake, bars.market, bars.symbol, bars.interval, start_us, end_us)
    if inverse:
        at_open, intra = _inverse_sums(bars, events, marks)
    else:
        at_open, intra = align_funding(bars, events, marks)
    rate = np.zeros(len(bars))
    if events.time_us.shape[0]:
        idx, _ = event_bars(bars.open_time_us, bars.bar_ms * 1000, events.time_us)
        use = idx >= 0
        np.add.at(rate, idx[use], events.rate[use])
    return at_open, intra, rate


def _load_assets(lake: LakeRoot, entries: list[tuple[str, str, bool]], interval: str,
                 start_us: int, end_us: int, funding: bool, allow_gaps: bool
                 ) -> tuple[list[Bars], list[str], int]:
    """Each asset's bars after its coverage check; (bars, notes, unknown holes allowed)."""
    loaded: list[Bars] = []
    notes: list[str] = []
    unknown = 0
    for market, symbol, explicit in entries:
        try:
            data = load_lake_data(lake, market, symbol, interval, start_us, end_us,
                                  funding=funding, allow_gaps=allow_gaps)
        except CoverageError as exc:
            raise CoverageError(f"{market}:{symbol}: {exc}") from None
        except InputError:
            if explicit:
                raise
            continue  # a market:ALL member with no kline in the range
        loaded.append(data.bars)
        notes.extend(f"{market}:{symbol}: {n}" for n in data.coverage.notes())
        unknown += data.coverage.n_unknown
    if not loaded:
        raise InputError(f"no asset of the universe has {interval} klines in the lake {lake} "
                         "for the range")
    return loaded, notes, unknown


def load_panel(lake: str | Path, universe: str | list[str], interval: str, start, end, *,
               funding: bool = True, allow_gaps: bool = False) -> Panel:
    """Load and align the universe over ``[start, end)`` (see the module docstring)."""
    scheme, local = split_url(lake)
    root: LakeRoot = str(lake) if scheme else Path(local)
    if isinstance(root, Path) and not root.is_dir():
        raise InputError(f"lake {root} does not exist")
    start_us, end_us = parse_time_us(start, "start"), parse_time_us(end, "end")
    check_range(start_us, end_us)
    entries = parse_universe(universe)
    infos = _exchange_infos(root, {m for m, _ in entries})
    assets, notes, unknown = _load_assets(root, expand_universe(root, entries, interval, infos),
                                          interval, start_us, end_us, funding, allow_gaps)
    grid = np.unique(np.concatenate([b.open_time_us for b in assets]))
    n, m = grid.shape[0], len(assets)
    arrays = {k: np.full((n, m), np.nan) for k in ("open", "high", "low", "close", "volume")}
    tradable = np.zeros((n, m), dtype=np.bool_)
    fund = {k: np.zeros((n, m)) for k in ("fund_at_open", "fund_intra", "funding_rate")}
    delist_idx = np.full(m, -1, dtype=np.int64)
    info_list = []
    for k, b in enumerate(assets):
        known = infos.get(b.market)
        info = asset_info(known.get(b.symbol) if known else None)
        info_list.append(info)
        rows = np.searchsorted(grid, b.open_time_us)
        for name in arrays:
            arrays[name][rows, k] = getattr(b, name)
        live = np.ones(len(b), dtype=np.bool_)
        if info.listed_us is not None:
            live &= b.open_time_us >= info.listed_us
        if info.delivery_us is not None:
            live &= b.open_time_us < info.delivery_us
        tradable[rows[live], k] = True
        if funding and get_market(b.market).is_futures:
            parts = _asset_funding(root, b, start_us, end_us, b.market == "cm")
            for name, values in zip(("fund_at_open", "fund_intra", "funding_rate"), parts,
                                    strict=True):
                fund[name][rows, k] = values
        last = int(rows[live][-1]) if live.any() else -1
        if info.status is not None and info.status not in LIVE_STATUSES and 0 <= last < n - 1:
            delist_idx[k] = last
    return Panel(tuple(f"{b.market}:{b.symbol}" for b in assets), interval, grid,
                 arrays["open"], arrays["high"], arrays["low"], arrays["close"],
                 arrays["volume"], tradable, fund["funding_rate"], fund["fund_at_open"],
                 fund["fund_intra"], delist_idx, tuple(info_list), tuple(notes), unknown)


def panel_from_arrays(assets: list[str], interval: str, time_us, open_, close, *,
                      high=None, low=None, volume=None, tradable=None, funding_rate=None,
                      fund_at_open=None, fund_intra=None, delist_idx=None,
                      info: tuple[AssetInfo, ...] | None = None) -> Panel:
    """A Panel from arrays already aligned (bars x assets); for tests and benchmarks.
    Missing arrays default to: high/low = max/min(open, close), volume 0, tradable where
    close is finite, no funding, no delisting."""
    o = np.ascontiguousarray(open_, dtype=np.float64)
    c = np.ascontiguousarray(close, dtype=np.float64)
    if o.shape != c.shape or o.ndim != 2 or o.shape[1] != len(assets):
        raise InputError(f"open/close must both be bars x {len(assets)} assets")
    for a in assets:
        parse_universe([a])
    zeros = np.zeros(c.shape)

    def arr(x, default):
        return default if x is None else np.ascontiguousarray(x, dtype=np.float64)

    return Panel(tuple(assets), interval, np.asarray(time_us, dtype=np.int64), o,
                 arr(high, np.fmax(o, c)), arr(low, np.fmin(o, c)), c, arr(volume, zeros.copy()),
                 np.isfinite(c) if tradable is None else np.asarray(tradable, dtype=np.bool_),
                 arr(funding_rate, zeros.copy()), arr(fund_at_open, zeros.copy()),
                 arr(fund_intra, zeros.copy()),
                 np.full(len(assets), -1, np.int64) if delist_idx is None
                 else np.asarray(delist_idx, np.int64),
                 info if info is not None else tuple(AssetInfo() for _ in assets))
