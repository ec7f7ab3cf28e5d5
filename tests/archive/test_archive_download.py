"""The archive source against a loopback archive server and a real lake on disk."""

from __future__ import annotations

import asyncio
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.archive import manifest as archive_manifest
from kline_lake.archive.csv import parse_archive_csv
from kline_lake.archive.fetch import FetchPolicy
from kline_lake.archive.ingest import (
    ArchiveSettings,
    clip_rows,
    group_for_commit,
    ingest_archive_pieces,
    raise_first,
)
from kline_lake.archive.plan import DAILY, MONTHLY, REST, plan_range
from kline_lake.core.markets import SPOT, UM
from kline_lake.core.series import SeriesKey
from kline_lake.errors import ChecksumError
from kline_lake.lake.writer import LakeWriter
from tests.support.archive import REAL_DIR, kline_csv

KEY = SeriesKey("spot", "klines", "BTCUSDT", "1m")
DIR = "data/spot/daily/klines/BTCUSDT/1m"


def us(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000


def settings(server) -> ArchiveSettings:
    return ArchiveSettings(server.base_url, FetchPolicy(backoff_base_s=0.0), concurrency=4)


def ingest(server, root: Path, pieces, market=SPOT, key=KEY):
    writer = LakeWriter(root)
    return asyncio.run(ingest_archive_pieces(_client(), writer, market, key, pieces, settings(server))), writer


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=10)


def read_lake(root: Path, key: SeriesKey = KEY) -> pa.Table:
    files = sorted((root / key.market / key.dataset).rglob("*.parquet"))
    if not files:
        return pa.table({})
    return pa.concat_tables([pq.read_table(f) for f in files])


def serve_real_days(server) -> None:
    for day in ("2020-01-01", "2020-01-02", "2020-01-03"):
        name = f"BTCUSDT-1m-{day}.zip"
        server.files[f"{DIR}/{name}"] = Path(REAL_DIR, name).read_bytes()
        server.files[f"{DIR}/{name}.CHECKSUM"] = Path(REAL_DIR, name + ".CHECKSUM").read_bytes()
    for day in ("2024-12-31", "2025-01-01"):
        server.add_zip(f"{DIR}/BTCUSDT-1m-{day}.zip", Path(REAL_DIR, f"BTCUSDT-1m-{day}.csv").read_bytes())


def test_real_daily_zips_land_in_the_lake(archive_server, tmp_path: Path) -> None:
    serve_real_days(archive_server)
    pieces = plan_range(us(2020, 1, 1), us(2020, 1, 4), us(2024, 6, 1))
    assert [p.kind for p in pieces] == [DAILY] * 3
    outcome, writer = ingest(archive_server, tmp_path, pieces)
    assert outcome.errors == [] and outcome.rest_pieces == []
    assert (outcome.stats.files, outcome.stats.rows) == (3, 4320)
    assert writer.covered(KEY) == [(us(2020, 1, 1), us(2020, 1, 4))]
    lake = read_lake(tmp_path)
    assert lake.num_rows == 4320
    with zipfile.ZipFile(Path(REAL_DIR, "BTCUSDT-1m-2020-01-02.zip")) as zf:
        direct = parse_archive_csv(zf.read("BTCUSDT-1m-2020-01-02.csv"), "klines")
    assert lake.slice(1440, 1440).select(direct.column_names).equals(direct)
    manifest = archive_manifest.read_manifest(tmp_path, KEY)
    assert sorted(manifest) == [f"{DIR}/BTCUSDT-1m-2020-01-0{d}.zip" for d in (1, 2, 3)]
    expected_sha = Path(REAL_DIR, "BTCUSDT-1m-2020-01-01.zip.CHECKSUM").read_text().split()[0]
    assert manifest[f"{DIR}/BTCUSDT-1m-2020-01-01.zip"].sha256 == expected_sha


def test_microsecond_archive_is_canonical_ms_close(archive_server, tmp_path: Path) -> None:
    serve_real_days(archive_server)
    pieces = plan_range(us(2024, 12, 31), us(2025, 1, 2), us(2025, 6, 1))
    outcome, _ = ingest(archive_server, tmp_path, pieces)
    assert outcome.stats.rows == 2880
    lake = read_lake(tmp_path)
    opens = lake.column("open_time").cast(pa.int64()).to_numpy()
    closes = lake.column("close_time").cast(pa.int64()).to_numpy()
    assert ((closes - opens) == 59_999_000).all()  # both days, ms and us sources alike
    assert opens[1440] == us(2025, 1, 1)


