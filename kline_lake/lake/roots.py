"""Lake roots and series directories checked before anything is written. Not pure:
looks at the filesystem (and probes an object store's bucket once)."""

from __future__ import annotations

import os
from pathlib import Path

from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError, LakeError
from kline_lake.lake import layout
from kline_lake.lake.atomic import ensure_dir
from kline_lake.lake.storage import LocalStorage, Storage, open_storage, split_url


def check_exact_case(series_dir: Path) -> None:
    """LakeError if the filesystem folded `series_dir`'s name onto another case.

    ``interval=1m`` and ``interval=1M`` (the DESIGN.md layout) are one directory on a
    case-insensitive filesystem (macOS and Windows defaults); writing both would mix minute
    and month klines in one file, so the second one is refused instead.
    """
    ensure_dir(series_dir)
    if series_dir.name not in os.listdir(series_dir.parent):
        raise LakeError(
            f"{series_dir}: this filesystem is case-insensitive and already holds another "
            f"interval under the same name (1m vs 1M); use a case-sensitive lake volume")


def check_root(root: Path) -> Path:
    """Validate a lake root without creating it: InputError if it (or an ancestor) is a
    file, LakeError if it cannot be created for lack of permission."""
    if root.exists() and not root.is_dir():
        raise InputError(f"lake path {root} exists and is not a directory")
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise InputError(f"lake path {root}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise LakeError(f"lake path {root} is not writable ({probe})")
    return root


def check_lake_root(lake: str | Path | Storage) -> Path | str:
    """`check_root` for a local lake (its Path); for an object-store URL (or a
    `Storage`) the normalised URL, after probing its bucket once (InputError, one line,
    for an unknown scheme, a missing bucket or package, no credentials)."""
    if isinstance(lake, Storage) or split_url(lake)[0]:
        storage = open_storage(lake)
        if not isinstance(storage, LocalStorage):
            return storage.uri()
        lake = storage.path
    return check_root(Path(lake))


def is_object_store(root: str | Path | Storage) -> bool:
    """True for an object-store root (a URL other than ``file://``)."""
    if isinstance(root, Storage):
        return not isinstance(root, LocalStorage)
    return bool(split_url(root)[0])


def list_partitions(root: Path, key: SeriesKey) -> list[Path]:
    """The existing year/month partition directories of a series, oldest first."""
    base = layout.series_dir(root, key)
    out = []
    for ydir in sorted(base.glob("year=*")):
        out.extend(sorted(p for p in ydir.glob("month=*") if p.is_dir()))
    return out
