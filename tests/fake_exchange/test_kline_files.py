"""The archive's kline files built column-wise (kline_files) and kept on disk
(archive_cache): the same bytes as the row-by-row REST path, deterministic, reused."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from kline_lake.fake_exchange import archive_cache
from kline_lake.fake_exchange.archive import (
    FUTURES_HEADER_FROM_MS,
    KLINE_HEADER,
    KLINE_KINDS,
    SPOT_US_FROM_MS,
    SyntheticArchive,
    ZipCache,
    kline_opens_in,
    make_zip,
    parse_archive_path,
)
from kline_lake.fake_exchange.archive_cache import DiskZipCache
from kline_lake.fake_exchange.params import TimeRange
from kline_lake.fake_exchange.rest import SyntheticSource
from kline_lake.fake_exchange.universe import utc_ms

NOW_MS = utc_ms("2027-06-01 00:00")


def _row_by_row_csv(source: SyntheticSource, path: str) -> bytes | None:
    """The oracle: the archive's former kline CSV, the REST rows joined by commas."""
    key = parse_archive_path(path)
    assert key is not None and key.interval is not None
    spec = source.spec(key.market, key.symbol)
    assert spec is not None
    n = kline_opens_in(key.start_ms, key.end_ms, key.interval)
    if not n:
        return None
    rows = source.klines(spec, key.interval, TimeRange(key.start_ms, key.end_ms - 1), n,
                         key.ready_ms, KLINE_KINDS[key.dataset])
    if not rows:
        return None
    if spec.market == "spot" and key.start_ms >= SPOT_US_FROM_MS:
        lines = [",".join([str(r[0] * 1000), *r[1:6], str(r[6] * 1000 + 999), *map(str, r[7:])])
                 for r in rows]
    else:
        lines = [",".join(map(str, r)) for r in rows]
    if spec.market != "spot" and key.start_ms >= FUTURES_HEADER_FROM_MS:
        lines.insert(0, KLINE_HEADER)
    return ("\n".join(lines) + "\n").encode()


PATHS = [
    "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-12.zip",  # ms
    "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01.zip",  # us quirk
    "/data/spot/daily/klines/ETHUSDT/1s/ETHUSDT-1s-2025-01-01.zip",
    "/data/spot/monthly/klines/BTCUSDT/1w/BTCUSDT-1w-2024-01.zip",
    "/data/spot/monthly/klines/BTCUSDT/3d/BTCUSDT-3d-2025-02.zip",
    "/data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1mo-2025-03.zip",
    "/data/spot/daily/klines/BTCUSDT/1mo/BTCUSDT-1mo-2025-03-01.zip",
    "/data/spot/monthly/klines/X005USDT/1m/X005USDT-1m-2020-03.zip",  # listed mid-month
    "/data/spot/monthly/klines/X017USDT/1h/X017USDT-1h-2022-07.zip",  # delisted mid-range
    "/data/spot/monthly/klines/X003USDT/5m/X003USDT-5m-2026-11.zip",  # price decimals 6
    "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2021-12-31.zip",  # no header
    "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01-01.zip",  # header
    "/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-09.zip",  # maintenance gap
    "/data/futures/um/monthly/markPriceKlines/BTCUSDT/15m/BTCUSDT-15m-2023-05.zip",
    "/data/futures/um/monthly/indexPriceKlines/X004USDT/1h/X004USDT-1h-2021-12.zip",
    "/data/futures/um/monthly/premiumIndexKlines/X009USDT/1h/X009USDT-1h-2024-02.zip",
    "/data/futures/cm/daily/klines/BTCUSD_PERP/1m/BTCUSD_PERP-1m-2023-08-01.zip",
    "/data/futures/cm/monthly/premiumIndexKlines/BTCUSD_PERP/1d/BTCUSD_PERP-1d-2022-06.zip",
]


@pytest.fixture(scope="module")
def source() -> SyntheticSource:
    return SyntheticSource(7, universe_size=30)


