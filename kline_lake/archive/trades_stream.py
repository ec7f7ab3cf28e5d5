"""An archive trades CSV read from a binary stream in fixed chunks -> the lake's trades table.

A day of trades is gigabytes of CSV. :func:`kline_lake.archive.trades_csv.parse_trades_csv`
takes the file's bytes, so the whole text sits in memory next to its table (and every
page of it is faulted in once). Here the text goes through one reused buffer of
``chunk_bytes`` (8 MiB): each chunk's whole lines are parsed by the same kernel into the
same columns, the partial last line is carried to the front of the buffer, and the
peak is the table plus one chunk. The stream can be a file or a zip member inflated as it
is read (the archive pipeline's: :func:`kline_lake.archive.zip_safety.open_single_member`,
under the zip-safety rules; from zip bytes, 5 M trades take 1.21 CPU s and 558 MB peak
RSS against 1.50 s / 909 MB inflated whole, then parsed). On 5 M spot trades
from a file (``benchmarks/trades.py``, one core, same run): 0.89 CPU s, peak RSS 473 MB,
against the bytes path's 1.16 s / 805 MB and Polars' ``read_csv`` 1.74 s / 380 MB (of
which our imports, Numba and LLVM, are 224 MB to Polars' 65).

The table is the one ``parse_archive_csv`` gives for the stream's bytes, always: whatever
the kernel refuses, and a stream whose first chunk holds no whole first line (or only
blanks), is read again whole and handed to the bytes path, which gives the generic
reader's table or its error (line and column).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import pyarrow as pa
from numba import njit

from kline_lake.archive.csv import has_header, is_blank, parse_archive_csv
from kline_lake.archive.trades_csv import (
    REFUSED,
    SAMPLE_BYTES,
    TradeColumns,
    column_count,
    estimate_rows,
)

DEFAULT_CHUNK_BYTES = 8 << 20


@njit(cache=True, nogil=True)
def _last_newline_nb(buf, end):
    """The index of the last ``\\n`` in ``buf[:end]``, or -1."""
    for i in range(end - 1, -1, -1):
        if buf[i] == 10:
            return i
    return -1


def parse_trades_stream(open_binary: Callable[[], BinaryIO], *, size_bytes: int | None = None,
                        chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> pa.Table:
    """The trades table of the CSV that ``open_binary()`` streams (opened once, or twice
    when the bytes path must judge it). ``size_bytes``, the CSV's size when known (a
    file's, a zip member's ``file_size``), sizes the columns once."""
    with open_binary() as stream:
        table = _chunked(stream, size_bytes, chunk_bytes)
    if table is not None:
        return table
    with open_binary() as stream:  # the bytes path judges the whole text
        return parse_archive_csv(stream.read(), "trades")


def _chunked(stream: BinaryIO, size_bytes: int | None, chunk_bytes: int) -> pa.Table | None:
    buf = np.empty(chunk_bytes + 1, dtype=np.uint8)  # +1: room for the sentinel at the end
    filled = stream.readinto(memoryview(buf)[:chunk_bytes])
    head = buf[:filled].tobytes()
    first_nl = head.find(b"\n")
    if is_blank(head) or first_nl < 0:  # blanks, or a first line longer than a chunk
        return None
    n_cols = column_count(head)
    header = has_header(head)
    guess = size_bytes if size_bytes is not None else 16 * filled
    cols = TradeColumns(estimate_rows(head[:SAMPLE_BYTES], guess), n_cols)
    pos, rows = (first_nl + 1 if header else 0), 0
    while True:
        last_nl = _last_newline_nb(buf, filled)
        if last_nl >= pos:
            rows = cols.read(buf[:last_nl + 1], pos, rows)
            if rows == REFUSED:
                return None
        carry = buf[max(last_nl + 1, pos):filled].copy()
        if len(carry) == len(buf) - 1:  # one line fills the buffer: a bigger one
            buf = np.empty(2 * len(buf) - 1, dtype=np.uint8)
        buf[:len(carry)] = carry
        got = stream.readinto(memoryview(buf)[len(carry):len(buf) - 1])
        pos, filled = 0, len(carry) + got
        if not got:  # the end: a last line without its newline gets one
            if len(carry):
                buf[len(carry)] = 10
                rows = cols.read(buf[:len(carry) + 1], 0, rows)
            return None if rows == REFUSED else cols.table(rows)
