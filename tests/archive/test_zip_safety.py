"""Safe extraction refuses every layout an archive zip must not have."""

from __future__ import annotations

import io
import zipfile
import zlib

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


# --- the streaming opener: the same bytes and the same refusals as extract_single_csv ---

def _stored(member: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr(zipfile.ZipInfo(member, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def _patch(zip_bytes: bytes, *, method: int | None = None, file_size: int | None = None,
           crc: int | None = None) -> bytes:
    """A single-member zip with fields of its local header and central directory rewritten."""
    raw = bytearray(zip_bytes)
    cd = raw.rfind(b"PK\x01\x02")
    for value, local, central, width in ((method, 8, 10, 2), (crc, 14, 16, 4),
                                         (file_size, 22, 24, 4)):
        if value is not None:
            raw[local:local + width] = value.to_bytes(width, "little")
            raw[cd + central:cd + central + width] = value.to_bytes(width, "little")
    return bytes(raw)


def _deflated_payload(member: str, payload: bytes, file_size: int) -> bytes:
    """A zip whose member is ``payload`` taken as raw deflate of ``file_size`` bytes."""
    return _patch(_stored(member, payload), method=zipfile.ZIP_DEFLATED, file_size=file_size)


def _read_stream(zip_bytes: bytes, name: str, read_size: int | None, limits=None,
                 check_crc: bool = True) -> tuple[bytes, int]:
    """The stream's bytes, read ``read_size`` at a time (None: one ``read()``), and the
    declared size open_single_member reported."""
    _, size, opener = zip_safety.open_single_member(zip_bytes, name, limits, check_crc=check_crc)
    with opener() as stream:
        if read_size is None:
            return stream.read(), size
        out, buf = bytearray(), bytearray(read_size)
        while got := stream.readinto(buf):
            assert len(out) + got <= size, "the stream yielded past the declared size"
            out += buf[:got]
        return bytes(out), size


_DATA = b"".join(b"%d,%.8f,%d\n" % (i, i / 7, i * 60_000) for i in range(6000))[:-3]  # a multiple of 4 bytes


@pytest.mark.usefixtures("inflate_backend")
@pytest.mark.parametrize("in_chunk", [64, 1 << 20])
@pytest.mark.parametrize("read_size", [1, 7, 4096, len(_DATA) // 4, len(_DATA), len(_DATA) + 1,
                                       None])
@pytest.mark.parametrize("stored", [False, True])
def test_stream_gives_the_extracted_bytes(monkeypatch: pytest.MonkeyPatch, in_chunk: int,
                                          read_size: int | None, stored: bool) -> None:
    assert len(_DATA) % 4 == 0  # a read size that ends exactly at the member's end
    monkeypatch.setattr(zip_safety, "_STREAM_INPUT_BYTES", in_chunk)
    z = (_stored if stored else make_zip)("X-trades-2025-01-01.csv", _DATA)
    name, whole = extract_single_csv(z, "x.zip")
    assert whole == _DATA
    for check_crc in (True, False):
        assert _read_stream(z, "x.zip", read_size, check_crc=check_crc) == (whole, len(_DATA))
    assert zip_safety.open_single_member(z, "x.zip")[0] == name
    _, _, opener = zip_safety.open_single_member(z, "x.zip")
    with opener() as first, opener() as second:  # each opener() starts from the beginning
        assert first.read(10) == second.read(10) == _DATA[:10]


def _refusals() -> dict[str, tuple[bytes, ZipLimits | None, str]]:
    """Bad zips -> (zip, limits, words of the refusal)."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    whole = deflate.compress(_DATA) + deflate.flush()
    unfinished = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    no_final_block = unfinished.compress(_DATA) + unfinished.flush(zlib.Z_SYNC_FLUSH)
    corrupt = bytearray(make_zip("c.csv", bytes(range(256)) * 40 + _DATA))
    corrupt[30 + len("c.csv"):30 + len("c.csv") + 4] = b"\xff\xff\xff\xff"
    return {
        "bigger than declared": (_patch(make_zip("a.csv", _DATA), file_size=1000), None,
                                 "inflates past its declared/capped size of 1000 bytes"),
        "stored, bigger than declared": (_patch(_stored("a.csv", _DATA), file_size=1000), None,
                                         "inflates past"),
        "smaller than declared": (_patch(make_zip("a.csv", _DATA), file_size=len(_DATA) + 5),
                                  None, f"inflates to {len(_DATA)} bytes, declared"),
        "truncated deflate": (_deflated_payload("a.csv", whole[:len(whole) // 2], len(_DATA)),
                              None, "ends early"),
        "no final block, all bytes there": (
            _deflated_payload("a.csv", no_final_block, len(_DATA)), None, "ends early"),
        "declared size over the cap": (make_zip("a.csv", _DATA), ZipLimits(1000), "over the cap"),
        "corrupt deflate": (bytes(corrupt), None, "cannot inflate 'c.csv'"),
        "bad CRC": (_patch(make_zip("a.csv", _DATA), crc=0xDEADBEEF), None, "fails its CRC-32"),
        "unsupported method": (_patch(make_zip("a.csv", _DATA), method=12), None,
                               "unsupported compression method 12"),
        "two members": (_zip([("a.csv", b"1"), ("b.csv", b"2")]), None, "exactly one"),
    }


def _message(fn) -> str | None:
    try:
        fn()
    except UnsafeArchiveError as exc:
        return str(exc)
    return None


@pytest.mark.usefixtures("inflate_backend")
@pytest.mark.parametrize("case", sorted(_refusals()))
@pytest.mark.parametrize("read_size", [1, 4096, len(_DATA), None])
def test_stream_refuses_what_extract_refuses_in_the_same_words(
        monkeypatch: pytest.MonkeyPatch, case: str, read_size: int | None) -> None:
    monkeypatch.setattr(zip_safety, "_STREAM_INPUT_BYTES", 512)
    z, limits, words = _refusals()[case]
    whole = _message(lambda: extract_single_csv(z, "bad.zip", limits))
    assert whole is not None and words in whole and whole.startswith("bad.zip: ")
    assert _message(lambda: _read_stream(z, "bad.zip", read_size, limits)) == whole
    if case == "bad CRC":  # unchecked, the stream gives the member's bytes
        assert _read_stream(z, "bad.zip", read_size, check_crc=False)[0] == _DATA
