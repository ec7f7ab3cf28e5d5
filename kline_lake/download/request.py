"""A download request, validated before anything touches the network or the lake. Pure
except for checking the lake path (`check_lake_root`: an object store's bucket is probed
once).

What a request may say beyond one symbol, one interval and a start (what users of
freqtrade's downloader expect):
- several intervals at once (`--interval 1m,1h,1d`): one series per symbol and interval;
- `--days N` instead of `--start`: from UTC midnight N days before the end's day (the
  end being `--end`, or the exchange's now), resolved against the exchange's clock
  once it is known (`resolve_start_ms`); `--days 1` = yesterday and today so far;
- symbols by pattern (`--symbols 'BTC*'`, shell-style `*`, `?`, `[...]`) and by quote
  asset (`--quote USDT`), matched against exchangeInfo (`kline_lake.download.select`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kline_lake.core.intervals import validate_interval
from kline_lake.core.markets import (
    KLINE_DATASETS,
    Market,
    get_market,
    resolve_base_url,
    validate_dataset,
    validate_symbol,
)
from kline_lake.core.timeutil import MS_PER_DAY, parse_utc_ms
from kline_lake.errors import InputError

PATTERN_CHARS = frozenset("*?[")
_PATTERN_RE = re.compile(r"[\w*?\[\]!-]{1,64}")
_QUOTE_RE = re.compile(r"\w{1,20}")
MAX_DAYS = 100 * 366


@dataclass(frozen=True)
class DownloadRequest:
    """A validated download request (see `validate_request`)."""

    market: Market
    dataset: str
    symbols: tuple[str, ...]  # names and patterns, upper-cased; ("ALL",) = every TRADING symbol
    intervals: tuple[str, ...]  # kline datasets: one or more; () otherwise
    start_ms: int | None  # inclusive; None: from `days` (see resolve_start_ms)
    end_ms: int | None  # exclusive; None = the server's now
    lake: Path | str  # a local directory, or an object-store URL (s3://bucket/prefix)
    base_url: str
    source: str = "rest"
    archive_url: str | None = None  # --archive-url; None: see archive.plan.archive_base_url
    days: int | None = None  # --days N (instead of start_ms)
    quote: str | None = None  # --quote: only symbols with this quote asset

    @property
    def interval(self) -> str | None:
        """The interval when there is exactly one (kline datasets), else None."""
        return self.intervals[0] if len(self.intervals) == 1 else None

    def resolve_start_ms(self, end_ms: int) -> int:
        """The start: `--start`, or UTC midnight `days` days before the day of `end_ms`."""
        if self.start_ms is not None:
            return self.start_ms
        if self.days is None:
            raise InputError("give --start DATE or --days N")
        return end_ms - end_ms % MS_PER_DAY - self.days * MS_PER_DAY


def is_pattern(name: str) -> bool:
    """True if a `--symbols` entry is a shell-style pattern (`*`, `?`, `[...]`)."""
    return bool(PATTERN_CHARS & set(name))


def split_list(value: str | Sequence[str] | None) -> list[str]:
    """`"a,b"` or `["a", "b"]` -> `["a", "b"]` (blanks dropped)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if isinstance(s, str) and s.strip()]


def _symbols(symbols: str | Sequence[str] | None, quote: str | None) -> tuple[str, ...]:
    names = tuple(s.upper() for s in split_list(symbols))
    if not names:
        if quote is None:
            raise InputError("--symbols: give symbols (BTCUSDT,ETHUSDT), a pattern ('BTC*'), "
                             "ALL, or --quote ASSET")
        return ("ALL",)
    if "ALL" in names and len(names) > 1:
        raise InputError("--symbols ALL cannot be combined with other symbols")
    for name in names:
        if is_pattern(name):
            if not _PATTERN_RE.fullmatch(name):
                raise InputError(f"invalid symbol pattern {name!r}: letters, digits, '_' and "
                                 f"the wildcards * ? [...] only (e.g. 'BTC*')")
        else:
            validate_symbol(name)
    if len(set(names)) != len(names):
        raise InputError("--symbols lists a symbol twice")
    return names


