"""The archive's sha256 CHECKSUM check. Pure.

Every data.binance.vision file has a ``<file>.CHECKSUM`` beside it holding
``"<sha256 hex>  <file name>"`` (the `sha256sum` format). `fetch` hashes each zip while it
streams in and accepts it only when `checksum_matches` its published digest; nothing of
a file that fails is parsed or written.
"""

from __future__ import annotations

import hmac
import re

from kline_lake.errors import ChecksumError

_SHA256_LINE = re.compile(r"^\s*([0-9a-fA-F]{64})\s+\*?(\S+)\s*$")


def parse_checksum(text: str, expected_name: str) -> str:
    """The lowercase sha256 hex of a ``.CHECKSUM`` body (``"<hex>  <name>"``).

    Raises ChecksumError when the body is not one sha256 line or names another file.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    m = _SHA256_LINE.match(lines[0]) if len(lines) == 1 else None
    if m is None:
        raise ChecksumError(f"{expected_name}: malformed CHECKSUM file: {text[:120]!r}")
    if m.group(2) != expected_name:
        raise ChecksumError(
            f"{expected_name}: CHECKSUM names another file ({m.group(2)!r})"
        )
    return m.group(1).lower()


def checksum_matches(actual_hex: str, expected_hex: str) -> bool:
    """Whether two sha256 hex digests are equal (case-insensitive)."""
    return hmac.compare_digest(actual_hex.lower(), expected_hex.lower())
