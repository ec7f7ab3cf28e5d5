"""The README's tour and examples, executed."""

import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx

from kline_lake.fake_exchange import FakeExchange

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CLI = [sys.executable, "-c", "from kline_lake.cli import main; main()"]


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_readme_keeps_the_two_setup_commands():
    main_cmd, test_cmd = bash_blocks()[:2]
    assert main_cmd.strip().endswith("kline-lake tour")
    assert "pip install" in main_cmd and "pip install" in test_cmd
    assert "pytest" in test_cmd
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd.strip() in ci, ".ci/run must run the README's test command"


def test_tour_runs_the_whole_pipeline_offline(tmp_path):
    lake, report = tmp_path / "lake", tmp_path / "out" / "tour.html"
    proc = subprocess.run([*CLI, "tour", "--lake", str(lake), "--report", str(report)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "download done" in out and "0 x 429" in out
    assert "kline-lake download --market um" in out  # the at-home command is shown
    html = report.read_text()
    assert "<script src=\"http" not in html and "Plotly" in html  # self-contained
    metrics = json.loads(report.with_suffix(".json").read_text())
    assert metrics["funding_paid"] != 0 and metrics["n_trades"] > 0
    # one month of hourly bars for two symbols, less the exchange's 2-hour maintenance gap
    rows = duckdb.sql(
        f"SELECT symbol, count(*) FROM read_parquet('{lake}/um/klines/**/*.parquet', "
        "hive_partitioning=true) GROUP BY symbol ORDER BY symbol"
    ).fetchall()
    assert rows == [("BTCUSDT", 31 * 24 - 2), ("ETHUSDT", 31 * 24 - 2)]


def test_tour_rejects_a_non_html_report(tmp_path):
    proc = subprocess.run([*CLI, "tour", "--lake", str(tmp_path / "l"), "--report",
                           str(tmp_path / "r.txt")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and ".html" in proc.stderr


def test_readme_curl_examples_answer():
    """The fake-exchange URLs the README shows curl-ing return what it says."""
    urls = re.findall(r"'http://127\.0\.0\.1:8080(/[^']+)'", README)
    assert urls, "README shows no fake-exchange URL"
    # a real one-minute weight window: the eight requests must fall in one window even
    # on a loaded machine (a 2 s fake minute let a slow run reset it mid-hammer)
    with FakeExchange(seed=1, minute_seconds=60, weight_limit=40) as fx, httpx.Client() as http:
        for path in urls:
            assert http.get(fx.base_url + path).status_code == 200, path
        hammer = [u for u in urls if "fapi" in u][0]
        codes = [http.get(fx.base_url + hammer).status_code for _ in range(8)]
    assert 429 in codes and 418 in codes
    assert codes.index(429) < codes.index(418)
