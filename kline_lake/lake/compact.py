"""Compaction: merge each partition's files into its canonical file(s), atomically.

The writer already keeps one ``data.parquet`` per month (one file per day for agg_trades),
so compaction matters for partitions that hold other ``*.parquet`` files: dropped in by
another tool, or left by an interrupted compaction. Per partition, under the series lock:
read every file, merge (unique on the key, sorted), write the canonical file(s) atomically,
and only then delete the other files. A crash in between leaves duplicated keys across
files (``verify`` reports them) and re-running ``compact`` finishes the job. Rows are
preserved exactly (as a set of keyed rows). ``force=True`` rewrites canonical-only
partitions too (re-sorting/deduplicating them, applying the current compression).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kline_lake.core.series import SeriesKey
from kline_lake.lake import layout
from kline_lake.lake.data_files import read_data_file
from kline_lake.lake.inventory import iter_data_files
from kline_lake.lake.lock import FileLock
from kline_lake.lake.partitions import merge_rows, replace_partition


@dataclass
class CompactReport:
    """What ``compact`` did."""

    partitions_seen: int = 0
    partitions_compacted: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_after: int = 0
    compacted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"compacted {self.partitions_compacted} of {self.partitions_seen} partition(s): "
                f"{self.files_before} file(s) -> {self.files_after}")


def compact_partition(pdir: Path, dataset: str, force: bool = False) -> tuple[int, int, int] | None:
    """Compact one partition directory; returns (files before, files after, rows) or None
    when nothing needed doing. The caller holds the series lock."""
    names = sorted(p.name for p in pdir.glob("*.parquet"))
    foreign = [n for n in names if not layout.is_canonical_file(dataset, n)]
    if not foreign and not force:
        return None
    merged = merge_rows([read_data_file(pdir / n, dataset) for n in names], dataset)
    _, after = replace_partition(pdir, dataset, merged)
    return len(names), len(after), merged.num_rows


def compact_lake(root: Path, market: str | None = None, dataset: str | None = None,
                 symbol: str | None = None, force: bool = False) -> CompactReport:
    """Compact every partition of the lake matching the optional filters."""
    root = Path(root)
    report = CompactReport()
    partitions: dict[Path, SeriesKey] = {}
    for path, parsed in iter_data_files(root):
        if parsed is None:
            continue
        key = parsed[0]
        if (market and key.market != market) or (dataset and key.dataset != dataset) \
                or (symbol and key.symbol != symbol):
            continue
        partitions.setdefault(path.parent, key)
    for pdir in sorted(partitions):
        key = partitions[pdir]
        report.partitions_seen += 1
        with FileLock(layout.lock_path(root, key)):
            done = compact_partition(pdir, key.dataset, force=force)
        if done is None:
            n = len(list(pdir.glob("*.parquet")))
            report.files_before += n
            report.files_after += n
            continue
        report.partitions_compacted += 1
        report.files_before += done[0]
        report.files_after += done[1]
        report.rows_after += done[2]
        report.compacted.append(str(pdir))
    return report
