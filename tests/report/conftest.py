"""Fixtures for the report tests: real backtests over synthetic bars (built once)."""

from __future__ import annotations

import pytest

from tests.support.report import make_run, make_sweep


@pytest.fixture(scope="session")
def run_result():
    return make_run()


@pytest.fixture(scope="session")
def sweep_result():
    return make_sweep()


@pytest.fixture(scope="session")
def run_report(run_result, tmp_path_factory):
    from backtest.report import write_run_report

    return write_run_report(run_result, tmp_path_factory.mktemp("run") / "run.html")


@pytest.fixture(scope="session")
def sweep_report(sweep_result, tmp_path_factory):
    from backtest.report import write_sweep_report

    return write_sweep_report(sweep_result, tmp_path_factory.mktemp("sweep") / "sweep.html")
