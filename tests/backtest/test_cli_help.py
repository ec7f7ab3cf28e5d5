"""`backtest` help (issue 12 item 14, backtest part): typed options, a description on
every option, the valid intervals listed, an example in each command's help, and
`backtest strategies` listing every strategy with its parameters and defaults."""

from __future__ import annotations

import re

import click
import pytest

from backtest.cli import cli, main
from backtest.strategies import REGISTRY
from kline_lake.core.intervals import ALL_INTERVALS

OURS = ("run", "sweep", "strategies")


def _help_text(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", OURS)
def test_every_option_has_a_description_and_a_type(command, capsys):
    cmd = cli.commands[command]
    for param in cmd.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert (param.help or "").strip(), f"{command} {param.opts[0]} has no help"
    text = _help_text(capsys, command)
    options = [line for line in text.splitlines() if line.lstrip().startswith("--")]
    assert not [line for line in options if " TEXT" in line], options  # nothing untyped
    if command != "strategies":
        assert re.search(r"--cash FLOAT", text) and re.search(r"--symbol SYMBOL", text)
        assert re.search(r"--start DATE\|TIME", text) and "--param NAME=VALUE" in text


@pytest.mark.parametrize("command", OURS)
def test_each_command_help_has_an_example(command, capsys):
    text = _help_text(capsys, command)
    example = text.split("Example:", 1)[1]
    assert f"backtest {command}" in example


def test_group_help_has_an_example_and_lists_strategies(capsys):
    text = _help_text(capsys)
    assert "Example:" in text and "strategies" in text and "--version" in text


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_valid_intervals_and_metrics_are_listed(command, capsys):
    text = _help_text(capsys, command)
    listed = re.search(r"--interval \[([^\]]+)\]", text).group(1).split("|")
    assert listed == list(ALL_INTERVALS)
    for name in REGISTRY:
        assert name in text
    if command == "sweep":
        flat = " ".join(text.split())
        for metric in ("sharpe", "max_drawdown", "max_drawdown_duration", "fees_paid"):
            assert metric in flat
        assert "0 prints every row" in flat


def test_strategies_lists_every_strategy_with_parameters_and_defaults(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["strategies"])
    assert exc.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["strategy", "parameters"]
    for name, strat in REGISTRY.items():
        row = next(line for line in lines if line.split()[0] == name)
        for param, default in strat.defaults.items():
            assert f"{param}={default}" in row
        first_words = " ".join(strat.func.__doc__.split()[:3])
        assert first_words in row  # the signal's description
    assert "(none)" in next(line for line in lines if line.startswith("hold"))
