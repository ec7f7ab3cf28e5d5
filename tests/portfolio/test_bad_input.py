"""Bad input: one clear line and exit 2 from `backtest portfolio`; InputError from Python."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.multi_asset.panel import AssetInfo, panel_from_arrays
from kline_lake.errors import InputError
from kline_lake.lake.writer import LakeWriter
from tests.support.portfolio import write_asset


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pf_bad")
    write_asset(root, "spot", "BTCUSDT", 200, seed=1)
    write_asset(root, "um", "BTCUSDT", 200, seed=2, funding_rate=1e-4)
    write_asset(root, "um", "ETHUSDT", 200, seed=3, funding_rate=1e-4)
    LakeWriter(root).save_exchange_info("um", {"symbols": [
        {"symbol": "BTCUSDT", "status": "TRADING"}, {"symbol": "ETHUSDT", "status": "TRADING"},
        {"symbol": "XRPUSDT", "status": "TRADING"}]})
    return root


def _main(lake: Path, *args: str, capsys) -> tuple[int, str]:
    from backtest.cli import main

    base = ["portfolio", "--lake", str(lake), "--interval", "1h", "--start", "2024-01-01",
            "--end", "2024-01-08"]
    with pytest.raises(SystemExit) as exc:
        main([*base, *args])
    return int(exc.value.code), capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (("--universe", "xx:BTCUSDT"), "unknown market"),
    (("--universe", "BTCUSDT"), "expected market:SYMBOL"),
    (("--universe", "um:DOGEUSDT"), "unknown symbol um:DOGEUSDT"),
    # a symbol the lake never fetched: refused like any unknown hole, with the download
    (("--universe", "um:XRPUSDT"), "um:XRPUSDT: refusing to backtest um XRPUSDT 1h"),
    (("--universe", "spot:ETHUSDT"), "spot:ETHUSDT: refusing to backtest spot ETHUSDT 1h"),
    (("--universe", "um:BTCUSDT,um:ETHUSDT", "--strategy", "equal_weight", "--param",
      "exposure=3"), "leverage exceeded"),
    (("--universe", "spot:BTCUSDT,um:BTCUSDT", "--strategy", "momentum_rank", "--param",
      "lookback=0"), "lookback must be a positive integer"),
    (("--universe", "um:BTCUSDT", "--strategy", "nope"), "unknown portfolio strategy"),
    (("--universe", "um:BTCUSDT", "--param", "bogus=1"), "unknown parameter"),
    (("--universe", "um:BTCUSDT", "--rebalance", "8x"), "--rebalance"),
    (("--universe", "um:BTCUSDT", "--leverage", "0.5"), "leverage must be in"),
    (("--universe", "cm:ALL"), "holds no cm 1h klines"),
])
def test_cli_bad_input_is_one_line_exit_2(small_lake, capsys, args, message):
    code, err = _main(small_lake, *args, capsys=capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backtest: error: ")
    assert message in lines[0]


def test_cli_runs_and_writes_json(small_lake, tmp_path, capsys):
    from backtest.cli import main

    out = tmp_path / "p.json"
    main_args = ["portfolio", "--lake", str(small_lake), "--interval", "1h", "--start",
                 "2024-01-01", "--end", "2024-01-08", "--universe", "spot:BTCUSDT,um:ALL",
                 "--strategy", "momentum_rank", "--param", "lookback=6", "--rebalance", "8h",
                 "--leverage", "2", "--json", str(out), "--report",
                 str(tmp_path / "p.html")]
    with pytest.raises(SystemExit) as exc:
        main(main_args)
    assert exc.value.code in (0, None)
    data = json.loads(out.read_text())
    for key in ("final_equity", "total_return", "sharpe", "max_drawdown", "fees_paid",
                "funding_paid", "turnover"):
        assert key in data
    assert set(data["assets"]) == {"spot:BTCUSDT", "um:BTCUSDT", "um:ETHUSDT"}
    assert {"pnl", "fees_paid", "funding_paid", "turnover"} <= set(data["assets"]["um:BTCUSDT"])
    np.testing.assert_allclose(sum(a["pnl"] for a in data["assets"].values()),
                               data["final_equity"] - 10_000.0, rtol=1e-9)
    captured = capsys.readouterr()
    assert "final_equity" in captured.out and "report:" in captured.err
    assert 'id="fig-weights"' in (tmp_path / "p.html").read_text()


def _panel(markets=("um", "um"), n=20, info=None):
    t = (1_704_067_200_000 + np.arange(n, dtype=np.int64) * 3_600_000) * 1000
    px = np.full((n, len(markets)), 100.0)
    assets = [f"{m}:S{k}USD{'_PERP' if m == 'cm' else 'T'}" for k, m in enumerate(markets)]
    return panel_from_arrays(assets, "1h", t, px, px, info=info)


@pytest.mark.parametrize(("weights", "message"), [
    (np.zeros((19, 2)), r"shape \(19, 2\); expected bars x assets \(20, 2\)"),
    (np.zeros((20, 3)), "expected bars x assets"),
    (np.full((20, 2), np.inf), "finite"),
    ([["a", "b"]] * 20, "not numeric"),
    (np.full((20, 2), 0.6), "leverage exceeded: gross weight 1.2 > 1"),
])
def test_bad_weights(weights, message):
    with pytest.raises(InputError, match=message):
        backtest.portfolio(lambda p: weights, panel=_panel())


def test_spot_short_is_refused():
    w = np.tile([-0.5, 0.5], (20, 1))
    with pytest.raises(InputError, match="spot asset spot:S0USDT has a negative weight"):
        backtest.portfolio(lambda p: w, panel=_panel(("spot", "um")))


def test_mixed_cm_margin_coins_are_refused():
    info = (AssetInfo(contract_size=100, margin_asset="BTC"),
            AssetInfo(contract_size=10, margin_asset="ETH"))
    with pytest.raises(InputError, match="mixed cm margin coins BTC, ETH"):
        backtest.portfolio("equal_weight", panel=_panel(("cm", "cm"), info=info))


def test_cm_with_linear_is_refused():
    info = (AssetInfo(contract_size=100, margin_asset="BTC"), AssetInfo())
    with pytest.raises(InputError, match="cannot share an account"):
        backtest.portfolio("equal_weight", panel=_panel(("cm", "um"), info=info))


def test_cli_param_range_sweeps(small_lake, capsys):
    from backtest.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["portfolio", "--lake", str(small_lake), "--interval", "1h", "--start",
              "2024-01-01", "--end", "2024-01-08", "--universe", "um:ALL", "--strategy",
              "momentum_rank", "--param", "lookback=4:13:4", "--rebalance", "8h"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.startswith("3 combinations, by sharpe:")
    assert len(out.strip().splitlines()) == 5


def test_cli_outputs_checked_first_and_dash_is_stdout(small_lake, tmp_path, capsys) -> None:
    """--json into a folder is refused before any work; --json - is clean JSON on stdout."""
    from backtest.cli import main

    args = ["portfolio", "--lake", str(small_lake), "--universe", "um:BTCUSDT,um:ETHUSDT",
            "--interval", "1h", "--start", "2024-01-01", "--end", "2024-01-08"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--json", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "is a directory" in err[0]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--json", "-"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert json.loads(out)["final_equity"] > 0  # metrics at the top level, by name