def _intervals(dataset: str, interval: str | Sequence[str] | None, market: str) -> tuple[str, ...]:
    wanted = split_list(interval)
    if dataset not in KLINE_DATASETS:
        if wanted:
            raise InputError(f"--interval applies only to kline datasets, not {dataset!r}")
        return ()
    out = tuple(validate_interval(iv, market) for iv in (wanted or ["1m"]))
    if len(set(out)) != len(out):
        raise InputError("--interval lists an interval twice")
    return out


def _start(start: str | None, days: int | None) -> int | None:
    if (start is None) == (days is None):
        raise InputError("give either --start or --days (not both)" if start is not None
                         else "give --start DATE or --days N")
    if days is not None:
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
            raise InputError(f"--days must be a whole number of days within 1..{MAX_DAYS}, got {days!r}")
        return None
    return parse_utc_ms(start, what="--start")


def _check_api_key(dataset: str, source: str, no_archive: bool) -> None:
    """A key-gated dataset (trades) from REST alone needs BINANCE_API_KEY; with the
    archive in play (--source auto) the REST part is skipped with a note instead."""
    import os

    from kline_lake.core.markets import ENV_API_KEY, KEY_GATED_DATASETS

    if dataset in KEY_GATED_DATASETS and (source == "rest" or no_archive) \
            and not os.environ.get(ENV_API_KEY, "").strip():
        raise InputError(f"{dataset} from REST need an API key: set {ENV_API_KEY} "
                         "(sent as X-MBX-APIKEY), or use --source archive")


def _check_rest_history(market: str, dataset: str, source: str) -> None:
    """`--source rest` for what the exchange has no REST history of: book_ticker and
    book_depth (archive only), metrics on COIN-M (its /futures/data statistics are per
    pair and contract type; see `download.rest_metrics`)."""
    from kline_lake.core.markets import ARCHIVE_ONLY_DATASETS

    if source != "rest":
        return
    if dataset in ARCHIVE_ONLY_DATASETS or (dataset == "metrics" and market == "cm"):
        where = "COIN-M metrics" if dataset == "metrics" else dataset
        raise InputError(f"{where} has no REST history (the exchange publishes it in the daily "
                         f"archive files only); use --source archive or auto")


def validate_request(*, market: str, dataset: str, symbols: str | Sequence[str] | None,
                     interval: str | Sequence[str] | None = None, start: str | None = None,
                     end: str | None = None, lake: str | Path,
                     base_url: str | None = None, source: str = "rest",
                     archive_url: str | None = None, days: int | None = None,
                     quote: str | None = None) -> DownloadRequest:
    """Check everything that needs no network; InputError on the first problem.

    `symbols` and `interval` take a comma-separated string or a sequence. Exactly one
    of `start` and `days` is required.
    """
    mkt = get_market(market)
    validate_dataset(mkt, dataset)
    _check_rest_history(mkt.name, dataset, source)
    intervals = _intervals(dataset, interval, mkt.name)
    if quote is not None:
        quote = quote.strip().upper()
        if not _QUOTE_RE.fullmatch(quote):
            raise InputError(f"invalid --quote {quote!r}: an asset such as USDT")
    names = _symbols(symbols, quote)
    start_ms = _start(start, days)
    end_ms = parse_utc_ms(end, what="--end") if end is not None else None
    if end_ms is not None and start_ms is not None and start_ms >= end_ms:
        raise InputError(f"--start {start} is not before --end {end} (--end is exclusive)")
    # storage (for the lake path) and httpx load in ~0.2 s: only once the rest is valid
    import httpx

    from kline_lake.lake.roots import check_lake_root

    root = check_lake_root(lake)
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
    _check_api_key(dataset, source, mkt.archive_prefix is None)
    return DownloadRequest(mkt, dataset, names, intervals, start_ms, end_ms, root, url, source,
                           archive_url, days, quote)
