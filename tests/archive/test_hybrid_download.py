"""`--source auto|archive` through the real download orchestration: archive files from a
loopback archive server whose CSVs are built from the fake exchange's own REST answers,
REST from the fake exchange. The auto lake must equal the REST-only lake."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.archive.hybrid import HybridProgress, kline_holes_ms
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange
from tests.support.archive import ArchiveServer

NOW_MS = int(datetime(2024, 3, 5, 12, 0, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000


def rest_day_csv(fx: FakeExchange, day_ms: int) -> bytes:
    """One day of spot BTCUSDT 1h klines as the archive's headerless CSV, from REST."""
    rows = httpx.get(f"{fx.base_url}/api/v3/klines", params={
        "symbol": "BTCUSDT", "interval": "1h", "startTime": day_ms,
        "endTime": day_ms + DAY_MS - 1, "limit": 1000}).json()
    return "".join(",".join(str(v) for v in r) + "\n" for r in rows).encode()


def lake_table(root: Path) -> pa.Table:
    files = sorted((root / "spot" / "klines").rglob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files]).sort_by("open_time")


def run(root: Path, fx: FakeExchange, source: str, start: str, end: str | None = None,
        progress=None):
    req = validate_request(market="spot", dataset="klines", symbols="BTCUSDT", interval="1h",
                           start=start, end=end, lake=root, base_url=fx.base_url, source=source)
    return asyncio.run(run_download(req, progress=progress))


@pytest.fixture
def fx():
    with FakeExchange(seed=3, now_ms=NOW_MS) as exchange:
        yield exchange


def test_auto_uses_archive_then_rest_and_equals_rest_lake(
    fx: FakeExchange, archive_server: ArchiveServer, tmp_path: Path, monkeypatch
) -> None:
    for day in (1, 2, 4):  # 2024-03-03 is "not in the archive": 404 -> REST
        d = ms(2024, 3, day)
        archive_server.add_zip(
            f"data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-03-{day:02d}.zip", rest_day_csv(fx, d)
        )
    monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", archive_server.base_url)
    fx.reset_stats()
    totals = run(tmp_path / "auto", fx, "auto", "2024-03-01")
    assert totals.extra["archive files"] == 3
    assert totals.extra["rows from archive"] == 72
    assert totals.extra["files not in archive"] == 1
    assert totals.extra["rows from REST"] == 24 + 12  # the 404 day + today until the open kline
    assert totals.rows_written == 108
    assert archive_server.hits["data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-03-03.zip.CHECKSUM"] == 1

    run(tmp_path / "rest", fx, "rest", "2024-03-01")
    assert lake_table(tmp_path / "auto").equals(lake_table(tmp_path / "rest"))

    # a rerun fetches nothing: the coverage record holds
    fx.reset_stats()
    again = run(tmp_path / "auto", fx, "auto", "2024-03-01", "2024-03-05T11:00")
    assert again.rows_written == 0 and "archive files" not in again.extra


def test_source_archive_skips_what_the_archive_lacks(
    fx: FakeExchange, archive_server: ArchiveServer, tmp_path: Path, monkeypatch
) -> None:
    archive_server.add_zip("data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-03-01.zip",
                           rest_day_csv(fx, ms(2024, 3, 1)))
    monkeypatch.setenv("KLINE_LAKE_ARCHIVE_URL", archive_server.base_url)
    fx.reset_stats()
    stream = io.StringIO()
    totals = run(tmp_path, fx, "archive", "2024-03-01", "2024-03-03",
                 progress=HybridProgress(stream=stream, disable=False))
    assert totals.rows_written == 24
    drawn = stream.getvalue()
    assert "archive files" in drawn and "2/2" in drawn  # one ingested, one 404
    assert "archive bytes" in drawn
    assert totals.extra["ranges skipped (not in archive)"] == 1
    klines_weight = fx.stats()["spot"]["weight"]
    assert klines_weight <= 40  # exchangeInfo (20) + time; no klines pages


def test_kline_holes_pure() -> None:
    opens = np.array([0, 60_000, 240_000, 300_000], dtype=np.int64)
    assert kline_holes_ms(opens, "1m", [(0, 420_000)]) == [(120_000, 240_000), (360_000, 420_000)]
    assert kline_holes_ms(opens[:0], "1m", [(0, 60_000)]) == [(0, 60_000)]
    assert kline_holes_ms(opens, "1M", [(0, 1)]) == []


def test_kline_holes_when_periods_do_not_start_on_an_open() -> None:
    # February 2024 of 1w klines: the month starts on a Thursday, the first week opens on
    # Monday the 5th; Feb 1..4 belong to the week of January 29 (January's file)
    mondays = np.array([ms(2024, 2, d) for d in (5, 12, 19, 26)], dtype=np.int64)
    february = [(ms(2024, 2, 1), ms(2024, 3, 1))]
    assert kline_holes_ms(mondays, "1w", february) == []
    assert kline_holes_ms(mondays[1:], "1w", february) == [(ms(2024, 2, 5), ms(2024, 2, 12))]
    assert kline_holes_ms(mondays[[0, 1, 3]], "1w", february) == [(ms(2024, 2, 19), ms(2024, 2, 26))]
    # a day on which no weekly kline opens (Tuesday) has no hole; a Monday without one has
    assert kline_holes_ms(mondays[:0], "1w", [(ms(2024, 2, 6), ms(2024, 2, 7))]) == []
    assert kline_holes_ms(mondays[:0], "1w", [(ms(2024, 2, 5), ms(2024, 2, 6))]) == [
        (ms(2024, 2, 5), ms(2024, 2, 6))]
    # 3d opens are aligned on the epoch: 2024-02-01 is not one (2024-02-02 is)
    opens_3d = np.arange(ms(2024, 2, 2), ms(2024, 3, 1), 3 * DAY_MS, dtype=np.int64)
    assert kline_holes_ms(opens_3d, "3d", february) == []
