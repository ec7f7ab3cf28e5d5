"""Which series the lake holds, and a one-line error naming them when a request misses.

A typo must not look like an answer: ``Lake.klines("um", "BTCUSTD", "1h")`` on a lake
without that series is an InputError naming what the lake does hold ("no um klines for
BTCUSTD in the lake; it holds BTCUSDT, ETHUSDT"), not an empty frame. A series is *held*
when it has a directory of data files or a coverage record (a series the exchange
answered empty everywhere has coverage and no rows: an existing, empty series). A held
series with no rows in a range still reads as an empty frame.

Only directory and file names are read (``symbol=*`` / ``interval=*`` directories and the
coverage record names), never a data file; on an object store (a
`kline_lake.lake.storage.Storage` root) one listing of the dataset's prefix and one of its
coverage records.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.core.markets import KLINE_DATASETS, MARKETS
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake import layout
from kline_lake.lake.storage import LocalStorage, Storage

SHOWN_NAMES = 20  # names listed in an error before "... (N in all)"


def _interval_order(interval: str | None) -> int:
    return ALL_INTERVALS.index(interval) if interval in ALL_INTERVALS else len(ALL_INTERVALS)


def held_series(root: Path | Storage, dataset: str, market: str | None = None) -> list[SeriesKey]:
    """Every series of `dataset` (in `market`, or every market) with data or coverage,
    sorted by market, symbol, interval (in the exchange's interval order)."""
    if isinstance(root, LocalStorage):
        root = root.path
    found: set[SeriesKey] = set()
    for mkt in (market,) if market else MARKETS:
        if isinstance(root, Storage):
            found.update(_object_series(root, mkt, dataset))
            continue
        found.update(_data_series(root, mkt, dataset))
        found.update(_coverage_series(root, mkt, dataset))
    return sorted(found, key=lambda k: (MARKETS.index(k.market), k.symbol,
                                        _interval_order(k.interval)))


def _data_series(root: Path, market: str, dataset: str) -> Iterable[SeriesKey]:
    ddir = layout.dataset_dir(root, market, dataset)
    for sdir in sorted(ddir.glob("symbol=*")) if ddir.is_dir() else []:
        symbol = layout.parse_partition_value(sdir.name, "symbol")
        if dataset not in KLINE_DATASETS:
            key = _key(market, dataset, symbol, None)
            if key is not None:
                yield key
            continue
        for idir in sorted(sdir.glob("interval=*")):
            key = _key(market, dataset, symbol, layout.parse_partition_value(idir.name, "interval"))
            if key is not None:
                yield key


def _object_series(storage: Storage, market: str, dataset: str) -> Iterable[SeriesKey]:
    for rel in storage.list_files(f"{market}/{dataset}"):
        parsed = layout.series_key_of_file(Path(), Path(rel)) if rel.endswith(".parquet") \
            else None
        if parsed is not None:
            yield parsed[0]
    names = [Path(rel).name for rel in storage.list_files(f"{layout.META_DIR}/coverage/"
                                                          f"{market}/{dataset}")]
    yield from _coverage_names(names, market, dataset)


def _coverage_series(root: Path, market: str, dataset: str) -> Iterable[SeriesKey]:
    cdir = layout.meta_dir(root) / "coverage" / market / dataset
    yield from _coverage_names([p.name for p in sorted(cdir.glob("*.json"))] if cdir.is_dir()
                               else [], market, dataset)


def _coverage_names(names: list[str], market: str, dataset: str) -> Iterable[SeriesKey]:
    for name in names:
        if not name.endswith(".json"):
            continue
        parts = name[:-len(".json")].split("__")
        if len(parts) not in (3, 4) or parts[:2] != [market, dataset]:
            continue
        key = _key(market, dataset, parts[2], parts[3] if len(parts) == 4 else None)
        if key is not None:
            yield key


def _key(market: str, dataset: str, symbol: str | None, interval: str | None) -> SeriesKey | None:
    try:
        return SeriesKey(market, dataset, symbol or "", interval)
    except ValueError:  # a directory that is not ours; verify() names it
        return None


def names_text(names: Iterable[str]) -> str:
    """Distinct names in first-seen order, at most SHOWN_NAMES, comma-separated."""
    unique = list(dict.fromkeys(names))
    if len(unique) <= SHOWN_NAMES:
        return ", ".join(unique)
    return ", ".join(unique[:SHOWN_NAMES]) + f", ... ({len(unique)} in all)"


def _what(market: str | None, dataset: str) -> str:
    return f"{market} {dataset}" if market else dataset


def require_series(root: Path | Storage, key: SeriesKey) -> None:
    """InputError naming what the lake holds unless it holds `key` (data or coverage)."""
    held = held_series(root, key.dataset, key.market)
    if key in held:
        return
    what = _what(key.market, key.dataset)
    same_symbol = [k for k in held if k.symbol == key.symbol]
    if key.interval is not None and same_symbol:
        raise InputError(
            f"no {what} for {key.symbol} {key.interval} in the lake; it holds {key.symbol} "
            + names_text(k.interval for k in same_symbol))
    if not held:
        raise InputError(f"no {what} for {key.symbol} in the lake; it holds no {what}")
    raise InputError(f"no {what} for {key.symbol} in the lake; it holds "
                     + names_text(sorted(k.symbol for k in held)))


def select_series(root: Path | Storage, dataset: str, market: str | None = None,
                  symbols: list[str] | None = None, interval: str | None = None) -> list[SeriesKey]:
    """The held series of `dataset` matching the filters (None = any). Every symbol and the
    interval asked for must match at least one held series, else InputError naming what
    the lake holds."""
    if interval is not None and dataset not in KLINE_DATASETS:
        raise InputError(f"{dataset} has no interval (got {interval!r})")
    held = held_series(root, dataset, market)
    what = _what(market, dataset)
    if symbols:
        have = {k.symbol for k in held}
        unknown = [s for s in symbols if s not in have]
        if unknown:
            holds = names_text(sorted(have)) if held else f"no {what}"
            raise InputError(f"no {what} for {', '.join(unknown)} in the lake; it holds {holds}")
        held = [k for k in held if k.symbol in symbols]
    if interval is not None:
        matching = [k for k in held if k.interval == interval]
        if not matching:
            scope = f" for {', '.join(symbols)}" if symbols else ""
            holds = (names_text(k.interval for k in sorted(held, key=lambda k: _interval_order(k.interval)))
                     if held else f"no {what}")
            raise InputError(f"no {what} at {interval}{scope} in the lake; it holds {holds}")
        held = matching
    return held
