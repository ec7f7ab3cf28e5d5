"""verify --refresh-archive: a replaced archive file is re-ingested, an unchanged one is not."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq

from kline_lake.archive import manifest as archive_manifest
from kline_lake.archive.csv import parse_archive_csv
from kline_lake.archive.fetch import FetchPolicy
from kline_lake.archive.ingest import ArchiveSettings, ingest_archive_pieces
from kline_lake.archive.plan import plan_range
from kline_lake.archive.refresh import refresh_archive, replace_range
from kline_lake.core.markets import SPOT
from kline_lake.core.series import SeriesKey
from kline_lake.lake.writer import LakeWriter
from tests.support.archive import kline_csv

KEY = SeriesKey("spot", "klines", "ETHUSDT", "1h")
DIR = "data/spot/daily/klines/ETHUSDT/1h"
AGG = SeriesKey("spot", "agg_trades", "ETHUSDT")
FAST = FetchPolicy(backoff_base_s=0.0)


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000


def lake_rows(root: Path, key: SeriesKey = KEY) -> pa.Table:
    files = sorted((root / key.market / key.dataset).rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files])


def ingest(server, root: Path, start_ms: int, end_ms: int) -> None:
    pieces = plan_range(start_ms * 1000, end_ms * 1000, ms(2024, 1, 1) * 1000)

    async def go():
        async with httpx.AsyncClient() as client:
            return await ingest_archive_pieces(client, LakeWriter(root), SPOT, KEY, pieces,
                                               ArchiveSettings(server.base_url, FAST))

    outcome = asyncio.run(go())
    assert outcome.errors == []


def refresh(server, root: Path):
    return asyncio.run(refresh_archive(root, server.base_url, policy=FAST))


def test_refresh_reingests_only_changed_files(archive_server, tmp_path: Path) -> None:
    d1, d2 = ms(2023, 7, 1), ms(2023, 7, 2)
    archive_server.add_zip(f"{DIR}/ETHUSDT-1h-2023-07-01.zip", kline_csv(d1, 24, 3_600_000))
    archive_server.add_zip(f"{DIR}/ETHUSDT-1h-2023-07-02.zip", kline_csv(d2, 24, 3_600_000))
    ingest(archive_server, tmp_path, d1, ms(2023, 7, 3))
    before = lake_rows(tmp_path)
    assert before.num_rows == 48

    report = refresh(archive_server, tmp_path)
    assert (report.checked, report.unchanged, report.changed) == (2, 2, [])
    assert archive_server.hits[f"{DIR}/ETHUSDT-1h-2023-07-01.zip"] == 1  # only CHECKSUMs read

    # The exchange replaces day 2: hours 5..7 removed (an outage it corrected) and new prices.
    new_csv = kline_csv(d2, 24, 3_600_000, skip=frozenset({5, 6, 7})).replace(b",100.", b",200.")
    new_zip = archive_server.add_zip(f"{DIR}/ETHUSDT-1h-2023-07-02.zip", new_csv)
    report = refresh(archive_server, tmp_path)
    assert report.changed == [f"{DIR}/ETHUSDT-1h-2023-07-02.zip"] and report.unchanged == 1
    after = lake_rows(tmp_path)
    assert after.num_rows == 45
    assert after.slice(0, 24).equals(before.slice(0, 24))  # day 1 untouched
    assert after.slice(24).equals(parse_archive_csv(new_csv, "klines"))
    entry = archive_manifest.read_manifest(tmp_path, KEY)[f"{DIR}/ETHUSDT-1h-2023-07-02.zip"]
    assert entry.sha256 == hashlib.sha256(new_zip).hexdigest() and entry.rows == 21
    assert refresh(archive_server, tmp_path).unchanged == 2  # settled


def test_refresh_reports_missing_and_corrupt(archive_server, tmp_path: Path) -> None:
    d1, d2 = ms(2023, 7, 1), ms(2023, 7, 2)
    archive_server.add_zip(f"{DIR}/ETHUSDT-1h-2023-07-01.zip", kline_csv(d1, 24, 3_600_000))
    archive_server.add_zip(f"{DIR}/ETHUSDT-1h-2023-07-02.zip", kline_csv(d2, 24, 3_600_000))
    ingest(archive_server, tmp_path, d1, ms(2023, 7, 3))
    del archive_server.files[f"{DIR}/ETHUSDT-1h-2023-07-01.zip.CHECKSUM"]
    archive_server.add_zip(f"{DIR}/ETHUSDT-1h-2023-07-02.zip", kline_csv(d2, 24, 3_600_000)[:-50] + b"\n")
    archive_server.corrupt[f"{DIR}/ETHUSDT-1h-2023-07-02.zip"] = 100
    report = refresh(archive_server, tmp_path)
    assert report.missing == [f"{DIR}/ETHUSDT-1h-2023-07-01.zip"]
    assert len(report.errors) == 1 and "ETHUSDT-1h-2023-07-02.zip" in report.errors[0]
    assert not report.ok
    assert lake_rows(tmp_path).num_rows == 48  # nothing lost, nothing half-applied


def test_replace_range_agg_trades_daily_files(tmp_path: Path) -> None:
    writer = LakeWriter(tmp_path)

    def trades(first_id: int, n: int, t0_ms: int, step_ms: int) -> pa.Table:
        rows = "".join(
            f"{first_id + i},1.5,2.0,{first_id + i},{first_id + i},{t0_ms + i * step_ms},true,true\n"
            for i in range(n)
        )
        return parse_archive_csv(rows.encode(), "agg_trades")

    day = 86_400_000
    writer.commit(AGG, trades(1, 30, ms(2023, 7, 1), day // 10), covered=[(ms(2023, 7, 1) * 1000, ms(2023, 7, 4) * 1000)])
    files_before = sorted(p.name for p in (tmp_path / "spot/agg_trades").rglob("*.parquet"))
    assert files_before == ["2023-07-01.parquet", "2023-07-02.parquet", "2023-07-03.parquet"]
    # day 2 replaced by an empty answer: its file disappears, the other days stay
    replace_range(writer, AGG, trades(0, 0, 0, 1), [(ms(2023, 7, 2) * 1000, ms(2023, 7, 3) * 1000)])
    files_after = sorted(p.name for p in (tmp_path / "spot/agg_trades").rglob("*.parquet"))
    assert files_after == ["2023-07-01.parquet", "2023-07-03.parquet"]
    assert lake_rows(tmp_path, AGG).num_rows == 20
    assert writer.covered(AGG) == [(ms(2023, 7, 1) * 1000, ms(2023, 7, 4) * 1000)]


def test_manifest_merge_and_listing(tmp_path: Path) -> None:
    from kline_lake.archive.manifest import ManifestEntry, iter_manifests, merge_entry, record

    a = ManifestEntry("p.zip", "aa", 0, 10, ((0, 4),), 4, 100)
    b = ManifestEntry("p.zip", "aa", 0, 10, ((4, 10),), 6, 100)
    assert merge_entry(a, b).ranges == ((0, 10),) and merge_entry(a, b).rows == 10  # more of it
    c = ManifestEntry("p.zip", "bb", 0, 10, ((0, 10),), 9, 120)
    assert merge_entry(a, c) == c  # replaced upstream: the new digest wins
    writer = LakeWriter(tmp_path)
    record(writer, KEY, [a])
    record(writer, KEY, [b])
    record(writer, AGG, [ManifestEntry("t.zip", "cc", 0, 10, ((0, 10),), 1, 1)])
    listed = {key: entries for key, entries in iter_manifests(tmp_path)}
    assert set(listed) == {KEY, AGG}
    assert listed[KEY]["p.zip"].ranges == ((0, 10),)
    assert not list(tmp_path.rglob("*.parquet"))  # metadata only, under _meta
    assert all("_meta" in str(p) for p in tmp_path.rglob("*.json"))
