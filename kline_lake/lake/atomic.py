"""Atomic, durable file replacement: the only way the lake writes a file.

Write to a hidden temp file in the target directory (``.<name>.<pid>.<random>.tmp``, which
no ``*.parquet`` glob matches), fsync it, ``os.replace`` it over the target, then fsync the
directory so the rename itself survives a power cut. A crash at any point leaves either the
old file or the new one, plus at worst an orphaned temp file that readers never see.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from kline_lake.lake.layout import TMP_SUFFIX


def temp_path_for(target: Path) -> Path:
    """A unique hidden temp path beside `target`."""
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}"


def fsync_dir(path: Path) -> None:
    """fsync a directory so renames inside it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_dirs(path: Path) -> list[Path]:
    """Create `path` and its missing parents (no fsync); the directories created, top
    first. One created concurrently by another writer is not counted."""
    path = Path(path)
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            if not directory.is_dir():
                raise
            continue  # created concurrently by another writer
        created.append(directory)
    return created


def ensure_dir(path: Path) -> None:
    """Create `path` and missing parents, fsyncing each parent after a new entry, so a
    directory created for a file survives a power cut together with the file."""
    for directory in create_dirs(path):
        fsync_dir(directory.parent)


def atomic_write_with(target: Path, write: Callable[[Path], None],
                      before_replace: Callable[[Path], None] | None = None) -> None:
    """Call ``write(tmp_path)``, fsync, and atomically move the result onto `target`.

    `before_replace` (a test seam) runs after the temp file is durable and before the rename.
    """
    target = Path(target)
    ensure_dir(target.parent)
    tmp = temp_path_for(target)
    try:
        write(tmp)
        fsync_file(tmp)
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes) -> None:
    """Atomically replace `target` with `data`."""
    atomic_write_with(Path(target), lambda tmp: tmp.write_bytes(data))
