"""The lake's one storage seam: a local directory, or an fsspec filesystem (``s3://``,
``gs://``, ``az://``, ``memory://``...).

Not pure: every method does I/O. `open_storage(root)` picks the backend from the root's
scheme; both backends share the validation in `Storage` (relative keys only, no ``..``)
and implement small hooks. Keys are ``/``-separated paths relative to the lake root.

Writes are whole objects: `put_bytes` / `put_file` make an object visible whole or not
at all (local: temp file, fsync, rename, see `kline_lake.lake.atomic`; object stores: one
PUT, or a multipart upload that becomes visible only when completed). `create_exclusive`
creates an object only if none exists (local ``O_EXCL``; S3 ``If-None-Match: *``, which
AWS S3, MinIO and Cloudflare R2 honour), the base of the writer lock (`StorageLock`).
Stores that cannot create conditionally report ``conditional_create = False`` and
`StorageLock` refuses to write to them rather than risk two writers.

Credentials and the endpoint come from the standard AWS environment variables and
config files (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``AWS_ENDPOINT_URL`` for MinIO or R2, ``AWS_DEFAULT_REGION``), read by botocore; this
module never logs them or writes them anywhere, and its errors name only the URL.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from kline_lake.errors import InputError, LakeError
from kline_lake.lake.atomic import atomic_write_bytes, atomic_write_with, ensure_dir

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")
CONDITIONAL_CREATE_SCHEMES = frozenset({"s3", "s3a", "memory"})  # see the module docstring
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
             "abfs": "adlfs"}


def split_url(root: str | Path) -> tuple[str, str]:
    """``'s3://b/p/'`` -> ('s3', 'b/p'); a local path (or ``file://``) -> ('', path)."""
    m = _SCHEME.match(str(root))
    if m is None:
        return "", str(root)
    scheme, rest = m.group(1).lower(), m.group(2).strip("/")
    return ("", "/" + rest) if scheme == "file" else (scheme, rest)


class Storage:
    """Objects under one lake root; see the module docstring. Subclasses implement the
    ``_``-prefixed hooks."""

    scheme: str
    conditional_create: bool

    def __init__(self, root: str) -> None:
        self.root = root

    def key(self, rel: str) -> str:
        """`rel` checked: relative, ``/``-separated, no ``..``."""
        rel = str(rel).strip("/")
        if not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"storage key must be a relative path inside the lake: {rel!r}")
        return rel

    def uri(self, rel: str = "") -> str:
        """What a reader outside this package opens: a local path or a full URL."""
        raise NotImplementedError

    def list_files(self, prefix: str = "") -> list[str]:
        """Keys of every object under `prefix` (sorted; [] when there is none)."""
        return sorted(self._list(prefix.strip("/")))

    def read_bytes(self, rel: str) -> bytes:
        return self._read(self.key(rel))

    def exists(self, rel: str) -> bool:
        return self._exists(self.key(rel))

    def size(self, rel: str) -> int:
        return self._size(self.key(rel))

    def open_input(self, rel: str) -> Any:
        """`rel` opened for reading (a binary file object; an object store's reads only
        the ranges asked for, e.g. a Parquet footer)."""
        return self._open(self.key(rel))

    def put_bytes(self, rel: str, data: bytes) -> None:
        """Replace the object `rel` with `data`, whole."""
        self._put_bytes(self.key(rel), bytes(data))

    def put_file(self, rel: str, local_file: Path) -> None:
        """Replace the object `rel` with the file built at `local_file`, whole."""
        self._put_file(self.key(rel), Path(local_file))

    def delete(self, rel: str) -> None:
        """Remove `rel` (nothing if it does not exist)."""
        self._delete(self.key(rel))

    def create_exclusive(self, rel: str, data: bytes) -> bool:
        """Create `rel` holding `data` only if it does not exist: True if created."""
        return self._create_exclusive(self.key(rel), bytes(data))

    def _list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def _read(self, rel: str) -> bytes:
        raise NotImplementedError

    def _open(self, rel: str) -> Any:
        raise NotImplementedError

    def _exists(self, rel: str) -> bool:
        raise NotImplementedError

    def _size(self, rel: str) -> int:
        raise NotImplementedError

    def _put_bytes(self, rel: str, data: bytes) -> None:
        raise NotImplementedError

    def _put_file(self, rel: str, local_file: Path) -> None:
        raise NotImplementedError

    def _delete(self, rel: str) -> None:
        raise NotImplementedError

    def _create_exclusive(self, rel: str, data: bytes) -> bool:
        raise NotImplementedError