def test_clipped_day_and_monthly_file(archive_server, tmp_path: Path) -> None:
    jan = int(datetime(2023, 1, 1, tzinfo=UTC).timestamp() * 1000)
    archive_server.add_zip("data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2023-01.zip",
                           kline_csv(jan, 31 * 1440))
    feb1 = jan + 31 * 86_400_000
    archive_server.add_zip(f"{DIR}/BTCUSDT-1m-2023-02-01.zip", kline_csv(feb1, 1440))
    pieces = plan_range(us(2023, 1, 1), us(2023, 2, 1, 6), us(2023, 3, 1))
    assert [(p.kind, p.is_clipped) for p in pieces] == [(MONTHLY, False), (DAILY, True)]
    outcome, writer = ingest(archive_server, tmp_path, pieces)
    assert outcome.stats.rows == 31 * 1440 + 360
    assert writer.covered(KEY) == [(us(2023, 1, 1), us(2023, 2, 1, 6))]
    assert read_lake(tmp_path).num_rows == 31 * 1440 + 360


def test_gap_and_empty_file_still_cover_their_period(archive_server, tmp_path: Path) -> None:
    day = int(datetime(2023, 5, 2, tzinfo=UTC).timestamp() * 1000)
    archive_server.add_zip(f"{DIR}/BTCUSDT-1m-2023-05-02.zip", kline_csv(day, 1440, skip=frozenset(range(60, 180))))
    archive_server.add_zip(f"{DIR}/BTCUSDT-1m-2023-05-03.zip", b"")
    pieces = plan_range(us(2023, 5, 2), us(2023, 5, 4), us(2023, 6, 1))
    outcome, writer = ingest(archive_server, tmp_path, pieces)
    assert outcome.stats.rows == 1440 - 120
    assert writer.covered(KEY) == [(us(2023, 5, 2), us(2023, 5, 4))]  # gap confirmed


def test_checksum_failure_names_file_and_keeps_it_out(archive_server, tmp_path: Path) -> None:
    serve_real_days(archive_server)
    bad = f"{DIR}/BTCUSDT-1m-2020-01-02.zip"
    archive_server.corrupt[bad] = 1000
    pieces = plan_range(us(2020, 1, 1), us(2020, 1, 4), us(2024, 6, 1))
    outcome, writer = ingest(archive_server, tmp_path, pieces)
    assert len(outcome.errors) == 1
    with pytest.raises(ChecksumError, match="BTCUSDT-1m-2020-01-02.zip"):
        raise_first(outcome.errors)
    assert writer.covered(KEY) == [(us(2020, 1, 1), us(2020, 1, 2)), (us(2020, 1, 3), us(2020, 1, 4))]
    opens = read_lake(tmp_path).column("open_time").cast(pa.int64()).to_numpy()
    assert len(opens) == 2880
    assert not ((opens >= us(2020, 1, 2)) & (opens < us(2020, 1, 3))).any()
    assert bad not in archive_manifest.read_manifest(tmp_path, KEY)


def test_404_hands_the_piece_back_to_rest(archive_server, tmp_path: Path) -> None:
    serve_real_days(archive_server)
    pieces = plan_range(us(2019, 12, 31), us(2020, 1, 2), us(2024, 6, 1))
    outcome, writer = ingest(archive_server, tmp_path, pieces)
    assert outcome.stats.not_in_archive == 1
    assert [(p.kind, p.start_us, p.end_us) for p in outcome.rest_pieces] == [
        (REST, us(2019, 12, 31), us(2020, 1, 1))
    ]
    assert writer.covered(KEY) == [(us(2020, 1, 1), us(2020, 1, 2))]


def test_funding_archive_has_null_mark_price(archive_server, tmp_path: Path) -> None:
    key = SeriesKey("um", "funding", "BTCUSDT")
    t0 = int(datetime(2023, 3, 1, tzinfo=UTC).timestamp() * 1000)
    rows = "calc_time,funding_interval_hours,last_funding_rate\n" + "".join(
        f"{t0 + i * 8 * 3_600_000},8,0.000{i % 9 + 1}\n" for i in range(93)
    )
    archive_server.add_zip("data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2023-03.zip",
                           rows.encode())
    pieces = plan_range(us(2023, 3, 1), us(2023, 4, 1), us(2023, 5, 1), (MONTHLY,))
    outcome, writer = ingest(archive_server, tmp_path, pieces, market=UM, key=key)
    assert outcome.stats.rows == 93
    lake = read_lake(tmp_path, key)
    assert lake.column("mark_price").null_count == 93
    assert lake.column("funding_rate").to_pylist()[:2] == [0.0001, 0.0002]


def test_clip_rows_pure() -> None:
    table = parse_archive_csv(kline_csv(0, 10), "klines")
    assert clip_rows(table, "klines", 0, 10 * 60_000_000).num_rows == 10
    assert clip_rows(table, "klines", 60_000_000, 3 * 60_000_000).num_rows == 2
    empty = table.slice(0, 0)
    assert clip_rows(empty, "klines", 0, 1).num_rows == 0


