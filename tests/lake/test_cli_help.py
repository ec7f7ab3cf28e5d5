"""The catalog commands' help: typed options, each described, intervals listed, examples."""

from __future__ import annotations

import click
import pytest

from kline_lake.cli import cli, main
from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.core.series import SeriesKey
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

COMMANDS = ["inventory", "gaps", "verify", "query", "compact"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("name", COMMANDS)
def test_help_is_typed_described_and_has_an_example(name, capsys):
    code, out, _ = run([name, "--help"], capsys)
    assert code == 0
    assert "TEXT" not in out  # every value names its kind (DATE, DIRECTORY, FILE, ...)
    assert "Example" in out and f"kline-lake {name} " in out.split("Example", 1)[1]
    command = cli.get_command(click.Context(cli), name)
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help and len(param.help) > 10, f"{name} {param.opts} has no description"
    assert "--lake DIRECTORY" in out


def test_gaps_help_lists_intervals_and_types(capsys):
    _, out, _ = run(["gaps", "--help"], capsys)
    assert "[" + "|".join(ALL_INTERVALS) + "]" in out
    for shown in ("--start DATE", "--end DATE", "--symbols SYMBOL[,SYMBOL...]", "--out FILE",
                  "--market [spot|um|cm|us]"):
        assert shown in out
    _, out, _ = run(["verify", "--help"], capsys)
    assert "--archive-url URL" in out
    _, out, _ = run(["compact", "--help"], capsys)
    assert "--symbol SYMBOL " in out


def test_typed_options_refuse_bad_values(lake_root, capsys):
    LakeWriter(lake_root).commit(SeriesKey("um", "klines", "BTCUSDT", "1m"),
                                 synthetic_klines(JAN_2024_MS, 10))
    code, out, err = run(["gaps", "--lake", str(lake_root), "--start", "yesterday"], capsys)
    assert (code, out) == (2, "") and "cannot parse start 'yesterday'" in err
    code, _, err = run(["gaps", "--lake", str(lake_root), "--symbols", "BTC/USDT"], capsys)
    assert code == 2 and "invalid symbol 'BTC/USDT'" in err
    code, out, _ = run(["gaps", "--lake", str(lake_root), "--start", "2024-01-01T00:05",
                        "--end", "2024-01-01T00:20", "--format", "csv"], capsys)
    assert code == 0 and out.splitlines()[1].startswith(
        "um,BTCUSDT,1m,2024-01-01T00:10:00.000000+0000,2024-01-01T00:20:00.000000+0000,10,unknown")
    code, _, err = run(["compact", "--lake", str(lake_root), "--symbol", "ETHUSDT"], capsys)
    assert code == 2 and err == ("kline-lake: error: no data for ETHUSDT in the lake; "
                                 "it holds BTCUSDT\n")
    code, out, _ = run(["compact", "--lake", str(lake_root), "--symbol", "BTCUSDT"], capsys)
    assert code == 0 and "compacted 0 of 1 partition(s)" in out
