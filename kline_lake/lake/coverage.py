"""The record of what was fetched: half-open microsecond ranges ``[start_us, end_us)``.

A range is *covered* when the exchange was asked about it and answered completely; rows
inside it are exactly the rows stored, so an empty covered stretch is confirmed empty
(maintenance, before listing, after delisting). The arithmetic here is pure; the JSON
persistence at the bottom is the only I/O, and it is atomic (temp + fsync + replace).

On-disk format (``<root>/_meta/coverage/<market>/<dataset>/<slug>.json``)::

    {"version": 1, "ranges": [[start_us, end_us], ...]}   # merged, sorted, non-adjacent
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from kline_lake.errors import InputError, LakeError
from kline_lake.lake.atomic import atomic_write_bytes

Range = tuple[int, int]
FORMAT_VERSION = 1


def validate_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Return `ranges` as int pairs; InputError if any is not ``start < end``."""
    out = []
    for item in ranges:
        try:
            start_us, end_us = item
        except (TypeError, ValueError):
            raise InputError(f"a covered range must be a (start_us, end_us) pair, got {item!r}") from None
        if isinstance(start_us, bool) or isinstance(end_us, bool):
            raise InputError(f"covered range bounds must be integers, got {item!r}")
        try:
            start_us, end_us = int(start_us), int(end_us)
        except (TypeError, ValueError):
            raise InputError(f"covered range bounds must be integers, got {item!r}") from None
        if start_us >= end_us:
            raise InputError(f"empty or reversed covered range [{start_us}, {end_us})")
        out.append((start_us, end_us))
    return out


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sort and merge overlapping or touching ranges; drops empty ones."""
    out: list[Range] = []
    for start_us, end_us in sorted(r for r in ranges if r[0] < r[1]):
        if out and start_us <= out[-1][1]:
            if end_us > out[-1][1]:
                out[-1] = (out[-1][0], end_us)
        else:
            out.append((start_us, end_us))
    return out


def union(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    return merge([*a, *b])


def subtract(start_us: int, end_us: int, covered: Iterable[Range]) -> list[Range]:
    """The parts of ``[start_us, end_us)`` not inside `covered` (sorted, merged)."""
    missing: list[Range] = []
    cursor = start_us
    for c_start, c_end in merge(covered):
        if c_end <= cursor:
            continue
        if c_start >= end_us:
            break
        if c_start > cursor:
            missing.append((cursor, c_start))
        cursor = max(cursor, c_end)
        if cursor >= end_us:
            break
    if cursor < end_us:
        missing.append((cursor, end_us))
    return missing


def intersect(start_us: int, end_us: int, covered: Iterable[Range]) -> list[Range]:
    """The parts of ``[start_us, end_us)`` inside `covered` (sorted, merged)."""
    out = []
    for c_start, c_end in merge(covered):
        lo, hi = max(start_us, c_start), min(end_us, c_end)
        if lo < hi:
            out.append((lo, hi))
    return out


def contains(covered: Iterable[Range], start_us: int, end_us: int) -> bool:
    """Whether ``[start_us, end_us)`` lies entirely inside `covered`."""
    return not subtract(start_us, end_us, covered)


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
        ranges = validate_ranges(tuple(r) for r in payload["ranges"])
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


def write(path: Path, ranges: Iterable[Range]) -> None:
    """Atomically replace the record at `path` (temp file, fsync, os.replace, dir fsync)."""
    atomic_write_bytes(Path(path), dumps(ranges).encode("utf-8"))
