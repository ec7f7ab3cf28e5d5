"""`--data-dir DIR`: serve real archive files instead of synthetic data.

DIR is laid out like data.binance.vision below its `data/` prefix, e.g.
`DIR/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip` (`.csv` accepted too,
daily or monthly; `futures/um/...`, `futures/cm/...` likewise).

- The archive tree serves the files as given: a `.zip` as is, or a deterministic zip of
  the `.csv` when only that exists; a `.CHECKSUM` as given, or computed from the zip
  served. No publication-delay rule applies: what is on disk is published.
- REST answers from the rows of those files, as the exchange would: gaps stay gaps, odd
  close times stay as they are, microsecond timestamps (2025+ spot files) are reported
  in milliseconds like the REST API does. Numbers are served as the strings found in the
  files. Intervals are served only where files of that interval exist (no resampling).
- Symbols are the ones found in DIR; exchangeInfo lists them as TRADING with generic
  filters, listed at their first file's date.
"""

from __future__ import annotations

import bisect
import io
import re
import threading
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kline_lake.fake_exchange.archive import (
    ARCHIVE_MARKETS,
    checksum_text,
    make_zip,
    parse_archive_path,
)
from kline_lake.fake_exchange.params import TimeRange
from kline_lake.fake_exchange.universe import SymbolSpec

_FILE = re.compile(r"^(?P<stem>.+)\.(?P<ext>zip|csv)$")
_QUOTES = ("USDT", "BUSD", "USDC", "FDUSD", "TUSD", "BTC", "ETH", "BNB", "USD")
_DATASET_OF_KIND = {"klines": "klines", "mark": "markPriceKlines", "index": "indexPriceKlines",
                    "premium": "premiumIndexKlines"}


def _to_ms(raw: str) -> int:
    value = int(raw)
    return value // 1000 if value >= 10**15 else value


def read_rows(data: bytes) -> list[list[str]]:
    """CSV bytes -> rows of strings; a header row (first field not a number) is skipped."""
    rows = [line.split(",") for line in data.decode().splitlines() if line.strip()]
    if rows and not rows[0][0].lstrip("-").isdigit():
        rows = rows[1:]
    return rows


def _csv_bytes(path: Path) -> bytes:
    if path.suffix == ".csv":
        return path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as zf:
        return b"".join(zf.read(name) for name in zf.namelist() if name.endswith(".csv"))


@dataclass
class _Series:
    """Rows of one (market, dataset, symbol, interval), keyed and sorted by time or id."""

    keys: list[int] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)


