"""Property tests over the writer and gap finder (real files, few examples each)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kline_lake import Lake
from kline_lake.core.schemas import conform
from kline_lake.core.series import SeriesKey
from kline_lake.errors import LakeError
from kline_lake.lake import layout
from kline_lake.lake.lock import FileLock
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS, MINUTE_US

KEY = SeriesKey("um", "klines", "BTCUSDT", "1m")
# 2024-01-31 23:00: batches straddle a month boundary
START_MS = JAN_2024_MS + 30 * 86_400_000 + 23 * 3_600_000
FULL = synthetic_klines(START_MS, 120, seed=5)

batches_st = st.lists(
    st.tuples(st.integers(0, 119), st.integers(1, 60)), min_size=1, max_size=5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches_st)
def test_any_batching_gives_the_union_sorted_unique(batches):
    with tempfile.TemporaryDirectory() as tmp:
        w = LakeWriter(Path(tmp))
        expected: set[int] = set()
        for lo, n in batches:
            part = FULL.slice(lo, n)
            w.commit(KEY, part, covered=[((START_MS + lo * 60_000) * 1000,
                                          (START_MS + (lo + part.num_rows) * 60_000) * 1000)])
            expected |= set(range(lo, lo + part.num_rows))
        stored = Lake(tmp).klines("um", "BTCUSDT", "1m")
        want = conform(FULL.take(pa.array(sorted(expected))), "klines")
        assert conform(stored.to_arrow(), "klines").equals(want)
        # the gap finder sees exactly the unstored minutes, all confirmed-or-unknown tiles
        gaps = Lake(tmp).gaps("um", "BTCUSDT", "1m", START_MS, START_MS + 120 * 60_000)
        assert gaps["missing"].sum() == 120 - len(expected)
        assert set(gaps["status"]) <= {"unknown"}  # every stored range was covered
        assert Lake(tmp).verify().ok


@settings(max_examples=20, deadline=None)
@given(st.sets(st.integers(0, 59), max_size=30), st.integers(0, 60), st.integers(0, 60))
def test_gaps_partition_missing_slots_by_coverage(absent, c0, c1):
    lo_c, hi_c = min(c0, c1), max(c0, c1)
    with tempfile.TemporaryDirectory() as tmp:
        table = synthetic_klines(JAN_2024_MS, 60)
        keep = [i for i in range(60) if i not in absent]
        cov = [(JAN_2024_MS * 1000 + lo_c * MINUTE_US, JAN_2024_MS * 1000 + hi_c * MINUTE_US)] \
            if lo_c < hi_c else []
        LakeWriter(Path(tmp)).commit(KEY, table.take(pa.array(keep, pa.int64())), covered=cov)
        gaps = Lake(tmp).gaps("um", "BTCUSDT", "1m", JAN_2024_MS, JAN_2024_MS + 60 * 60_000)
        confirmed = {i for i in absent if lo_c <= i < hi_c}
        got_confirmed = set()
        got_unknown = set()
        for row in gaps.iter_rows(named=True):
            first = int((row["start"].timestamp() * 1000 - JAN_2024_MS) // 60_000)
            target = got_confirmed if row["status"] == "confirmed" else got_unknown
            target |= set(range(first, first + row["missing"]))
        assert got_confirmed == confirmed
        assert got_unknown == set(absent) - confirmed


def test_lock_timeout_is_a_lake_error(lake_root):
    path = layout.lock_path(lake_root, KEY)
    with FileLock(path), pytest.raises(LakeError, match="locked"):
        LakeWriter(lake_root, lock_timeout_s=0.2).commit(KEY, synthetic_klines(JAN_2024_MS, 2))
    LakeWriter(lake_root, lock_timeout_s=0.2).commit(KEY, synthetic_klines(JAN_2024_MS, 2))


def test_row_group_statistics_allow_pruning(lake_root):
    LakeWriter(lake_root).commit(KEY, synthetic_klines(JAN_2024_MS, 31 * 1440))
    meta = pq.ParquetFile(layout.partition_dir(lake_root, KEY, 2024, 1) / "data.parquet").metadata
    assert meta.num_row_groups == 1 and meta.row_group(0).column(0).statistics.has_min_max
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert np.all([meta.row_group(0).column(i).statistics is not None for i in range(meta.num_columns)])
