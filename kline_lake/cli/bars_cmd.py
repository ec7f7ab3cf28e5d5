"""`kline-lake bars`: bars built from the lake's trades or aggregate trades.

Thin: parses, calls ``Lake.bars`` (``kline_lake.lake.bars``), prints. A bad rule, source
or a series the lake does not hold is one line on stderr and exit 2 (InputError).
"""

from __future__ import annotations

import click

from kline_lake.cli.catalog_cmd import emit, format_option, lake_option, out_option
from kline_lake.cli.params import SYMBOL, UTC_TIME
from kline_lake.core.markets import MARKETS


@click.command("bars")
@lake_option
@click.option("--market", type=click.Choice(MARKETS), required=True, help="spot, um, cm or us.")
@click.option("--symbol", type=SYMBOL, required=True, help="One symbol, e.g. BTCUSDT.")
@click.option("--source", type=click.Choice(("trades", "agg_trades")), default="trades",
              show_default=True, help="Build from every trade or from aggregate trades.")
@click.option("--rule", required=True, metavar="RULE",
              help="Time bars 1m, 10s, 250ms, 1h... or tick:N, volume:X, dollar:X.")
@click.option("--start", type=UTC_TIME, default=None, help="First time (UTC), inclusive.")
@click.option("--end", type=UTC_TIME, default=None, help="Last time (UTC), exclusive.")
@format_option
@out_option
def bars(lake: str, market: str, symbol: str, source: str, rule: str, start, end, fmt: str,
         out: str | None) -> None:
    """Bars in the kline schema from trades (time or information-driven bars).

    Example: kline-lake bars --market spot --symbol BTCUSDT --rule 10s --start 2024-01-01
    --end 2024-01-02
    """
    from kline_lake.lake.catalog import Lake

    emit(Lake(lake).bars(market, symbol, source, rule, start, end), fmt, out)
