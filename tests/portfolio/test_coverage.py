"""The portfolio engine checks the lake's coverage per asset, as `backtest.run` does."""

from __future__ import annotations

from pathlib import Path

import pytest

import backtest
from kline_lake.errors import CoverageError
from tests.support.portfolio import T0_MS, write_asset

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def holed_lake(tmp_path_factory) -> Path:
    """um BTCUSDT for a week; um ETHUSDT for the same week but two days never fetched."""
    root = tmp_path_factory.mktemp("pf_cov")
    write_asset(root, "um", "BTCUSDT", 7 * 24, seed=2, funding_rate=1e-4)
    write_asset(root, "um", "ETHUSDT", 2 * 24, seed=3, funding_rate=1e-4)
    write_asset(root, "um", "ETHUSDT", 3 * 24, seed=4, funding_rate=1e-4,
                start_ms=T0_MS + 4 * 24 * HOUR_MS)
    return root


def _run(lake: Path, **kw):
    return backtest.portfolio("equal_weight", {}, lake=lake, universe="um:BTCUSDT,um:ETHUSDT",
                              interval="1h", start="2024-01-01", end="2024-01-08", **kw)


def test_a_never_fetched_hole_in_one_asset_refuses_the_portfolio(holed_lake) -> None:
    with pytest.raises(CoverageError) as exc:
        _run(holed_lake)
    message = str(exc.value)
    assert message.startswith("um:ETHUSDT: refusing to backtest um ETHUSDT 1h")
    assert "2024-01-03 .. 2024-01-05 (48 bars)" in message
    assert "kline-lake download --market um --data klines --symbols ETHUSDT" in message
    assert "\n" not in message


def test_allow_gaps_runs_and_says_so(holed_lake) -> None:
    result = _run(holed_lake, allow_gaps=True)
    assert result.config["allow_gaps"] is True
    assert result.config["unknown_gaps"] >= 1
    assert any(n.startswith("um:ETHUSDT:") for n in result.warnings)
    assert result.metrics["final_equity"] > 0


def test_cli_refuses_with_one_line_and_allow_gaps_runs(holed_lake, capsys) -> None:
    from backtest.cli import main

    args = ["portfolio", "--lake", str(holed_lake), "--universe", "um:BTCUSDT,um:ETHUSDT",
            "--interval", "1h", "--start", "2024-01-01", "--end", "2024-01-08"]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "um:ETHUSDT: refusing" in err[0]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--allow-gaps"])
    assert exc.value.code in (0, None)
    assert "um:ETHUSDT:" in capsys.readouterr().err
