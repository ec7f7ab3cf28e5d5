"""The archive ingest benchmark's one-core part runs end to end and ingests every row.

A subprocess: the benchmark pins its own process to one CPU, which must not leak into
the test run. Timings are reported, never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_archive_ingest_benchmark_one_core_part(tmp_path: Path) -> None:
    out = tmp_path / "archive_ingest.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "archive_ingest.py"), "--quick",
         "--skip-download", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=280, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    per_file = {row["case"]: row for row in results["ingest_one_core"]}
    assert per_file["month of 1m klines"]["rows"] == 31 * 1440
    assert per_file["day of aggTrades (200,000)"]["rows"] == 200_000
    assert results["pipeline_one_core"]["rows"] == 365 * 1440
    for row in [*per_file.values(), results["pipeline_one_core"]]:
        assert row["rows_per_s"] > 0 and row["rows_per_cpu_s"] > 0
    assert "| year of 1m klines" in proc.stdout
