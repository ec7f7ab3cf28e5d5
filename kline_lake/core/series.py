"""`SeriesKey`: the identity of one series (market, dataset, symbol, interval). Pure.

Shared by the downloader, the archive path and the lake, which maps a key to its
partition directories (`kline_lake.lake.layout`).
"""

from __future__ import annotations

from dataclasses import dataclass

from kline_lake.core.intervals import validate_interval
from kline_lake.core.markets import DATASETS, KLINE_DATASETS, MARKETS, validate_symbol
from kline_lake.errors import InputError


@dataclass(frozen=True)
class SeriesKey:
    """One series of the lake: market, dataset, symbol and (for kline datasets) interval."""

    market: str
    dataset: str
    symbol: str
    interval: str | None = None

    def __post_init__(self) -> None:
        validate_series(self)

    @property
    def slug(self) -> str:
        """A flat, filesystem-safe identifier (used for lock and coverage file names)."""
        parts = [self.market, self.dataset, self.symbol]
        if self.interval is not None:
            parts.append(self.interval)
        return "__".join(parts)


def validate_series(key: SeriesKey) -> None:
    """Raise InputError unless `key` names a valid series (interval iff kline dataset)."""
    if key.market not in MARKETS:
        raise InputError(f"unknown market {key.market!r}; expected one of {', '.join(MARKETS)}")
    if key.dataset not in DATASETS:
        raise InputError(f"unknown dataset {key.dataset!r}; expected one of {', '.join(DATASETS)}")
    validate_symbol(key.symbol)
    if key.dataset in KLINE_DATASETS:
        if key.interval is None:
            raise InputError(f"dataset {key.dataset!r} needs an interval")
        validate_interval(key.interval, key.market)
    elif key.interval is not None:
        raise InputError(f"dataset {key.dataset!r} has no interval (got {key.interval!r})")
