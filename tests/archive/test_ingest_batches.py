"""Archive ingest commits parsed months in batches (ArchiveSettings.batch_rows): fewer
commits, byte-identical data files, the same coverage and manifest as month by month."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

from kline_lake.archive import manifest as archive_manifest
from kline_lake.archive.fetch import FetchPolicy
from kline_lake.archive.ingest import ArchiveSettings, archive_client, ingest_archive_pieces
from kline_lake.archive.plan import plan_range
from kline_lake.core.markets import SPOT
from kline_lake.core.series import SeriesKey
from kline_lake.lake.writer import LakeWriter
from tests.support.archive import kline_csv

KEY = SeriesKey("spot", "klines", "BTCUSDT", "1h")


def _ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1000


def _ingest(base_url: str, lake: Path, batch_rows: int) -> list[int]:
    """Ingest Jan..Jun 2023; the row counts of the commits made."""
    pieces = plan_range(_ms(2023, 1) * 1000, _ms(2023, 7) * 1000, now_us=_ms(2024, 1) * 1000)
    settings = ArchiveSettings(base_url, FetchPolicy(backoff_base_s=0.0), batch_rows=batch_rows)
    writer, commits = LakeWriter(lake), []

    async def commit(key, table, covered_us):
        commits.append(table.num_rows)
        await asyncio.to_thread(writer.commit, key, table, covered_us)

    async def run():
        async with archive_client() as client:
            return await ingest_archive_pieces(client, writer, SPOT, KEY, pieces, settings,
                                               commit=commit)

    outcome = asyncio.run(run())
    assert not outcome.errors and outcome.stats.files == 6
    return commits


def _digest(lake: Path) -> dict[str, str]:
    return {str(p.relative_to(lake)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.rglob("*.parquet"))}


def test_batched_commits_leave_the_lake_month_by_month_commits_leave(archive_server, tmp_path):
    for month in range(1, 7):
        start, end = _ms(2023, month), _ms(2023 + month // 12, month % 12 + 1)
        archive_server.add_zip(f"data/spot/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2023-{month:02d}.zip",
                               kline_csv(start, (end - start) // 3_600_000, 3_600_000))
    one_by_one = _ingest(archive_server.base_url, tmp_path / "monthly", batch_rows=1)
    batched = _ingest(archive_server.base_url, tmp_path / "batched", batch_rows=3000)
    assert len(one_by_one) == 6 and sum(one_by_one) == 4344
    assert len(batched) == 2 and sum(batched) == 4344  # Jan-May reach 3000 rows; June alone
    assert _digest(tmp_path / "batched") == _digest(tmp_path / "monthly")
    assert len(_digest(tmp_path / "monthly")) == 6
    assert LakeWriter(tmp_path / "batched").covered(KEY) == LakeWriter(tmp_path / "monthly").covered(KEY) \
        == [(_ms(2023, 1) * 1000, _ms(2023, 7) * 1000)]
    assert archive_manifest.read_manifest(tmp_path / "batched", KEY) \
        == archive_manifest.read_manifest(tmp_path / "monthly", KEY)
