"""Fetch tests: a private weight-ledger directory per test (see weight_ledger.SharedLedger),
inherited by the CLI subprocesses a test starts."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_weight_ledger(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))
