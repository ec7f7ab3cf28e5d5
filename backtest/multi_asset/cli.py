"""``backtest portfolio``: a portfolio backtest from the command line.

    backtest portfolio --universe um:BTCUSDT,um:ETHUSDT,spot:BTCUSDT --interval 1h \\
        --start 2024-01-01 --end 2024-03-01 --strategy momentum_rank --param k=1 \\
        --rebalance 8h --leverage 2 --json out.json
    backtest portfolio ... --sl-stop 0.01:0.05:0.01 --tp-stop 0.1 --sl-trail  # swept stops

Bad input (unknown market, symbol or strategy, a symbol the lake lacks, weights over the
leverage, a spot short, mixed cm margin coins...) prints one line and exits 2.
"""

from __future__ import annotations

from typing import Any

import click

from backtest.names import PORTFOLIO_STRATEGY_NAMES
from backtest.params import parse_params, parse_stop, single_values
from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.errors import InputError

SHOWN = ("final_equity", "total_return", "cagr", "sharpe", "sortino", "max_drawdown",
         "n_orders", "turnover", "fees_paid", "funding_paid")


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@click.command("portfolio")
@click.option("--lake", default="./data", show_default=True, type=click.Path(file_okay=False),
              help="Lake root directory.")
@click.option("--universe", required=True,
              help="Comma-separated market:SYMBOL entries; market:ALL = every symbol of "
                   "that market the lake holds for the interval.")
@click.option("--interval", type=click.Choice(list(ALL_INTERVALS)), required=True,
              help="Bar interval of the panel (resampled exactly from a finer one the lake "
                   "holds when needed).")
@click.option("--start", required=True, help="UTC date/ISO time, inclusive.")
@click.option("--end", required=True, help="UTC date/ISO time, exclusive.")
@click.option("--strategy", default="equal_weight", show_default=True,
              help=f"One of: {', '.join(PORTFOLIO_STRATEGY_NAMES)}.")
@click.option("--param", "param", multiple=True, metavar="NAME=VALUE",
              help="Strategy parameter (`backtest strategies` lists them); a range a:b:s or "
                   "a list a,b,c sweeps the grid on one panel.")
@click.option("--rebalance", default=None, help="Rebalance grid, e.g. 8h or 1d (default: "
                                                "every bar).")
@click.option("--threshold", type=float, default=0.0, show_default=True,
              help="Skip an asset whose weight drift is smaller.")
@click.option("--cash", type=float, default=10_000.0, show_default=True,
              help="Initial cash (in coin for a cm universe).")
@click.option("--fee", type=float, default=None,
              help="Fee rate on traded notional (default: each market's base taker tier).")
@click.option("--slippage-bps", type=float, default=0.0, show_default=True,
              help="Slippage against the trader, in basis points of the fill price.")
@click.option("--fill", type=click.Choice(["next_open", "close"]), default="next_open",
              show_default=True,
              help="Weights computed at a bar's close fill at the next open, or at that close.")
@click.option("--funding/--no-funding", default=True, show_default=True,
              help="Charge perpetual funding at each settlement a position is open.")
@click.option("--allow-gaps", is_flag=True,
              help="Run even where the lake never fetched an asset's klines or funding "
                   "(the result says so); by default such holes refuse to run.")
@click.option("--leverage", type=float, default=1.0, show_default=True,
              help="Maximum gross exposure as a multiple of equity.")
@click.option("--sl-stop", default=None, metavar="FRACTION",
              help="Stop-loss per asset position, a fraction of its entry fill price in "
                   "(0, 1); a stopped asset stays flat until the next rebalance. Sweep: "
                   "also START:STOP:STEP (stop exclusive) or A,B,C.")
@click.option("--tp-stop", default=None, metavar="FRACTION",
              help="Take-profit per asset position, a fraction of its entry fill price, "
                   "> 0 (sweep: levels as for --sl-stop).")
@click.option("--sl-trail", is_flag=True, default=False,
              help="The stop-loss trails the best price seen since the position's entry.")
@click.option("--dask", "dask_address", metavar="local:N|ADDRESS", default=None,
              help="Run a sweep's combinations on Dask: local:N starts N worker processes, "
                   "tcp://HOST:8786 uses a running scheduler (its workers must see the lake "
                   "at the same path). Identical rows; a single run stays local.")
@click.option("--json", "json_path", type=click.Path(allow_dash=True), default=None,
              help="Write the result as JSON here (- for standard output).")
@click.option("--report", "report_path", type=click.Path(allow_dash=True),
              default=None, help="Write a self-contained HTML report here (- for standard output).")
