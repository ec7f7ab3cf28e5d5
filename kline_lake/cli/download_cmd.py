"""`kline-lake download`: history from the archive and REST into the lake (see kline_lake.download.orchestrate)."""

from __future__ import annotations

import sys

import click

from kline_lake.cli.options import Integer
from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.core.markets import DATASETS, MARKETS
from kline_lake.download.request import MAX_DAYS
from kline_lake.download.sources import SOURCE_NAMES, SOURCES, get_source

_INTERVALS = ", ".join(f"{iv} (spot only)" if iv == "1s" else iv for iv in ALL_INTERVALS)


@click.command("download")
@click.option("--market", required=True, type=click.Choice(MARKETS),
              help="spot, um (USD-M perpetuals and futures), cm (COIN-M) or us (Binance.US).")
@click.option("--data", "dataset", required=True, type=click.Choice(DATASETS),
              help="What to download: klines, agg_trades (aggregate trades), funding (um, cm), "
                   "or the futures' mark_klines, index_klines, premium_klines.")
@click.option("--symbols", default=None, metavar="SYMBOLS",
              help="Comma-separated symbols (BTCUSDT,ETHUSDT), shell-style patterns matched "
                   "against exchangeInfo ('BTC*', '*USDT'; TRADING symbols only), or ALL "
                   "(every TRADING symbol). Default with --quote: ALL.")
@click.option("--quote", default=None, metavar="ASSET",
              help="Only symbols whose quote asset is ASSET (e.g. USDT), per exchangeInfo.")
@click.option("--interval", default=None, metavar="INTERVALS",
              help=f"Kline interval(s), comma-separated for several at once (1m,1h,1d): "
                   f"{_INTERVALS}. Kline datasets only; default 1m.")
@click.option("--start", default=None, metavar="DATE",
              help="UTC start, inclusive: 2024-01-01 or 2024-01-01T12:30. Nothing before a "
                   "symbol's listing is fetched (said when --start is earlier).")
@click.option("--days", default=None, type=Integer(1, MAX_DAYS),
              help="Instead of --start: the last N days, from UTC midnight N days before the "
                   "end's day (--days 1: yesterday and today so far).")
@click.option("--end", default=None, metavar="DATE",
              help="UTC end, exclusive (default: the exchange's now; a later --end is "
                   "clamped to it, and said).")
@click.option("--lake", default="./data", show_default=True, metavar="DIR|URL",
              help="Lake root directory (created if missing), or an object store: "
                   "s3://BUCKET/PREFIX (credentials and AWS_ENDPOINT_URL from the AWS "
                   "environment).")
@click.option("--base-url", default=None, metavar="URL",
              help="REST base URL for every market, e.g. a fake exchange's (env "
                   "KLINE_LAKE_BASE_URL; per market KLINE_LAKE_SPOT_URL, ..._UM_URL, ...).")
@click.option("--source", default="auto", show_default=True, type=click.Choice(SOURCE_NAMES),
              help="; ".join(f"{s.name}: {s.help}" for s in SOURCES.values()) + ".")
@click.option("--archive-url", default=None, metavar="URL",
              help="Archive base URL (env KLINE_LAKE_ARCHIVE_URL; default --base-url if given, "
                   "else https://data.binance.vision).")
@click.option("--quiet", is_flag=True,
              help="No progress bars (notes on waits and clamped ranges go to stderr, the "
                   "summary line to stdout).")
@click.option("--batch-rows", type=Integer(1), default=None, hidden=True,
              help="Rows per lake commit (default 100000).")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Shard the series (one symbol per task) across Dask workers: local:N "
                   "(a LocalCluster of N processes) or a scheduler, tcp://HOST:8786. Each "
                   "worker has its own client, rate limiter and weight budget; the lake "
                   "must be at the same path for every worker.")
@click.option("--ledger-dir", default=None, metavar="DIR",
              help="Weight-ledger directory of this run (and its Dask workers): processes "
                   "that share one directory share one IP's weight budget (default "
                   "$KLINE_LAKE_STATE_DIR, else ~/.cache/kline-lake: one per machine).")
def download(market: str, dataset: str, symbols: str | None, quote: str | None,
             interval: str | None, start: str | None, days: int | None, end: str | None,
             lake: str, base_url: str | None, source: str, archive_url: str | None,
             quiet: bool, batch_rows: int | None, dask_address: str | None,
             ledger_dir: str | None) -> None:
    """Download klines, aggregate trades or funding into the Parquet lake.

    Only what the lake does not cover yet is fetched; the exchange's weight budget is
    respected (no 429s by design); bad input exits with code 2 before anything is
    written. Ctrl-C stops cleanly (exit 130) and prints what was committed; rerun the
    same command to fetch the rest.

    Examples:

    \b
      kline-lake download --market um --data klines --symbols BTCUSDT,ETHUSDT \\
          --interval 1m,1h,1d --start 2024-01-01
      kline-lake download --market spot --data klines --symbols 'BTC*' --quote USDT \\
          --interval 1h --days 30
      kline-lake download --market um --data funding --quote USDT --start 2023-01-01
      kline-lake download --market um --data klines --quote USDT --start 2024-01-01 \\
          --dask local:4
    """
    from kline_lake.download.progress import NullProgress, RunTotals, summary_line
    from kline_lake.download.request import validate_request

    request = validate_request(market=market, dataset=dataset, symbols=symbols,
                               interval=interval, start=start, end=end, lake=lake,
                               base_url=base_url, source=source, archive_url=archive_url,
                               days=days, quote=quote)
    # the download machinery loads Polars, PyArrow and Numba: imported once the input is valid
    import asyncio

    from kline_lake.download.orchestrate import run_download

    if ledger_dir is not None:
        import os

        os.environ["KLINE_LAKE_STATE_DIR"] = ledger_dir  # this process's ledger too
    if dask_address is not None:
        from kline_lake.download.distributed import run_distributed_download

        totals = run_distributed_download(request, dask_address, show_progress=not quiet,
                                          ledger_dir=ledger_dir)
        click.echo(summary_line(totals))
        return
    # --quiet hides the bars, not the notes (a wait, a clamped range): those go to stderr
    progress = NullProgress(stream=sys.stderr) if quiet else get_source(source).progress()
    kwargs = {} if batch_rows is None else {"batch_rows": batch_rows}
    totals = RunTotals()
    try:
        asyncio.run(run_download(request, progress=progress, totals=totals, **kwargs))
    except KeyboardInterrupt:
        # asyncio.run cancelled the run: every commit in flight has landed and is counted
        click.echo(summary_line(totals, interrupted=True))
        click.echo("kline-lake: interrupted; the rows counted above are committed, rerun the "
                   "same command to fetch the rest", err=True)
        raise SystemExit(130) from None
    click.echo(summary_line(totals))