class LocalStorage(Storage):
    """A directory on a local (or shared POSIX) filesystem, through pathlib."""

    scheme = ""
    conditional_create = True

    def __init__(self, root: str | Path) -> None:
        super().__init__(str(Path(root)))
        self.path = Path(root)

    def uri(self, rel: str = "") -> str:
        return str(self.path / rel) if rel else str(self.path)

    def _list(self, prefix: str) -> list[str]:
        base = self.path / prefix if prefix else self.path
        if not base.is_dir():
            return [prefix] if prefix and base.is_file() else []
        return [p.relative_to(self.path).as_posix() for p in base.rglob("*") if p.is_file()]

    def _read(self, rel: str) -> bytes:
        return (self.path / rel).read_bytes()

    def _open(self, rel: str) -> Any:
        return (self.path / rel).open("rb")

    def _exists(self, rel: str) -> bool:
        return (self.path / rel).exists()

    def _size(self, rel: str) -> int:
        return (self.path / rel).stat().st_size

    def _put_bytes(self, rel: str, data: bytes) -> None:
        atomic_write_bytes(self.path / rel, data)

    def _put_file(self, rel: str, local_file: Path) -> None:
        atomic_write_with(self.path / rel, lambda tmp: tmp.write_bytes(local_file.read_bytes()))

    def _delete(self, rel: str) -> None:
        (self.path / rel).unlink(missing_ok=True)

    def _create_exclusive(self, rel: str, data: bytes) -> bool:
        target = self.path / rel
        ensure_dir(target.parent)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return True


class FsspecStorage(Storage):
    """An fsspec filesystem (object store) under ``scheme://bucket/prefix``."""

    def __init__(self, url: str, fs: Any, scheme: str, base: str) -> None:
        super().__init__(url)
        self.fs, self.scheme, self.base = fs, scheme, base
        self.conditional_create = scheme in CONDITIONAL_CREATE_SCHEMES

    def _full(self, rel: str) -> str:
        return f"{self.base}/{rel}" if rel else self.base

    def uri(self, rel: str = "") -> str:
        return f"{self.scheme}://{self._full(rel)}"

    def _list(self, prefix: str) -> list[str]:
        base = self._full(prefix)
        self.fs.invalidate_cache(base)  # other writers may have written since
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        cut = len(self.base) + 1
        return [p[cut:] for p in (str(f).lstrip("/") if self.scheme == "memory" else str(f)
                                  for f in found) if p.startswith(self.base + "/")]

    def _read(self, rel: str) -> bytes:
        return self.fs.cat_file(self._full(rel))

    def _open(self, rel: str) -> Any:
        return self.fs.open(self._full(rel), "rb")

    def _exists(self, rel: str) -> bool:
        self.fs.invalidate_cache(self._full(rel))
        return bool(self.fs.exists(self._full(rel)))

    def _size(self, rel: str) -> int:
        return int(self.fs.size(self._full(rel)))

    def _put_bytes(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self._full(rel), data)  # one PUT (multipart above 50 MB)

    def _put_file(self, rel: str, local_file: Path) -> None:
        self.fs.put_file(str(local_file), self._full(rel))

    def _delete(self, rel: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._full(rel))

    def _create_exclusive(self, rel: str, data: bytes) -> bool:
        if not self.conditional_create:
            raise LakeError(f"{self.scheme}:// cannot create an object conditionally, so "
                            "two writers could not be kept apart: write this lake locally "
                            "and copy it (kline-lake sync)")
        try:
            self.fs.pipe_file(self._full(rel), data, mode="create")
        except FileExistsError:
            return False
        return True

    def storage_options(self) -> dict[str, str]:
        """Options for ``polars.scan_parquet(storage_options=...)``: the endpoint and
        region from the environment (credentials are read by Polars from it directly)."""
        if self.scheme not in ("s3", "s3a"):
            return {}
        out = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            out["aws_endpoint_url"] = endpoint
            if endpoint.startswith("http://"):
                out["aws_allow_http"] = "true"
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            out["aws_region"] = region
        return out


def _filesystem(scheme: str, url: str) -> Any:
    import fsspec

    try:
        cls = fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise InputError(f"unknown storage scheme {scheme}:// in lake {url!r}: give a local "
                         "path, s3://BUCKET/PREFIX or another fsspec URL "
                         "(memory://, gs://, az://)") from None
    except ImportError:
        package = _PACKAGES.get(scheme, f"the fsspec driver for {scheme}://")
        raise InputError(f"lake {url!r} needs the package {package} "
                         f"(pip install {package})") from None
    if scheme == "memory":
        return cls()
    key = (scheme, os.getpid(), _environment_digest())  # a forked child builds its own
    if key not in _FILESYSTEMS:  # a client costs ~0.3 s to build: one per configuration
        _FILESYSTEMS[key] = cls(skip_instance_cache=True)
    return _FILESYSTEMS[key]


_FILESYSTEMS: dict[tuple[str, int, str], Any] = {}
_ENV_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
              "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
              "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "GOOGLE_APPLICATION_CREDENTIALS",
              "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_CONNECTION_STRING")


