"""`backtest sweep --dask`: a LocalCluster from the CLI, and bad addresses exit 2."""

from __future__ import annotations

import socket

import pytest

from backtest.cli import main
from tests.support.backtest import iso


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def _args(lake, *extra: str) -> list[str]:
    root, b = lake
    return ["sweep", "--lake", str(root), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", iso(b.open_time_us[0]), "--end", iso(b.open_time_us[-1] + 1),
            "--no-exchange-filters", "--param", "fast=3:30:3", "--param", "slow=20:80:10",
            *extra]


def test_dask_local_2_writes_the_same_rows_and_shows_the_dashboard(lake, tmp_path, capsys):
    plain, dist = tmp_path / "plain.json", tmp_path / "dask.json"
    assert _run(_args(lake, "--json", str(plain))) == 0
    plain_out = capsys.readouterr().out
    assert _run(_args(lake, "--json", str(dist), "--dask", "local:2")) == 0
    captured = capsys.readouterr()
    assert dist.read_text() == plain.read_text()
    assert captured.out == plain_out  # the same table
    assert "dask: 2 workers, " in captured.err and "dashboard http://" in captured.err
    assert "note: ran on Dask (local:2, 2 workers) in " in captured.err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("address", "message"), [
    ("local:0", "--dask local:N needs 1 <= N <= 256, got 'local:0'"),
    ("localhost:8786", "--dask must be local:N (N worker processes) or a scheduler address"),
    ("tcp://127.0.0.1:{port}", "cannot reach the Dask scheduler at tcp://127.0.0.1:"),
])
def test_bad_dask_address_is_one_line_and_exit_2(lake, capsys, address, message):
    address = address.format(port=_free_port())
    assert _run(_args(lake, "--dask", address)) == 2
    err = capsys.readouterr().err
    assert err.startswith("backtest: error: ") and message in err
    assert err.count("\n") == 1


def test_walk_forward_offers_dask(capsys):
    # issue 15: walk-forward takes --dask too (tests/distributed/test_dask_walkforward.py)
    assert _run(["walk-forward", "--help"]) == 0
    assert "--dask local:N|ADDRESS" in capsys.readouterr().out
