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
from dataclasses import dataclass

from kline_lake.errors import KlineLakeError

# A month of 1s spot klines is ~2.7M rows * ~150 bytes ~ 400 MB; a month of BTCUSDT
# aggTrades runs to several GB. The defaults admit the former and make the caller opt in
# to the latter (``max_uncompressed_bytes``).
DEFAULT_MAX_UNCOMPRESSED_BYTES = 2 * 1024**3
# Kline CSVs compress about 3-8x, aggTrades about 3-5x; 100x is a zip bomb.
DEFAULT_MAX_RATIO = 100.0
_CHUNK_BYTES = 1 << 20


class UnsafeArchiveError(KlineLakeError):
    """An archive zip breaks a safety rule (layout, member name, size or ratio)."""


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
    zip_bytes: bytes, zip_name: str = "archive.zip", limits: ZipLimits | None = None
) -> tuple[str, bytes]:
    """Return ``(member_name, csv_bytes)`` of the one CSV inside ``zip_bytes``.

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
        return info.filename, _inflate(zf, info, zip_name, limits)


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, zip_name: str, limits: ZipLimits) -> bytes:
    out = bytearray()
    cap = min(limits.max_uncompressed_bytes, info.file_size)
    try:
        with zf.open(info) as member:
            while True:
                chunk = member.read(_CHUNK_BYTES)
                if not chunk:
                    break
                out += chunk
                if len(out) > cap:
                    raise UnsafeArchiveError(
                        f"{zip_name}: member {info.filename!r} inflates past its "
                        f"declared/capped size of {cap} bytes"
                    )
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise UnsafeArchiveError(f"{zip_name}: cannot inflate {info.filename!r}: {exc}") from exc
    return bytes(out)
