"""Safe extraction of one archive zip. Pure: bytes in, bytes out.

Every data.binance.vision zip holds exactly one CSV named like the zip
(``BTCUSDT-1m-2024-01.zip`` -> ``BTCUSDT-1m-2024-01.csv``). Anything else is refused
before a byte is inflated: more or fewer members, directories, names with a path
(absolute, ``..``, backslashes, drive letters), encrypted members, a declared size above
the cap, a compression ratio above the cap (zip bombs). The cap is enforced again while
inflating, because a zip's declared size can lie.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

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
    limits = limits or ZipLimits()
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
    data = _inflate(zip_bytes, info, zip_name, limits)
    if check_crc and zlib.crc32(data) != info.CRC:
        raise UnsafeArchiveError(f"{zip_name}: member {info.filename!r} fails its CRC-32")
    return info.filename, data


def _member_data(zip_bytes: bytes, info: zipfile.ZipInfo, zip_name: str) -> bytes:
    """The compressed bytes of a member, located through its local file header."""
    off = info.header_offset
    header = zip_bytes[off:off + _LOCAL_HEADER_BYTES]
    if len(header) != _LOCAL_HEADER_BYTES or header[:4] != b"PK\x03\x04":
        raise UnsafeArchiveError(f"{zip_name}: bad local header for {info.filename!r}")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    start = off + _LOCAL_HEADER_BYTES + name_len + extra_len
    data = zip_bytes[start:start + info.compress_size]
    if len(data) != info.compress_size:
        raise UnsafeArchiveError(f"{zip_name}: member {info.filename!r} is truncated")
    return data


def _inflate(zip_bytes: bytes, info: zipfile.ZipInfo, zip_name: str, limits: ZipLimits) -> bytes:
    """Inflate one member in a single pass, never producing more than its declared size
    (capped): a member that inflates past it is refused, not truncated silently."""
    raw = _member_data(zip_bytes, info, zip_name)
    cap = min(limits.max_uncompressed_bytes, info.file_size)
    if info.compress_type == zipfile.ZIP_STORED:
        out = raw
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        inflater = raw_inflater()
        try:
            out = inflater.decompress(raw, cap + 1)
        except _INFLATE_ERRORS as exc:
            raise UnsafeArchiveError(f"{zip_name}: cannot inflate {info.filename!r}: {exc}") from exc
        if len(out) <= cap and not inflater.eof:
            raise UnsafeArchiveError(f"{zip_name}: member {info.filename!r} ends early")
    else:
        raise UnsafeArchiveError(
            f"{zip_name}: unsupported compression method {info.compress_type} for {info.filename!r}"
        )
    if len(out) > cap:
        raise UnsafeArchiveError(
            f"{zip_name}: member {info.filename!r} inflates past its declared/capped size of {cap} bytes"
        )
    if len(out) != info.file_size:
        raise UnsafeArchiveError(
            f"{zip_name}: member {info.filename!r} inflates to {len(out)} bytes, declared {info.file_size}"
        )
    return out


def raw_inflater(*, prefer_fast: bool = True) -> Any:
    """A raw-deflate (zip member) decompressobj: ISA-L's when installed, else stdlib zlib.

    Both honour ``decompress(data, max_length)`` and ``eof``, which the size caps rely on.
    """
    if prefer_fast and _fast_zlib is not None:
        return _fast_zlib.decompressobj(-zlib.MAX_WBITS)
    return zlib.decompressobj(-zlib.MAX_WBITS)
