"""Copy a lake between a local directory and object storage, incrementally.

Not pure: reads `src`, writes `dst` (any two roots `kline_lake.lake.storage.open_storage`
accepts). Only objects whose size or SHA-256 differ from the destination's are copied;
each copy is one whole-object write (`Storage.put_bytes`) checked afterwards by size.
Checksums of what the destination holds are kept in its manifest
(``_meta/sync/manifest.json``, written last); an object the manifest does not know is
read back and hashed before it is trusted.

Order: data partitions first, then ``_meta`` records (coverage, exchangeInfo), so a
reader of the destination never sees a coverage record claiming rows that are not
there yet. The whole sync runs under the destination's writer lock
(`kline_lake.lake.storage.StorageLock`), so two syncs (or a sync and another lock
holder) never write one lake at once. Temp files and lock objects are never copied.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from kline_lake.errors import InputError
from kline_lake.lake.layout import TMP_SUFFIX
from kline_lake.lake.storage import Storage, StorageLock, open_storage

MANIFEST_KEY = "_meta/sync/manifest.json"
_SKIP_PREFIXES = ("_meta/locks/", "_meta/sync/")


@dataclass
class SyncReport:
    """What a sync did: keys copied (with their bytes), unchanged, deleted."""

    copied: list[str] = field(default_factory=list)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)
    bytes_copied: int = 0

    def summary(self) -> str:
        return (f"{len(self.copied)} objects copied ({self.bytes_copied:,} bytes), "
                f"{self.unchanged} unchanged, {len(self.deleted)} deleted")


def _syncable(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return not key.startswith(_SKIP_PREFIXES) and not name.endswith(TMP_SUFFIX) \
        and not name.startswith(".")


def _ordered(keys: list[str]) -> list[str]:
    """Data objects before ``_meta`` records (see the module docstring)."""
    return sorted(keys, key=lambda k: (k.startswith("_meta/"), k))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load_manifest(dst: Storage) -> dict[str, dict]:
    if not dst.exists(MANIFEST_KEY):
        return {}
    try:
        found = json.loads(dst.read_bytes(MANIFEST_KEY))
    except ValueError:
        return {}  # unreadable: every object is hashed again
    return found if isinstance(found, dict) else {}


def _dst_matches(dst: Storage, key: str, size: int, digest: str,
                 manifest: dict[str, dict], dst_keys: set[str]) -> bool:
    if key not in dst_keys or dst.size(key) != size:
        return False
    known = manifest.get(key)
    if known is not None and known.get("sha256") == digest and known.get("size") == size:
        return True
    return _sha256(dst.read_bytes(key)) == digest


def sync_lake(src: str | Path | Storage, dst: str | Path | Storage, *, delete: bool = False,
              lock_timeout_s: float = 30.0) -> SyncReport:
    """Make `dst` hold every object of `src` (and, with `delete`, nothing else);
    returns a `SyncReport`. InputError if `src` is missing or both are the same root."""
    source, target = open_storage(src), open_storage(dst)
    if source.uri() == target.uri():
        raise InputError(f"sync source and destination are the same lake: {source.uri()}")
    if isinstance(src, str | Path) and "://" not in str(src) and not Path(src).is_dir():
        raise InputError(f"sync source {src} is not a lake directory")
    keys = [k for k in source.list_files() if _syncable(k)]
    report = SyncReport()
    with StorageLock(target, timeout_s=lock_timeout_s):
        manifest = _load_manifest(target)
        dst_keys = {k for k in target.list_files() if _syncable(k)}
        for key in _ordered(keys):
            data = source.read_bytes(key)
            digest = _sha256(data)
            if _dst_matches(target, key, len(data), digest, manifest, dst_keys):
                report.unchanged += 1
            else:
                target.put_bytes(key, data)
                if target.size(key) != len(data):
                    raise OSError(f"sync: {target.uri(key)} has the wrong size after the copy")
                report.copied.append(key)
                report.bytes_copied += len(data)
            manifest[key] = {"size": len(data), "sha256": digest}
        if delete:
            for key in sorted(dst_keys - set(keys)):
                target.delete(key)
                manifest.pop(key, None)
                report.deleted.append(key)
        target.put_bytes(MANIFEST_KEY, json.dumps(manifest, sort_keys=True).encode())
    return report
