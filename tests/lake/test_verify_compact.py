"""verify names corrupted, duplicated and mis-partitioned files; compact preserves rows."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake import Lake
from kline_lake.core.schemas import conform
from kline_lake.core.series import SeriesKey
from kline_lake.lake import layout
from kline_lake.lake.synthetic import synthetic_agg_trades, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

KEY = SeriesKey("um", "klines", "BTCUSDT", "1m")
DAY_MS = 86_400_000


@pytest.fixture
def good(lake_root):
    w = LakeWriter(lake_root)
    w.commit(KEY, synthetic_klines(JAN_2024_MS - DAY_MS, 3 * 1440),
             covered=[((JAN_2024_MS - DAY_MS) * 1000, (JAN_2024_MS + 2 * DAY_MS) * 1000)])
    w.commit(SeriesKey("um", "agg_trades", "BTCUSDT"), synthetic_agg_trades(JAN_2024_MS, 1000),
             covered=[(JAN_2024_MS * 1000, (JAN_2024_MS + DAY_MS) * 1000)])
    return lake_root


def _jan(root):
    return layout.partition_dir(root, KEY, 2024, 1) / "data.parquet"


def _kinds(report):
    return {(p.kind, p.severity) for p in report.problems}


def test_clean_lake_verifies(good):
    report = Lake(good).verify()
    assert report.ok and report.problems == []
    assert report.files_checked == 3 and report.rows_checked == 3 * 1440 + 1000


def test_corrupted_file_is_named(good):
    _jan(good).write_bytes(_jan(good).read_bytes()[:200])  # truncated
    report = Lake(good).verify()
    assert not report.ok
    assert [(p.kind, p.path) for p in report.errors] == [("unreadable", str(_jan(good)))]


def test_duplicated_and_unsorted_rows(good):
    table = pq.read_table(_jan(good))
    pq.write_table(pa.concat_tables([table, table.slice(0, 3)]), _jan(good))
    report = Lake(good).verify()
    assert _kinds(report) == {("duplicate-keys", "error"), ("unsorted", "error")}
    assert all(p.path == str(_jan(good)) for p in report.errors)


def test_duplicate_across_files_and_compact_fixes_it(good):
    pdir = _jan(good).parent
    original = pq.read_table(_jan(good))
    pq.write_table(original.slice(100, 50), pdir / "extra.parquet")
    report = Lake(good).verify()
    assert ("duplicate-keys", "error") in _kinds(report)
    assert ("extra-file", "warning") in _kinds(report)
    # reads restore unique sorted keys even before compaction
    read = Lake(good).klines("um", "BTCUSDT", "1m", "2024-01-01", "2024-02-01")
    assert read.height == original.num_rows and read["open_time"].is_sorted()
    result = Lake(good).compact()
    assert result.partitions_compacted == 1 and result.files_after == result.files_before - 1
    assert [p.name for p in pdir.glob("*.parquet")] == ["data.parquet"]
    assert pq.read_table(_jan(good)).equals(original)
    assert Lake(good).verify().problems == []


def test_compact_merges_small_files_preserving_rows(good):
    pdir = _jan(good).parent
    rows = conform(pq.read_table(_jan(good)), "klines")
    _jan(good).unlink()
    for i in range(4):  # four small, disjoint files
        pq.write_table(rows.slice(i * 720, 720), pdir / f"part-{i}.parquet")
    before = Lake(good).sql("SELECT * FROM klines ORDER BY open_time")
    Lake(good).compact(market="um", dataset="klines")
    assert [p.name for p in pdir.glob("*.parquet")] == ["data.parquet"]
    after = Lake(good).sql("SELECT * FROM klines ORDER BY open_time")
    assert after.equals(before)
    assert Lake(good).compact().partitions_compacted == 0  # idempotent


def test_mis_partitioned_file(good):
    # January rows copied into the December partition's file
    dec = layout.partition_dir(good, KEY, 2023, 12) / "data.parquet"
    jan_rows = pq.read_table(_jan(good)).slice(0, 10)
    pq.write_table(pa.concat_tables([pq.read_table(dec), jan_rows]), dec)
    report = Lake(good).verify()
    assert [(p.kind, p.path) for p in report.errors] == [("misplaced-rows", str(dec))]
    # and an agg_trades day file holding another day's trades
    tdir = layout.partition_dir(good, SeriesKey("um", "agg_trades", "BTCUSDT"), 2024, 1)
    (tdir / "2024-01-01.parquet").rename(tdir / "2024-01-05.parquet")
    kinds = [p.kind for p in Lake(good).verify().errors]
    assert kinds.count("misplaced-rows") == 2


def test_schema_mismatch_and_misplaced_path(good):
    table = pq.read_table(_jan(good))
    pq.write_table(table.drop_columns(["trades"]).append_column(
        "trades", table.column("trades").cast(pa.float64())), _jan(good))
    stray = good / "um" / "klines" / "loose.parquet"
    pq.write_table(table.slice(0, 1), stray)
    report = Lake(good).verify()
    errors = {(p.kind, p.path) for p in report.errors}
    assert ("schema", str(_jan(good))) in errors
    assert ("misplaced-file", str(stray)) in errors


def test_coverage_problems_and_temp_files(good):
    cov = layout.coverage_path(good, KEY)
    cov.write_text(json.dumps({"version": 1, "ranges": [[5, 1]]}))
    LakeWriter(good).commit(SeriesKey("um", "klines", "ETHUSDT", "1m"), synthetic_klines(JAN_2024_MS, 5))
    (_jan(good).parent / ".data.parquet.123.abcd.tmp").write_bytes(b"partial")
    report = Lake(good).verify()
    assert [(p.kind, p.path) for p in report.errors] == [("coverage", str(cov))]
    assert {p.kind for p in report.warnings} == {"no-coverage", "temp-file"}
    assert report.to_dict()["ok"] is False
