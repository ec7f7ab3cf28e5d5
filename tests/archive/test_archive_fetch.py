"""Archive fetch over a real loopback HTTP server: checksum first, retries, 404."""

from __future__ import annotations

import asyncio
import hashlib
import io
import zipfile
from pathlib import Path

import httpx
import pytest

from kline_lake.archive.checksum import parse_checksum
from kline_lake.archive.csv import parse_archive_csv
from kline_lake.archive.fetch import (
    FetchPolicy,
    NotInArchive,
    fetch_archive_file,
    fetch_checksum,
)
from kline_lake.errors import ChecksumError, TransientError, UnsafeArchiveError
from tests.support.archive import REAL_DIR, checksum_line

FAST = FetchPolicy(backoff_base_s=0.0)
PATH = "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip"


def _fetch(url: str, policy: FetchPolicy = FAST, **kw):
    async def go():
        async with httpx.AsyncClient(timeout=10) as client:
            return await fetch_archive_file(client, url, policy, **kw)

    return asyncio.run(go())


def _serve_real(server, day: str = "2020-01-01") -> str:
    name = f"BTCUSDT-1m-{day}.zip"
    path = f"data/spot/daily/klines/BTCUSDT/1m/{name}"
    server.files[path] = Path(REAL_DIR, name).read_bytes()
    server.files[path + ".CHECKSUM"] = Path(REAL_DIR, name + ".CHECKSUM").read_bytes()
    return path


def test_parse_checksum() -> None:
    hexd = "a" * 64
    assert parse_checksum(f"{hexd}  F.zip\n", "F.zip") == hexd
    assert parse_checksum(f"{hexd.upper()} *F.zip", "F.zip") == hexd
    with pytest.raises(ChecksumError, match="F.zip"):
        parse_checksum("not a checksum", "F.zip")
    with pytest.raises(ChecksumError, match="another file"):
        parse_checksum(f"{hexd}  G.zip", "F.zip")


def test_real_zips_verify_and_parse(archive_server) -> None:
    for day in ("2020-01-01", "2020-01-02", "2020-01-03"):
        path = _serve_real(archive_server, day)
        seen: list[int] = []
        got = _fetch(f"{archive_server.base_url}/{path}", on_bytes=seen.append)
        assert got.filename == f"BTCUSDT-1m-{day}.zip"
        assert got.sha256 == hashlib.sha256(archive_server.files[path]).hexdigest()
        assert sum(seen) == got.zip_bytes == len(archive_server.files[path])
        table = parse_archive_csv(got.csv_bytes, "klines")
        assert table.num_rows == 1440
        opens = table.column("open_time").cast("int64").to_pylist()
        assert opens == sorted(opens) and opens[1] - opens[0] == 60_000_000


def test_checksum_mismatch_is_retried_then_succeeds(archive_server) -> None:
    path = _serve_real(archive_server)
    archive_server.corrupt[path] = 2
    got = _fetch(f"{archive_server.base_url}/{path}")
    assert got.attempts == 3
    assert archive_server.hits[path] == 3 and archive_server.hits[path + ".CHECKSUM"] == 3


def test_persistent_mismatch_raises_naming_the_file(archive_server) -> None:
    path = _serve_real(archive_server)
    archive_server.corrupt[path] = 100
    with pytest.raises(ChecksumError, match=r"BTCUSDT-1m-2020-01-01\.zip: sha256 .* does not match"):
        _fetch(f"{archive_server.base_url}/{path}")
    assert archive_server.hits[path] == FAST.checksum_attempts


def test_404_means_not_in_archive(archive_server) -> None:
    with pytest.raises(NotInArchive) as err:
        _fetch(f"{archive_server.base_url}/{PATH}")
    assert err.value.status == 404
    # zip present but its CHECKSUM missing: still not a verifiable archive file
    archive_server.add_zip(PATH, b"1,2\n", checksum=False)
    with pytest.raises(NotInArchive):
        _fetch(f"{archive_server.base_url}/{PATH}")


