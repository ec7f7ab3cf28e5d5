"""`run_cli`: the one place the command lines map outcomes to exit codes."""

from __future__ import annotations

import click
import pytest

from kline_lake.cli import run_cli
from kline_lake.errors import InputError, KlineLakeError


def _group(action) -> click.Group:
    @click.group()
    def group() -> None:
        """A test group."""

    @group.command()
    @click.option("--n", type=int, default=1)
    def go(n: int) -> None:
        action(n)

    return group


def _run(action, *args: str) -> int:
    with pytest.raises(SystemExit) as exc:
        run_cli(_group(action), "prog", ["go", *args])
    return exc.value.code


def _interrupt(_n: int) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_anywhere_is_one_line_and_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(_interrupt) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["prog: interrupted"]
    assert "Aborted!" not in err


def test_ctrl_c_inside_a_lazy_import_is_130_too(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # the window the issue left: Ctrl-C while `kline-lake download` imports its machinery
    import kline_lake.cli as cli_module

    def interrupted_import(name: str):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module.importlib, "import_module", interrupted_import)
    with pytest.raises(SystemExit) as exc:
        cli_module.main(["download", "--help"])
    assert exc.value.code == 130
    assert capsys.readouterr().err.strip() == "kline-lake: interrupted"


def test_errors_keep_their_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    def bad_input(_n: int) -> None:
        raise InputError("no such symbol 'XYZ'")

    def failure(_n: int) -> None:
        raise KlineLakeError("the archive is down")

    assert _run(bad_input) == 2
    assert capsys.readouterr().err.strip() == "prog: error: no such symbol 'XYZ'"
    assert _run(failure) == 1
    assert capsys.readouterr().err.strip() == "prog: error: the archive is down"
    assert _run(lambda n: None, "--n", "x") == 2  # click's usage error, its own message
    assert "Invalid value for '--n'" in capsys.readouterr().err


def test_success_help_and_explicit_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(lambda n: None) == 0
    assert _run(lambda n: None, "--help") == 0
    assert "--n INTEGER" in capsys.readouterr().out

    def exits(n: int) -> None:
        click.get_current_context().exit(n)

    assert _run(exits, "--n", "3") == 3
    assert _run(lambda n: True) == 0  # a return value is not an exit code


def test_an_explicit_abort_keeps_clicks_message(capsys: pytest.CaptureFixture[str]) -> None:
    def abort(_n: int) -> None:
        raise click.Abort

    assert _run(abort) == 1
    assert capsys.readouterr().err.strip() == "Aborted!"