def _environment_digest() -> str:
    """A digest of the variables a filesystem client reads (a changed credential or
    endpoint gets a new client; the values themselves are not kept)."""
    text = "\0".join(f"{n}={os.environ.get(n, '')}" for n in _ENV_NAMES)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_bucket(storage: FsspecStorage) -> None:
    """InputError (one line) for a missing bucket, missing credentials or no access."""
    bucket = storage.base.split("/")[0]
    if storage.scheme == "memory" or not bucket:
        return
    try:
        storage.fs.ls(bucket, refresh=True)
    except FileNotFoundError:
        raise InputError(f"bucket {bucket!r} does not exist ({storage.uri()})") from None
    except PermissionError as exc:
        raise InputError(f"access to {storage.uri()} denied ({_reason(exc)}): check "
                         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE") from None
    except Exception as exc:  # botocore's NoCredentialsError and connection errors
        name = type(exc).__name__
        if "Credentials" in name:
            raise InputError(f"no credentials for {storage.uri()}: set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE); AWS_ENDPOINT_URL for "
                             "MinIO/R2") from None
        if isinstance(exc, OSError) or "Endpoint" in name or "Connect" in name:
            raise InputError(f"cannot reach the object store for {storage.uri()} "
                             f"({name})") from None
        raise


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


def open_storage(root: str | Path, check: bool = True) -> Storage:
    """The storage of a lake root: a local path, ``file://``, or an fsspec URL. With
    `check`, an object store's bucket is probed once (InputError, one line, for an
    unknown scheme, a missing bucket or package, no credentials)."""
    if isinstance(root, Storage):
        return root
    scheme, rest = split_url(root)
    if not scheme:
        return LocalStorage(rest)
    url = str(root)
    if not rest:
        raise InputError(f"lake {url!r} names no bucket: use {scheme}://BUCKET/PREFIX")
    storage = FsspecStorage(url, _filesystem(scheme, url), scheme, rest)
    if check:
        _check_bucket(storage)
    return storage


def lake_root(root: str | Path | Storage) -> Path | Storage:
    """A lake root as the readers take it: a local path as a Path, an object-store URL
    as its `Storage` (opened, and its bucket probed, once)."""
    if isinstance(root, Storage):
        return root.path if isinstance(root, LocalStorage) else root
    scheme, rest = split_url(root)
    return open_storage(root) if scheme else Path(rest)


class StorageLock:
    """A writer lock of an object-store lake: a lock object created with a conditional
    write (`Storage.create_exclusive`), deleted on release. `key` is the lake-wide
    ``_meta/locks/writer.lock`` (sync) or a series' lock (`LakeWriter.lock`).

    Unlike `kline_lake.lake.lock.FileLock` a killed holder leaves its lock object behind;
    it names its host, pid and time. A later writer removes it when it is stale: its
    holder ran on this host and is gone (no such pid), or (with `break_stale_s`) it is
    older than that. Removal is itself claimed with a conditional write (a
    ``<key>.broken-<digest>`` marker per stale lock), so two writers that both find a lock
    stale cannot both break it and then both hold the new one. Raises LakeError after
    `timeout_s` (None: wait forever), or at once on a store that cannot create
    conditionally."""

    KEY = "_meta/locks/writer.lock"

    def __init__(self, storage: Storage, timeout_s: float | None = 30.0, poll_s: float = 0.05,
                 break_stale_s: float | None = None, key: str = KEY) -> None:
        self.storage, self.timeout_s, self.poll_s = storage, timeout_s, poll_s
        self.break_stale_s = break_stale_s
        self.key = key
        self.held = False

    def _owner(self) -> bytes:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                           "time": time.time(), "nonce": secrets.token_hex(8)}).encode()

    def acquire(self) -> None:
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not self.storage.create_exclusive(self.key, self._owner()):
            if self._break_if_stale():
                continue
            if deadline is not None and time.monotonic() >= deadline:
                raise LakeError(f"lake {self.storage.uri()} is locked by another writer "
                                f"({self.storage.uri(self.key)}) for more than "
                                f"{self.timeout_s:.0f} s")
            time.sleep(self.poll_s)
        self.held = True

    def _break_if_stale(self) -> bool:
        """True when the lock object is gone or was stale and this writer removed it."""
        try:
            raw = self.storage.read_bytes(self.key)
        except FileNotFoundError:
            return True  # released meanwhile: try again at once
        try:
            owner = json.loads(raw)
            stale = self._is_stale(owner)
        except (ValueError, TypeError, KeyError, AttributeError):
            return False  # not a lock this package wrote: never break it
        if not stale:
            return False
        marker = f"{self.key}.broken-{hashlib.sha256(raw).hexdigest()[:16]}"
        if not self.storage.create_exclusive(marker, self._owner()):
            return False  # another writer is breaking this very lock
        try:
            if self.storage.read_bytes(self.key) == raw:
                self.storage.delete(self.key)
        except FileNotFoundError:
            pass
        return True

    def _is_stale(self, owner: dict) -> bool:
        if owner["host"] == socket.gethostname() and not _pid_alive(int(owner["pid"])):
            return True
        return (self.break_stale_s is not None
                and time.time() - float(owner["time"]) >= self.break_stale_s)

    def release(self) -> None:
        if self.held:
            self.storage.delete(self.key)
            self.held = False

    def __enter__(self) -> StorageLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True
