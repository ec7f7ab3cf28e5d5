"""The hybrid download plan: which part of a range comes from which source. Pure.

data.binance.vision publishes, per series, monthly zips ("we start to upload monthly data
from the beginning of next month") and daily zips ("daily data will be uploaded in the
next day"), https://github.com/binance/binance-public-data. A requested half-open range
``[start_us, end_us)`` is split into pieces:

- every calendar month (UTC) wholly inside the range and already over -> its monthly zip;
- every remaining day (UTC) that is already over -> its daily zip; a day only partly inside
  the range still comes from its daily zip, clipped to the range (costs no weight);
- everything else (today, the still-unpublished tail) -> REST.

Datasets with monthly files only (``fundingRate``) take partial months from the monthly
zip, clipped. Binance.US has no archive: everything is REST. A piece records both the part
of the request it answers (``start_us``/``end_us``, the pieces tile the range exactly) and
the period of the file that holds it (``period_*``); rows outside the piece are dropped.

"Over" is judged against the caller's clock: a month or day whose end is at or before
the start of the current UTC day. The exchange may publish a day a few hours late; the
fetcher treats a 404 as "not in the archive yet" and the planner's fallback sends that
piece to REST (:func:`fallback_to_rest`).

Also here: the archive's folder and file names for every market and dataset
(:func:`archive_path`), e.g. ``data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip``,
``data/futures/um/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-02.zip``,
``data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip``. The
archive names the monthly kline interval ``1mo`` (the API's ``1M``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from kline_lake.core.markets import (
    ARCHIVE_NAMES,
    DEFAULT_ARCHIVE_URL,
    ENV_ARCHIVE_URL,
    ENV_BASE_URL,
    KLINE_DATASETS,
    Market,
    resolve_base_url,
)
from kline_lake.core.timeutil import US_PER_DAY, month_floor_us, next_month_us, us_to_datetime
from kline_lake.errors import InputError

MONTHLY = "monthly"
DAILY = "daily"
REST = "rest"
SOURCES = ("auto", "archive", "rest")
# How late a monthly file may be published after its month ends before a 404 is taken as
# "absent" rather than "not yet" (binance-public-data: monthly files appear by the first
# Monday of the next month; two weeks leaves room for delays).
MONTHLY_LAG_US = 14 * US_PER_DAY

# The archive folder spells the calendar-month interval "1mo"; the REST API says "1M".
_ARCHIVE_INTERVAL = {"1M": "1mo"}
_SAFE_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{0,39}$")


@dataclass(frozen=True, order=True)
class PlanPiece:
    """One part of a planned range and the source that answers it.

    ``start_us``/``end_us`` is the half-open part of the request this piece answers;
    ``period_start_us``/``period_end_us`` is the whole month or day of the archive file
    (equal to start/end for REST pieces). ``kind`` is "monthly", "daily" or "rest".
    """

    start_us: int
    end_us: int
    kind: str
    period_start_us: int
    period_end_us: int

    @property
    def is_archive(self) -> bool:
        return self.kind in (MONTHLY, DAILY)

    @property
    def is_clipped(self) -> bool:
        """True when only part of the file's period was requested."""
        return (self.start_us, self.end_us) != (self.period_start_us, self.period_end_us)

    @property
    def period_label(self) -> str:
        """``YYYY-MM`` for a monthly file, ``YYYY-MM-DD`` for a daily one."""
        dt = us_to_datetime(self.period_start_us)
        return f"{dt:%Y-%m}" if self.kind == MONTHLY else f"{dt:%Y-%m-%d}"


def day_floor_us(ts_us: int) -> int:
    """Start (us) of the UTC day containing ``ts_us``."""
    return ts_us - ts_us % US_PER_DAY


def archive_frequencies(market: Market, dataset: str) -> tuple[str, ...]:
    """Which file frequencies the planner uses for ``dataset`` on ``market``.

    Binance.US has no archive; fundingRate is published monthly only. aggTrades use the
    daily files only (a decision): a monthly aggTrades zip of a busy symbol holds tens of
    millions of trades (several GB of CSV) that would have to sit in memory at once,
    while daily files bound memory to one day, download in parallel and map one to one
    onto the lake's per-day agg_trades files.
    """
    if market.archive_prefix is None:
        return ()
    if dataset == "funding":
        return (MONTHLY,)
    if dataset in ("agg_trades", "trades"):  # trades: the same reasoning, ~10x the rows
        return (DAILY,)
    if dataset in ("book_ticker", "metrics", "book_depth"):
        # metrics and bookDepth are published daily only; bookTicker has monthly files too,
        # but a month of best-bid/ask updates is the size of a month of trades: daily, as
        # aggTrades (and the lake keeps a file per day of book_ticker)
        return (DAILY,)
    return (MONTHLY, DAILY)


