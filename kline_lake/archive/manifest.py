"""The record of ingested archive files, so `verify --refresh-archive` can re-check them.

One JSON file per series at ``<root>/_meta/archive_manifest/<market>/<dataset>/<slug>.json``
(beside the writer's coverage records, outside every data glob)::

    {"version": 1,
     "series": {"market": "spot", "dataset": "klines", "symbol": "BTCUSDT", "interval": "1m"},
     "files": {"data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip":
                 {"sha256": "...", "period": [start_us, end_us],
                  "ranges": [[start_us, end_us], ...], "rows": 1440, "zip_bytes": 57000}}}

Keys are archive paths below the base URL (not full URLs: the base may change, e.g. a
fake exchange on another port). ``ranges`` are the parts of the file's period that were
ingested (a clipped day records only its slice); re-ingesting the same file with the same
sha256 adds to them, a new sha256 replaces the entry. Updates are read-modify-write under
the series lock of the lake writer and written atomically (through the writer's
metadata records: temp + fsync + rename locally, one PUT on an object store).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from kline_lake.core import ranges as rg
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError, LakeError
from kline_lake.lake import layout
from kline_lake.lake.writer import LakeWriter

FORMAT_VERSION = 1
MANIFEST_DIR = "archive_manifest"


@dataclass(frozen=True)
class ManifestEntry:
    """One ingested archive file."""

    path: str
    sha256: str
    period_start_us: int
    period_end_us: int
    ranges: tuple[tuple[int, int], ...]
    rows: int
    zip_bytes: int

    def to_json(self) -> dict:
        return {
            "sha256": self.sha256,
            "period": [self.period_start_us, self.period_end_us],
            "ranges": [list(r) for r in self.ranges],
            "rows": self.rows,
            "zip_bytes": self.zip_bytes,
        }

    @classmethod
    def from_json(cls, path: str, obj: dict) -> ManifestEntry:
        period = obj["period"]
        return cls(
            path=path,
            sha256=str(obj["sha256"]),
            period_start_us=int(period[0]),
            period_end_us=int(period[1]),
            ranges=tuple((int(a), int(b)) for a, b in obj["ranges"]),
            rows=int(obj["rows"]),
            zip_bytes=int(obj["zip_bytes"]),
        )


def manifest_path(root: Path, key: SeriesKey) -> Path:
    """Where the manifest of one series lives."""
    return layout.meta_dir(root) / MANIFEST_DIR / key.market / key.dataset / f"{key.slug}.json"


def read_manifest(root: Path, key: SeriesKey) -> dict[str, ManifestEntry]:
    """The manifest of a series ({archive path: entry}); empty if none was written."""
    return _read_path(manifest_path(root, key))


def _read_doc(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LakeError(f"cannot read archive manifest {path}: {exc}") from exc


def _read_path(path: Path) -> dict[str, ManifestEntry]:
    doc = _read_doc(path)
    if doc is None:
        return {}
    return _entries(path, doc)


def _entries(path: Path | str, doc: dict) -> dict[str, ManifestEntry]:
    try:
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported version {doc.get('version')!r}")
        return {p: ManifestEntry.from_json(p, e) for p, e in doc["files"].items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise LakeError(f"archive manifest {path} is malformed: {exc}") from exc


def _dumps(key: SeriesKey, entries: dict[str, ManifestEntry]) -> bytes:
    doc = {
        "version": FORMAT_VERSION,
        "series": {"market": key.market, "dataset": key.dataset, "symbol": key.symbol,
                   "interval": key.interval},
        "files": {p: entries[p].to_json() for p in sorted(entries)},
    }
    return json.dumps(doc, indent=1, sort_keys=True).encode("utf-8")


def _read_writer(writer: LakeWriter, key: SeriesKey) -> tuple[str, dict[str, ManifestEntry]]:
    """The manifest's key below the lake root and its entries, read through `writer`
    (a local lake or an object store)."""
    rel = manifest_path(Path(), key).as_posix()
    where = writer.where(rel)
    try:
        data = writer.read_meta(rel)
        doc = None if data is None else json.loads(data.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise LakeError(f"cannot read archive manifest {where}: {exc}") from exc
    return rel, ({} if doc is None else _entries(where, doc))


def merge_entry(old: ManifestEntry | None, new: ManifestEntry) -> ManifestEntry:
    """Combine a new ingestion of a file with what the manifest holds for it. Pure."""
    if old is None or old.sha256 != new.sha256:
        return new
    ranges = tuple(rg.union(old.ranges, new.ranges))
    overlap = any(rg.intersect(a, b, old.ranges) for a, b in new.ranges)
    rows = max(old.rows, new.rows) if overlap else old.rows + new.rows
    return ManifestEntry(
        new.path, new.sha256, new.period_start_us, new.period_end_us, ranges, rows, new.zip_bytes,
    )


def record(writer: LakeWriter, key: SeriesKey, entries: Iterable[ManifestEntry]) -> None:
    """Add ``entries`` to the series manifest (read-modify-write under the series lock)."""
    entries = list(entries)
    if not entries:
        return
    with writer.lock(key):
        rel, current = _read_writer(writer, key)
        for entry in entries:
            current[entry.path] = merge_entry(current.get(entry.path), entry)
        writer.write_meta(rel, _dumps(key, current))


def replace_entries(writer: LakeWriter, key: SeriesKey, entries: Iterable[ManifestEntry]) -> None:
    """Overwrite the manifest entries of ``entries``' paths (after a refresh)."""
    entries = list(entries)
    if not entries:
        return
    with writer.lock(key):
        rel, current = _read_writer(writer, key)
        current.update({e.path: e for e in entries})
        writer.write_meta(rel, _dumps(key, current))


def iter_manifests(root: Path) -> Iterator[tuple[SeriesKey, dict[str, ManifestEntry]]]:
    """Every series that has a manifest, with its entries, in a stable order."""
    base = layout.meta_dir(root) / MANIFEST_DIR
    for path in sorted(base.glob("*/*/*.json")):
        doc = _read_doc(path)
        if doc is None:  # removed since the glob
            continue
        try:
            s = doc["series"]
            key = SeriesKey(s["market"], s["dataset"], s["symbol"], s.get("interval"))
        except (KeyError, TypeError, InputError) as exc:
            raise LakeError(f"archive manifest {path} names no valid series: {exc}") from exc
        yield key, _entries(path, doc)
