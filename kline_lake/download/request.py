"""A download request, validated before anything touches the network or the lake. Pure
except for checking the lake path (`check_root`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from kline_lake.core.intervals import validate_interval
from kline_lake.core.markets import (
    KLINE_DATASETS,
    Market,
    get_market,
    resolve_base_url,
    validate_dataset,
    validate_symbol,
)
from kline_lake.core.timeutil import parse_utc_ms
from kline_lake.errors import InputError
from kline_lake.lake.writer import check_root


@dataclass(frozen=True)
class DownloadRequest:
    """A validated download request (see `validate_request`)."""

    market: Market
    dataset: str
    symbols: tuple[str, ...]  # as typed, upper-cased; ("ALL",) = every TRADING symbol
    interval: str | None  # kline datasets only
    start_ms: int
    end_ms: int | None  # exclusive; None = the server's now
    lake: Path
    base_url: str
    source: str = "rest"
    archive_url: str | None = None  # --archive-url; None: see archive_plan.resolve_download_archive_url


def validate_request(*, market: str, dataset: str, symbols: str, interval: str | None,
                     start: str, end: str | None, lake: str | Path,
                     base_url: str | None = None, source: str = "rest",
                     archive_url: str | None = None) -> DownloadRequest:
    """Check everything that needs no network; InputError on the first problem."""
    mkt = get_market(market)
    validate_dataset(mkt, dataset)
    if dataset in KLINE_DATASETS:
        interval = validate_interval(interval or "1m", mkt.name)
    elif interval is not None:
        raise InputError(f"--interval applies only to kline datasets, not {dataset!r}")
    names = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
    if not names:
        raise InputError("--symbols: give at least one symbol (or ALL)")
    if "ALL" in names and len(names) > 1:
        raise InputError("--symbols ALL cannot be combined with other symbols")
    for name in names:
        validate_symbol(name)
    if len(set(names)) != len(names):
        raise InputError("--symbols lists a symbol twice")
    start_ms = parse_utc_ms(start, what="--start")
    end_ms = parse_utc_ms(end, what="--end") if end is not None else None
    if end_ms is not None and start_ms >= end_ms:
        raise InputError(f"--start {start} is not before --end {end} (--end is exclusive)")
    root = check_root(Path(lake))
    try:
        url = resolve_base_url(mkt, base_url)
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise InputError(f"invalid --base-url: {exc}") from None
    if not url.startswith(("http://", "https://")):
        raise InputError(f"invalid --base-url {url!r}: expected http:// or https://")
    if archive_url is not None and not archive_url.startswith(("http://", "https://")):
        raise InputError(f"invalid --archive-url {archive_url!r}: expected http:// or https://")
    if source == "archive" and mkt.archive_prefix is None:
        raise InputError(f"market {mkt.name!r} has no archive; use --source rest or auto")
    return DownloadRequest(mkt, dataset, names, interval, start_ms, end_ms, root, url, source,
                           archive_url)
