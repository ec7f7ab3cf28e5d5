"""Inter-process lock per series (``fcntl.flock`` on a file under ``<root>/_meta/locks/``).

flock locks belong to the open file description: they are released by the kernel when the
holder exits or is killed (SIGKILL included), so a crashed writer never leaves a stale
lock behind. POSIX only (Linux, macOS), like the rest of the lake's durability story.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from kline_lake.errors import LakeError

DEFAULT_TIMEOUT_S = 600.0
POLL_INTERVAL_S = 0.02


class FileLock:
    """An exclusive flock on `path`, as a context manager.

    Blocks up to `timeout_s` (None = forever), then raises LakeError naming the lock file.
    Not re-entrant within one process: take it once per critical section.
    """

    def __init__(self, path: Path, timeout_s: float | None = DEFAULT_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    raise LakeError(
                        f"lake series is locked by another process for more than "
                        f"{self.timeout_s:.0f} s: {self.path}"
                    ) from None
                time.sleep(POLL_INTERVAL_S)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