def _merge_rest(pieces: Iterable[PlanPiece]) -> list[PlanPiece]:
    out: list[PlanPiece] = []
    for p in pieces:
        if out and p.kind == REST and out[-1].kind == REST and out[-1].end_us == p.start_us:
            prev = out[-1]
            out[-1] = PlanPiece(prev.start_us, p.end_us, REST, prev.start_us, p.end_us)
        else:
            out.append(p)
    return out


def _rest(start_us: int, end_us: int) -> PlanPiece:
    return PlanPiece(start_us, end_us, REST, start_us, end_us)


def _plan_month(
    m0: int, m1: int, start_us: int, end_us: int, published_us: int, freqs: tuple[str, ...]
) -> list[PlanPiece]:
    lo, hi = max(start_us, m0), min(end_us, m1)
    month_over = m1 <= published_us
    whole = (lo, hi) == (m0, m1)
    if MONTHLY in freqs and month_over and (whole or DAILY not in freqs):
        return [PlanPiece(lo, hi, MONTHLY, m0, m1)]
    pieces: list[PlanPiece] = []
    d0 = day_floor_us(lo)
    while d0 < hi:
        d1 = d0 + US_PER_DAY
        a, b = max(lo, d0), min(hi, d1)
        if DAILY in freqs and d1 <= published_us:
            pieces.append(PlanPiece(a, b, DAILY, d0, d1))
        else:
            pieces.append(_rest(a, b))
        d0 = d1
    return pieces


def plan_range(
    start_us: int,
    end_us: int,
    now_us: int,
    frequencies: tuple[str, ...] = (MONTHLY, DAILY),
) -> list[PlanPiece]:
    """Split ``[start_us, end_us)`` into archive and REST pieces (see the module doc).

    The pieces are sorted, do not overlap, and their ``start_us``/``end_us`` tile the
    range exactly; adjacent REST pieces are merged. An empty range gives no pieces.
    ``frequencies`` is what the archive offers (:func:`archive_frequencies`); ``()``
    plans everything for REST.
    """
    if start_us > end_us:
        raise InputError(f"range start {start_us} is after its end {end_us}")
    unknown = set(frequencies) - {MONTHLY, DAILY}
    if unknown:
        raise ValueError(f"unknown archive frequencies {sorted(unknown)}")
    if start_us == end_us:
        return []
    if not frequencies:
        return [_rest(start_us, end_us)]
    published_us = day_floor_us(now_us)
    pieces: list[PlanPiece] = []
    m0 = month_floor_us(start_us)
    while m0 < end_us:
        m1 = next_month_us(m0)
        pieces.extend(_plan_month(m0, m1, start_us, end_us, published_us, frequencies))
        m0 = m1
    return _merge_rest(pieces)


def plan_for_source(
    source: str,
    start_us: int,
    end_us: int,
    now_us: int,
    frequencies: tuple[str, ...],
) -> list[PlanPiece]:
    """The plan for ``--source``: ``rest`` = one REST piece; ``auto`` and ``archive`` =
    :func:`plan_range` (with ``archive`` the caller skips the REST pieces and reports them)."""
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if source == REST:
        return [] if start_us == end_us else [_rest(start_us, end_us)]
    return plan_range(start_us, end_us, now_us, frequencies)


def fallback_to_rest(piece: PlanPiece) -> PlanPiece:
    """The REST piece that replaces an archive piece the archive does not have (404)."""
    return replace(piece, kind=REST, period_start_us=piece.start_us, period_end_us=piece.end_us)


def fallback_pieces(
    piece: PlanPiece, frequencies: tuple[str, ...], now_us: int | None = None
) -> list[PlanPiece]:
    """What to try when the archive lacks ``piece`` (404). Pure.

    A recent monthly file -> the daily files of its days, when the dataset has daily
    files: the exchange publishes a month's file days after the month ends ("new monthly
    data at the first monday of the month"), while each day is out the day after it ends.
    A month that ended more than ``MONTHLY_LAG_US`` before ``now_us`` is not late but
    absent (before a listing, an interval the archive lacks): its days are not tried.
    Anything else -> the REST piece for the same range.
    """
    recent = now_us is None or piece.period_end_us + MONTHLY_LAG_US > day_floor_us(now_us)
    if piece.kind != MONTHLY or DAILY not in frequencies or not recent:
        return [fallback_to_rest(piece)]
    out = []
    d0 = day_floor_us(piece.start_us)
    while d0 < piece.end_us:
        d1 = d0 + US_PER_DAY
        out.append(PlanPiece(max(piece.start_us, d0), min(piece.end_us, d1), DAILY, d0, d1))
        d0 = d1
    return out