def test_5xx_and_truncation_are_retried(archive_server) -> None:
    path = _serve_real(archive_server)
    archive_server.fail_500[path] = 2
    archive_server.truncate[path] = 1
    archive_server.fail_500[path + ".CHECKSUM"] = 1
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    got = _fetch(f"{archive_server.base_url}/{path}", FetchPolicy(transient_attempts=5), sleep=fake_sleep)
    assert got.attempts == 1
    assert len(sleeps) == 4  # 1 for the CHECKSUM, 3 for the zip
    assert all(0 <= s <= 8.0 for s in sleeps)
    archive_server.fail_500[path] = 10
    with pytest.raises(TransientError, match="HTTP 500"):
        _fetch(f"{archive_server.base_url}/{path}", FetchPolicy(transient_attempts=2, backoff_base_s=0))


def test_size_cap_on_the_zip(archive_server) -> None:
    path = _serve_real(archive_server)
    with pytest.raises(Exception, match="exceeds the cap"):
        _fetch(f"{archive_server.base_url}/{path}", FetchPolicy(max_zip_bytes=1000, backoff_base_s=0))


def test_fetch_checksum_only(archive_server) -> None:
    path = _serve_real(archive_server)

    async def go() -> str:
        async with httpx.AsyncClient() as client:
            return await fetch_checksum(client, f"{archive_server.base_url}/{path}")

    expected = Path(REAL_DIR, "BTCUSDT-1m-2020-01-01.zip.CHECKSUM").read_text().split()[0]
    assert asyncio.run(go()) == expected


def test_stream_leaves_the_csv_in_the_verified_zip(archive_server) -> None:
    """``stream=True``: the same checks and file, the CSV inflated only as it is read."""
    path = _serve_real(archive_server)
    url = f"{archive_server.base_url}/{path}"
    whole, streamed = _fetch(url), _fetch(url, stream=True)
    assert whole.open_csv is None and whole.csv_size == len(whole.csv_bytes)
    assert streamed.csv_bytes is None and streamed.csv_size == len(whole.csv_bytes)
    assert (streamed.sha256, streamed.zip_bytes, streamed.member, streamed.attempts) == \
        (whole.sha256, whole.zip_bytes, whole.member, whole.attempts)
    for _ in range(2):  # each open starts from the beginning
        with streamed.open_csv() as csv:
            assert csv.read() == whole.csv_bytes


def test_stream_refuses_a_bad_layout_at_fetch_and_a_size_lie_at_read(archive_server) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.csv", b"1\n")
        zf.writestr("b.csv", b"2\n")
    two = "data/spot/daily/trades/X/X-trades-2024-01-01.zip"
    archive_server.files[two] = buf.getvalue()
    archive_server.files[two + ".CHECKSUM"] = checksum_line(buf.getvalue(), two.rsplit("/", 1)[1])
    with pytest.raises(UnsafeArchiveError, match="exactly one"):
        _fetch(f"{archive_server.base_url}/{two}", stream=True)
    lie = "data/spot/daily/trades/X/X-trades-2024-01-02.zip"
    data = bytearray(archive_server.add_zip(lie, b"1,2,3,4,5,True,True\n" * 100))
    cd = data.rfind(b"PK\x01\x02")
    data[22:26] = data[cd + 24:cd + 28] = (50).to_bytes(4, "little")  # declares 50 bytes
    archive_server.files[lie] = bytes(data)
    archive_server.files[lie + ".CHECKSUM"] = checksum_line(bytes(data), lie.rsplit("/", 1)[1])
    got = _fetch(f"{archive_server.base_url}/{lie}", stream=True)
    assert got.csv_size == 50
    with got.open_csv() as csv, pytest.raises(UnsafeArchiveError, match="inflates past"):
        csv.read()
