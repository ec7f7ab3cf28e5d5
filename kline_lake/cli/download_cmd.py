"""`kline-lake download`: REST history into the lake (see kline_lake.download)."""

from __future__ import annotations

import asyncio

import click

from kline_lake.markets import DATASETS, MARKETS

SOURCES = ("rest",)  # the archive issue adds "archive" and "auto"


@click.command("download")
@click.option("--market", required=True, type=click.Choice(MARKETS), help="spot, um (USD-M), cm (COIN-M) or us (Binance.US).")
@click.option("--data", "dataset", required=True, type=click.Choice(DATASETS), help="What to download.")
@click.option("--symbols", required=True, help="Comma-separated symbols, or ALL (every TRADING symbol).")
@click.option("--interval", default=None, help="Kline interval (kline datasets; default 1m).")
@click.option("--start", required=True, help="UTC start, inclusive: 2024-01-01 or 2024-01-01T12:30.")
@click.option("--end", default=None, help="UTC end, exclusive (default: now).")
@click.option("--lake", default="./data", show_default=True, help="Lake root directory.")
@click.option("--base-url", default=None, help="REST base URL for every market (env KLINE_LAKE_BASE_URL).")
@click.option("--source", default="rest", show_default=True, type=click.Choice(SOURCES), help="Where the data comes from.")
@click.option("--quiet", is_flag=True, help="No progress bars (the summary line is still printed).")
@click.option("--batch-rows", type=click.IntRange(min=1), default=None, hidden=True,
              help="Rows per lake commit (default 100000).")
def download(market: str, dataset: str, symbols: str, interval: str | None, start: str,
             end: str | None, lake: str, base_url: str | None, source: str, quiet: bool,
             batch_rows: int | None) -> None:
    """Download klines, aggregate trades or funding into the Parquet lake.

    Only what the lake does not cover yet is fetched; the exchange's weight budget is
    respected (no 429s by design); bad input exits with code 2 before anything is written.
    """
    from kline_lake.download import run_download, validate_request
    from kline_lake.progress import NullProgress, TqdmProgress, summary_line

    request = validate_request(market=market, dataset=dataset, symbols=symbols,
                               interval=interval, start=start, end=end, lake=lake,
                               base_url=base_url, source=source)
    progress = NullProgress() if quiet else TqdmProgress()
    kwargs = {} if batch_rows is None else {"batch_rows": batch_rows}
    totals = asyncio.run(run_download(request, progress=progress, **kwargs))
    click.echo(summary_line(totals))
