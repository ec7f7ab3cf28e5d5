"""Safe extraction refuses every layout an archive zip must not have."""

from __future__ import annotations

import io
import zipfile

import pytest

from kline_lake.archive import zip_safety
from kline_lake.archive.zip_safety import (
    UnsafeArchiveError,
    ZipLimits,
    extract_single_csv,
    raw_inflater,
)
from tests.support.archive import make_zip


@pytest.fixture(params=["isal", "stdlib"])
def inflate_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with ISA-L's inflater and again with the stdlib fallback."""
    if request.param == "stdlib":
        monkeypatch.setattr(zip_safety, "_fast_zlib", None)
    else:
        pytest.importorskip("isal")
    return request.param


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


@pytest.mark.usefixtures("inflate_backend")
def test_extracts_the_single_csv() -> None:
    data = b"1,2,3\n" * 100
    name, out = extract_single_csv(make_zip("X-1m-2024-01.csv", data), "X-1m-2024-01.zip")
    assert (name, out) == ("X-1m-2024-01.csv", data)


@pytest.mark.parametrize(
    "member",
    ["../evil.csv", "/etc/passwd.csv", "a/b.csv", "..\\x.csv", "C:evil.csv", "data.txt"],
)
def test_refuses_path_tricks_and_non_csv(member: str) -> None:
    with pytest.raises(UnsafeArchiveError, match="evil.zip"):
        extract_single_csv(_zip([(member, b"1,2\n")]), "evil.zip")


def test_refuses_zero_or_many_members_and_garbage() -> None:
    with pytest.raises(UnsafeArchiveError, match="exactly one"):
        extract_single_csv(_zip([]), "e.zip")
    with pytest.raises(UnsafeArchiveError, match="exactly one"):
        extract_single_csv(_zip([("a.csv", b"1"), ("b.csv", b"2")]), "e.zip")
    with pytest.raises(UnsafeArchiveError, match="not a valid zip"):
        extract_single_csv(b"PK\x03\x04 not really", "e.zip")


@pytest.mark.usefixtures("inflate_backend")
def test_size_and_ratio_caps() -> None:
    bomb = make_zip("bomb.csv", b"0" * (20 * 1024 * 1024))  # ~1000x compressible
    with pytest.raises(UnsafeArchiveError, match="ratio"):
        extract_single_csv(bomb, "bomb.zip")
    with pytest.raises(UnsafeArchiveError, match="over the cap"):
        extract_single_csv(make_zip("a.csv", b"12345,6\n" * 1000), "a.zip", ZipLimits(max_uncompressed_bytes=1000))
    with pytest.raises(ValueError):
        ZipLimits(max_uncompressed_bytes=0)


@pytest.mark.usefixtures("inflate_backend")
def test_declared_size_that_lies_is_caught_while_inflating() -> None:
    data = make_zip("a.csv", b"1,2,3\n" * 1000)
    # Patch the declared uncompressed size (local header offset 22, central dir +24) to 10
    # bytes: inflating must stop at the declared size instead of trusting it.
    raw = bytearray(data)
    cd = raw.rfind(b"PK\x01\x02")
    raw[22:26] = (10).to_bytes(4, "little")
    raw[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    with pytest.raises(UnsafeArchiveError, match="a.zip"):
        extract_single_csv(bytes(raw), "a.zip")


@pytest.mark.usefixtures("inflate_backend")
def test_crc_checked_unless_the_sha256_already_vouched() -> None:
    data = b"1,2,3\n" * 500
    raw = bytearray(make_zip("a.csv", data))
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 16:cd + 20] = (0xDEADBEEF).to_bytes(4, "little")  # central-directory CRC-32
    with pytest.raises(UnsafeArchiveError, match="CRC"):
        extract_single_csv(bytes(raw), "a.zip")
    assert extract_single_csv(bytes(raw), "a.zip", check_crc=False)[1] == data


@pytest.mark.usefixtures("inflate_backend")
def test_stored_member_and_truncated_deflate() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("s.csv", b"9,8\n" * 10)
    assert extract_single_csv(buf.getvalue(), "s.zip") == ("s.csv", b"9,8\n" * 10)
    whole = make_zip("t.csv", bytes(range(256)) * 400)
    cut = whole[:60] + whole[-100:]  # keep the directory, lose most of the data
    with pytest.raises(UnsafeArchiveError, match="t.zip"):
        extract_single_csv(cut, "t.zip")


def test_isal_and_stdlib_inflate_identically() -> None:
    pytest.importorskip("isal")
    data = b"".join(b"%d,%.8f,%d\n" % (i, i / 7, i * 60_000) for i in range(20_000))
    member = make_zip("m.csv", data)
    raw = member[30 + len("m.csv"):member.rfind(b"PK\x01\x02")]
    fast, slow = raw_inflater(), raw_inflater(prefer_fast=False)
    assert type(fast).__module__ != type(slow).__module__  # really two implementations
    assert fast.decompress(raw, len(data) + 1) == slow.decompress(raw, len(data) + 1) == data
    assert fast.eof and slow.eof
    # A cap below the size stops both at the cap, with input left over.
    fast, slow = raw_inflater(), raw_inflater(prefer_fast=False)
    assert len(fast.decompress(raw, 1000)) == len(slow.decompress(raw, 1000)) == 1000
    assert not fast.eof and not slow.eof


@pytest.mark.usefixtures("inflate_backend")
def test_corrupt_deflate_stream_is_an_unsafe_archive() -> None:
    data = b"1,2,3\n" * 5000
    raw = bytearray(make_zip("c.csv", bytes(range(256)) * 40 + data))
    start = 30 + len("c.csv")
    raw[start:start + 4] = b"\xff\xff\xff\xff"  # an invalid deflate block header
    with pytest.raises(UnsafeArchiveError, match="c.zip"):
        extract_single_csv(bytes(raw), "c.zip", check_crc=False)
