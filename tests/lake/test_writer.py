"""LakeWriter: round trips through real Parquet, idempotence, crash safety, concurrency."""

from __future__ import annotations

import hashlib
import multiprocessing
import subprocess
import sys
import textwrap

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.core.schemas import KLINES, conform
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError, LakeError
from kline_lake.lake import layout
from kline_lake.lake.synthetic import synthetic_agg_trades, synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS, MINUTE_MS, MINUTE_US


def _files(root):
    return sorted(p for p in root.rglob("*.parquet"))


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in _files(root)}


def _read_series(root, key):
    files = [str(p) for p in _files(layout.series_dir(root, key))]
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def test_round_trip_across_months(writer, lake_root, btc_1m):
    # 2023-12-31 22:20 .. 2024-01-01 ~01:40: spans a year and month boundary
    table = synthetic_klines(JAN_2024_MS - 100 * MINUTE_MS, 200)
    span = (JAN_2024_MS * 1000 - 100 * MINUTE_US, JAN_2024_MS * 1000 + 100 * MINUTE_US)
    writer.commit(btc_1m, table, covered=[span])
    names = [str(p.relative_to(lake_root)) for p in _files(lake_root)]
    assert names == [
        "um/klines/symbol=BTCUSDT/interval=1m/year=2023/month=12/data.parquet",
        "um/klines/symbol=BTCUSDT/interval=1m/year=2024/month=01/data.parquet",
    ]
    back = _read_series(lake_root, btc_1m)
    assert back.schema.equals(KLINES)
    assert back.equals(conform(table, "klines"))
    meta = pq.ParquetFile(_files(lake_root)[0]).metadata
    col = meta.row_group(0).column(0)
    assert col.compression == "ZSTD" and col.statistics.has_min_max
    assert writer.covered(btc_1m) == [span]
    assert writer.missing(btc_1m, span[0] - 10, span[1] + 10) == [(span[0] - 10, span[0]),
                                                                  (span[1], span[1] + 10)]
    assert writer.last_key_value(btc_1m) == (JAN_2024_MS + 99 * MINUTE_MS) * 1000


def test_idempotent_byte_identical_and_batch_independent(tmp_path, btc_1m):
    table = synthetic_klines(JAN_2024_MS - 500 * MINUTE_MS, 1000)
    a, b = LakeWriter(tmp_path / "a"), LakeWriter(tmp_path / "b")
    a.commit(btc_1m, table)
    first = _digest(tmp_path / "a")
    a.commit(btc_1m, table)
    assert _digest(tmp_path / "a") == first
    # the same rows committed in shuffled batches (with overlap) give the same bytes
    for lo, hi in [(600, 1000), (0, 300), (250, 700)]:
        b.commit(btc_1m, table.slice(lo, hi - lo))
    assert _digest(tmp_path / "b") == first


def test_dedup_keeps_latest_and_sorts(writer, lake_root, btc_1m):
    table = synthetic_klines(JAN_2024_MS, 10)
    writer.commit(btc_1m, table)
    fixed = table.set_column(4, "close", pa.array(np.full(10, 42.0)))
    writer.commit(btc_1m, fixed.take(pa.array([9, 3, 5])))  # unsorted, overlapping keys
    back = _read_series(lake_root, btc_1m)
    assert back.num_rows == 10
    ts = back.column("open_time").cast(pa.int64()).to_numpy()
    assert (np.diff(ts) > 0).all()
    closes = back.column("close").to_numpy()
    assert list(np.flatnonzero(closes == 42.0)) == [3, 5, 9]


def test_empty_commit_records_confirmed_empty(writer, lake_root, btc_1m):
    writer.commit(btc_1m, KLINES.empty_table(), covered=[(0, 10), (20, 30)])
    assert writer.covered(btc_1m) == [(0, 10), (20, 30)]
    assert _files(lake_root) == []
    assert writer.last_key_value(btc_1m) is None


def test_agg_trades_day_files_and_last_key(writer, lake_root):
    key = SeriesKey("um", "agg_trades", "BTCUSDT")
    # 2024-01-31 23:00 .. 2024-02-01 ~01:00 at 1 trade / 2 s
    start_ms = JAN_2024_MS + 30 * 86_400_000 + 23 * 3_600_000
    writer.commit(key, synthetic_agg_trades(start_ms, 3600, first_id=1000, spacing_ms=2000))
    names = sorted(p.name for p in _files(lake_root))
    assert names == ["2024-01-31.parquet", "2024-02-01.parquet"]
    assert writer.last_key_value(key) == 1000 + 3599