def merge_rest_pieces(pieces: Iterable[PlanPiece]) -> list[PlanPiece]:
    """Sort ``pieces`` and merge adjacent REST pieces (e.g. after 404 fallbacks)."""
    return _merge_rest(sorted(pieces))


def validate_archive_symbol(symbol: str) -> str:
    """Return ``symbol`` if it is safe to put in an archive path, else raise InputError."""
    if not _SAFE_SYMBOL.match(symbol):
        raise InputError(f"symbol {symbol!r} is not a valid exchange symbol")
    return symbol


def archive_interval(interval: str) -> str:
    """The archive's folder name for a kline interval (``1M`` -> ``1mo``)."""
    return _ARCHIVE_INTERVAL.get(interval, interval)


def archive_path(
    market: Market, dataset: str, symbol: str, interval: str | None, piece: PlanPiece
) -> str:
    """Path below the archive base URL of the file holding an archive piece.

    e.g. ``data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip``. The CHECKSUM
    lives beside it at ``<path>.CHECKSUM``.
    """
    if not piece.is_archive:
        raise ValueError(f"a {piece.kind} piece has no archive file")
    if market.archive_prefix is None:
        raise InputError(f"market {market.name!r} has no archive; use --source rest")
    try:
        folder = ARCHIVE_NAMES[dataset]
    except KeyError:
        raise InputError(f"unknown dataset {dataset!r}") from None
    validate_archive_symbol(symbol)
    label = piece.period_label
    if dataset in KLINE_DATASETS:
        if not interval:
            raise InputError(f"dataset {dataset!r} needs an interval")
        iv = archive_interval(interval)
        name = f"{symbol}-{iv}-{label}.zip"
        return f"data/{market.archive_prefix}/{piece.kind}/{folder}/{symbol}/{iv}/{name}"
    name = f"{symbol}-{folder}-{label}.zip"
    return f"data/{market.archive_prefix}/{piece.kind}/{folder}/{symbol}/{name}"


def archive_url(base_url: str, path: str) -> str:
    """Join the archive base URL (no trailing slash needed) and an archive path."""
    return f"{base_url.rstrip('/')}/{path.lstrip('/')}"


def resolve_download_archive_url(
    archive_url: str | None, base_url: str | None, env: Mapping[str, str] | None = None
) -> str:
    """The archive base URL of a download: ``--archive-url``, then KLINE_LAKE_ARCHIVE_URL,
    then ``--base-url``, then KLINE_LAKE_BASE_URL, then https://data.binance.vision.

    A decision: when the REST base is overridden (the fake exchange, a mirror) and the
    archive is not, the archive is looked up at the same base (the fake exchange serves
    both), so pointing a download at a local exchange never reaches a real host. A base
    that does not serve ``/data/...`` answers 404 there, and every piece falls back to
    REST.
    """
    env = os.environ if env is None else env
    url = (archive_url or env.get(ENV_ARCHIVE_URL) or base_url or env.get(ENV_BASE_URL)
           or DEFAULT_ARCHIVE_URL)
    return url.rstrip("/")


def archive_base_url(
    market: Market,
    archive_url: str | None = None,
    rest_base_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The archive base URL for ``market``'s series: the one rule shared by ``download``
    and ``verify --refresh-archive``.

    ``rest_base_url`` is the market's REST base as a download resolved it
    (:func:`kline_lake.core.markets.resolve_base_url`: ``--base-url``, then
    KLINE_LAKE_<MARKET>_URL, then KLINE_LAKE_BASE_URL); None resolves it here from the
    environment. A REST base other than the exchange's own stands in for an archive URL
    nobody set (see :func:`resolve_download_archive_url`), so a lake downloaded from a
    local exchange is refreshed from it too, never from the real host.
    """
    env = os.environ if env is None else env
    rest = (rest_base_url if rest_base_url is not None
            else resolve_base_url(market, None, env)).rstrip("/")
    rest_override = None if rest == market.default_base_url else rest
    return resolve_download_archive_url(archive_url, rest_override, env)
