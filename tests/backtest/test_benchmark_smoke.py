"""The sweep benchmark runs end to end on a tiny input and finds identical metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_quick_smoke(tmp_path):
    out = tmp_path / "sweep.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sweep.py"), "--quick", "--bars", "4000",
         "--part", "plain", "--json", str(out)],
        capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["n_bars"] == 4000 and summary["n_combinations"] == 25
    assert summary["max_rel_diff"] <= 1e-9
    assert "| engine |" in proc.stdout
