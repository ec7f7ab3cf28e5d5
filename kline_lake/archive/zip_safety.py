"""Safe extraction of one archive zip. Pure: bytes in, bytes (or a stream of them) out.

Every data.binance.vision zip holds exactly one CSV named like the zip
(``BTCUSDT-1m-2024-01.zip`` -> ``BTCUSDT-1m-2024-01.csv``). Anything else is refused
before a byte is inflated: more or fewer members, directories, names with a path
(absolute, ``..``, backslashes, drive letters), encrypted members, a declared size above
the cap, a compression ratio above the cap (zip bombs). The cap is enforced again while
inflating, because a zip's declared size can lie.

The member comes out whole (:func:`extract_single_csv`) or as a stream inflated as it is
read (:func:`open_single_member`: a day of trades is gigabytes of CSV); both run the same
checks and the same inflate loop (``_Inflation``), so they refuse the same members with
the same messages.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from kline_lake.errors import UnsafeArchiveError

try:  # ISA-L inflates archive zips ~2.7x faster than stdlib zlib (same raw-deflate API).
    from isal import isal_zlib as _fast_zlib

    _INFLATE_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _fast_zlib.error)
except ImportError:  # optional speed-up: fall back to the standard library
    _fast_zlib = None
    _INFLATE_ERRORS = (zlib.error,)

# A month of 1s spot klines is ~2.7M rows * ~150 bytes ~ 400 MB; a month of BTCUSDT
# aggTrades runs to several GB. The defaults admit the former and make the caller opt in
# to the latter (``max_uncompressed_bytes``).
DEFAULT_MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
# Kline CSVs compress about 3-8x, aggTrades about 3-5x; 100x is a zip bomb.
DEFAULT_MAX_RATIO = 100.0
_CHUNK_BYTES = 1 << 20
_STREAM_INPUT_BYTES = 1 << 20  # compressed bytes handed to the inflater per call, streaming
_LOCAL_HEADER_BYTES = 30


@dataclass(frozen=True)
class ZipLimits:
    """Caps applied to one archive zip."""

    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO

    def __post_init__(self) -> None:
        if self.max_uncompressed_bytes <= 0 or self.max_ratio <= 1:
            raise ValueError("zip limits must be positive (ratio above 1)")


def _check_name(name: str, zip_name: str) -> None:
    bad = (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or "/" in name
        or ".." in name
        or (len(name) > 1 and name[1] == ":")
        or "\x00" in name
    )
    if bad:
        raise UnsafeArchiveError(f"{zip_name}: refusing member with a path: {name!r}")
    if not name.lower().endswith(".csv"):
        raise UnsafeArchiveError(f"{zip_name}: expected a .csv member, found {name!r}")


def _check_info(info: zipfile.ZipInfo, zip_name: str, limits: ZipLimits) -> None:
    _check_name(info.filename, zip_name)
    if info.flag_bits & 0x1:
        raise UnsafeArchiveError(f"{zip_name}: member {info.filename!r} is encrypted")
    if info.file_size > limits.max_uncompressed_bytes:
        raise UnsafeArchiveError(
            f"{zip_name}: member {info.filename!r} declares {info.file_size} bytes, "
            f"over the cap of {limits.max_uncompressed_bytes}"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _CHUNK_BYTES and ratio > limits.max_ratio:
        raise UnsafeArchiveError(
            f"{zip_name}: member {info.filename!r} compression ratio {ratio:.0f}x "
            f"exceeds {limits.max_ratio:.0f}x"
        )


def extract_single_csv(
    zip_bytes: bytes,
    zip_name: str = "archive.zip",
    limits: ZipLimits | None = None,
    *,
    check_crc: bool = True,
) -> tuple[str, bytes]:
    """Return ``(member_name, csv_bytes)`` of the one CSV inside ``zip_bytes``.

    ``check_crc=False`` skips the member's CRC-32 (a third of the unzip time): only for
    bytes whose sha256 was already verified against the publisher's CHECKSUM, which
    vouches for every byte more strongly than a CRC.
    Raises UnsafeArchiveError when the zip is malformed or breaks a rule above.
    """
    member = _single_member(zip_bytes, zip_name, limits or ZipLimits())
    # all the input at once, one output of at most cap + 1 bytes: a single pass
    inflation = _Inflation(member, len(member.raw), check_crc=check_crc)
    data = inflation.take(member.cap + 1)
    inflation.finish()
    return member.info.filename, data


def open_single_member(
    zip_bytes: bytes,
    zip_name: str = "archive.zip",
    limits: ZipLimits | None = None,
    *,
    check_crc: bool = True,
) -> tuple[str, int, Callable[[], BinaryIO]]:
    """``(member_name, file_size, opener)`` of the one CSV inside ``zip_bytes``, for a
    member too big to hold inflated whole (a day of trades).

    Every rule of :func:`extract_single_csv` that needs no inflating is applied now;
    ``opener()`` returns a binary stream (``read``, ``readinto``, from the start each time)
    that inflates the member as it is read, through the same code and with the same
    messages: it never yields more than the declared (capped) size, and raises
    UnsafeArchiveError at the read that finds the member inflating past it, ending early
    or not inflating (the bytes read before came from a bad member: drop what was built
    from them). The CRC-32, when checked, is compared after the last byte.
    """
    member = _single_member(zip_bytes, zip_name, limits or ZipLimits())

    def opener() -> BinaryIO:
        return cast(BinaryIO, _MemberStream(member, check_crc))

    return member.info.filename, member.info.file_size, opener


@dataclass(frozen=True)
class _Member:
    """The one member of a zip that passed the layout rules: its entry, its compressed
    bytes (a view into the zip, not a copy) and the most it may inflate to."""

    info: zipfile.ZipInfo
    zip_name: str
    raw: memoryview
    cap: int  # the declared size, capped by ZipLimits.max_uncompressed_bytes

    def refuse(self, why: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"{self.zip_name}: member {self.info.filename!r} {why}")


def _single_member(zip_bytes: bytes, zip_name: str, limits: ZipLimits) -> _Member:
    """The one member of ``zip_bytes``, checked by every rule that needs no inflating."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(zip_bytes))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsafeArchiveError(f"{zip_name}: not a valid zip file: {exc}") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) != 1 or infos[0].is_dir():
            names = [i.filename for i in infos]
            raise UnsafeArchiveError(f"{zip_name}: expected exactly one CSV member, found {names}")
        info = infos[0]
        _check_info(info, zip_name, limits)
    raw = _member_data(zip_bytes, info, zip_name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UnsafeArchiveError(
            f"{zip_name}: unsupported compression method {info.compress_type} for {info.filename!r}"
        )
    return _Member(info, zip_name, raw, min(limits.max_uncompressed_bytes, info.file_size))


def _member_data(zip_bytes: bytes, info: zipfile.ZipInfo, zip_name: str) -> memoryview:
    """The compressed bytes of a member, located through its local file header."""
    off = info.header_offset
    header = zip_bytes[off:off + _LOCAL_HEADER_BYTES]
    if len(header) != _LOCAL_HEADER_BYTES or header[:4] != b"PK\x03\x04":
        raise UnsafeArchiveError(f"{zip_name}: bad local header for {info.filename!r}")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    start = off + _LOCAL_HEADER_BYTES + name_len + extra_len
    data = memoryview(zip_bytes)[start:start + info.compress_size]
    if len(data) != info.compress_size:
        raise UnsafeArchiveError(f"{zip_name}: member {info.filename!r} is truncated")
    return data


class _Inflation:
    """One member inflated front to back: the only owner of the inflate-time rules.

    It produces at most ``cap + 1`` bytes in all (one past the cap is how a member that
    inflates past it is caught, and nothing beyond is ever inflated); :meth:`finish`
    applies the end rules once a :meth:`take` came back short. Input goes to the inflater
    ``in_chunk_bytes`` at a time: all at once for the whole-bytes path, bounded for a
    stream (a decompressobj stopped at ``max_length`` copies its unconsumed input).
    """

    def __init__(self, member: _Member, in_chunk_bytes: int, *, check_crc: bool) -> None:
        self.member = member
        self.produced = 0
        self._in_pos, self._in_chunk = 0, max(in_chunk_bytes, 1)
        self._crc: int | None = 0 if check_crc else None
        stored = member.info.compress_type == zipfile.ZIP_STORED
        self._inflater = None if stored else raw_inflater()

    def take(self, n: int) -> bytes:
        """Up to ``n`` more bytes, fewer only where the member's data ends (or at cap + 1)."""
        parts = list(self.pieces(n))
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]  # the whole-bytes path: its one output, not a copy of it
        return b"".join(parts)

    def pieces(self, n: int) -> Iterator[bytes | memoryview]:
        """:meth:`take`'s bytes as the inflater hands them out (a stream copies each
        straight into its reader's buffer)."""
        n = min(n, self.member.cap + 1 - self.produced)
        if n <= 0:
            return
        if self._inflater is None:  # ZIP_STORED: the data is the member's bytes
            yield self._count(self.member.raw[self.produced:self.produced + n])
            return
        inflater, want = self._inflater, n
        while want > 0 and not inflater.eof:
            data = inflater.unconsumed_tail
            if not data:  # empty once the input is spent: lets the inflater flush
                data = self.member.raw[self._in_pos:self._in_pos + self._in_chunk]
                self._in_pos += len(data)
            try:
                out = inflater.decompress(data, want)
            except _INFLATE_ERRORS as exc:
                raise UnsafeArchiveError(
                    f"{self.member.zip_name}: cannot inflate {self.member.info.filename!r}: {exc}"
                ) from exc
            if not out and len(inflater.unconsumed_tail) >= len(data):
                break  # no output and no input taken: the data ends here
            want -= len(out)
            yield self._count(out)

    def _count(self, out: bytes | memoryview) -> bytes | memoryview:
        self.produced += len(out)
        if self._crc is not None:
            self._crc = _crc32(out, self._crc)
        return out

    def finish(self) -> None:
        """Refuse a member that inflated past its cap, ended early, inflated to another
        size than declared, or (when checked) fails its CRC-32."""
        member, size = self.member, self.produced
        if size > member.cap:
            raise member.refuse(f"inflates past its declared/capped size of {member.cap} bytes")
        if self._inflater is not None and not self._inflater.eof:
            raise member.refuse("ends early")
        if size != member.info.file_size:
            raise member.refuse(f"inflates to {size} bytes, declared {member.info.file_size}")
        if self._crc is not None and self._crc != member.info.CRC:
            raise member.refuse("fails its CRC-32")


