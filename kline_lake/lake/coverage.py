"""The record of what was fetched: half-open microsecond ranges ``[start_us, end_us)``.

A range is *covered* when the exchange was asked about it and answered completely; rows
inside it are exactly the rows stored, so an empty covered stretch is confirmed empty
(maintenance, before listing, after delisting). The JSON
persistence is the only I/O, and it is atomic (temp + fsync + replace). The range
arithmetic itself is `kline_lake.core.ranges`.

On-disk format (``<root>/_meta/coverage/<market>/<dataset>/<slug>.json``)::

    {"version": 1, "ranges": [[start_us, end_us], ...]}   # merged, sorted, non-adjacent
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from kline_lake.core.ranges import Range, merge, validate
from kline_lake.core.series import SeriesKey
from kline_lake.errors import LakeError
from kline_lake.lake import layout
from kline_lake.lake.atomic import atomic_write_bytes
from kline_lake.lake.storage import LocalStorage, Storage

FORMAT_VERSION = 1


def dumps(ranges: Iterable[Range]) -> str:
    """Serialise merged ranges to the on-disk JSON text (deterministic)."""
    payload = {"version": FORMAT_VERSION, "ranges": [list(r) for r in merge(ranges)]}
    return json.dumps(payload, separators=(",", ":")) + "\n"


def loads(text: str, source: str = "coverage record") -> list[Range]:
    """Parse the on-disk JSON text; LakeError naming `source` if it is malformed."""
    try:
        payload = json.loads(text)
        if payload.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported version {payload.get('version')!r}")
        ranges = validate(tuple(r) for r in payload["ranges"])
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise LakeError(f"{source}: malformed coverage record: {exc}") from exc
    return merge(ranges)


def read(path: Path) -> list[Range]:
    """The ranges stored at `path` ([] if there is no record yet)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return loads(text, str(path))


def read_at(root: Path | Storage, key: SeriesKey) -> list[Range]:
    """The coverage record of `key` in the lake at `root` (a directory or an object
    store; [] without a record)."""
    if isinstance(root, LocalStorage):
        root = root.path
    if not isinstance(root, Storage):
        return read(layout.coverage_path(root, key))
    rel = layout.coverage_path(Path(), key).as_posix()
    try:
        data = root.read_bytes(rel)
    except FileNotFoundError:
        return []
    return loads(data.decode("utf-8"), root.uri(rel))


def write(path: Path, ranges: Iterable[Range]) -> None:
    """Atomically replace the record at `path` (temp file, fsync, os.replace, dir fsync)."""
    atomic_write_bytes(Path(path), dumps(ranges).encode("utf-8"))
