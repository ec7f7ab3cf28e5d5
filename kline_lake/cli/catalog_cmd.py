"""`kline-lake inventory|gaps|verify|query|compact`: the lake catalog from a shell.

All take ``--lake DIR`` (default ``./data``). A missing lake or bad SQL is one line on
stderr and exit 2 (InputError, mapped in ``kline_lake.cli.run_cli``); ``verify`` exits 1
when it finds an error.
"""

from __future__ import annotations

from pathlib import Path

import click

from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.core.markets import DATASETS, KLINE_DATASETS, MARKETS
from kline_lake.errors import InputError

FORMATS = ("table", "csv", "json", "parquet")
lake_option = click.option("--lake", default="./data", show_default=True,
                           help="Lake root directory.")


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


format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                             show_default=True, help="Output format.")
out_option = click.option("--out", default=None, help="Write to this file instead of stdout.")


@click.command()
@lake_option
@format_option
@out_option
def inventory(lake: str, fmt: str, out: str | None) -> None:
    """Per market/dataset/symbol/interval: first and last time, rows, files, bytes."""
    emit(_open(lake).inventory(), fmt, out)


@click.command()
@lake_option
@click.option("--market", type=click.Choice(MARKETS), default=None, help="Only this market.")
@click.option("--data", "dataset", type=click.Choice(DATASETS), default="klines",
              show_default=True)
@click.option("--symbols", default=None, help="Comma-separated symbols (default: all).")
@click.option("--interval", type=click.Choice(ALL_INTERVALS), default=None,
              help="Only this interval (default: all).")
@click.option("--start", default=None, help="UTC date/datetime, inclusive.")
@click.option("--end", default=None, help="UTC date/datetime, exclusive.")
@format_option
@out_option
def gaps(lake: str, market: str | None, dataset: str, symbols: str | None,
         interval: str | None, start: str | None, end: str | None, fmt: str,
         out: str | None) -> None:
    """Missing klines, each run tagged confirmed (exchange answered empty) or unknown."""
    import polars as pl

    from kline_lake.lake.event_gaps import AGG_TRADE_GAPS_SCHEMA, FUNDING_GAPS_SCHEMA
    from kline_lake.lake.gaps import GAPS_SCHEMA
    from kline_lake.lake.holdings import select_series

    cat = _open(lake)
    wanted = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    klines = dataset in KLINE_DATASETS
    series_cols = {"market": pl.String, "symbol": pl.String,
                   **({"interval": pl.String} if klines else {})}
    frames = []
    for key in select_series(cat.root, dataset, market, wanted, interval):
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--refresh-archive", is_flag=True,
              help="First re-read the CHECKSUMs of ingested archive files; re-ingest changed ones.")
@click.option("--archive-url", default=None,
              help="Archive base URL for --refresh-archive (env KLINE_LAKE_ARCHIVE_URL).")
@click.pass_context
def verify(ctx: click.Context, lake: str, as_json: bool, refresh_archive: bool,
           archive_url: str | None) -> None:
    """Check schemas, order, unique keys, partitions and coverage; exit 1 on an error."""
    import json

    refreshed = None
    if refresh_archive:  # kline_lake.archive.refresh (issue 4)
        from kline_lake.archive.refresh import run_refresh

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
    """Run SQL over the views klines, agg_trades, funding, mark_klines, index_klines,
    premium_klines (columns: market, the data columns, symbol, [interval,] year, month)."""
    if fmt == "parquet" and not out:
        raise InputError("--format parquet needs --out FILE")
    emit(_open(lake).sql(sql, allow_writes=allow_writes), fmt, out)


@click.command()
@lake_option
@click.option("--market", type=click.Choice(MARKETS), default=None)
@click.option("--data", "dataset", type=click.Choice(DATASETS), default=None)
@click.option("--symbol", default=None)
@click.option("--force", is_flag=True, help="Rewrite canonical-only partitions too.")
def compact(lake: str, market: str | None, dataset: str | None, symbol: str | None,
            force: bool) -> None:
    """Merge each partition's files into its canonical file(s), atomically."""
    from kline_lake.lake.compact import compact_lake

    cat = _open(lake)
    report = compact_lake(cat.root, market=market, dataset=dataset, symbol=symbol, force=force)
    click.echo(report.summary())
