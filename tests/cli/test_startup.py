"""Start-up of the command lines stays cheap: help and rejected input load no heavy library.

``kline-lake --help`` lists every command (the `tour` plugin from `backtest` too), and
each command's help and its option choices (markets, datasets, intervals, sources,
strategies, metrics) come from light modules; the heavy ones (Numba, Polars, PyArrow,
DuckDB, Dask, the kernels) are imported inside the commands once their input is valid.
Each case runs the console entry point in a fresh interpreter and reads `sys.modules`
when it exits. The test suite itself calls the CLIs a hundred times in subprocesses.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kline_lake.cli import COMMANDS

HEAVY = ("numba", "polars", "pyarrow", "duckdb", "dask", "distributed", "vectorbt",
         "plotly", "pandas", "numpy", "httpx", "backtest.kernels")
# runs "module:function" with the arguments; its last stderr line reports what was loaded
SCRIPT = r"""
import importlib, json, sys
target, argv = sys.argv[1], sys.argv[2:]
module, _, attr = target.partition(":")
code = 0
try:
    getattr(importlib.import_module(module), attr)(argv)
except SystemExit as exc:
    code = exc.code or 0
finally:
    heavy = sorted(name for name in HEAVY if name in sys.modules)
    print("\n" + json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""
KLINE_LAKE = "kline_lake.cli:main"
BACKTEST = "backtest.cli:main"
RANGE = ["--symbol", "BTCUSDT", "--interval", "1h", "--start", "2024-01-01", "--end",
         "2024-02-01"]


def _run(target: str, argv: list[str]) -> tuple[int, list[str], str]:
    """(exit code, heavy modules loaded, stderr without the report line) of one call."""
    script = f"HEAVY = {HEAVY!r}\n{SCRIPT}"
    out = subprocess.run([sys.executable, "-c", script, target, *argv], capture_output=True,
                         text=True, timeout=120)
    err, _, report = out.stderr.rstrip("\n").rpartition("\n")
    doc = json.loads(report)
    return doc["code"], doc["heavy"], err.rstrip("\n")


HELP = [
    (KLINE_LAKE, ["--help"]),
    *[(KLINE_LAKE, [name, "--help"]) for name in [*COMMANDS, "tour"]],
    (BACKTEST, ["--help"]),
    *[(BACKTEST, [name, "--help"])
      for name in ("run", "sweep", "walk-forward", "portfolio", "strategies")],
]


@pytest.mark.parametrize(("target", "argv"), HELP, ids=[" ".join([t.split(".")[0], *a])
                                                        for t, a in HELP])
def test_help_loads_no_heavy_module(target, argv):
    code, heavy, _ = _run(target, argv)
    assert (code, heavy) == (0, [])


# bad input that needs no data: click's usage errors and our own one-line InputErrors
DOWNLOAD = ["download", "--market", "um", "--data", "klines", "--symbols", "BTCUSDT"]
BAD = [
    pytest.param(KLINE_LAKE, ["download", "--market", "nope", "--data", "klines"],
                 "Error: Invalid value for '--market': 'nope' is not one of 'spot', 'um', "
                 "'cm', 'us'.", id="download-market"),
    pytest.param(KLINE_LAKE, [*DOWNLOAD, "--start", "notadate"],
                 "kline-lake: error: cannot parse --start 'notadate': expected a UTC date or "
                 "datetime such as 2024-01-01 or 2024-01-01T12:30", id="download-start"),
    pytest.param(KLINE_LAKE, [*DOWNLOAD, "--interval", "7x", "--start", "2024-01-01"],
                 "kline-lake: error: unknown interval '7x'; expected one of 1s, 1m, 3m, 5m, "
                 "15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M", id="download-interval"),
    pytest.param(KLINE_LAKE, ["gaps", "--data", "nope"],
                 "Error: Invalid value for '--data': 'nope'", id="gaps-data"),
    pytest.param(KLINE_LAKE, ["follow", "--market", "um", "--symbols", "BTCUSDT",
                              "--duration", "x"],
                 "kline-lake: error: --duration must be a positive length like 6h, 30m, 45s "
                 "or 2d, got 'x'", id="follow-duration"),
    pytest.param(BACKTEST, ["run", *RANGE[:3], "7x", *RANGE[4:]],
                 "Error: Invalid value for '--interval': '7x' is not one of", id="run-interval"),
    pytest.param(BACKTEST, ["run", *RANGE, "--param", "fast"],
                 "backtest: error: --param 'fast' must look like name=value", id="run-param"),
    pytest.param(BACKTEST, ["sweep", *RANGE, "--sort", "nope"],
                 "backtest: error: --sort must be a metric: final_equity, total_return, cagr, "
                 "sharpe, ", id="sweep-sort"),
    pytest.param(BACKTEST, ["walk-forward", *RANGE, "--train", "10d", "--test", "5d",
                            "--param", "fast"],
                 "backtest: error: --param 'fast' must look like name=value",
                 id="walk-forward-param"),
    pytest.param(BACKTEST, ["portfolio", "--universe", "um:BTCUSDT", *RANGE[2:],
                            "--param", "x"],
                 "backtest: error: --param 'x' must look like name=value", id="portfolio-param"),
]


@pytest.mark.parametrize(("target", "argv", "message"), BAD)
def test_bad_input_is_one_line_without_heavy_modules(target, argv, message):
    code, heavy, err = _run(target, argv)
    assert (code, heavy) == (2, [])
    line = err.splitlines()[-1]  # click's usage errors come after the usage lines
    assert line.startswith(message)
    if not line.startswith("Error:"):  # our own errors are exactly one line
        assert err == line


def test_light_names_are_the_registries_names():
    """`backtest.names` (read by the CLI help) lists what the heavy registries hold."""
    from backtest.multi_asset.strategies import PORTFOLIO_STRATEGIES
    from backtest.names import METRIC_NAMES, PORTFOLIO_STRATEGY_NAMES, STRATEGY_NAMES
    from backtest.records import METRICS_DT
    from backtest.strategies import REGISTRY

    assert tuple(REGISTRY) == STRATEGY_NAMES
    assert tuple(PORTFOLIO_STRATEGIES) == PORTFOLIO_STRATEGY_NAMES
    assert METRICS_DT.names == METRIC_NAMES
