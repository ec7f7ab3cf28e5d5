"""The walk-forward benchmark runs end to end on its quick input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_walk_forward_benchmark_quick_smoke(tmp_path):
    out = tmp_path / "wf.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "walk_forward.py"), "--quick", "--json",
         str(out)], capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["n_bars"] == 8760 and summary["n_combinations"] == 25
    assert summary["n_stop_levels"] == 5 and summary["n_points"] == 125
    assert summary["n_folds"] == 9  # (365 - 90) // 30
    assert summary["walk_forward_s"] > 0 and 0.0 <= summary["pbo"] <= 1.0
    assert "| bars | combinations |" in proc.stdout