def test_funding_round_trip(writer, lake_root):
    key = SeriesKey("um", "funding", "ETHUSDT")
    table = synthetic_funding(JAN_2024_MS, 200)
    writer.commit(key, table)
    back = _read_series(lake_root, key)
    assert back.equals(conform(table, "funding"))


def test_bad_inputs(tmp_path, btc_1m):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        LakeWriter(afile)
    with pytest.raises(InputError):
        LakeWriter(afile / "sub")
    w = LakeWriter(tmp_path / "lake")
    assert not (tmp_path / "lake").exists()  # nothing created until a commit
    with pytest.raises(InputError):
        w.commit(btc_1m, pa.table({"open_time": [1]}))
    with pytest.raises(InputError):
        w.commit(btc_1m, KLINES.empty_table(), covered=[(5, 1)])


def test_exchange_info_cache(writer):
    assert writer.load_exchange_info("um") is None
    info = {"symbols": [{"symbol": "BTCUSDT"}], "rateLimits": []}
    writer.save_exchange_info("um", info)
    assert writer.load_exchange_info("um") == info
    with pytest.raises(InputError):
        writer.save_exchange_info("../x", info)


def test_plain_duckdb_and_polars_read_the_lake(writer, lake_root, btc_1m):
    writer.commit(btc_1m, synthetic_klines(JAN_2024_MS - 10 * MINUTE_MS, 20))
    writer.commit(SeriesKey("um", "klines", "ETHUSDT", "1m"), synthetic_klines(JAN_2024_MS, 5))
    writer.save_exchange_info("um", {"x": 1})
    glob = str(lake_root / "um" / "klines" / "**" / "*.parquet")
    # DESIGN.md's month=<MM> is zero-padded, which DuckDB's inference keeps as text
    rel = duckdb.sql(f"SELECT symbol, interval, year, month::INT, count(*) AS n FROM "
                     f"read_parquet('{glob}', hive_partitioning=true) "
                     f"GROUP BY ALL ORDER BY ALL")
    assert rel.fetchall() == [("BTCUSDT", "1m", 2023, 12, 10), ("BTCUSDT", "1m", 2024, 1, 10),
                              ("ETHUSDT", "1m", 2024, 1, 5)]
    frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert frame.height == 25
    assert {"symbol", "interval", "year", "month", "open_time"} <= set(frame.columns)
    assert frame["open_time"].dtype == pl.Datetime("us", "UTC")
    assert sorted(frame["month"].cast(pl.Int32).unique().to_list()) == [1, 12]


CRASH_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from kline_lake.core.series import SeriesKey
    from kline_lake.lake.writer import LakeWriter
    from kline_lake.lake.synthetic import synthetic_klines
    root, stage = sys.argv[1], sys.argv[2]
    def hook(s):
        if s == stage:
            os.kill(os.getpid(), signal.SIGKILL)
    w = LakeWriter(root, fault_hook=hook)
    key = SeriesKey("um", "klines", "BTCUSDT", "1m")
    t = synthetic_klines({start}, 200, seed=1)
    w.commit(key, t, covered=[({start} * 1000, ({start} + 200 * 60000) * 1000)])
