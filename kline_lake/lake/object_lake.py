"""``verify`` and ``compact`` on an object-store lake (``Lake("s3://bucket/prefix")``).

Not pure: reads (and, for compact, writes) through a `kline_lake.lake.storage.Storage`.

- `verify_objects` reads every data object whole (as ``verify`` reads every local file)
  into a private temp copy of the lake, runs `kline_lake.lake.verify.verify_lake` on it,
  and names the problems by their object URLs. Nothing is written to the store.
- `compact_objects` lists the data objects once, and for each partition that holds a
  non-canonical object (or every partition, with ``force``) takes the series' lock object
  (`LakeWriter.lock`), merges the partition's objects and rewrites it through
  `kline_lake.lake.partitions.replace_partition` on an `ObjectPartition`: new objects are
  built locally and sent with one PUT each, old ones deleted only afterwards.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from kline_lake.core.series import SeriesKey
from kline_lake.lake import layout
from kline_lake.lake.compact import CompactReport
from kline_lake.lake.partitions import ObjectPartition, merge_rows, replace_partition
from kline_lake.lake.storage import Storage
from kline_lake.lake.verify import VerifyReport, verify_lake
from kline_lake.lake.writer import LakeWriter


def verify_objects(storage: Storage) -> VerifyReport:
    """Verify the object-store lake `storage` (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="kline-lake-verify-") as tmp:
        local = Path(tmp) / "lake"
        for rel in storage.list_files():
            if rel.startswith(f"{layout.META_DIR}/locks/"):
                continue
            target = local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(storage.read_bytes(rel))
        report = verify_lake(local)
        prefix = str(local)
        report.root = storage.uri()
        report.problems = [replace(p, path=_url(storage, p.path, prefix))
                           for p in report.problems]
    return report


def _url(storage: Storage, path: str, prefix: str) -> str:
    if path == prefix:
        return storage.uri()
    if path.startswith(prefix + "/"):
        return storage.uri(path[len(prefix) + 1:])
    return path


def _partitions(storage: Storage, market: str | None, dataset: str | None,
                symbol: str | None) -> dict[str, SeriesKey]:
    """{partition key: its series} for every data object matching the filters."""
    out: dict[str, SeriesKey] = {}
    for rel in storage.list_files():
        if rel.startswith(layout.META_DIR + "/") or not rel.endswith(".parquet"):
            continue
        parsed = layout.series_key_of_file(Path(), Path(rel))
        if parsed is None:
            continue
        key = parsed[0]
        if (market and key.market != market) or (dataset and key.dataset != dataset) \
                or (symbol and key.symbol != symbol):
            continue
        out.setdefault(rel.rsplit("/", 1)[0], key)
    return out


def compact_objects(storage: Storage, market: str | None = None, dataset: str | None = None,
                    symbol: str | None = None, force: bool = False) -> CompactReport:
    """`kline_lake.lake.compact.compact_lake` on an object store (see the module docstring)."""
    writer = LakeWriter(storage)
    report = CompactReport()
    for prefix, key in sorted(_partitions(storage, market, dataset, symbol).items()):
        report.partitions_seen += 1
        part = ObjectPartition(storage, prefix)
        with writer.lock(key):
            names = part.names()
            foreign = [n for n in names if not layout.is_canonical_file(key.dataset, n)]
            if not foreign and not force:
                report.files_before += len(names)
                report.files_after += len(names)
                continue
            merged = merge_rows([part.read(n, key.dataset) for n in names], key.dataset)
            _, after = replace_partition(part, key.dataset, merged)
        report.partitions_compacted += 1
        report.files_before += len(names)
        report.files_after += len(after)
        report.rows_after += merged.num_rows
        report.compacted.append(storage.uri(prefix))
    return report
