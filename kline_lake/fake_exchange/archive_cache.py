"""Built archive zips kept on disk, so a rerun (a benchmark over hundreds of symbol-months)
reuses them instead of building them again.

A file is stored as `<dir>/<model>/seed<seed>/<market>/<dataset>/<zip name>` beside its
`.CHECKSUM` (`archive.checksum_text`, computed once when the zip is built). `<model>` is
`model_version()`: a digest of the source of every module that decides the archive's
bytes (the fake exchange package and `kline_lake.core`), so a change to the synthetic
model, the CSV layout or the zip settings lands in a new folder and an old zip is never
served for it. Writes go to a temporary name first and are renamed into place, so a
reader (another process prebuilding the same tree) sees a whole file or none; the zip is
renamed after its CHECKSUM, so a zip present means its CHECKSUM is too.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

_HERE = Path(__file__).resolve().parent  # kline_lake/fake_exchange


@cache
def model_version() -> str:
    """16 hex digits naming the current synthetic model and archive format."""
    return model_version_of([_HERE, _HERE.parent / "core"])


def model_version_of(roots: list[Path]) -> str:
    """16 hex digits of the names and contents of the `*.py` files in `roots`."""
    digest = hashlib.sha256()
    for root in roots:
        for src in sorted(root.glob("*.py")):
            digest.update(src.name.encode() + b"\0" + src.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class DiskZipCache:
    """Zips and their CHECKSUMs under `root`, for one seed and the current model."""

    def __init__(self, root: str | Path, seed: int) -> None:
        self.root = Path(root) / model_version() / f"seed{seed}"

    def _file(self, market: str, dataset: str, zip_name: str) -> Path:
        return self.root / market / dataset / zip_name

    def get(self, market: str, dataset: str, zip_name: str) -> tuple[bytes, bytes] | None:
        """(zip bytes, CHECKSUM bytes), or None when not stored."""
        file = self._file(market, dataset, zip_name)
        try:
            data = file.read_bytes()
            checksum = file.with_name(zip_name + ".CHECKSUM").read_bytes()
        except FileNotFoundError:
            return None
        return data, checksum

    def put(self, market: str, dataset: str, zip_name: str, data: bytes, checksum: bytes) -> None:
        file = self._file(market, dataset, zip_name)
        file.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(file.with_name(zip_name + ".CHECKSUM"), checksum)
        _write_atomic(file, data)


def _write_atomic(file: Path, data: bytes) -> None:
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, file)
