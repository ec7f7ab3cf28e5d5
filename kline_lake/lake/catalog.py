"""Read side of the lake: ``Lake(root)`` answers queries as Polars or Arrow.

- ``lake.klines(market, symbol, interval, start, end)`` (and ``agg_trades``, ``funding``,
  ``mark_klines``, ``index_klines``, ``premium_klines``): a Polars DataFrame (or LazyFrame
  with ``lazy=True``) with exactly the dataset's schema columns, sorted by key, rows whose
  time column lies in ``[start, end)``. Partition pruning: the file list is built from the
  year/month directories (and, for agg_trades, the daily file names) that overlap the
  range, so a one-day query on a ten-year lake opens one file.
- ``lake.sql(query)``: DuckDB views ``klines``, ``agg_trades``, ``funding``,
  ``mark_klines``, ``index_klines``, ``premium_klines`` over every market, with columns
  ``market``, the schema columns, then the Hive columns ``symbol``, [``interval``],
  ``year``, ``month`` (INTEGER). A dataset without files is an empty view of the same
  columns. Views are re-created on each call so files written meanwhile are seen.
- ``inventory``, ``gaps``, ``resample``, ``verify``, ``compact``: see their modules.

A series the lake does not hold (no data and no coverage record: usually a typo in the
symbol or interval) is an InputError naming what it does hold; see ``holdings``.

Times (``start``/``end``) may be a ``datetime`` (naive = UTC), a ``date``, a pandas
``Timestamp``, a ``numpy.datetime64``, an ISO string
(``"2024-01-01"``, ``"2024-01-01T12:30"``), or an int epoch in ms or us (told apart by
magnitude as in ``schemas.to_us``). All results are UTC.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from kline_lake.core.markets import DATASETS, KLINE_DATASETS, MARKETS
from kline_lake.core.schemas import SCHEMAS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import to_us
from kline_lake.errors import InputError
from kline_lake.lake import coverage, layout
from kline_lake.lake.compact import compact_lake
from kline_lake.lake.gaps import find_gaps
from kline_lake.lake.holdings import require_series
from kline_lake.lake.inventory import inventory
from kline_lake.lake.object_lake import compact_objects, verify_objects
from kline_lake.lake.resample import resample_series
from kline_lake.lake.scan import check_range, require_object_series, scan_series
from kline_lake.lake.storage import Storage, open_storage, split_url
from kline_lake.lake.verify import verify_lake

_DUCK_TYPES = {
    pa.timestamp("us", tz="UTC"): "TIMESTAMPTZ",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.bool_(): "BOOLEAN",
}


def _view_sql(root: Path | Storage, dataset: str) -> str:
    schema = SCHEMAS[dataset]
    hive = ["symbol", *(["interval"] if dataset in KLINE_DATASETS else []), "year", "month"]
    cols = ", ".join(f'"{f.name}"' for f in schema)
    hive_cols = ", ".join(f'"{h}"' for h in hive)
    hive_types = ", ".join(
        f"'{h}': {'INTEGER' if h in ('year', 'month') else 'VARCHAR'}" for h in hive)
    parts = []
    for market in MARKETS:
        if isinstance(root, Storage):  # an object store (its filesystem is registered)
            if not any(k.endswith(".parquet") for k in root.list_files(f"{market}/{dataset}")):
                continue
            glob = root.uri(f"{market}/{dataset}/**/*.parquet").replace("'", "''")
        else:
            ddir = layout.dataset_dir(root, market, dataset)
            if next(ddir.glob("**/*.parquet"), None) is None:
                continue
            glob = str(ddir / "**" / "*.parquet").replace("'", "''")
        parts.append(
            f"SELECT '{market}' AS market, {cols}, {hive_cols} FROM read_parquet('{glob}', "
            f"hive_partitioning = true, hive_types = {{{hive_types}}})"
        )
    if parts:
        return " UNION ALL ".join(parts)
    typed = ", ".join(f'CAST(NULL AS {_DUCK_TYPES[f.type]}) AS "{f.name}"' for f in schema)
    hive_typed = ", ".join(
        f'CAST(NULL AS {"INTEGER" if h in ("year", "month") else "VARCHAR"}) AS "{h}"'
        for h in hive)
    return f"SELECT CAST(NULL AS VARCHAR) AS market, {typed}, {hive_typed} WHERE false"


_EXPLAIN_RE = re.compile(r"\s*EXPLAIN\s+(?:ANALYZE\s+)?(.*)", re.IGNORECASE | re.DOTALL)


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """InputError unless every statement of `query` only reads (see ``Lake.sql``).

    ``EXPLAIN ANALYZE`` runs its statement, so an EXPLAIN counts as what it explains.
    duckdb.Error for SQL that does not parse.
    """
    for statement in con.extract_statements(query):
        kind = statement.type
        if kind == duckdb.StatementType.EXPLAIN:
            inner = _EXPLAIN_RE.fullmatch(statement.query)
            inner_kinds = [s.type for s in con.extract_statements(inner.group(1))] if inner else []
            bad = [k for k in inner_kinds if k != duckdb.StatementType.SELECT]
            if inner_kinds and not bad:
                continue
            kind = bad[0] if bad else kind
        elif kind == duckdb.StatementType.SELECT:
            continue
        raise InputError(
            f"refusing a {kind.name} statement: queries are read-only (SELECT, WITH, "
            f"DESCRIBE, SHOW, EXPLAIN) unless --allow-writes (Lake.sql(..., "
            f"allow_writes=True)) is given")


class Lake:
    """A Parquet lake on disk, opened read-only for queries (and compaction).

    Raises InputError if `root` does not exist or is not a directory. `root` may also be
    an object-store URL (``s3://bucket/prefix``, any fsspec URL; see
    `kline_lake.lake.storage`): every question works there too (``verify`` reads each
    object into a private temp copy, ``compact`` writes through the storage seam under
    the series' lock objects; see `kline_lake.lake.object_lake`).
    """

    def __init__(self, root: str | Path) -> None:
        self._con: duckdb.DuckDBPyConnection | None = None
        if split_url(root)[0]:
            self.root: Any = open_storage(root)
            return
        self.root = Path(root)
        if not self.root.exists():
            raise InputError(f"lake {self.root} does not exist")
        if not self.root.is_dir():
            raise InputError(f"lake path {self.root} is not a directory")
        self._con: duckdb.DuckDBPyConnection | None = None

    def __repr__(self) -> str:
        return f"Lake({(self.root.uri() if isinstance(self.root, Storage) else str(self.root))!r})"


    # ------------------------------------------------------------- series
    def read(self, market: str, dataset: str, symbol: str, interval: str | None = None,
             start: Any = None, end: Any = None, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Rows of one series in ``[start, end)`` as Polars (see the module docstring).

        InputError naming what the lake holds if it does not hold the series (a typo is
        not an empty answer); a held series with no rows in the range is an empty frame.
        """
        key = SeriesKey(market, dataset, symbol, interval)
        if isinstance(self.root, Storage):
            require_object_series(self.root, key)
        else:
            require_series(self.root, key)
        start_us, end_us = to_us(start, "start"), to_us(end, "end")
        check_range(start_us, end_us)
        frame = scan_series(self.root, key, start_us, end_us)
        return frame if lazy else frame.collect()

    def klines(self, market: str, symbol: str, interval: str, start: Any = None,
               end: Any = None, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Klines of one symbol and interval, open_time in ``[start, end)``."""
        return self.read(market, "klines", symbol, interval, start, end, lazy)

    def mark_klines(self, market: str, symbol: str, interval: str, start: Any = None,
                    end: Any = None, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Mark-price klines (futures)."""
        return self.read(market, "mark_klines", symbol, interval, start, end, lazy)

    def index_klines(self, market: str, symbol: str, interval: str, start: Any = None,
                     end: Any = None, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Index-price klines (futures; the symbol is the pair, e.g. BTCUSDT)."""
        return self.read(market, "index_klines", symbol, interval, start, end, lazy)

    def premium_klines(self, market: str, symbol: str, interval: str, start: Any = None,
                       end: Any = None, lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Premium-index klines (futures)."""
        return self.read(market, "premium_klines", symbol, interval, start, end, lazy)

    def agg_trades(self, market: str, symbol: str, start: Any = None, end: Any = None,
                   lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Aggregate trades, transact_time in ``[start, end)``, sorted by agg_id."""
        return self.read(market, "agg_trades", symbol, None, start, end, lazy)

    def trades(self, market: str, symbol: str, start: Any = None, end: Any = None,
               lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Every trade of one symbol, time in ``[start, end)``."""
        return self.read(market, "trades", symbol, None, start, end, lazy)

    def bars(self, market: str, symbol: str, source: str = "trades", rule: str = "1m",
             start: Any = None, end: Any = None) -> pl.DataFrame:
        """Bars built from ``trades`` or ``agg_trades`` (time bars ``1m``/``10s``/``250ms``,
        or ``tick:N``/``volume:X``/``dollar:X``) in the kline schema, read a day at a
        time; see ``kline_lake.lake.bars``."""
        from kline_lake.lake.bars import lake_bars

        return lake_bars(self, market, symbol, source, rule, start, end)

    def funding(self, market: str, symbol: str, start: Any = None, end: Any = None,
                lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Funding events, funding_time in ``[start, end)``."""
        return self.read(market, "funding", symbol, None, start, end, lazy)

    def book_ticker(self, market: str, symbol: str, start: Any = None, end: Any = None,
                    lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Best bid/ask updates (um, cm), transaction_time in ``[start, end)``, by update_id."""
        return self.read(market, "book_ticker", symbol, None, start, end, lazy)

    def metrics(self, market: str, symbol: str, start: Any = None, end: Any = None,
                lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """5-minute open interest and long/short ratios (um, cm), create_time in ``[start, end)``."""
        return self.read(market, "metrics", symbol, None, start, end, lazy)

    def book_depth(self, market: str, symbol: str, start: Any = None, end: Any = None,
                   lazy: bool = False) -> pl.DataFrame | pl.LazyFrame:
        """Depth at +-1..5 % of the mid (um, cm), timestamp in ``[start, end)``, one row per
        (timestamp, percentage)."""
        return self.read(market, "book_depth", symbol, None, start, end, lazy)

    def covered(self, market: str, dataset: str, symbol: str,
                interval: str | None = None) -> list[tuple[int, int]]:
        """The series' coverage record: merged half-open us ranges fetched completely."""
        key = SeriesKey(market, dataset, symbol, interval)
        if isinstance(self.root, Storage):
            rel = layout.coverage_path(Path(), key).as_posix()
            if not self.root.exists(rel):
                return []
            return coverage.loads(self.root.read_bytes(rel).decode(), self.root.uri(rel))
        return coverage.read(layout.coverage_path(self.root, key))

    # ---------------------------------------------------------------- SQL
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The Lake's DuckDB connection with fresh views over the lake (UTC session)."""
        if self._con is None:
            self._con = duckdb.connect(":memory:")
            self._con.execute("SET TimeZone = 'UTC'")
            if isinstance(self.root, Storage):
                self._con.register_filesystem(self.root.fs)
        for dataset in DATASETS:
            self._con.execute(f'CREATE OR REPLACE VIEW "{dataset}" AS {_view_sql(self.root, dataset)}')
        return self._con

    def sql(self, query: str, format: str = "polars",
            allow_writes: bool = False) -> pl.DataFrame | pa.Table:
        """Run `query` against the views; ``format`` is "polars" or "arrow".

        Read-only unless ``allow_writes``: only SELECT statements (``SELECT``, ``WITH``,
        ``FROM``, ``VALUES``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``) and ``EXPLAIN`` of
        them run; ``COPY ... TO``, ``CREATE``, ``INSERT``, ``ATTACH``, ``SET`` and every
        other statement is an InputError (one line) before anything runs, since they
        write files or change the session. InputError (one line) too for bad SQL or an
        unknown format.
        """
        if format not in ("polars", "arrow"):
            raise InputError(f"unknown format {format!r}; expected 'polars' or 'arrow'")
        con = self.connection()
        try:
            if not allow_writes:
                check_read_only(con, query)
            rel = con.sql(query)
            if rel is None:  # a statement without a result set
                return pl.DataFrame() if format == "polars" else pa.table({})
            return rel.pl() if format == "polars" else rel.to_arrow_table()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"SQL error: {first}") from None

    def close(self) -> None:
        """Close the DuckDB connection (the Lake can still be used; it reopens)."""
        if self._con is not None:
            self._con.close()
            self._con = None

    # ---------------------------------------------------------- questions
    def inventory(self) -> pl.DataFrame:
        """Per market/dataset/symbol/interval: first and last time, rows, files, bytes."""
        return inventory(self.root)

    def gaps(self, market: str, symbol: str, interval: str | None = None, start: Any = None,
             end: Any = None, dataset: str = "klines") -> pl.DataFrame:
        """Missing rows as runs, each tagged "confirmed" or "unknown" (see ``gaps``):
        kline slots for kline datasets (`interval` required), settlements on the funding
        grid for ``funding`` (plus interval changes), agg id runs for ``agg_trades``, 5m slots
        for ``metrics``, silences for ``book_ticker``/``book_depth`` (``market_gaps``)."""
        key = SeriesKey(market, dataset, symbol, interval)
        require_series(self.root, key)
        start_us, end_us = to_us(start, "start"), to_us(end, "end")
        check_range(start_us, end_us)
        return find_gaps(self.root, key, start_us, end_us)

    def resample(self, market: str, symbol: str, from_interval: str, to_interval: str,
                 start: Any = None, end: Any = None, dataset: str = "klines",
                 partial: bool = False) -> pl.DataFrame:
        """Exact OHLCV aggregation of stored klines to a coarser interval (see ``resample``)."""
        key = SeriesKey(market, dataset, symbol, from_interval)
        require_series(self.root, key)
        start_us, end_us = to_us(start, "start"), to_us(end, "end")
        check_range(start_us, end_us)
        return resample_series(self.root, key, to_interval, start_us, end_us, partial=partial)

    def verify(self):
        """Check every file and coverage record; returns a ``verify.VerifyReport``."""
        if isinstance(self.root, Storage):
            return verify_objects(self.root)
        return verify_lake(self.root)

    def compact(self, market: str | None = None, dataset: str | None = None,
                symbol: str | None = None, force: bool = False):
        """Merge each partition's files into its canonical file(s); returns a
        ``compact.CompactReport`` (see ``compact``)."""
        if isinstance(self.root, Storage):
            return compact_objects(self.root, market=market, dataset=dataset, symbol=symbol,
                                   force=force)
        return compact_lake(self.root, market=market, dataset=dataset, symbol=symbol,
                            force=force)
