"""`kline-lake inventory|gaps|verify|query|compact`: the lake catalog from a shell.

All take ``--lake DIRECTORY`` (default ``./data``). A missing lake, bad SQL or a series
the lake does not hold is one line on stderr and exit 2 (InputError, mapped in
``kline_lake.cli.run_cli``); a malformed option value is click's usage error, exit 2;
``verify`` exits 1 when it finds an error. Every option is typed (``DATE``,
``DIRECTORY``, ``FILE``, choices) and described, and every command's help ends with an
example.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from kline_lake.cli.params import SYMBOL, SYMBOL_LIST, UTC_TIME
from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.core.markets import DATASETS, KLINE_DATASETS, MARKETS
from kline_lake.errors import InputError

FORMATS = ("table", "csv", "json", "parquet")
lake_option = click.option(
    "--lake", type=click.Path(file_okay=False, path_type=str), default="./data",
    show_default=True, help="Lake root directory (as written by kline-lake download), or an "
    "object store: s3://BUCKET/PREFIX (credentials and AWS_ENDPOINT_URL from the AWS "
    "environment).")
format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="Output format: an aligned table, CSV, JSON records, or Parquet (needs --out).")
out_option = click.option(
    "--out", type=click.Path(dir_okay=False, path_type=str), default=None,
    help="Write to this file instead of stdout.")
market_option = click.option(
    "--market", type=click.Choice(MARKETS), default=None,
    help="Only this market: spot, um (USD-M), cm (COIN-M), us (Binance.US); default all.")


def _open(lake: str):
    from kline_lake.lake.catalog import Lake

    return Lake(lake)


def emit(frame, fmt: str, out: str | None) -> None:
    """Write a Polars frame to `out` (or stdout) as table, csv, json or parquet."""
    import polars as pl

    if fmt == "parquet":
        if not out:
            raise InputError("--format parquet needs --out FILE")
        frame.write_parquet(out, compression="zstd")
        return
    if fmt == "csv":
        text = frame.write_csv()
    elif fmt == "json":
        text = frame.write_json() + "\n"
    else:
        with pl.Config(tbl_rows=min(max(frame.height, 1), 200), tbl_cols=-1,
                       tbl_width_chars=250, fmt_str_lengths=80):
            text = f"{frame}\n"
    if out:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot write {out}: {exc}") from None
    else:
        click.echo(text, nl=False)


@click.command()
@lake_option
@format_option
@out_option
def inventory(lake: str, fmt: str, out: str | None) -> None:
    """What the lake holds: per market/dataset/symbol/interval the first and last time,
    rows, files, bytes, the covered extent (covered_from, covered_to) and the
    never-fetched holes inside it (coverage_holes, coverage_hole_days).

    \b
    Example:
      kline-lake inventory --lake ./data --format csv --out inventory.csv
    """
    emit(_open(lake).inventory(), fmt, out)


@click.command()
@lake_option
@market_option
@click.option("--data", "dataset", type=click.Choice(DATASETS), default="klines",
              show_default=True,
              help="Kline datasets: missing klines; funding: missing settlements on the "
                   "funding grid (and interval changes); agg_trades: missing agg ids.")
@click.option("--symbols", type=SYMBOL_LIST, default=None,
              help="Only these symbols, comma-separated (default: every symbol the lake "
                   "holds); a symbol it does not hold is an error.")
@click.option("--interval", type=click.Choice(ALL_INTERVALS), default=None,
              help="Only this kline interval (default: every interval the lake holds).")
@click.option("--start", type=UTC_TIME, default=None,
              help="UTC start, inclusive: 2024-01-01 or 2024-01-01T12:30 (default: the "
                   "first row or covered time of each series).")
@click.option("--end", type=UTC_TIME, default=None,
              help="UTC end, exclusive (default: the last row or covered time of each series).")
@format_option
@out_option
def gaps(lake: str, market: str | None, dataset: str, symbols: list[str] | None,
         interval: str | None, start: datetime | None, end: datetime | None, fmt: str,
         out: str | None) -> None:
    """Missing rows, each run tagged confirmed (the exchange was asked and answered
    without them: maintenance, before listing) or unknown (never fetched).

    \b
    Examples:
      kline-lake gaps --market um --symbols BTCUSDT --interval 1h --start 2024-01-01
      kline-lake gaps --data funding --format csv
    """
    import polars as pl

    from kline_lake.lake.event_gaps import AGG_TRADE_GAPS_SCHEMA, FUNDING_GAPS_SCHEMA
    from kline_lake.lake.gaps import GAPS_SCHEMA
    from kline_lake.lake.holdings import select_series

    cat = _open(lake)
    klines = dataset in KLINE_DATASETS
    series_cols = {"market": pl.String, "symbol": pl.String,
                   **({"interval": pl.String} if klines else {})}
    frames = []
    for key in select_series(cat.root, dataset, market, symbols, interval):
        found = cat.gaps(key.market, key.symbol, key.interval, start, end, dataset=dataset)
        labels = [pl.lit(key.market).alias("market"), pl.lit(key.symbol).alias("symbol")]
        if klines:
            labels.append(pl.lit(key.interval).alias("interval"))
        frames.append(found.select(*labels, pl.all()))
    schema = {"funding": FUNDING_GAPS_SCHEMA, "agg_trades": AGG_TRADE_GAPS_SCHEMA}.get(
        dataset, GAPS_SCHEMA)
    result = pl.concat(frames) if frames else pl.DataFrame(schema={**series_cols, **schema})
    emit(result, fmt, out)


@click.command()
@lake_option
@click.option("--json", "as_json", is_flag=True,
              help="Print the report as one JSON document instead of lines.")
@click.option("--refresh-archive", is_flag=True,
              help="First re-read the CHECKSUMs of ingested archive files; re-ingest changed ones.")
@click.option("--archive-url", metavar="URL", default=None,
              help="Archive base URL for --refresh-archive (default as for download: env "
                   "KLINE_LAKE_ARCHIVE_URL, else a REST base URL override, else "
                   "https://data.binance.vision).")
@click.pass_context
def verify(ctx: click.Context, lake: str, as_json: bool, refresh_archive: bool,
           archive_url: str | None) -> None:
    """Check every file and coverage record: page checksums, schemas, sorted unique keys,
    partitions, value sanity (positive prices, low <= open/close <= high, ...) and
    coverage; each problem names its file (and row). Exit 1 on an error.

    \b
    Example:
      kline-lake verify --lake ./data --json
    """
    import json

    refreshed = None
    if refresh_archive:  # kline_lake.archive.refresh (issue 4)
        from kline_lake.archive.refresh import run_refresh

        if "://" in lake and not lake.startswith("file://"):
            raise InputError("verify --refresh-archive rewrites a local lake; refresh a local "
                             f"copy and publish it with kline-lake sync, not {lake}")

        refreshed = run_refresh(lake, archive_url)
    report = _open(lake).verify()
    if as_json:
        doc = report.to_dict()
        if refreshed is not None:
            doc["archive_refresh"] = refreshed.to_dict()
        click.echo(json.dumps(doc, indent=1))
    else:
        for line in refreshed.lines() if refreshed is not None else []:
            click.echo(line)
        for problem in report.problems:
            click.echo(str(problem))
        click.echo(report.summary())
    if not report.ok or (refreshed is not None and not refreshed.ok):
        ctx.exit(1)


@click.command()
@click.argument("sql")
@lake_option
@format_option
@out_option
@click.option("--allow-writes", is_flag=True,
              help="Also run statements that write or change the session (COPY ... TO, "
                   "CREATE, INSERT, ATTACH, SET, ...); without it only reading statements run.")
def query(sql: str, lake: str, fmt: str, out: str | None, allow_writes: bool) -> None:
    """Run SQL (read-only) over the DuckDB views klines, agg_trades, funding, mark_klines,
    index_klines, premium_klines; columns: market, the data columns, symbol,
    [interval,] year, month. Times are UTC.

    \b
    Example:
      kline-lake query "SELECT symbol, count(*) AS n FROM klines
        WHERE market = 'um' AND interval = '1h' GROUP BY symbol" --format csv
    """
    if fmt == "parquet" and not out:
        raise InputError("--format parquet needs --out FILE")
    emit(_open(lake).sql(sql, allow_writes=allow_writes), fmt, out)


@click.command()
@lake_option
@market_option
@click.option("--data", "dataset", type=click.Choice(DATASETS), default=None,
              help="Only this dataset (default: all).")
@click.option("--symbol", type=SYMBOL, default=None,
              help="Only this symbol (default: all); a symbol the lake does not hold is an error.")
@click.option("--force", is_flag=True,
              help="Rewrite partitions that hold only canonical files too (re-sort, "
                   "deduplicate, current compression).")
def compact(lake: str, market: str | None, dataset: str | None, symbol: str | None,
            force: bool) -> None:
    """Merge each partition's files into its canonical file(s), atomically, under the
    series lock (rows are preserved; other readers never see a partial state).

    \b
    Example:
      kline-lake compact --lake ./data --market um --data klines
    """
    from kline_lake.lake.holdings import held_series, names_text

    cat = _open(lake)
    if symbol is not None:
        held = sorted({k.symbol for d in ([dataset] if dataset else DATASETS)
                       for k in held_series(cat.root, d, market)})
        if symbol not in held:
            what = " ".join(x for x in (market, dataset or "data") if x)
            raise InputError(f"no {what} for {symbol} in the lake; it holds "
                             + (names_text(held) if held else f"no {what}"))
    report = cat.compact(market=market, dataset=dataset, symbol=symbol, force=force)
    click.echo(report.summary())
