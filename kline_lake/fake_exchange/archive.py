"""The data.binance.vision archive tree, built on demand from the synthetic paths.

Paths (below `/data/`), as https://github.com/binance/binance-public-data documents:
- `spot/{daily,monthly}/klines/SYMBOL/INTERVAL/SYMBOL-INTERVAL-YYYY-MM[-DD].zip`
- `spot/{daily,monthly}/aggTrades/SYMBOL/SYMBOL-aggTrades-YYYY-MM[-DD].zip`
- `futures/{um,cm}/{daily,monthly}/{klines,markPriceKlines,indexPriceKlines,premiumIndexKlines}/...`
  and `aggTrades` as above; `futures/{um,cm}/monthly/fundingRate/SYMBOL/SYMBOL-fundingRate-YYYY-MM.zip`.
- Each `.zip` has a `.zip.CHECKSUM` beside it: `<sha256 hex>  <zip name>` (no trailing
  newline, like the real files).

Quirks reproduced: spot files of periods from 2025-01-01 carry microsecond timestamps
(close time `open_us + interval_us - 1`); futures CSVs of periods from 2022-01-01 have a
header row, older ones none; spot CSVs never do. A daily file appears once its day has
ended, a monthly one once its month has ended (by the server's data clock); 404 before,
and for periods with no data (before listing, after delisting, whole-period gaps).
Intervals served: 1s (spot) to 1d; not 3d/1w/1mo (decision: rarely used, 404).

Zips are deterministic (fixed entry date 1980-01-01, deflate) and cached in an LRU
bounded by total bytes. Monthly 1s and monthly aggTrades files hold millions of rows and
take seconds to build, as their real counterparts take long to download.
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

from kline_lake.fake_exchange import series
from kline_lake.fake_exchange.rest import (
    PRICE_KLINE_KINDS,
    SyntheticSource,
    display_decimals,
    fmt_units,
)
from kline_lake.fake_exchange.universe import SymbolSpec
from kline_lake.intervals import INTERVAL_MS

SPOT_US_FROM_MS = 1_735_689_600_000  # 2025-01-01: spot archive switches to microseconds
FUTURES_HEADER_FROM_MS = 1_640_995_200_000  # 2022-01-01: futures CSVs gain a header row
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")
AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
FUNDING_HEADER = "calc_time,funding_interval_hours,last_funding_rate"
ARCHIVE_MARKETS = {"spot": "spot", "futures/um": "um", "futures/cm": "cm"}
KLINE_KINDS = {"klines": "klines", **PRICE_KLINE_KINDS}
ARCHIVE_INTERVALS = tuple(iv for iv, ms in INTERVAL_MS.items() if ms <= 86_400_000)

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
    interval: str | None
    start_ms: int
    end_ms: int  # exclusive
    zip_name: str
    checksum: bool


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
    if dataset in KLINE_KINDS:
        if interval not in ARCHIVE_INTERVALS or (interval == "1s" and market != "spot"):
            return None
        if dataset != "klines" and market == "spot":
            return None
        prefix = f"{symbol}-{interval}-"
    elif dataset in ("aggTrades", "fundingRate") and interval is None:
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
    return ArchiveKey(market, period, dataset, symbol, interval, span[0], span[1], stem + ".zip", checksum)


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

    def __init__(self, source: SyntheticSource, cache: ZipCache | None = None) -> None:
        self.source = source
        self.cache = cache or ZipCache()

    def get(self, path: str, now_ms: int) -> bytes | None:
        """Bytes of the file at URL `path` (zip or CHECKSUM), or None for 404."""
        key = parse_archive_path(path)
        if key is None or key.end_ms > now_ms:
            return None
        spec = self.source.spec(key.market, key.symbol)
        if spec is None:
            return None
        cache_key = f"{key.market}/{key.zip_name}/{key.dataset}"
        data = self.cache.get(cache_key)
        if data is None:
            csv = self._csv_bytes(spec, key)
            if csv is None:
                return None
            data = make_zip(key.zip_name[:-4] + ".csv", csv)
            self.cache.put(cache_key, data)
        return checksum_text(data, key.zip_name) if key.checksum else data

    def _csv_bytes(self, spec: SymbolSpec, key: ArchiveKey) -> bytes | None:
        path = self.source.synthetic.path(spec)
        segs = [(a, b) for a, b in path.segments(None) if a * 1000 < key.end_ms and b * 1000 > key.start_ms]
        if not segs:
            return None
        header_ok = spec.market != "spot" and key.start_ms >= FUTURES_HEADER_FROM_MS
        us = spec.market == "spot" and key.start_ms >= SPOT_US_FROM_MS
        if key.dataset in KLINE_KINDS:
            lines = self._kline_lines(spec, key, us)
            return _csv(lines, KLINE_HEADER if header_ok else None) if lines else None
        if key.dataset == "aggTrades":
            lines = self._agg_lines(spec, key, segs, us)
            return _csv(lines, AGG_HEADER if header_ok else None) if lines else None
        times = series.funding_times_s(path, key.start_ms, key.end_ms - 1, 10**6, key.end_ms)
        if not len(times):
            return None
        rate, _ = series.funding_values(path, times)
        lines = [f"{t * 1000},{spec.funding_hours},{r}" for t, r in zip(times.tolist(), fmt_units(rate, 8, 8), strict=True)]
        return _csv(lines, FUNDING_HEADER if header_ok else None)

    def _kline_lines(self, spec: SymbolSpec, key: ArchiveKey, us: bool) -> list[str]:
        from kline_lake.fake_exchange.params import TimeRange

        if key.interval is None:
            raise ValueError(f"{key.zip_name}: klines need an interval")
        n = (key.end_ms - key.start_ms) // INTERVAL_MS[key.interval]
        rows = self.source.klines(spec, key.interval, TimeRange(key.start_ms, key.end_ms - 1), n,
                                  key.end_ms, KLINE_KINDS[key.dataset])
        if us:
            step_us = INTERVAL_MS[key.interval] * 1000
            return [",".join([str(r[0] * 1000), *r[1:6], str(r[0] * 1000 + step_us - 1), *map(str, r[7:])]) for r in rows]
        return [",".join(map(str, r)) for r in rows]

    def _agg_lines(self, spec: SymbolSpec, key: ArchiveKey, segs: list[tuple[int, int]], us: bool) -> list[str]:
        path = self.source.synthetic.path(spec)
        start_s, end_s = key.start_ms // 1000, key.end_ms // 1000
        secs = series.seconds_forward(segs, start_s, end_s - start_s)
        secs = secs[secs < end_s]
        if not len(secs):
            return []
        times = secs * 1000 + path.trade_offset_ms(secs)
        cols = series.trades_for_seconds(path, secs, times, path.segments(None))
        pd_, qd, _ = display_decimals(spec)
        prices = fmt_units(cols["p"], spec.price_decimals, pd_)
        qtys = fmt_units(cols["q"], spec.qty_decimals, qd)
        t_out = (cols["T"] * 1000 if us else cols["T"]).tolist()
        spot = spec.market == "spot"
        flags = np.where(cols["m"], "True" if spot else "true", "False" if spot else "false").tolist()
        tail = ",True" if spot else ""
        return [
            f"{a},{prices[i]},{qtys[i]},{f},{la},{t_out[i]},{flags[i]}{tail}"
            for i, (a, f, la) in enumerate(zip(cols["a"].tolist(), cols["f"].tolist(), cols["l"].tolist(), strict=True))
        ]
