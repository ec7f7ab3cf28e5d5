"""``backtest walk-forward``: the command line of `backtest.walkforward.walk_forward`.

    backtest walk-forward --lake ./data --symbol BTCUSDT --interval 1h \\
        --start 2022-01-01 --end 2025-01-01 --param fast=5:50:5 --param slow=50:300:25 \\
        --train 180d --test 30d [--anchored] [--objective sharpe|total_return|calmar] \\
        [--json wf.json] [--report wf.html]

The command takes every data and cost option of ``backtest sweep`` (copied from that
command when it is registered, so the two never drift apart) plus its own. It is built
by `walk_forward_command` from the sweep command and the CLI's option -> keyword
mapping, so this module does not import `backtest.cli` (which registers it). Bad input
(windows longer than the range, fewer than two folds, an unknown objective, a duration
that does not parse, a stop level outside its range, a bad --dask address) is an
InputError: one line, exit 2. ``--sl-stop``/``--tp-stop`` given as levels
(``0.01:0.05:0.01`` or ``0.01,0.02``) are chosen per fold like parameters; ``--dask``
runs the sweeps on a Dask cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from backtest.params import parse_params
from kline_lake.errors import InputError

SWEEP_ONLY = frozenset({"sort_by", "top", "memory_budget", "dask_address"})  # not here
FOLD_METRICS = ("total_return", "sharpe", "max_drawdown", "n_trades")
STOP_EXITS = ("n_sl_exits", "n_tp_exits", "n_trail_exits")
OVERALL_METRICS = ("final_equity", "total_return", "cagr", "sharpe", "max_drawdown",
                   "n_trades", *STOP_EXITS, "fees_paid", "in_sample_sharpe", "sharpe_gap")

OWN_OPTIONS = [
    click.Option(["--train"], required=True, help="Training window, e.g. 180d, 12h, 2w."),
    click.Option(["--test"], required=True, help="Test window, e.g. 30d."),
    click.Option(["--anchored"], is_flag=True, default=False,
                 help="Every training window starts at --start (expanding)."),
    click.Option(["--objective"], default="sharpe", show_default=True,
                 help="What a training window maximises: sharpe, total_return or calmar."),
    click.Option(["--pbo-blocks", "pbo_blocks"], type=int, default=16, show_default=True,
                 help="Blocks (even) of the CSCV split behind the PBO."),
    click.Option(["--dask", "wf_dask"], metavar="local:N|ADDRESS", default=None,
                 help="Run the training sweeps and the full-sample runs on Dask: local:N "
                      "starts N worker processes, tcp://HOST:8786 uses a running "
                      "scheduler (its workers must see the lake at the same path). "
                      "Identical results; prints the dashboard link."),
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _has_stops(result: Any) -> bool:
    cfg = result.config
    return cfg.get("sl_stop") is not None or cfg.get("tp_stop") is not None


def echo_summary(result: Any, err: bool = False) -> None:
    """Per-fold lines, then the stitched out-of-sample metrics, the DSR and the PBO (on
    stderr when `err`: an output goes to standard output)."""
    def say(text: str) -> None:
        click.echo(text, err=err)

    fold_metrics = FOLD_METRICS + (STOP_EXITS if _has_stops(result) else ())
    say(f"{len(result.folds)} folds, objective {result.objective}:")
    say("  ".join(["fold", "train", "test", "params", "is_sharpe",
                   *(f"oos_{m}" for m in fold_metrics)]))
    for k, fold in enumerate(result.folds):
        params = ",".join(f"{n}={v}" for n, v in fold.params.items())
        oos = fold.out_of_sample or {}
        say("  ".join([str(k), f"{fold.train[0]}/{fold.train[1]}",
                       f"{fold.test[0]}/{fold.test[1]}", params,
                       _fmt(fold.in_sample.get("sharpe")),
                       *(_fmt(oos.get(m)) for m in fold_metrics)]))
    say("out of sample (stitched):")
    for name in OVERALL_METRICS:
        say(f"{name:>17}: {_fmt(result.out_of_sample.get(name))}")
    dsr = result.deflated_sharpe
    say(f"  deflated sharpe: {_fmt(dsr['dsr'])} (best of {dsr['n_trials']} over the "
               f"full sample: {dsr['params']})")
    pbo = result.pbo
    say(f"              pbo: {_fmt(pbo['pbo']) if pbo else '-'}")
    for note in result.warnings:
        click.echo(f"note: {note}", err=True)


def walk_forward_command(base: click.Command,
                         settings_of: Callable[[dict[str, Any]], dict[str, Any]]
                         ) -> click.Command:
    """The ``walk-forward`` command: `base`'s options (``backtest sweep``'s) without the
    sweep-only ones, plus the walk-forward options; `settings_of` maps the parsed options
    to `walk_forward` keywords, as it does for run and sweep."""
    shared = [p for p in base.params if p.name not in SWEEP_ONLY]

    def callback(train: str, test: str, anchored: bool, objective: str, pbo_blocks: int,
                 wf_dask: str | None, **kw: Any) -> None:
        from backtest.outputs import check_outputs, to_stdout, write_output

        check_outputs(kw.get("json_path"), kw.get("report_path"))
        grid = parse_params(kw["param"])
        # the walk-forward loads Numba and Polars: imported here, so --help stays cheap
        from backtest.walkforward import walk_forward

        try:
            result = walk_forward(kw["strategy"], grid, train=train,
                                  test=test, anchored=anchored, objective=objective,
                                  n_blocks=pbo_blocks, dask=wf_dask, **settings_of(kw))
        except InputError:
            raise
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        echo_summary(result, err=to_stdout(kw.get("json_path"), kw.get("report_path")))
        if kw.get("json_path"):
            where = write_output(kw["json_path"], result.to_json(), "--json")
            click.echo(f"json: {where}", err=True)
        if kw.get("report_path"):
            from backtest.report.walkforward import (
                walk_forward_report_html,
                write_walk_forward_report,
            )

            if kw["report_path"] == "-":
                write_output("-", walk_forward_report_html(result), "--report")
            else:
                click.echo(f"report: {write_walk_forward_report(result, kw['report_path'])}",
                           err=True)

    return click.Command(
        "walk-forward", callback=callback, params=[*shared, *OWN_OPTIONS],
        help="Walk-forward optimisation: sweep --param on each training window, trade the "
             "best on the next test window, stitch the test windows; with the Deflated "
             "Sharpe Ratio and the PBO of the full-sample sweep.\n\n\b\nExample:\n"
             "  backtest walk-forward --lake ./data --symbol BTCUSDT --interval 1h \\\n"
             "      --start 2022-01-01 --end 2025-01-01 --param fast=5:50:5 \\\n"
             "      --param slow=50:300:25 --train 180d --test 30d --json wf.json")
