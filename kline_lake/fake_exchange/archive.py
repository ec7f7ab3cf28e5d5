"""The data.binance.vision archive tree, built on demand from the synthetic paths.

Paths (below `/data/`), as https://github.com/binance/binance-public-data documents:
- `spot/{daily,monthly}/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM[-DD].zip`
- `spot/{daily,monthly}/aggTrades/SYMBOL/SYMBOL-aggTrades-YYYY-MM[-DD].zip`
- `spot/{daily,monthly}/trades/SYMBOL/SYMBOL-trades-YYYY-MM[-DD].zip` (every trade: the
  trades the aggTrades aggregate, `fake_exchange.trades`), and the same under futures;
- `futures/{um,cm}/{daily,monthly}/{klines,markPriceKlines,indexPriceKlines,premiumIndexKlines}/...`
  and `aggTrades` as above; `futures/{um,cm}/monthly/fundingRate/SYMBOL/SYMBOL-fundingRate-YYYY-MM.zip`.
- `futures/{um,cm}/{daily,monthly}/bookTicker/...`, `futures/{um,cm}/daily/metrics/...` and
  `futures/{um,cm}/daily/bookDepth/...` (`SYMBOL-bookTicker-YYYY-MM[-DD].zip` etc.), from
  `fake_exchange.market_extras` (see `extras_files` for their CSV text).
- Each `.zip` has a `.zip.CHECKSUM` beside it: `<sha256 hex>  <zip name>` (no trailing
  newline, like the real files).

Quirks reproduced: spot files of periods from 2025-01-01 carry microsecond timestamps
(close time `close_ms * 1000 + 999`, i.e. the next open in us minus 1); futures CSVs of
periods from 2022-01-01 have a header row, older ones none; spot CSVs never do. A daily
file appears once its day has ended, a monthly one once its month has ended (by the
server's data clock); 404 before, and for periods with no data (before listing, after
delisting, whole-period gaps).

Kline intervals served: every API interval, 1s (spot only) to 1w, and the calendar month,
whose folder and file names say `1mo` (the API's `1M`; a `1M` folder is a 404, as on
data.binance.vision). A kline file for a period holds the klines whose OPEN time falls
inside the period: a 1w kline opening on Monday Jan 29 is in January's monthly file
(which holds 4 or 5 weekly klines), a `1mo` monthly file holds one row. Decisions:
- a daily 3d/1w/1mo file holds the kline that opens on that day; a day on which no kline
  of the interval opens (a Tuesday for 1w, any day but the 1st for 1mo) has no data: 404;
- a file whose last kline closes after the period's end (most 3d and 1w files, every
  daily 1mo file) appears only once that kline has closed, so a half-built kline is never
  published: January 2024's 1w file appears on Feb 5, when the week opening Jan 29 is over.

Zips are deterministic (fixed entry date 1980-01-01, deflate level 1) and cached with
their CHECKSUM (computed once, when built) in an LRU bounded by total bytes, and, when a
`DiskZipCache` is given (`archive_cache`: keyed by the model's source digest, seed,
market, dataset and file name), on disk across runs. Kline CSVs are printed column-wise
(`kline_files`: a month of 1m klines in about 0.1 s, the zip's deflate as long again);
monthly 1s and monthly aggTrades files hold millions of rows and take seconds to build,
as their real counterparts take long to download.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from kline_lake.core.intervals import INTERVAL_MS, ceil_open_ms, floor_open_ms, next_open_ms
from kline_lake.fake_exchange import extras_files, kline_files, series, trade_files
from kline_lake.fake_exchange import trades as trade_stream
from kline_lake.fake_exchange.archive_cache import DiskZipCache
from kline_lake.fake_exchange.extras_files import EXTRA_ARCHIVE_DATASETS
from kline_lake.fake_exchange.rest import (
    PRICE_KLINE_KINDS,
    SyntheticSource,
    fmt_units,
)
from kline_lake.fake_exchange.universe import SymbolSpec

SPOT_US_FROM_MS = 1_735_689_600_000  # 2025-01-01: spot archive switches to microseconds
FUTURES_HEADER_FROM_MS = 1_640_995_200_000  # 2022-01-01: futures CSVs gain a header row
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
CM_TRADES_HEADER = "id,price,qty,base_qty,time,is_buyer_maker"
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
ARCHIVE_MARKETS = {"spot": "spot", "futures/um": "um", "futures/cm": "cm"}
KLINE_KINDS = {"klines": "klines", **PRICE_KLINE_KINDS}
# Archive interval folder -> API interval. The archive spells the calendar month "1mo"
# (https://github.com/binance/binance-public-data#klines: intervals ... 1d 3d 1w 1mo).
ARCHIVE_INTERVALS: dict[str, str] = {**{iv: iv for iv in INTERVAL_MS}, "1mo": "1M"}

_PATH = re.compile(
    r"^/data/(?P<market>spot|futures/um|futures/cm)/(?P<period>daily|monthly)/(?P<dataset>\w+)/"
    r"(?P<symbol>[A-Z0-9_]+)/(?:(?P<interval>\w+)/)?(?P<file>[A-Za-z0-9_.\-]+)$"
)
_DATE = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")


@dataclass(frozen=True)
class ArchiveKey:
    """One archive file, parsed from its URL path."""

    market: str
    period: str  # daily | monthly
    dataset: str  # archive folder name: klines, aggTrades, fundingRate, markPriceKlines...
    symbol: str
    interval: str | None  # the API's name: "1M" for the archive's "1mo" folder
    start_ms: int
    end_ms: int  # exclusive
    zip_name: str
    checksum: bool
    ready_ms: int  # published from then on: the period's end, or its last kline's close


def parse_archive_path(path: str) -> ArchiveKey | None:
    """URL path -> ArchiveKey, or None when it names no file the archive could hold."""
    m = _PATH.match(path)
    if not m:
        return None
    market, period, dataset, symbol, interval, name = (
        ARCHIVE_MARKETS[m["market"]], m["period"], m["dataset"], m["symbol"], m["interval"], m["file"])
    checksum = name.endswith(".zip.CHECKSUM")
    if not (checksum or name.endswith(".zip")):
        return None
    stem = name[: -len(".zip.CHECKSUM")] if checksum else name[: -len(".zip")]
    api_interval = None
    if dataset in KLINE_KINDS:
        if interval not in ARCHIVE_INTERVALS or (interval == "1s" and market != "spot"):
            return None
        if dataset != "klines" and market == "spot":
            return None
        prefix = f"{symbol}-{interval}-"
        api_interval = ARCHIVE_INTERVALS[interval]
    elif dataset in EXTRA_ARCHIVE_DATASETS and interval is None:
        if market == "spot" or period not in EXTRA_ARCHIVE_DATASETS[dataset]:
            return None
        prefix = f"{symbol}-{dataset}-"
    elif dataset in ("aggTrades", "trades", "fundingRate") and interval is None:
        if dataset == "fundingRate" and (market == "spot" or period != "monthly"):
            return None
        prefix = f"{symbol}-{dataset}-"
    else:
        return None
    if not stem.startswith(prefix):
        return None
    span = _period_span(stem[len(prefix):], period)
    if span is None:
        return None
    start_ms, end_ms = span
    ready_ms = end_ms if api_interval is None else _klines_ready_ms(start_ms, end_ms, api_interval)
    return ArchiveKey(market, period, dataset, symbol, api_interval, start_ms, end_ms, stem + ".zip",
                      checksum, ready_ms)


def _klines_ready_ms(start_ms: int, end_ms: int, interval: str) -> int:
    """When a kline file of period [start_ms, end_ms) can be published: at the period's
    end, or later when its last kline (3d, 1w, 1M) closes after the period."""
    last_open = floor_open_ms(end_ms - 1, interval)
    if last_open < start_ms:  # no kline opens in the period: nothing to wait for
        return end_ms
    return max(end_ms, next_open_ms(last_open, interval))


def kline_opens_in(start_ms: int, end_ms: int, interval: str) -> int:
    """How many klines of `interval` open in [start_ms, end_ms) (calendar months for 1M)."""
    first = ceil_open_ms(start_ms, interval)
    if interval != "1M":
        return max(0, -(-(end_ms - first) // INTERVAL_MS[interval]))
    n = 0
    while first < end_ms:
        n, first = n + 1, next_open_ms(first, interval)
    return n


def _period_span(text: str, period: str) -> tuple[int, int] | None:
    m = _DATE.match(text)
    if not m or (m[3] is None) != (period == "monthly"):
        return None
    try:
        year, month = int(m[1]), int(m[2])
        start = datetime(year, month, int(m[3] or 1), tzinfo=UTC)
    except ValueError:
        return None
    if period == "daily":
        return int(start.timestamp()) * 1000, int(start.timestamp()) * 1000 + 86_400_000
    nxt = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()) * 1000, int(nxt.timestamp()) * 1000


def checksum_text(zip_bytes: bytes, zip_name: str) -> bytes:
    """The `.CHECKSUM` content for a zip: sha256 hex, two spaces, the file name."""
    return f"{hashlib.sha256(zip_bytes).hexdigest()}  {zip_name}".encode()


def make_zip(csv_name: str, csv_bytes: bytes) -> bytes:
    """A deterministic single-entry zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compresslevel=1) as zf:
        info = zipfile.ZipInfo(csv_name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, csv_bytes, compresslevel=1)
    return buf.getvalue()