@pytest.mark.parametrize("path", PATHS)
def test_kline_files_equal_the_row_by_row_text(source: SyntheticSource, path: str) -> None:
    expected = _row_by_row_csv(source, path)
    assert expected is not None, path  # every case holds data
    got = SyntheticArchive(source).get(path, NOW_MS)
    assert got is not None
    assert got == make_zip(path.rsplit("/", 1)[1][:-4] + ".csv", expected)
    checksum = SyntheticArchive(source).get(path + ".CHECKSUM", NOW_MS)
    assert checksum == f"{hashlib.sha256(got).hexdigest()}  {path.rsplit('/', 1)[1]}".encode()


def test_oracle_cases_cover_the_quirks(source: SyntheticSource) -> None:
    texts = {p: _row_by_row_csv(source, p) or b"" for p in PATHS}
    assert len(texts[PATHS[0]].split(b",", 1)[0]) == 13
    assert len(texts[PATHS[1]].split(b",", 1)[0]) == 16
    assert texts[PATHS[11]].startswith(KLINE_HEADER.encode() + b"\n")
    assert texts[PATHS[10]][:1].isdigit()
    assert any(b",-" in t for t in texts.values())  # a negative premium is printed too


def test_no_kline_is_none(source: SyntheticSource) -> None:
    before_listing = "/data/spot/monthly/klines/X020USDT/1m/X020USDT-1m-2020-08.zip"
    assert _row_by_row_csv(source, before_listing) is None
    assert SyntheticArchive(source).get(before_listing, NOW_MS) is None
    tuesday = "/data/spot/daily/klines/BTCUSDT/1w/BTCUSDT-1w-2024-01-02.zip"
    assert SyntheticArchive(source).get(tuesday, NOW_MS) is None


def test_disk_cache_reuses_the_built_zip(source: SyntheticSource, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = "/data/spot/monthly/klines/X002USDT/1m/X002USDT-1m-2026-04.zip"
    first = SyntheticArchive(source, disk=DiskZipCache(tmp_path, 7))
    data, checksum = first.get(path, NOW_MS), first.get(path + ".CHECKSUM", NOW_MS)
    stored = tmp_path / archive_cache.model_version() / "seed7" / "spot" / "klines" / path.rsplit("/", 1)[1]
    assert stored.read_bytes() == data
    assert stored.with_name(stored.name + ".CHECKSUM").read_bytes() == checksum
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["X002USDT-1m-2026-04.csv"]

    def no_build(*_: object) -> bytes:
        raise AssertionError("built again")

    monkeypatch.setattr(SyntheticArchive, "_csv_bytes", no_build)
    again = SyntheticArchive(source, ZipCache(), disk=DiskZipCache(tmp_path, 7))
    assert again.get(path + ".CHECKSUM", NOW_MS) == checksum
    assert again.get(path, NOW_MS) == data
    other_seed = SyntheticArchive(source, disk=DiskZipCache(tmp_path, 8))
    with pytest.raises(AssertionError, match="built again"):
        other_seed.get(path, NOW_MS)


def test_model_version_follows_the_source(tmp_path: Path) -> None:
    version = archive_cache.model_version()
    assert len(version) == 16 and DiskZipCache(tmp_path, 1).root.parent.name == version
    (tmp_path / "model.py").write_text("A = 1\n")
    one = archive_cache.model_version_of([tmp_path])
    assert archive_cache.model_version_of([tmp_path]) == one
    (tmp_path / "model.py").write_text("A = 2\n")
    assert archive_cache.model_version_of([tmp_path]) != one


def test_builds_are_deterministic(source: SyntheticSource) -> None:
    path = "/data/futures/um/monthly/klines/X006USDT/1m/X006USDT-1m-2026-01.zip"
    fresh = SyntheticSource(7, universe_size=30)
    assert SyntheticArchive(source).get(path, NOW_MS) == SyntheticArchive(fresh).get(path, NOW_MS)
