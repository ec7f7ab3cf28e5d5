"""Half-open integer ranges ``[start, end)``: the one range algebra of the package. Pure.

Coverage records (microseconds), page plans (milliseconds) and hole lists all use these
functions; the unit is the caller's, stated in its names (`ranges_ms`, `covered_us`).
Results are sorted and merged: touching ranges (`(1, 3)`, `(3, 4)`) become one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kline_lake.errors import InputError

Range = tuple[int, int]


def validate(ranges: Iterable[Range]) -> list[Range]:
    """Return `ranges` as int pairs; InputError if any is not ``start < end``."""
    out = []
    for item in ranges:
        try:
            start, end = item
        except (TypeError, ValueError):
            raise InputError(f"a covered range must be a (start, end) pair, got {item!r}") from None
        if isinstance(start, bool) or isinstance(end, bool):
            raise InputError(f"range bounds must be integers, got {item!r}")
        try:
            start, end = int(start), int(end)
        except (TypeError, ValueError):
            raise InputError(f"range bounds must be integers, got {item!r}") from None
        if start >= end:
            raise InputError(f"empty or reversed range [{start}, {end})")
        out.append((start, end))
    return out


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Sort and merge overlapping or touching ranges; drops empty ones."""
    out: list[Range] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def union(a: Iterable[Range], b: Iterable[Range]) -> list[Range]:
    return merge([*a, *b])


def subtract(start: int, end: int, covered: Iterable[Range]) -> list[Range]:
    """The parts of ``[start, end)`` not inside `covered` (sorted, merged)."""
    missing: list[Range] = []
    cursor = start
    for c_start, c_end in merge(covered):
        if c_end <= cursor:
            continue
        if c_start >= end:
            break
        if c_start > cursor:
            missing.append((cursor, c_start))
        cursor = max(cursor, c_end)
        if cursor >= end:
            break
    if cursor < end:
        missing.append((cursor, end))
    return missing


def intersect(start: int, end: int, covered: Iterable[Range]) -> list[Range]:
    """The parts of ``[start, end)`` inside `covered` (sorted, merged)."""
    out = []
    for c_start, c_end in merge(covered):
        lo, hi = max(start, c_start), min(end, c_end)
        if lo < hi:
            out.append((lo, hi))
    return out


def contains(covered: Iterable[Range], start: int, end: int) -> bool:
    """Whether ``[start, end)`` lies entirely inside `covered`."""
    return not subtract(start, end, covered)


def clip(ranges: Sequence[Range], lo: int, hi: int) -> list[Range]:
    """`ranges` intersected with `[lo, hi)`, in their order, empty pieces dropped
    (unlike `intersect`, nothing is merged)."""
    return [(max(a, lo), min(b, hi)) for a, b in ranges if max(a, lo) < min(b, hi)]


def split(start: int, end: int, step: int) -> list[Range]:
    """`[start, end)` cut into consecutive pieces of at most `step`."""
    if step <= 0:
        raise ValueError("step must be > 0")
    return [(a, min(a + step, end)) for a in range(start, end, step)]


def scale(ranges: Iterable[Range], factor: int) -> list[Range]:
    """Ranges multiplied by `factor` (ms -> us with 1000)."""
    return [(a * factor, b * factor) for a, b in ranges]