""")


@pytest.mark.parametrize("stage", ["data-temp-written", "data-replaced", "before-coverage"])
def test_sigkill_mid_commit_then_rerun(tmp_path, btc_1m, stage):
    root = tmp_path / "lake"
    base = synthetic_klines(JAN_2024_MS - 1000 * MINUTE_MS, 900, seed=2)
    w = LakeWriter(root)
    w.commit(btc_1m, base, covered=[((JAN_2024_MS - 1000 * MINUTE_MS) * 1000,
                                     (JAN_2024_MS - 100 * MINUTE_MS) * 1000)])
    before_cov = w.covered(btc_1m)
    start = JAN_2024_MS - 100 * MINUTE_MS  # the crashing commit spans Dec and Jan
    script = CRASH_SCRIPT.format(start=start)
    proc = subprocess.run([sys.executable, "-c", script, str(root), stage], timeout=60)
    assert proc.returncode == -9
    # the lake still reads, and coverage never claims rows that are not there
    assert w.covered(btc_1m) == before_cov
    back = _read_series(root, btc_1m)
    assert back.num_rows >= 900
    assert pa.compute.count_distinct(back.column("open_time")).as_py() == back.num_rows
    # a rerun of the same commit completes the lake exactly like a clean run
    w.commit(btc_1m, synthetic_klines(start, 200, seed=1),
             covered=[(start * 1000, (start + 200 * MINUTE_MS) * 1000)])
    clean = LakeWriter(tmp_path / "clean")
    clean.commit(btc_1m, base, covered=before_cov)
    clean.commit(btc_1m, synthetic_klines(start, 200, seed=1),
                 covered=[(start * 1000, (start + 200 * MINUTE_MS) * 1000)])
    assert _digest(root) == _digest(tmp_path / "clean")
    assert not list(root.rglob("*.tmp"))
    assert w.covered(btc_1m) == clean.covered(btc_1m)


def _commit_worker(root: str, worker: int, rounds: int) -> None:
    w = LakeWriter(root)
    key = SeriesKey("um", "klines", "BTCUSDT", "1m")
    full = synthetic_klines(JAN_2024_MS - 300 * MINUTE_MS, 600, seed=7)
    for i in range(rounds):
        lo = (worker * 97 + i * 53) % 500
        part = full.slice(lo, 100)
        start_us = (JAN_2024_MS - 300 * MINUTE_MS + lo * MINUTE_MS) * 1000
        w.commit(key, part, covered=[(start_us, start_us + 100 * MINUTE_US)])


def test_concurrent_processes_do_not_corrupt(tmp_path, btc_1m):
    root = tmp_path / "lake"
    ctx = multiprocessing.get_context("spawn")  # fork after Polars threads can deadlock
    procs = [ctx.Process(target=_commit_worker, args=(str(root), n, 12)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    # expected: the union of every slice, committed by one process
    expected_root = tmp_path / "expected"
    for n in range(3):
        _commit_worker(str(expected_root), n, 12)
    assert _digest(root) == _digest(expected_root)
    assert LakeWriter(root).covered(btc_1m) == LakeWriter(expected_root).covered(btc_1m)


def test_foreign_file_in_partition_is_normalised(writer, lake_root, btc_1m):
    table = synthetic_klines(JAN_2024_MS, 50)
    writer.commit(btc_1m, table.slice(0, 30))
    pdir = layout.partition_dir(lake_root, btc_1m, 2024, 1)
    pq.write_table(conform(table.slice(20, 30), "klines"), pdir / "part-foreign.parquet")
    writer.commit(btc_1m, table.slice(45, 5))
    assert [p.name for p in pdir.glob("*.parquet")] == ["data.parquet"]
    assert pq.read_table(pdir / "data.parquet").equals(conform(table, "klines"))


def test_unreadable_stored_file_is_a_lake_error(writer, lake_root, btc_1m):
    writer.commit(btc_1m, synthetic_klines(JAN_2024_MS, 5))
    (layout.partition_dir(lake_root, btc_1m, 2024, 1) / "data.parquet").write_bytes(b"junk")
    with pytest.raises(LakeError, match="data.parquet"):
        writer.commit(btc_1m, synthetic_klines(JAN_2024_MS, 6))


def test_minute_and_month_series_stay_apart(writer, lake_root):
    minute = SeriesKey("um", "klines", "BTCUSDT", "1m")
    month = SeriesKey("um", "klines", "BTCUSDT", "1M")
    writer.commit(minute, synthetic_klines(JAN_2024_MS, 3))
    monthly = synthetic_klines(JAN_2024_MS, 1, "1d").set_column(6, "close_time", pa.array(
        [(JAN_2024_MS + 31 * 86_400_000 - 1) * 1000], pa.timestamp("us", tz="UTC")))
    writer.commit(month, monthly)
    assert _read_series(lake_root, minute).num_rows == 3
    assert _read_series(lake_root, month).num_rows == 1
    names = sorted(p.name for p in layout.series_dir(lake_root, minute).parent.iterdir())
    assert names == ["interval=1M", "interval=1m"]


def test_split_by_target_single_partition_is_the_table_itself() -> None:
    from kline_lake.lake.partitions import split_by_target

    month = synthetic_klines(JAN_2024_MS, 100)
    assert list(split_by_target(month, "klines")) == [(2024, 1, layout.MONTH_FILE)]
    assert split_by_target(month, "klines")[(2024, 1, layout.MONTH_FILE)] is month  # no copy
    # Rows over a month boundary (and agg trades over a day boundary) are still split.
    times = pa.array([JAN_2024_MS * 1000 - MINUTE_US, JAN_2024_MS * 1000], pa.int64())
    two = month.slice(0, 2).set_column(0, "open_time", times.view(month.schema.field(0).type))
    parts = split_by_target(two, "klines")
    assert sorted(parts) == [(2023, 12, layout.MONTH_FILE), (2024, 1, layout.MONTH_FILE)]
    assert all(t.num_rows == 1 for t in parts.values())
    trades = synthetic_agg_trades(JAN_2024_MS, 4, spacing_ms=12 * 3_600_000)  # 2024-01-01, 01-02
    assert sorted(split_by_target(trades, "agg_trades")) == [
        (2024, 1, "2024-01-01.parquet"), (2024, 1, "2024-01-02.parquet")]