class _MemberStream(io.RawIOBase):
    """A member read as a binary stream, inflated as it is read (:func:`open_single_member`)."""

    def __init__(self, member: _Member, check_crc: bool) -> None:
        super().__init__()
        self._inflation = _Inflation(member, _STREAM_INPUT_BYTES, check_crc=check_crc)
        self._done = False

    def readable(self) -> bool:
        return True

    def _pieces(self, n: int) -> Iterator[bytes | memoryview]:
        """Up to ``n`` more bytes; at the member's end (or one byte past its cap) the
        end rules, which raise unless the member simply ended."""
        if self.closed:
            raise ValueError("I/O operation on a closed zip member")
        if self._done or n <= 0:
            return
        inflation = self._inflation
        before = inflation.produced
        yield from inflation.pieces(n)
        if inflation.produced == before or inflation.produced > inflation.member.cap:
            self._done = True
            inflation.finish()

    def readinto(self, buffer: Any) -> int:
        view, got = memoryview(buffer).cast("B"), 0
        for piece in self._pieces(len(view)):
            view[got:got + len(piece)] = piece
            got += len(piece)
        return got

    def readall(self) -> bytes:
        parts: list[bytes | memoryview] = []
        while True:
            count = len(parts)
            parts.extend(self._pieces(self._inflation.member.cap + 1))
            if len(parts) == count:
                return b"".join(parts)


def raw_inflater(*, prefer_fast: bool = True) -> Any:
    """A raw-deflate (zip member) decompressobj: ISA-L's when installed, else stdlib zlib.

    Both honour ``decompress(data, max_length)`` and ``eof``, which the size caps rely on.
    """
    if prefer_fast and _fast_zlib is not None:
        return _fast_zlib.decompressobj(-zlib.MAX_WBITS)
    return zlib.decompressobj(-zlib.MAX_WBITS)


def _crc32(data: bytes, value: int) -> int:
    """The running CRC-32 of a member's bytes (ISA-L's when installed: same values)."""
    return (_fast_zlib or zlib).crc32(data, value)
