"""benchmarks/portfolio.py runs end to end on a small panel and its equity checks pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_portfolio_benchmark_smoke(tmp_path):
    out = tmp_path / "portfolio.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "portfolio.py"), "--bars",
                           "800", "--assets", "8", "--out", str(out)], capture_output=True,
                          text=True, timeout=600, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["n_assets"] == 8 and report["n_bars"] == 800
    assert report["max_rel_equity_diff"] <= 1e-9
    assert report["ours"]["run_s"] > 0 and report["vectorbt"]["run_s"] > 0
    assert "speedup" in proc.stdout
    sweep = report["sweep"]
    assert sweep["n_combos"] == 20 and sweep["strategy"]["rows_equal"]
    assert sweep["given"]["rows_equal"] and sweep["given"]["sweep_s"] > 0