def test_commit_groups_month_for_klines_day_for_trades() -> None:
    pieces = plan_range(us(2024, 1, 30), us(2024, 2, 3), us(2024, 6, 1))
    assert [len(g) for g in group_for_commit(pieces, "klines")] == [2, 2]
    assert [len(g) for g in group_for_commit(pieces, "agg_trades")] == [1, 1, 1, 1]


def test_commit_failure_propagates_and_cancels_the_rest(archive_server, tmp_path: Path) -> None:
    from kline_lake.errors import LakeError

    serve_real_days(archive_server)
    pieces = plan_range(us(2020, 1, 1), us(2020, 1, 4), us(2024, 6, 1))
    calls: list[int] = []

    async def failing_commit(key, table, covered_us) -> None:
        calls.append(table.num_rows)
        raise LakeError("disk full (simulated by the test's commit function)")

    async def go():
        async with httpx.AsyncClient() as client:
            return await ingest_archive_pieces(client, LakeWriter(tmp_path), SPOT, KEY, pieces,
                                               settings(archive_server), commit=failing_commit)

    with pytest.raises(LakeError, match="disk full"):
        asyncio.run(go())
    assert calls == [4320]  # one month group: the three days in one commit
    assert archive_manifest.read_manifest(tmp_path, KEY) == {}


def test_late_monthly_file_is_fetched_as_daily_files(archive_server, tmp_path: Path) -> None:
    for d in range(1, 30):
        day_ms = int(datetime(2024, 2, d, tzinfo=UTC).timestamp() * 1000)
        archive_server.add_zip(f"data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-02-{d:02d}.zip",
                               kline_csv(day_ms, 24, 3_600_000))
    key = SeriesKey("spot", "klines", "BTCUSDT", "1h")
    now = us(2024, 3, 3)
    pieces = plan_range(us(2024, 2, 1), us(2024, 3, 1), now)
    assert [p.kind for p in pieces] == [MONTHLY]

    async def go():
        async with httpx.AsyncClient() as client:
            s = ArchiveSettings(archive_server.base_url, FetchPolicy(backoff_base_s=0), now_us=now)
            return await ingest_archive_pieces(client, LakeWriter(tmp_path), SPOT, key, pieces, s)

    outcome = asyncio.run(go())
    assert (outcome.stats.files, outcome.stats.not_in_archive, outcome.rest_pieces) == (29, 1, [])
    assert outcome.stats.rows == 29 * 24
    assert LakeWriter(tmp_path).covered(key) == [(us(2024, 2, 1), us(2024, 3, 1))]


def test_a_streamed_trades_day_that_breaks_a_zip_rule_is_kept_out(archive_server,
                                                                 tmp_path: Path) -> None:
    """A trades day is inflated while it is parsed: a member that inflates past its
    declared size is refused by the read that meets it, and nothing of it is committed."""
    from kline_lake.errors import UnsafeArchiveError
    from tests.support.archive import checksum_line

    key = SeriesKey("spot", "trades", "XMRUSDT")
    tdir = "data/spot/daily/trades/XMRUSDT"
    for day in (1, 2):
        t0 = us(2024, 1, day) // 1000
        csv = "".join(f"{day * 10**6 + i},100.5,0.25,25.125,{t0 + i * 1000},True,True\n"
                      for i in range(50_000)).encode()
        archive_server.add_zip(f"{tdir}/XMRUSDT-trades-2024-01-0{day}.zip", csv)
    bad = f"{tdir}/XMRUSDT-trades-2024-01-02.zip"
    raw = bytearray(archive_server.files[bad])
    cd = raw.rfind(b"PK\x01\x02")
    raw[22:26] = raw[cd + 24:cd + 28] = (len(csv) - 4096).to_bytes(4, "little")
    archive_server.files[bad] = bytes(raw)
    archive_server.files[bad + ".CHECKSUM"] = checksum_line(bytes(raw), bad.rsplit("/", 1)[1])
    outcome, writer = ingest(archive_server, tmp_path,
                             plan_range(us(2024, 1, 1), us(2024, 1, 3), us(2024, 6, 1)), key=key)
    assert [type(e) for e in outcome.errors] == [UnsafeArchiveError]
    assert "XMRUSDT-trades-2024-01-02.zip" in str(outcome.errors[0])
    assert "inflates past" in str(outcome.errors[0])
    assert (outcome.stats.files, outcome.stats.rows) == (1, 50_000)
    assert writer.covered(key) == [(us(2024, 1, 1), us(2024, 1, 2))]
    assert read_lake(tmp_path, key).num_rows == 50_000
    assert list(archive_manifest.read_manifest(tmp_path, key)) == [f"{tdir}/XMRUSDT-trades-2024-01-01.zip"]
