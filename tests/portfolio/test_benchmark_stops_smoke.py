"""benchmarks/portfolio_stops.py runs end to end on a small panel: equity equal to
vectorbt's with the same stops, exit counts equal, sweep rows equal to single runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_portfolio_stops_benchmark_smoke(tmp_path):
    out = tmp_path / "portfolio_stops.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "portfolio_stops.py"),
                           "--bars", "600", "--assets", "6", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["n_assets"] == 6 and report["n_bars"] == 600
    for case in report["cases"].values():
        assert case["max_rel_equity_diff"] <= 1e-9 and case["exits_equal"]
        assert case["ours"]["n_stop_exits"] > 0 and case["ours"]["cpu_s"] > 0
    sweep = report["sweep"]
    assert sweep["n_points"] == 60 and sweep["rows_equal"] and sweep["stop_exits"] > 0
    assert "rows equal: True" in proc.stdout
