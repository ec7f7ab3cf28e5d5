"""LakeWriter's two-step local commit (lake.staging): files built outside the series lock,
published under it; a partition changed meanwhile rebuilt; live writers' temps kept."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import pyarrow as pa

from kline_lake.lake import layout
from kline_lake.lake.lock import FileLock
from kline_lake.lake.staging import STALE_TEMP_S, temp_is_stale
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS, MINUTE_MS


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet"))}


def _cover(start_ms: int, n: int) -> list[tuple[int, int]]:
    return [(start_ms * 1000, (start_ms + n * MINUTE_MS) * 1000)]


def test_build_runs_outside_the_series_lock(tmp_path, btc_1m):
    """While the commit's files are being built (temps durable, nothing published), the
    series lock is free: another process could commit meanwhile."""
    seen = []

    def hook(stage):
        if stage == "data-temp-written":
            with FileLock(layout.lock_path(tmp_path / "lake", btc_1m), timeout_s=0):
                seen.append("lock free")
            assert not list((tmp_path / "lake").rglob("data.parquet"))  # not published yet

    LakeWriter(tmp_path / "lake", fault_hook=hook).commit(
        btc_1m, synthetic_klines(JAN_2024_MS, 300), covered=_cover(JAN_2024_MS, 300))
    assert seen == ["lock free"]
    assert LakeWriter(tmp_path / "lake").covered(btc_1m) == _cover(JAN_2024_MS, 300)


def test_partition_changed_while_building_is_rebuilt_under_the_lock(tmp_path, btc_1m):
    """Another writer commits into the same month between A's build and A's publish:
    A must not overwrite it with a file built from the older content. The lake equals
    the two commits made one after the other (B, then A: A's rows win on shared keys)."""
    a_rows = synthetic_klines(JAN_2024_MS, 300, seed=1)
    b_rows = synthetic_klines(JAN_2024_MS + 200 * MINUTE_MS, 300, seed=2)
    root = tmp_path / "lake"
    LakeWriter(root).commit(btc_1m, synthetic_klines(JAN_2024_MS - 50 * MINUTE_MS, 60, seed=3))

    calls = []

    def hook(stage):  # the first one: A's build (the rebuild under A's lock fires it again)
        if stage == "data-temp-written" and not calls:
            calls.append(stage)
            LakeWriter(root, lock_timeout_s=30).commit(
                btc_1m, b_rows, covered=_cover(JAN_2024_MS + 200 * MINUTE_MS, 300))

    LakeWriter(root, fault_hook=hook).commit(btc_1m, a_rows, covered=_cover(JAN_2024_MS, 300))
    serial = tmp_path / "serial"
    LakeWriter(serial).commit(btc_1m, synthetic_klines(JAN_2024_MS - 50 * MINUTE_MS, 60, seed=3))
    LakeWriter(serial).commit(btc_1m, b_rows, covered=_cover(JAN_2024_MS + 200 * MINUTE_MS, 300))
    LakeWriter(serial).commit(btc_1m, a_rows, covered=_cover(JAN_2024_MS, 300))
    assert _digest(root) == _digest(serial)
    assert LakeWriter(root).covered(btc_1m) == LakeWriter(serial).covered(btc_1m)
    assert not list(root.rglob("*.tmp"))


def test_staged_temp_removed_meanwhile_is_rebuilt(tmp_path, btc_1m):
    root = tmp_path / "lake"

    calls = []

    def hook(stage):  # the build's temps vanish (as if removed by a mistaken cleaner)
        if stage == "data-temp-written" and not calls:
            calls.append(stage)
            for tmp in root.rglob("*.tmp"):
                tmp.unlink()

    rows = synthetic_klines(JAN_2024_MS - 100 * MINUTE_MS, 200)  # Dec and Jan
    LakeWriter(root, fault_hook=hook).commit(btc_1m, rows, covered=_cover(JAN_2024_MS - 100 * MINUTE_MS, 200))
    LakeWriter(tmp_path / "clean").commit(btc_1m, rows, covered=_cover(JAN_2024_MS - 100 * MINUTE_MS, 200))
    assert _digest(root) == _digest(tmp_path / "clean") and len(_digest(root)) == 2


def test_batch_of_tables_equals_one_table(tmp_path, btc_1m):
    """commit([dec, jan, feb]) leaves the lake commit(concatenated) leaves."""
    rows = synthetic_klines(JAN_2024_MS - 2000 * MINUTE_MS, 50_000, seed=4)
    parts = [rows.slice(0, 2000), rows.slice(2000, 44_640), rows.slice(46_640)]
    cover = _cover(JAN_2024_MS - 2000 * MINUTE_MS, 50_000)
    LakeWriter(tmp_path / "batch").commit(btc_1m, parts, covered=cover)
    LakeWriter(tmp_path / "one").commit(btc_1m, pa.concat_tables(parts), covered=cover)
    assert _digest(tmp_path / "batch") == _digest(tmp_path / "one")
    assert len(_digest(tmp_path / "one")) == 3


def test_only_orphaned_temps_are_removed(tmp_path, btc_1m):
    """A live writer's staged temp survives another commit to its partition; a dead
    writer's, or one older than STALE_TEMP_S, is removed."""
    root = tmp_path / "lake"
    LakeWriter(root).commit(btc_1m, synthetic_klines(JAN_2024_MS, 10))
    pdir = layout.partition_dir(root, btc_1m, 2024, 1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    live = pdir / f".data.parquet.{os.getpid()}.0badcafe.tmp"
    orphan = pdir / f".data.parquet.{int(dead.stdout)}.0badcafe.tmp"
    old = pdir / f".data.parquet.{os.getpid()}.00000001.tmp"
    for tmp in (live, orphan, old):
        tmp.write_bytes(b"partial")
    os.utime(old, (time.time() - STALE_TEMP_S - 60,) * 2)
    assert not temp_is_stale(live) and temp_is_stale(orphan) and temp_is_stale(old)
    LakeWriter(root).commit(btc_1m, synthetic_klines(JAN_2024_MS, 20))
    assert live.exists() and not orphan.exists() and not old.exists()
