"""The `backtest` command line: ``backtest run`` and ``backtest sweep``.

Bad input (unknown strategy or parameter, empty data range, fast >= slow, negative
fee...) prints one line and exits 2, through `kline_lake.cli.run_cli`. ``--json`` and
``--report`` are checked before the run and ``-`` means standard output (see
`backtest.outputs`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from backtest.multi_asset.cli import portfolio_cmd
from backtest.names import LOWER_IS_BETTER, METRIC_NAMES, STRATEGY_NAMES
from backtest.outputs import STDOUT, check_outputs, to_stdout, write_output
from backtest.params import parse_params, parse_stop, single_values
from backtest.walkforward_cli import walk_forward_command
from kline_lake.cli import run_cli
from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.errors import InputError


def _common(fn: Callable) -> Callable:
    """Options shared by `run` and `sweep` (applied bottom-up, shown top-down)."""
    options = [
        click.option("--lake", default="./data", show_default=True,
                     type=click.Path(file_okay=False), help="Lake root directory."),
        click.option("--market", type=click.Choice(["spot", "um", "cm", "us"]), default="um",
                     show_default=True,
                     help="spot, um (USD-M perpetuals), cm (COIN-M) or us (Binance.US)."),
        click.option("--symbol", metavar="SYMBOL", required=True,
                     help="Exchange symbol, e.g. BTCUSDT."),
        click.option("--interval", type=click.Choice(list(ALL_INTERVALS)), required=True,
                     help="Bar interval (1s: spot only)."),
        click.option("--start", metavar="DATE|TIME", required=True,
                     help="First bar open, UTC, inclusive (2024-01-01 or "
                          "2024-01-01T08:00)."),
        click.option("--end", metavar="DATE|TIME", required=True,
                     help="End of the range, UTC, exclusive."),
        click.option("--strategy", metavar="NAME", default="sma_cross", show_default=True,
                     help=f"One of: {', '.join(STRATEGY_NAMES)} (parameters and defaults: "
                          "`backtest strategies`)."),
        click.option("--param", "param", metavar="NAME=VALUE", multiple=True,
                     help="A strategy parameter, repeatable; unset ones take their "
                          "defaults. Sweep: NAME=START:STOP[:STEP] (stop exclusive) or "
                          "NAME=A,B,C."),
        click.option("--direction", type=click.Choice(["long", "short", "both"]),
                     default="long", show_default=True,
                     help="Trade the signal long only, short only, or both ways (spot: "
                          "long only)."),
        click.option("--cash", type=float, default=10_000.0, show_default=True,
                     help="Starting cash, quote currency (cm: the margin coin, e.g. BTC; "
                          "positions are whole contracts of contractSize USD)."),
        click.option("--fee", type=float, default=None,
                     help="Taker fee rate as a fraction, 0.0005 = 0.05% (default: the "
                          "market's base tier, um 0.0005)."),
        click.option("--maker-fee", type=float, default=None,
                     help="Maker fee rate as a fraction (default: the market's base tier)."),
        click.option("--liquidity", type=click.Choice(["taker", "maker"]), default="taker",
                     show_default=True, help="Which fee rate fills pay."),
        click.option("--slippage-bps", type=float, default=0.0, show_default=True,
                     help="Slippage per fill in basis points, against the trader."),
        click.option("--fill", type=click.Choice(["next_open", "close"]), default="next_open",
                     show_default=True,
                     help="Fill a signal at the next bar's open (no look-ahead) or at the "
                          "signal bar's close."),
        click.option("--funding/--no-funding", default=True, show_default=True,
                     help="Charge perpetual funding at each funding time (futures only)."),
        click.option("--leverage", type=float, default=1.0, show_default=True,
                     help="Notional per entry as a multiple of the committed equity, 1 to "
                          "125 (spot: 1)."),
        click.option("--size", type=float, default=1.0, show_default=True,
                     help="Fraction of equity per entry, in (0, 1]."),
        click.option("--mmr", type=float, default=None,
                     help="Maintenance margin rate: enables isolated-margin liquidation."),
        click.option("--sl-stop", default=None, metavar="FRACTION",
                     help="Stop-loss as a fraction of the entry fill price, in (0, 1): "
                          "0.02 exits a long 2% below its entry (a short 2% above). "
                          "Sweep: also START:STOP:STEP (stop exclusive) or A,B,C."),
        click.option("--tp-stop", default=None, metavar="FRACTION",
                     help="Take-profit as a fraction of the entry fill price, > 0 (sweep: "
                          "levels as for --sl-stop)."),
        click.option("--sl-trail", is_flag=True, default=False,
                     help="The stop-loss trails the best price seen since the entry."),
        click.option("--exchange-filters/--no-exchange-filters", default=True,
                     show_default=True,
                     help="Round entry quantities down to the symbol's LOT_SIZE step and "
                          "skip orders below its minimum quantity/notional (exchangeInfo "
                          "cached in the lake)."),
        click.option("--allow-gaps", is_flag=True, default=False,
                     help="Run even across stretches the lake never fetched (they refuse "
                          "by default); the result's notes and unknown_gaps say so."),
        click.option("--json", "json_path", type=click.Path(allow_dash=True),
                     metavar="FILE|-", default=None,
                     help="Write the results as JSON to this file (missing folders are "
                          "created); - writes them to standard output and the summary to "
                          "standard error."),
        click.option("--report", "report_path", type=click.Path(allow_dash=True),
                     metavar="FILE|-", default=None,
                     help="Write a self-contained HTML report to this file (a .json name "
                          "gets the JSON; missing folders are created); - writes the HTML "
                          "to standard output."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _settings(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "lake": kw["lake"], "market": kw["market"], "symbol": kw["symbol"],
        "interval": kw["interval"], "start": kw["start"], "end": kw["end"],
        "cash": kw["cash"], "direction": kw["direction"], "fee": kw["fee"],
        "maker_fee": kw["maker_fee"], "liquidity": kw["liquidity"],
        "slippage_bps": kw["slippage_bps"], "fill": kw["fill"], "funding": kw["funding"],
        "leverage": kw["leverage"], "size": kw["size"], "maintenance_margin_rate": kw["mmr"],
        "sl_stop": parse_stop(kw["sl_stop"], "sl_stop"),
        "tp_stop": parse_stop(kw["tp_stop"], "tp_stop"), "sl_trail": kw["sl_trail"],
        "exchange_filters": kw["exchange_filters"], "allow_gaps": kw["allow_gaps"],
    }


def _as_input_errors(fn: Callable) -> Callable:
    """ValueErrors from the library are bad input: make them InputError (exit 2)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(str(exc)) from exc

    return wrapper


