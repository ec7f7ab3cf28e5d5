"""The five-minute tour: the whole pipeline, offline, in one command.

`kline-lake tour` starts the fake exchange on loopback, downloads a month of hourly
klines and funding for two USD-M perpetuals into a lake, prints the lake's inventory,
backtests `sma_cross` with and without funding, and writes an HTML and a JSON report.
Everything runs in this process; nothing leaves the machine.

It lives in `backtest` because it drives both packages (`kline_lake` never imports
`backtest`); `kline-lake tour` reaches it through the `kline_lake.commands` entry point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

import backtest
from backtest.report import write_run_report
from kline_lake.download.orchestrate import run_download
from kline_lake.download.progress import summary_line
from kline_lake.download.request import validate_request
from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.catalog import Lake

TOUR_MARKET = "um"
TOUR_SYMBOLS = "BTCUSDT,ETHUSDT"
TOUR_START, TOUR_END = "2024-05-01", "2024-06-01"
TOUR_INTERVAL = "1h"
TOUR_PARAMS = {"fast": 10, "slow": 50}

REAL_EXCHANGE_COMMAND = (
    "kline-lake download --market um --data klines --symbols BTCUSDT,ETHUSDT "
    "--interval 1h --start 2024-05-01 --end 2024-06-01 --lake ./data"
)


@dataclass(frozen=True)
class TourResult:
    """What the tour produced, for tests and callers."""

    lake: Path
    report_html: Path
    report_json: Path
    rows_written: int
    metrics_with_funding: dict[str, float]
    metrics_without_funding: dict[str, float]


def _download(lake: Path, base_url: str, say: Callable[[str], None]) -> int:
    rows = 0
    for dataset, interval in (("klines", TOUR_INTERVAL), ("funding", None)):
        request = validate_request(
            market=TOUR_MARKET, dataset=dataset, symbols=TOUR_SYMBOLS, interval=interval,
            start=TOUR_START, end=TOUR_END, lake=lake, base_url=base_url,
        )
        totals = asyncio.run(run_download(request))
        rows += totals.rows_written
        say(f"  {dataset:<8} {summary_line(totals)}")
    return rows


def _summary(label: str, metrics: dict[str, float]) -> str:
    return (
        f"  {label:<16} final equity {metrics['final_equity']:>10.2f}  "
        f"return {100 * metrics['total_return']:>6.2f}%  sharpe {metrics['sharpe']:>6.2f}  "
        f"trades {int(metrics['n_trades']):>3}  fees {metrics['fees_paid']:>7.2f}  "
        f"funding paid {metrics['funding_paid']:>7.2f}"
    )


def _inventory_text(inventory) -> str:
    columns = ["dataset", "symbol", "interval", "first_time", "last_time", "rows", "files", "bytes"]
    with pl.Config(tbl_rows=50, tbl_cols=len(columns), tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_width_chars=120):
        return str(inventory.select(columns))


def run_tour(lake: Path, report: Path, say: Callable[[str], None] = print) -> TourResult:
    """Run the tour into `lake`, writing `report` (.html) and its .json sibling."""
    if report.suffix.lower() != ".html":
        raise InputError(f"--report must name an .html file, got {str(report)!r}")
    say(f"1. fake exchange on loopback; downloading {TOUR_SYMBOLS} {TOUR_INTERVAL} klines "
        f"and funding, {TOUR_START}..{TOUR_END}, into {lake}")
    with FakeExchange(seed=7) as fx:
        rows = _download(lake, fx.base_url, say)

    say("2. inventory of the lake")
    say(_inventory_text(Lake(lake).inventory()))

    say(f"3. backtest sma_cross {TOUR_PARAMS} on BTCUSDT {TOUR_INTERVAL}, 5 bps taker fee, 1 bp slippage")
    common = dict(lake=lake, market=TOUR_MARKET, symbol="BTCUSDT", interval=TOUR_INTERVAL,
                  start=TOUR_START, end=TOUR_END, fee=0.0005, slippage_bps=1.0, direction="both")
    with_funding = backtest.run("sma_cross", TOUR_PARAMS, funding=True, **common)
    without_funding = backtest.run("sma_cross", TOUR_PARAMS, funding=False, **common)
    say(_summary("with funding", with_funding.metrics))
    say(_summary("without funding", without_funding.metrics))

    report_json = report.with_suffix(".json")
    write_run_report(with_funding, report)
    report_json.write_text(with_funding.to_json())
    say(f"4. report: {report} (open it in a browser) and {report_json}")
    say("At home, against the real exchange, the same download is:\n  " + REAL_EXCHANGE_COMMAND)
    return TourResult(lake, report, report_json, rows, dict(with_funding.metrics),
                      dict(without_funding.metrics))
