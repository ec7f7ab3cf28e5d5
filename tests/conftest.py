"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

# Real exchange files vendored into the repository (provenance in its README.md).
REAL_DATA = Path(__file__).resolve().parent / "data" / "real_data"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the vendored real exchange files (laid out as data.binance.vision)."""
    return REAL_DATA