def _echo(kw: dict[str, Any]) -> Callable[..., None]:
    """click.echo to stdout, or to stderr when an output file is ``-`` (stdout)."""
    return functools.partial(click.echo, err=to_stdout(kw["json_path"], kw["report_path"]))


def _write_outputs(result: Any, kw: dict[str, Any], **report_options: Any) -> None:
    """Write --json and --report (already checked by `check_outputs`)."""
    if kw["json_path"]:
        write_output(kw["json_path"], result.to_json(), "--json")
    if not kw["report_path"]:
        return
    from backtest.report import run_report_html, sweep_report_html, write_report
    from backtest.results import SweepResult

    if kw["report_path"] == STDOUT:
        html = (sweep_report_html(result, **report_options) if isinstance(result, SweepResult)
                else run_report_html(result))
        where = write_output(STDOUT, html, "--report")
    else:
        where = write_report(result, kw["report_path"], **report_options)
    click.echo(f"report: {where}", err=True)


def _notes(warnings: list[str], extra: list[str]) -> None:
    for note in [*warnings, *extra]:
        click.echo(f"note: {note}", err=True)


@click.group()
@click.version_option(package_name="kline-lake", prog_name="backtest")
def cli() -> None:
    """Backtest strategies over the kline lake (fees, slippage, funding).

    \b
    Example:
      backtest strategies
      backtest run --lake ./data --symbol BTCUSDT --interval 1h \\
          --start 2024-01-01 --end 2024-07-01 --param fast=10 --param slow=50
    """


SLIPPAGE_CHOICES = {"bps": "fixed", "book": "book_ticker"}


@cli.command("run")
@_common
@click.option("--input", "inputs", metavar="NAME", multiple=True,
              help="A strategy input in force at each bar's close, repeatable: "
                   "open_interest, ratios (top-trader/taker long-short), spread (book "
                   "ticker, bps); um/cm, read from the lake's metrics/book_ticker.")
@click.option("--slippage", "slippage_model", type=click.Choice(list(SLIPPAGE_CHOICES)),
              default="bps", show_default=True,
              help="bps: --slippage-bps on every fill; book: buys at the best ask and sells "
                   "at the best bid of the lake's book ticker in force at the fill time.")
