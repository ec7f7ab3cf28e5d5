"""The `kline-lake` command line: thin commands that parse, call and print.

May import every other subpackage; nothing imports it but `backtest.cli` (for `run_cli`).

Each subcommand lives in its own module below this package and is imported only when
invoked (a lazy group). `kline-lake --help` imports every command module for its short
help, so a command module imports only click and light modules (its option choices come
from `kline_lake.core`) and the heavy libraries (Polars, PyArrow, Numba, DuckDB) inside
the command, once its input is valid: help and bad input cost no more than ~0.2 s
(tests/cli/test_startup.py). Errors are mapped to exit codes here, once: bad input -> one
line on stderr, exit 2; other known failures -> exit 1.

Other installed packages may add commands through the `kline_lake.commands` entry-point
group (`name = "module:attribute"`): that is how `kline-lake tour`, which drives the
backtester too, is provided by `backtest` without `kline_lake` ever importing it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys

import click

from kline_lake.errors import InputError, KlineLakeError

# name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "fake-exchange": "kline_lake.cli.fake_exchange_cmd:fake_exchange",
    "download": "kline_lake.cli.download_cmd:download",
    "inventory": "kline_lake.cli.catalog_cmd:inventory",
    "gaps": "kline_lake.cli.catalog_cmd:gaps",
    "verify": "kline_lake.cli.catalog_cmd:verify",
    "query": "kline_lake.cli.catalog_cmd:query",
    "compact": "kline_lake.cli.catalog_cmd:compact",
    "bars": "kline_lake.cli.bars_cmd:bars",
    "follow": "kline_lake.cli.follow_cmd:follow",
    "sync": "kline_lake.cli.sync_cmd:sync",
}
PLUGIN_GROUP = "kline_lake.commands"


def plugin_commands() -> dict[str, str]:
    """name -> "module:attribute" of commands other installed packages register."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP)}


class LazyGroup(click.Group):
    """A click group whose commands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available(ctx)})

    def _available(self, ctx: click.Context) -> list[str]:
        names = []
        for name, target in self._lazy.items():
            if importlib.util.find_spec(target.split(":")[0]) is not None:
                names.append(name)
        return names

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            if importlib.util.find_spec(module_name) is None:
                return None
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy={**plugin_commands(), **COMMANDS})
@click.version_option(package_name="kline-lake")
def cli() -> None:
    """Binance market data (klines, aggregate trades, funding) into a Parquet lake."""


def run_cli(group: click.Group, prog_name: str, argv: list[str] | None = None) -> None:
    """Run a click group, turning this package's errors into one line and an exit code.

    click's own handling is kept (usage errors: its message, exit 2; ``--help``: 0) except
    for Ctrl-C: wherever it lands (a command's imports, option parsing, a command without
    its own handler), the run ends with one line and exit 130, as a download interrupted
    mid-run does, not click's "Aborted!" and 1.
    """
    try:
        code = group.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo(f"{prog_name}: interrupted", err=True)
            sys.exit(130)
        click.echo("Aborted!", err=True)  # an EOF at a prompt, or an explicit abort
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except InputError as exc:
        click.echo(f"{prog_name}: error: {exc}", err=True)
        sys.exit(2)
    except KlineLakeError as exc:
        click.echo(f"{prog_name}: error: {exc}", err=True)
        sys.exit(1)
    except BrokenPipeError:  # `kline-lake query ... | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    # a command's return value is not an exit code; an explicit ctx.exit(n) is
    sys.exit(code if type(code) is int else 0)


def main(argv: list[str] | None = None) -> None:
    run_cli(cli, "kline-lake", argv)
