"""The lake's data files: their Parquet flavour, and writing or reading one of them.

The one owner of how a data file is encoded (codecs, encodings, row groups, page
checksums, the declared sort order; each choice below with the measurement behind it).
Which rows go into which file is `kline_lake.lake.partitions`'; when they are written,
`kline_lake.lake.writer.LakeWriter`'s. Plain DuckDB, Polars and pyarrow read these files
without this package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kline_lake.core.schemas import KEYS, conform
from kline_lake.errors import InputError, LakeError
from kline_lake.lake.atomic import atomic_write_with

# A test seam: called with a stage name ("data-temp-written", ...) so tests can kill the
# process at each point of a write.
FaultHook = Callable[[str], None]

# Row groups of at most this many rows: small enough that row-group statistics let
# DuckDB/Polars skip most of a day of trades, large enough to compress well.
ROW_GROUP_ROWS = 128 * 1024
# zstd level 1, not 3: on a month of 1m klines 12 ms instead of 17 ms per write for 11% more
# bytes (2.34 vs 2.10 MB); on a day of 1M aggTrades 158 vs 248 ms for 8% more bytes.
ZSTD_LEVEL = 1
# The klines' four volume columns are stored uncompressed: their digits are noise to zstd
# (ten real days of BTCUSDT 1m: only 15% smaller for volume and taker_buy_volume, 6% for
# the quote volumes) and compressing them was a third of the write: 3.6 -> 2.5 ms for the
# ten days (13.5 -> 9.5 ms for a month of 1m klines), files 7% larger (446 -> 479 KB),
# Polars reads them faster. Prices (which repeat from minute to minute) keep zstd: 2.3x.
UNCOMPRESSED_COLUMNS = frozenset({"volume", "quote_volume", "taker_buy_volume",
                                  "taker_buy_quote_volume"})
# No dictionary encoding: on ids, times and float columns it cost 3-7x the write time for
# larger files (measured on 800k agg trades); zstd captures repeated values anyway.
# Int64 and timestamp columns are DELTA_BINARY_PACKED: a 1m open_time column becomes one
# constant delta (76 KB -> 0.2 KB for ten real days of BTCUSDT 1m), ids and trade counts
# shrink too. Floats stay PLAIN. Measured on real BTCUSDT 1m klines, zstd 1, for ten days:
#   PLAIN everywhere               794 KB   (the lake's format before)
#   DELTA ints                     639 KB   write 14% faster than PLAIN
#   DELTA ints + BYTE_STREAM_SPLIT 722 KB   write 2x faster, but prices (which repeat from
#                                           minute to minute, which zstd finds in PLAIN
#                                           bytes) grow 50%, and Polars decodes BSS columns
#                                           at half the speed
# A lake is written once and read many times: the smaller, faster-to-read format wins.
# Also measured for the price columns (a month of 1m klines, best of 15): zstd -1 the
# same size and time as level 1; zstd -3 a little faster but 13% (synthetic) to 44% (eight
# real days) larger; lz4 or snappy 11-13% larger. None is worth a larger lake.


def write_parquet(table: pa.Table, target: Path, dataset: str,
                  fault_hook: FaultHook | None = None) -> None:
    """Atomically write `table` (already conformed, sorted) as the lake's Parquet flavour:
    zstd, DELTA_BINARY_PACKED int and time columns, row-group statistics, declared sort
    order, a CRC32 checksum per page (so ``verify`` and every rewrite detect flipped or
    zeroed bytes, which zstd alone can decode into plausible-looking garbage)."""
    before = (lambda _tmp: fault_hook("data-temp-written")) if fault_hook else None
    atomic_write_with(target, lambda tmp: write_parquet_file(table, tmp, dataset),
                      before_replace=before)


def write_parquet_file(table: pa.Table, dest: Path | pa.NativeFile, dataset: str) -> None:
    """Write `table` to `dest` (a path or an output stream) as the lake's Parquet flavour
    (no atomicity of its own: `write_parquet` and `ObjectPartition.write` wrap it)."""
    pq.write_table(table, dest, **parquet_options(table.schema, dataset))


def parquet_options(schema: pa.Schema, dataset: str) -> dict:
    """Every ``pq.write_table`` option of the lake's flavour for a table of `schema`."""
    return {
        **column_compression(schema), "write_statistics": True,
        "row_group_size": ROW_GROUP_ROWS, "write_page_checksum": True, "use_dictionary": False,
        "column_encoding": column_encodings(schema),
        "sorting_columns": [pq.SortingColumn(schema.get_field_index(KEYS[dataset]))],
    }


def column_encodings(schema: pa.Schema) -> dict[str, str]:
    """DELTA_BINARY_PACKED for the int64 and timestamp columns (the others stay PLAIN)."""
    return {field.name: "DELTA_BINARY_PACKED" for field in schema
            if pa.types.is_int64(field.type) or pa.types.is_timestamp(field.type)}


def column_compression(schema: pa.Schema) -> dict[str, dict]:
    """``pq.write_table``'s compression arguments: zstd at ``ZSTD_LEVEL`` for every column
    but the `UNCOMPRESSED_COLUMNS`, which are written uncompressed."""
    codecs = {f.name: "none" if f.name in UNCOMPRESSED_COLUMNS else "zstd" for f in schema}
    return {"compression": codecs,
            "compression_level": {name: ZSTD_LEVEL for name, c in codecs.items() if c == "zstd"}}


def read_data_file(path: Path | pa.NativeFile, dataset: str, name: str | None = None) -> pa.Table:
    """Read one lake data file (a path, or an object's bytes in a ``pa.BufferReader``
    named `name`) in the dataset schema; LakeError naming the file if it is unreadable
    or a page fails its checksum (a rewrite must not launder corrupted rows into a
    freshly checksummed file)."""
    name = str(path) if name is None else name
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise LakeError(f"cannot read lake file {name}: {exc}") from exc
    try:
        return conform(table, dataset)
    except InputError as exc:
        raise LakeError(f"lake file {name} does not match the {dataset} schema: {exc}") from exc