@_as_input_errors
def run_cmd(**kw: Any) -> None:
    """Backtest one strategy with fixed parameters.

    Prints the strategy, the parameters used (defaults included), the range the bars
    cover and every metric; --json and --report write the full result.

    \b
    Example:
      backtest run --lake ./data --market um --symbol BTCUSDT --interval 1h \\
          --start 2024-01-01 --end 2024-07-01 --strategy sma_cross \\
          --param fast=10 --param slow=50 --fee 0.0005 --slippage-bps 1 \\
          --json out/run.json --report out/run.html
    """
    params = single_values(parse_params(kw["param"]))
    check_outputs(kw["json_path"], kw["report_path"])
    # the engine loads Numba and Polars: imported here, so --help and bad input stay cheap
    from backtest.console import run_lines, window_notes
    from backtest.engine import run

    result = run(kw["strategy"], params, inputs=list(kw["inputs"]),
                 slippage=SLIPPAGE_CHOICES[kw["slippage_model"]], **_settings(kw))
    echo = _echo(kw)
    for line in run_lines(result, given=list(params), requested=(kw["start"], kw["end"])):
        echo(line)
    _notes(result.warnings,
           window_notes(result.params, int(result.config["n_bars"]), result.strategy))
    _write_outputs(result, kw)


@cli.command("sweep")
@_common
@click.option("--sort", "sort_by", metavar="METRIC", default="sharpe", show_default=True,
              help="Metric the printed rows are sorted by, best first (ascending for "
                   f"{', '.join(sorted(LOWER_IS_BETTER))}): "
                   f"{', '.join(n for n in METRIC_NAMES if n not in ('ruined', 'ruin_idx'))}.")
@click.option("--top", type=int, default=10, show_default=True,
              help="How many of the best rows to print; 0 prints every row.")
@click.option("--memory-budget", metavar="SIZE", default=None,
              help="Memory the sweep may use, e.g. 8GB or 512MiB (default: "
                   "$BACKTEST_MEMORY_BUDGET, else 80% of the available memory). A grid "
                   "estimated above it runs in chunks; one whose results alone do not "
                   "fit is refused.")
@click.option("--dask", "dask_address", metavar="local:N|ADDRESS", default=None,
              help="Run the grid's chunks on Dask: local:N starts N worker processes, "
                   "tcp://HOST:8786 uses a running scheduler (its workers must see the "
                   "lake at the same path). Identical rows; prints the dashboard link.")
@_as_input_errors
def sweep_cmd(sort_by: str, top: int, memory_budget: str | None,
              dask_address: str | None = None, **kw: Any) -> None:
    """Backtest every combination of the --param ranges.

    Prints the best --top rows by --sort as a table; --json writes every row.
    Combinations the strategy rejects (e.g. fast >= slow) are skipped and counted.

    \b
    Example:
      backtest sweep --lake ./data --symbol BTCUSDT --interval 1h \\
          --start 2024-01-01 --end 2024-07-01 \\
          --param fast=5:50:5 --param slow=50:300:25 --sort sharpe --top 20 \\
          --json out/sweep.json --report out/sweep.html
    """
    if sort_by not in METRIC_NAMES:
        raise InputError(f"--sort must be a metric: {', '.join(METRIC_NAMES)}")
    if top < 0:
        raise InputError(f"--top must be >= 0 (0 prints every row), got {top}")
    check_outputs(kw["json_path"], kw["report_path"])
    from backtest.console import sweep_lines, sweep_window_notes
    from backtest.sweep import sweep

    result = sweep(kw["strategy"], parse_params(kw["param"]), memory_budget=memory_budget,
                   dask=dask_address, **_settings(kw))
    echo = _echo(kw)
    for line in sweep_lines(result, sort_by, top, requested=(kw["start"], kw["end"])):
        echo(line)
    _notes(result.warnings, sweep_window_notes(result))
    _write_outputs(result, kw, metric=sort_by)


@cli.command("strategies")
def strategies_cmd() -> None:
    """List every built-in strategy with its parameters, their defaults and its signal.

    \b
    Example:
      backtest strategies
    """
    from backtest.console import strategy_lines
    from backtest.strategies import INPUT_REGISTRY, REGISTRY

    for line in strategy_lines({**REGISTRY, **INPUT_REGISTRY}):
        click.echo(line)


cli.add_command(walk_forward_command(sweep_cmd, _settings))
cli.add_command(portfolio_cmd)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `backtest` console script."""
    run_cli(cli, "backtest", argv)
