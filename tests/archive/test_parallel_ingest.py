"""Archive ingest over 2 worker processes (months of one series dealt to both) leaves the
lake a one-process ingest leaves: data files, coverage and manifest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from kline_lake.archive import manifest as archive_manifest
from kline_lake.archive.fetch import FetchPolicy
from kline_lake.archive.ingest import ArchiveSettings
from kline_lake.archive.parallel import IngestJob, ingest_parallel, split_jobs
from kline_lake.archive.plan import MONTHLY, plan_range
from kline_lake.core.series import SeriesKey
from kline_lake.lake.writer import LakeWriter
from tests.support.archive import kline_csv
from tests.support.fetch import lake_snapshot

KEYS = (SeriesKey("spot", "klines", "BTCUSDT", "1h"), SeriesKey("spot", "klines", "ETHUSDT", "1h"))


def _ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1000


def _serve_months(server, months: list[tuple[int, int]]) -> None:
    for key in KEYS:
        for year, month in months:
            start, end = _ms(year, month), _ms(year + month // 12, month % 12 + 1)
            name = f"{key.symbol}-1h-{year}-{month:02d}"
            server.add_zip(f"data/spot/monthly/klines/{key.symbol}/1h/{name}.zip",
                           kline_csv(start, (end - start) // 3_600_000, 3_600_000))


def _jobs() -> list[IngestJob]:
    pieces = plan_range(_ms(2023, 1) * 1000, _ms(2023, 7) * 1000,
                        now_us=_ms(2024, 1) * 1000)
    assert [p.kind for p in pieces] == [MONTHLY] * 6
    return [IngestJob("spot", key, tuple(pieces)) for key in KEYS]


def test_two_processes_leave_the_lake_one_process_leaves(archive_server, tmp_path: Path) -> None:
    """Two processes for one series: its months are split between them, and they take
    turns on its lock for the commits, the coverage record and the manifest."""
    _serve_months(archive_server, [(2023, m) for m in range(1, 7)])
    settings = ArchiveSettings(archive_server.base_url, FetchPolicy(backoff_base_s=0.0))
    jobs = _jobs()[:1]
    one = ingest_parallel(tmp_path / "one", jobs, settings, workers=1)
    two = ingest_parallel(tmp_path / "two", jobs, settings, workers=2)
    assert not one.errors and not two.errors and not two.rest_pieces
    assert (two.stats.files, two.stats.rows) == (one.stats.files, one.stats.rows) == (6, 4344)
    snap_one, snap_two = lake_snapshot(tmp_path / "one"), lake_snapshot(tmp_path / "two")
    assert sorted(snap_one) == sorted(snap_two) and len(snap_one) == 6 + 1
    for name, value in snap_one.items():
        assert value.equals(snap_two[name]) if hasattr(value, "equals") else value == snap_two[name], name
    for key in KEYS[:1]:  # every month's coverage and manifest entry survived the other process
        assert LakeWriter(tmp_path / "two").covered(key) == [(_ms(2023, 1) * 1000, _ms(2023, 7) * 1000)]
        entries = archive_manifest.read_manifest(tmp_path / "two", key)
        assert len(entries) == 6 and entries == archive_manifest.read_manifest(tmp_path / "one", key)


def test_split_deals_whole_months_round_robin() -> None:
    shares = split_jobs(_jobs(), 4)
    assert len(shares) == 4
    months = sorted(p.period_label for share in shares for job in share for p in job.pieces)
    assert months == sorted(2 * [f"2023-{m:02d}" for m in range(1, 7)])
    assert [sum(len(j.pieces) for j in share) for share in shares] == [3, 3, 3, 3]
    assert all(len({j.key for j in share}) == len(share) for share in shares)
    by_series = split_jobs(_jobs(), 2)  # as many series as workers: one series each
    assert [[j.key for j in share] for share in by_series] == [[KEYS[0]], [KEYS[1]]]
    assert all(len(share[0].pieces) == 6 for share in by_series)
    with pytest.raises(ValueError, match="workers"):
        split_jobs(_jobs(), 0)
