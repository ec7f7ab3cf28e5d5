"""A machine-wide weight ledger: concurrent processes on one IP split one budget.

Binance counts weight per IP, but the `X-MBX-USED-WEIGHT-*` header shows another
process's spending only once its answers come back; under load that lag lets two
downloads each spend the whole window. Each `RateLimiter` (see `kline_lake.exchange.rate_limiter`)
therefore also reserves its weight here, in a small JSON file per (host, API) under an
exclusive `flock`, before sending.

I/O: the ledger file. `reserve` blocks (the `flock` waits for another process);
`reserve_async` runs it on the ledger's own worker thread so the event loop does not
stall. The thread is the ledger's, not asyncio's default executor, whose workers may be
busy parsing archive CSVs or committing partitions: a reservation never queues behind
them.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)


class SharedLedger:
    """Weight reserved per window by every process of this machine that talks to one
    (host, API): a small JSON file under an exclusive `flock`.

    The server header shows another process's weight only once its answers come back;
    under load that lag lets two processes each spend the window. Reserving through this
    file first makes concurrent downloads (two `kline-lake download` runs, one IP) share
    the budget exactly. Any I/O problem disables the ledger (each process then relies on
    its own accounting and the headers) rather than failing the download.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.enabled = True
        self._worker: ThreadPoolExecutor | None = None

    async def reserve_async(self, entries: Sequence[tuple[str, int, int, int]]) -> int | None:
        """`reserve` off the event loop, on this ledger's single worker thread (calls
        from one process therefore also reach the file one at a time).

        If the awaiting task is cancelled the reservation may still be made: the
        ledger then over-counts, which only makes other processes more careful.
        """
        if not self.enabled or not any(cost for _, _, cost, _ in entries):
            return None
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kline-lake-ledger")
        return await asyncio.get_running_loop().run_in_executor(self._worker, self.reserve, entries)

    def close(self) -> None:
        """Let the worker thread end once its queued reservations are written (the
        ledger stays usable: a later `reserve_async` starts a new one)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=False)

    def reserve(self, entries: Sequence[tuple[str, int, int, int]]) -> int | None:
        """Atomically add every `(name, window index, cost, cap)` if each total stays
        within its cap. Returns None on success, else the position of the first entry
        that does not fit (nothing is added)."""
        if not self.enabled or not any(cost for _, _, cost, _ in entries):
            return None
        try:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                return self._reserve_locked(fd, entries)
            finally:
                os.close(fd)  # closing releases the lock
        except OSError as exc:
            # info, not warning: a read-only home must not add noise to every command
            log.info("weight ledger %s disabled: %s", self.path, exc)
            self.enabled = False
            return None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # first use (or the cache was cleaned): make the folder
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    @staticmethod
    def _reserve_locked(fd: int, entries: Sequence[tuple[str, int, int, int]]) -> int | None:
        raw = os.pread(fd, 1 << 16, 0)
        try:
            state = json.loads(raw) if raw else {}
        except ValueError:
            state = {}  # a torn or foreign file: start afresh
        if not isinstance(state, dict):
            state = {}
        for position, (name, index, cost, cap) in enumerate(entries):
            windows = state.get(name)
            windows = windows if isinstance(windows, dict) else {}
            total = int(windows.get(str(index), 0)) + cost
            if cost and total > cap:
                return position
            windows[str(index)] = total
            # keep the two most recent windows only
            state[name] = {k: v for k, v in windows.items() if int(k) >= index - 1}
        data = json.dumps(state).encode()
        # write, then cut to length: truncating to 0 first makes ext4 (auto_da_alloc)
        # allocate the blocks at close, 0.3 ms per reservation instead of 0.02
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
        return None


def default_ledger_dir() -> Path:
    """`$KLINE_LAKE_STATE_DIR`, else `$XDG_CACHE_HOME/kline-lake`, else ~/.cache/kline-lake."""
    explicit = os.environ.get("KLINE_LAKE_STATE_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "kline-lake"


def ledger_for(host: str, api_prefix: str, directory: Path | None = None) -> SharedLedger:
    """The ledger file of one (host, API prefix)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{host}{api_prefix}").strip("_")
    return SharedLedger((directory or default_ledger_dir()) / "weight" / f"{slug}.json")
