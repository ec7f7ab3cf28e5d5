"""`kline-lake inventory|gaps|verify|query|compact` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from kline_lake.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.lake import layout
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

KEY = SeriesKey("um", "klines", "BTCUSDT", "1m")


@pytest.fixture
def lake(lake_root):
    table = synthetic_klines(JAN_2024_MS, 120)
    keep = [i for i in range(120) if not 30 <= i < 40]
    LakeWriter(lake_root).commit(KEY, table.take(keep),
                                 covered=[(JAN_2024_MS * 1000, (JAN_2024_MS + 120 * 60_000) * 1000)])
    return lake_root


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_query_formats(lake, tmp_path, capsys):
    sql = "SELECT symbol, count(*) AS n FROM klines GROUP BY symbol"
    code, out, _ = run(["query", sql, "--lake", str(lake)], capsys)
    assert code == 0 and "BTCUSDT" in out and "110" in out
    code, out, _ = run(["query", sql, "--lake", str(lake), "--format", "csv"], capsys)
    assert out.splitlines() == ["symbol,n", "BTCUSDT,110"]
    code, out, _ = run(["query", sql, "--lake", str(lake), "--format", "json"], capsys)
    assert json.loads(out) == [{"symbol": "BTCUSDT", "n": 110}]
    target = tmp_path / "out.parquet"
    code, _, _ = run(["query", "SELECT * FROM klines", "--lake", str(lake), "--format",
                      "parquet", "--out", str(target)], capsys)
    assert code == 0 and pl.read_parquet(target).height == 110


def test_query_errors_exit_2_with_one_line(lake, tmp_path, capsys):
    code, _, err = run(["query", "SELEKT 1", "--lake", str(lake)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "SQL error" in err
    code, _, err = run(["query", "SELECT 1", "--lake", str(tmp_path / "missing")], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = run(["query", "SELECT 1", "--lake", str(lake), "--format", "parquet"], capsys)
    assert code == 2 and "--out" in err


def test_inventory_and_gaps(lake, capsys):
    code, out, _ = run(["inventory", "--lake", str(lake), "--format", "json"], capsys)
    rows = json.loads(out)
    assert code == 0 and rows[0]["rows"] == 110 and rows[0]["files"] == 1
    code, out, _ = run(["gaps", "--lake", str(lake), "--format", "csv"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "market,symbol,interval,start,end,missing,status"
    assert lines[1].startswith("um,BTCUSDT,1m,2024-01-01T00:30:00") and lines[1].endswith(",10,confirmed")
    code, out, _ = run(["gaps", "--lake", str(lake), "--symbols", "BTCUSDT", "--interval", "1m",
                        "--format", "csv"], capsys)
    assert code == 0 and out.splitlines() == lines


def test_verify_exit_codes(lake, capsys):
    code, out, _ = run(["verify", "--lake", str(lake)], capsys)
    assert code == 0 and "0 error(s)" in out
    bad = layout.partition_dir(lake, KEY, 2024, 1) / "data.parquet"
    bad.write_bytes(b"not parquet")
    code, out, _ = run(["verify", "--lake", str(lake)], capsys)
    assert code == 1 and str(bad) in out and "unreadable" in out
    code, out, _ = run(["verify", "--lake", str(lake), "--json"], capsys)
    assert code == 1 and json.loads(out)["ok"] is False


def test_compact_command(lake, capsys):
    code, out, _ = run(["compact", "--lake", str(lake)], capsys)
    assert code == 0 and "compacted 0 of 1 partition(s)" in out
    code, out, _ = run(["compact", "--lake", str(lake), "--force"], capsys)
    assert code == 0 and "compacted 1 of 1" in out


def test_console_script_runs(lake):
    proc = subprocess.run([sys.executable, "-c", "from kline_lake.cli import main; main()",
                           "query", "SELECT count(*) AS n FROM klines", "--lake", str(lake),
                           "--format", "csv"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.splitlines() == ["n", "110"]


@pytest.mark.parametrize("sql, kind", [
    ("COPY (SELECT * FROM klines) TO '{tmp}/out.csv'", "COPY"),
    ("CREATE TABLE t AS SELECT * FROM klines", "CREATE"),
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH"),
    ("SELECT 1; COPY (SELECT 1) TO '{tmp}/out.csv'", "COPY"),
    ("EXPLAIN ANALYZE COPY (SELECT 1) TO '{tmp}/out.csv'", "COPY"),
    ("SET threads = 1", "SET"),
])
def test_query_is_read_only_unless_allowed(lake, tmp_path, capsys, sql, kind):
    sql = sql.format(tmp=tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(["query", sql, "--lake", str(lake)], capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith(f"kline-lake: error: refusing a {kind} statement")
    assert "--allow-writes" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing was written


def test_query_reads_and_writes_when_allowed(lake, tmp_path, capsys):
    for sql in ["WITH x AS (SELECT count(*) AS n FROM klines) SELECT n FROM x",
                "DESCRIBE klines", "SUMMARIZE SELECT close FROM klines",
                "EXPLAIN SELECT * FROM klines", "FROM klines SELECT max(close)"]:
        code, _, err = run(["query", sql, "--lake", str(lake)], capsys)
        assert (code, err) == (0, ""), sql
    target = tmp_path / "copied.csv"
    code, _, _ = run(["query", f"COPY (SELECT open_time FROM klines) TO '{target}'",
                      "--lake", str(lake), "--allow-writes"], capsys)
    assert code == 0 and len(target.read_text().splitlines()) == 111  # header + 110 rows
