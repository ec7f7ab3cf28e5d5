"""`kline-lake tour`: the offline five-minute tour (see backtest.tour); registered with `kline-lake`
through the `kline_lake.commands` entry point in pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("tour")
@click.option("--lake", default="./data/tour", show_default=True, help="Lake root for the tour.")
@click.option("--report", default="./reports/tour.html", show_default=True,
              help="HTML report to write (a .json with the same name is written too).")
def tour(lake: str, report: str) -> None:
    """Fake exchange -> download -> inventory -> backtest -> report, all offline."""
    from backtest.tour import run_tour

    report_path = Path(report)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    run_tour(Path(lake), report_path, say=click.echo)