def portfolio_cmd(**kw: Any) -> None:
    """Backtest a portfolio strategy over a universe in one account.

    \b
    Example:
      backtest portfolio --universe um:BTCUSDT,um:ETHUSDT,spot:BTCUSDT --interval 1h \\
          --start 2024-01-01 --end 2024-03-01 --strategy momentum_rank --param k=1 \\
          --rebalance 8h --leverage 2 --json out.json --report out.html
    """
    from backtest.outputs import check_outputs, to_stdout, write_output

    check_outputs(kw["json_path"], kw["report_path"])
    say = (lambda text: click.echo(text, err=True)) \
        if to_stdout(kw["json_path"], kw["report_path"]) else click.echo
    grid = parse_params(kw["param"])
    stops = {name: parse_stop(kw[name], name) for name in ("sl_stop", "tp_stop")}
    if kw["dask_address"] is not None:
        from backtest.distributed import parse_address

        parse_address(kw["dask_address"])
    # the engine loads Numba and Polars: imported here, so --help and bad input stay cheap
    from backtest.multi_asset.engine import portfolio

    kw.update(stops)
    if any(len(v) > 1 for v in grid.values()) or any(isinstance(v, list)
                                                     for v in stops.values()):
        _sweep(grid, kw, say)
        return
    if kw["dask_address"] is not None:
        click.echo("note: --dask applies to sweeps (--param with several values); this "
                   "single run ran locally", err=True)
    try:
        params = single_values(grid)
        result = portfolio(kw["strategy"], params, lake=kw["lake"], universe=kw["universe"],
                           interval=kw["interval"], start=kw["start"], end=kw["end"],
                           cash=kw["cash"], fee=kw["fee"], slippage_bps=kw["slippage_bps"],
                           funding=kw["funding"], leverage=kw["leverage"], fill=kw["fill"],
                           rebalance=kw["rebalance"], threshold=kw["threshold"],
                           allow_gaps=kw["allow_gaps"], sl_stop=kw["sl_stop"],
                           tp_stop=kw["tp_stop"], sl_trail=kw["sl_trail"])
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    for name in SHOWN:
        say(f"{name:>14}: {_fmt(result.metrics[name])}")
    if kw["sl_stop"] is not None or kw["tp_stop"] is not None:
        for name in ("n_sl_exits", "n_tp_exits", "n_trail_exits"):
            say(f"{name:>14}: {result.metrics[name]}")
    for name, stats in result.assets.items():
        say(f"{name:>18}  pnl {_fmt(stats['pnl'])}  fees {_fmt(stats['fees_paid'])}  "
            f"funding {_fmt(stats['funding_paid'])}")
    for note in result.warnings:
        click.echo(f"note: {note}", err=True)
    if kw["json_path"]:
        where = write_output(kw["json_path"], result.to_json(), "--json")
        click.echo(f"json: {where}", err=True)
    if kw["report_path"]:
        from backtest.multi_asset.report import portfolio_report_html, write_portfolio_report

        if kw["report_path"] == "-":
            write_output("-", portfolio_report_html(result), "--report")
        else:
            click.echo(f"report: {write_portfolio_report(result, kw['report_path'])}", err=True)


def _sweep(grid: dict, kw: dict[str, Any], say) -> None:
    """`--param` with several values: every combination on one loaded panel, in one
    batched kernel call (on Dask workers with --dask)."""
    import polars as pl

    from backtest.multi_asset.sweep import portfolio_sweep

    try:
        frame = portfolio_sweep(kw["strategy"], grid, lake=kw["lake"], universe=kw["universe"],
                                interval=kw["interval"], start=kw["start"], end=kw["end"],
                                cash=kw["cash"], fee=kw["fee"],
                                slippage_bps=kw["slippage_bps"], funding=kw["funding"],
                                leverage=kw["leverage"], fill=kw["fill"],
                                rebalance=kw["rebalance"], threshold=kw["threshold"],
                                allow_gaps=kw["allow_gaps"], dask=kw["dask_address"],
                                sl_stop=kw["sl_stop"], tp_stop=kw["tp_stop"],
                                sl_trail=kw["sl_trail"])
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    swept = [name for name, value in kw.items() if name in ("sl_stop", "tp_stop")
             and isinstance(value, list)]
    cols = [*grid, *swept, "final_equity", "total_return", "sharpe", "max_drawdown",
            "turnover"]
    say(f"{frame.height} combinations, by sharpe:")
    say("  ".join(cols))
    shown = frame.sort(pl.col("sharpe").fill_nan(None), descending=True, nulls_last=True)
    for row in shown.select(cols).iter_rows():
        say("  ".join(_fmt(v) for v in row))
    if kw["json_path"]:
        from backtest.outputs import write_output

        write_output(kw["json_path"], frame.write_json(), "--json")
