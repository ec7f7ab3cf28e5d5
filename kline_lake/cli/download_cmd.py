"""`kline-lake download`: history from the archive and REST into the lake (see kline_lake.download.orchestrate)."""

from __future__ import annotations

import asyncio
import sys

import click

from kline_lake.core.markets import DATASETS, MARKETS
from kline_lake.download.sources import SOURCE_NAMES, SOURCES, get_source


@click.command("download")
@click.option("--market", required=True, type=click.Choice(MARKETS), help="spot, um (USD-M), cm (COIN-M) or us (Binance.US).")
@click.option("--data", "dataset", required=True, type=click.Choice(DATASETS), help="What to download.")
@click.option("--symbols", required=True, help="Comma-separated symbols, or ALL (every TRADING symbol).")
@click.option("--interval", default=None, help="Kline interval (kline datasets; default 1m).")
@click.option("--start", required=True, help="UTC start, inclusive: 2024-01-01 or 2024-01-01T12:30.")
@click.option("--end", default=None, help="UTC end, exclusive (default: now).")
@click.option("--lake", default="./data", show_default=True, help="Lake root directory.")
@click.option("--base-url", default=None, help="REST base URL for every market (env KLINE_LAKE_BASE_URL).")
@click.option("--source", default="auto", show_default=True, type=click.Choice(SOURCE_NAMES),
              help="; ".join(f"{s.name}: {s.help}" for s in SOURCES.values()) + ".")
@click.option("--archive-url", default=None,
              help="Archive base URL (env KLINE_LAKE_ARCHIVE_URL; default --base-url if given, else https://data.binance.vision).")
@click.option("--quiet", is_flag=True, help="No progress bars (notes on waits and clamped ranges, and the summary line, are still printed).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=None, hidden=True,
              help="Rows per lake commit (default 100000).")
def download(market: str, dataset: str, symbols: str, interval: str | None, start: str,
             end: str | None, lake: str, base_url: str | None, source: str,
             archive_url: str | None, quiet: bool, batch_rows: int | None) -> None:
    """Download klines, aggregate trades or funding into the Parquet lake.

    Only what the lake does not cover yet is fetched; the exchange's weight budget is
    respected (no 429s by design); bad input exits with code 2 before anything is written.
    """
    from kline_lake.download.orchestrate import run_download
    from kline_lake.download.progress import NullProgress, RunTotals, summary_line
    from kline_lake.download.request import validate_request

    request = validate_request(market=market, dataset=dataset, symbols=symbols,
                               interval=interval, start=start, end=end, lake=lake,
                               base_url=base_url, source=source, archive_url=archive_url)
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
