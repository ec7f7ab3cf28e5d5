"""A commit's new partition files built outside the series lock, published under it.

`kline_lake.lake.writer.LakeWriter.commit` on a local lake works in two steps, so that
another process committing other months of the same series is not made to wait while
this one reads, merges and compresses (the slow part of a commit):

1. Stage, without the lock: for each partition the commit touches, note what it holds
   (`snapshot`: name, inode, size, mtime and ctime of each ``*.parquet``), merge the new
   rows with the stored ones and write each changed file as a hidden temp file beside
   its target (``.<name>.<pid>.<random>.tmp``, which no ``*.parquet`` glob matches). The
   temps of the whole commit, and the directories created for them, are then fsynced
   together (`fsync_all`: concurrent calls, which the filesystem's journal commits as
   one group instead of one flush per file).
2. Publish, under the lock: a partition whose snapshot is unchanged gets its temps
   renamed over their targets, and every such directory is fsynced (again as one
   group); a partition that another writer changed meanwhile (or that holds files
   other than the canonical ones) is rebuilt there and then, under the lock, by the
   one-step path (`kline_lake.lake.partitions.rewrite_partition`). Only then is coverage
   written.

Durability is that of the one-step path: every data file is fsynced before its rename,
every rename's directory before the coverage record. A crash leaves the old files, or
new ones without coverage (refetched and merged idempotently by a rerun), plus at worst
orphaned temps that readers never see. An orphan is removed by the next commit to its
partition once it is stale: its writer process is gone (the pid in its name) or it is
older than `STALE_TEMP_S`. A live writer's staged temps are left alone. Not pure: files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pyarrow as pa

from kline_lake.lake.atomic import create_dirs, fsync_dir, fsync_file
from kline_lake.lake.layout import TMP_SUFFIX

# A staged temp is written and published within seconds; one older than this is an orphan
# whatever its pid says (a pid may be reused, or belong to another host on a shared volume).
STALE_TEMP_S = 600.0
# fsyncs issued at once (each waits on the disk, not on a CPU)
MAX_CONCURRENT_FSYNCS = 16

Snapshot = tuple[tuple[str, int, int, int, int], ...]


@dataclass
class StagedPartition:
    """One partition of a commit: what it held when staged, the rows to merge into it
    (kept to rebuild it under the lock if it changed), and the durable temp file of each
    file whose content changes (a file whose merge equals what is stored has none)."""

    pdir: Path
    seen: Snapshot
    new_by_file: dict[str, pa.Table]
    temps: dict[str, Path] = field(default_factory=dict)
    rebuild: bool = False  # publish by the one-step path under the lock

    def discard(self) -> None:
        """Remove the temps not published (after a rebuild, an error, or a crash seam)."""
        for tmp in self.temps.values():
            tmp.unlink(missing_ok=True)
        self.temps = {}


def snapshot(pdir: Path) -> Snapshot:
    """What the partition directory holds, by identity: (name, inode, size, mtime_ns,
    ctime_ns) of each ``*.parquet`` file, sorted; empty if there is no directory. Any
    replace, removal or addition by another writer changes it. Orphaned temps met on
    the way are removed (`temp_is_stale`)."""
    try:
        entries = list(os.scandir(pdir))
    except FileNotFoundError:
        return ()
    out = []
    now_s = time.time()
    for entry in entries:
        if entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX):
            if temp_is_stale(Path(entry.path), now_s):
                Path(entry.path).unlink(missing_ok=True)
            continue
        if entry.name.startswith(".") or not entry.name.endswith(".parquet"):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed since the listing
        out.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(sorted(out))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def temp_is_stale(path: Path, now_s: float | None = None) -> bool:
    """True for an orphaned temp: a name without a pid, a pid that is not running here,
    or older than `STALE_TEMP_S`."""
    parts = path.name[:-len(TMP_SUFFIX)].split(".") if path.name.endswith(TMP_SUFFIX) else []
    try:
        pid = int(parts[-2])
        age_s = (time.time() if now_s is None else now_s) - path.stat().st_mtime
    except (IndexError, ValueError):
        return True
    except FileNotFoundError:
        return False  # already gone (published or removed)
    return age_s > STALE_TEMP_S or not _pid_alive(pid)


def remove_stale_temps(pdir: Path) -> None:
    """Remove the partition's orphaned temps (invisible to readers; see `temp_is_stale`)."""
    now_s = time.time()
    for tmp in pdir.glob(f".*{TMP_SUFFIX}"):
        if temp_is_stale(tmp, now_s):
            tmp.unlink(missing_ok=True)


def run_all(calls: Iterable[Callable[[], None]]) -> None:
    """Run `calls` concurrently (for fsyncs: the waits overlap and the journal commits them
    together); the first error is raised after all have run."""
    calls = list(calls)
    if len(calls) <= 1:
        for call in calls:
            call()
        return
    with ThreadPoolExecutor(min(MAX_CONCURRENT_FSYNCS, len(calls)),
                            thread_name_prefix="kline-lake-fsync") as pool:
        futures = [pool.submit(call) for call in calls]
    for future in futures:
        future.result()


def fsync_all(files: Iterable[Path] = (), dirs: Iterable[Path] = ()) -> None:
    """fsync `files` and `dirs` (each once), concurrently."""
    run_all([*(partial(fsync_file, p) for p in dict.fromkeys(files)),
             *(partial(fsync_dir, p) for p in dict.fromkeys(dirs))])


def make_dirs(dirs: Iterable[Path]) -> None:
    """Create `dirs` and their missing parents, then fsync every directory that gained
    an entry, concurrently (the batched form of `kline_lake.lake.atomic.ensure_dir`)."""
    created = [d for path in dict.fromkeys(Path(p) for p in dirs) for d in create_dirs(path)]
    fsync_all(dirs=[d.parent for d in created])