def _symbol_spec(market: str, symbol: str, first_ms: int) -> SymbolSpec:
    base, quote = symbol, "USDT"
    for q in _QUOTES:
        if symbol.endswith(q) and len(symbol) > len(q):
            base, quote = symbol[: -len(q)], q
            break
    if market == "cm":
        base, quote = symbol.split("_")[0][:-3], "USD"
    listed = datetime.fromtimestamp(first_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
    return SymbolSpec(market, symbol, base, quote, listed=listed, delisted=None, base_price=1.0,
                      daily_volume=1.0, daily_trades=1, price_decimals=2,
                      qty_decimals=0 if market == "cm" else 8, contract_size=100 if market == "cm" else 0)


class RealSource:
    """REST data source and archive tree over a directory of real archive files."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ValueError(f"data dir {root} is not a directory")
        self.root = root
        self._files: dict[tuple[str, str, str, str | None], list[Path]] = {}
        self._first_ms: dict[tuple[str, str], int] = {}
        self._cache: dict[tuple[str, str, str, str | None], _Series] = {}
        self._lock = threading.Lock()
        self._scan()

    def _scan(self) -> None:
        for prefix, market in ARCHIVE_MARKETS.items():
            base = self.root / prefix
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                m = _FILE.match(path.name)
                if not m or not path.is_file():
                    continue
                url = "/data/" + path.relative_to(self.root).as_posix()
                key = parse_archive_path(url[: -4] + ".zip" if m["ext"] == "csv" else url)
                if key is None:
                    continue
                if path.suffix == ".csv" and path.with_suffix(".zip").exists():
                    continue  # the zip is the source of truth
                self._files.setdefault((market, key.dataset, key.symbol, key.interval), []).append(path)
                sym = (market, key.symbol)
                self._first_ms[sym] = min(self._first_ms.get(sym, key.start_ms), key.start_ms)

    # ---- REST data source --------------------------------------------------------------

    def specs(self, market: str) -> list[SymbolSpec]:
        return [_symbol_spec(m, s, first) for (m, s), first in sorted(self._first_ms.items()) if m == market]

    def spec(self, market: str, symbol: str) -> SymbolSpec | None:
        first = self._first_ms.get((market, symbol))
        return None if first is None else _symbol_spec(market, symbol, first)

    def _series(self, market: str, dataset: str, symbol: str, interval: str | None) -> _Series:
        key = (market, dataset, symbol, interval)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
            by_key: dict[int, Any] = {}
            for path in self._files.get(key, []):
                for row in read_rows(_csv_bytes(path)):
                    parsed = self._parse(dataset, row)
                    by_key[parsed[0]] = parsed[1]
            series = _Series(sorted(by_key), [by_key[k] for k in sorted(by_key)])
            self._cache[key] = series
            return series

    @staticmethod
    def _parse(dataset: str, row: list[str]) -> tuple[int, Any]:
        if dataset == "aggTrades":
            return int(row[0]), row
        if dataset == "fundingRate":
            return _to_ms(row[0]), row
        open_ms = _to_ms(row[0])
        return open_ms, [open_ms, *row[1:6], _to_ms(row[6]), row[7], int(row[8]), row[9], row[10], "0"]

    @staticmethod
    def _window(keys: list[int], lo: int | None, hi: int, limit: int) -> slice:
        """Indices of keys in [lo, hi]: the first `limit` from lo, or the last `limit`."""
        right = bisect.bisect_right(keys, hi)
        if lo is None:
            return slice(max(0, right - limit), right)
        left = bisect.bisect_left(keys, lo)
        return slice(left, min(right, left + limit))

    def klines(self, spec: SymbolSpec, interval: str, tr: TimeRange, limit: int, now_ms: int,
               kind: str = "klines") -> list[list[Any]]:
        s = self._series(spec.market, _DATASET_OF_KIND[kind], spec.symbol, interval)
        hi = now_ms if tr.end_ms is None else min(tr.end_ms, now_ms)
        return s.rows[self._window(s.keys, tr.start_ms, hi, limit)]

    def agg_trades(self, spec: SymbolSpec, from_id: int | None, tr: TimeRange, limit: int,
                   now_ms: int) -> list[dict[str, Any]]:
        s = self._series(spec.market, "aggTrades", spec.symbol, None)
        if from_id is not None:
            left = bisect.bisect_left(s.keys, from_id)
            rows = s.rows[left: left + limit]
        else:
            times = [_to_ms(r[5]) for r in s.rows]
            hi = now_ms if tr.end_ms is None else min(tr.end_ms, now_ms)
            rows = s.rows[self._window(times, tr.start_ms, hi, limit)]
        spot = spec.market in ("spot", "us")
        out = []
        for r in rows:
            item: dict[str, Any] = {"a": int(r[0]), "p": r[1], "q": r[2], "f": int(r[3]), "l": int(r[4]),
                                    "T": _to_ms(r[5]), "m": r[6].lower() == "true"}
            if spot:
                item["M"] = len(r) < 8 or r[7].lower() == "true"
            out.append(item)
        return out

    def funding(self, spec: SymbolSpec, tr: TimeRange, limit: int, now_ms: int) -> list[dict[str, Any]]:
        s = self._series(spec.market, "fundingRate", spec.symbol, None)
        hi = now_ms if tr.end_ms is None else min(tr.end_ms, now_ms)
        return [
            {"symbol": spec.symbol, "fundingTime": _to_ms(r[0]), "fundingRate": r[2], "markPrice": ""}
            for r in s.rows[self._window(s.keys, tr.start_ms, hi, limit)]
        ]

    # ---- archive tree --------------------------------------------------------------------

    def get(self, path: str, now_ms: int) -> bytes | None:
        """Bytes at archive URL `path` from the directory, or None for 404."""
        key = parse_archive_path(path)
        if key is None:
            return None
        rel = path[len("/data/"):]
        target = (self.root / rel).resolve()
        if not target.is_relative_to(self.root.resolve()):
            return None
        zip_path = target.with_name(key.zip_name)
        if key.checksum and target.is_file():
            return target.read_bytes()
        if zip_path.is_file():
            data = zip_path.read_bytes()
        elif zip_path.with_suffix(".csv").is_file():
            data = make_zip(key.zip_name[:-4] + ".csv", zip_path.with_suffix(".csv").read_bytes())
        else:
            return None
        return checksum_text(data, key.zip_name) if key.checksum else data