class ZipCache:
    """A thread-safe LRU of built zips, bounded by their total size."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


def _csv(lines: list[str], header: str | None) -> bytes:
    text = "\n".join(([header] if header else []) + lines)
    return (text + "\n").encode() if lines or header else b""


class SyntheticArchive:
    """Serves the archive tree from a SyntheticSource."""

    def __init__(self, source: SyntheticSource, cache: ZipCache | None = None,
                 disk: DiskZipCache | None = None) -> None:
        self.source = source
        self.cache = cache or ZipCache()
        self.disk = disk  # built zips kept on disk across runs (archive_cache)

    def get(self, path: str, now_ms: int) -> bytes | None:
        """Bytes of the file at URL `path` (zip or CHECKSUM), or None for 404."""
        key = parse_archive_path(path)
        if key is None or key.ready_ms > now_ms:
            return None
        spec = self.source.spec(key.market, key.symbol)
        if spec is None:
            return None
        built = self.build(spec, key)
        if built is None:
            return None
        return built[1] if key.checksum else built[0]

    def build(self, spec: SymbolSpec, key: ArchiveKey) -> tuple[bytes, bytes] | None:
        """(zip, CHECKSUM) of the file `key` names, from the caches or built now (and
        then cached); None when the file holds no data."""
        cache_key = f"{key.market}/{key.zip_name}/{key.dataset}"
        data = self.cache.get(cache_key)
        if data is not None:
            checksum = self.cache.get(cache_key + ".CHECKSUM")
            return data, checksum or checksum_text(data, key.zip_name)
        stored = self.disk.get(key.market, key.dataset, key.zip_name) if self.disk else None
        if stored is None:
            csv = self._csv_bytes(spec, key)
            if csv is None:
                return None
            data = make_zip(key.zip_name[:-4] + ".csv", csv)
            stored = data, checksum_text(data, key.zip_name)
            if self.disk:
                self.disk.put(key.market, key.dataset, key.zip_name, *stored)
        self.cache.put(cache_key + ".CHECKSUM", stored[1])
        self.cache.put(cache_key, stored[0])
        return stored

    def _csv_bytes(self, spec: SymbolSpec, key: ArchiveKey) -> bytes | None:
        header_ok = spec.market != "spot" and key.start_ms >= FUTURES_HEADER_FROM_MS
        us = spec.market == "spot" and key.start_ms >= SPOT_US_FROM_MS
        if key.dataset in KLINE_KINDS:
            # no early check on the period's data here: a 1w kline opening in the period
            # may hold data only after it (e.g. a listing on the 1st of the next month)
            return self._kline_csv(spec, key, us, KLINE_HEADER if header_ok else None)
        path = self.source.synthetic.path(spec)
        segs = [(a, b) for a, b in path.segments(None) if a * 1000 < key.end_ms and b * 1000 > key.start_ms]
        if not segs:
            return None
        if key.dataset in EXTRA_ARCHIVE_DATASETS:  # bookTicker, metrics, bookDepth
            return extras_files.archive_csv(spec, path, key.dataset, key.start_ms, key.end_ms,
                                            header_ok)
        if key.dataset in ("aggTrades", "trades"):
            cols = self._agg_columns(spec, key, segs)
            if cols is None:
                return None
            if key.dataset == "aggTrades":
                return trade_files.agg_trades_csv(spec, cols, us, AGG_HEADER if header_ok else None)
            header = CM_TRADES_HEADER if spec.contract_size else TRADES_HEADER
            return trade_files.trades_csv(spec, trade_stream.expand(cols), us,
                                          header if header_ok else None)
        times = series.funding_times_s(path, key.start_ms, key.end_ms - 1, 10**6, key.end_ms)
        if not len(times):
            return None
        rate, _ = series.funding_values(path, times)
        lines = [f"{t * 1000},{spec.funding_hours},{r}" for t, r in zip(times.tolist(), fmt_units(rate, 8, 8), strict=True)]
        return _csv(lines, FUNDING_HEADER if header_ok else None)

    def _kline_csv(self, spec: SymbolSpec, key: ArchiveKey, us: bool, header: str | None) -> bytes | None:
        if key.interval is None:
            raise ValueError(f"{key.zip_name}: klines need an interval")
        # the klines OPENING in the period, aggregated up to their close (ready_ms), not
        # cut at the period's end
        n = kline_opens_in(key.start_ms, key.end_ms, key.interval)
        if not n:
            return None
        return kline_files.klines_csv(self.source.synthetic.path(spec), key.interval,
                                      KLINE_KINDS[key.dataset], key.start_ms, key.end_ms, n,
                                      key.ready_ms, us, header)

    def _agg_columns(self, spec: SymbolSpec, key: ArchiveKey,
                     segs: list[tuple[int, int]]) -> dict[str, np.ndarray] | None:
        path = self.source.synthetic.path(spec)
        start_s, end_s = key.start_ms // 1000, key.end_ms // 1000
        secs = series.seconds_forward(segs, start_s, end_s - start_s)
        secs = secs[secs < end_s]
        if not len(secs):
            return None
        times = secs * 1000 + path.trade_offset_ms(secs)
        return series.trades_for_seconds(path, secs, times, path.segments(None))
