"""Archive ``trades`` CSV bytes -> the lake's trades table, in one Numba pass. Pure.

A day of every trade is tens of millions of rows of one fixed layout
(https://github.com/binance/binance-public-data):

- spot: ``id,price,qty,quote_qty,time,is_buyer_maker,is_best_match``, no header, times in
  ms before 2025 and in us from 2025-01-01;
- futures: ``id,price,qty,quote_qty,time,is_buyer_maker``, a header row since about 2022.

The generic reader (:mod:`kline_lake.archive.numeric_csv`) dispatches on a column kind per
field, writes integers and booleans into one int64 matrix, and the table is then built
with copies (booleans cast, times scaled to us, columns conformed). Here one kernel knows
the layout: it writes every field straight into its final column (the time already in
us, the booleans as Arrow bit-maps), and the table is assembled without a copy. On 5 M
spot trades (``benchmarks/trades.py``, one core, same run): 1.16 CPU s against the
generic path's 2.01 and Polars' 1.74 (4.3 M trades per CPU second, the file read
included), peak RSS 805 MB against 964 (the 400 MB text is in it: see
:mod:`kline_lake.archive.trades_stream` for reading without it).

Exactness: the kernel accepts only what the generic reader accepts and converts it the
same way (an INT is ``-?[0-9]{1,18}``; a FLOAT takes Clinger's fast path ``m / 10**k`` or
goes to Python's ``float`` by position; a BOOL is true/false in any case; rows end in
``\\n`` or ``\\r\\n``, blank lines skipped). Anything else (a bad field, a wrong field
count, a slow field ``float`` refuses) is *refused*, and the file is read again by the
generic reader, which either reads it (the same table) or raises its own error naming the
line and column. So errors are the generic reader's, word for word; tested against it
and pyarrow's reader on generated and real trades (``tests/archive/test_trades_csv.py``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

# the generic kernel's digit loops and field tests (one copy of the byte-level rules)
from kline_lake.archive.numeric_csv import (
    _ASCII_ZEROS,
    _CR,
    _DOT,
    _MAX_EXACT_MANTISSA,
    _MAX_INT_DIGITS,
    _MINUS,
    _NL,
    _POW10,
    _POW10_INT,
    BOOL,
    FLOAT,
    INT,
    read_numeric_csv,
)
from kline_lake.archive.numeric_csv import _digit_run_nb as digit_run_nb
from kline_lake.archive.numeric_csv import _eight_digits_value as eight_digits_value
from kline_lake.archive.numeric_csv import _ends_field as ends_field
from kline_lake.archive.numeric_csv import _fraction_nb as fraction_nb
from kline_lake.archive.numeric_csv import _is_float_char as is_float_char
from kline_lake.archive.numeric_csv import _load_u64 as load_u64
from kline_lake.archive.numeric_csv import _nondigit_flags as nondigit_flags
from kline_lake.core import schemas
from kline_lake.core.schemas import TRADES, TS, ts_column
from kline_lake.errors import InputError

# spot's layout; futures files stop before is_best_match
TRADES_CSV_COLUMNS = ("trade_id", "price", "quantity", "quote_quantity", "time",
                      "is_buyer_maker", "is_best_match")
_TRADES_KINDS = (INT, FLOAT, FLOAT, FLOAT, INT, BOOL, BOOL)
# kernel status codes
_OK, _REFUSED, _SLOW_FULL, _FULL = 0, 1, 2, 3
REFUSED = -1  # TradeColumns.read: the kernel declined the bytes, the generic reader decides
_FIRST_SLOW_CAPACITY = 1024
# the columns are sized from the bytes per line of a file's head, with this margin; a file
# whose later lines are shorter grows them (a copy), which the margin makes rare
SAMPLE_BYTES = 1 << 16
_CAPACITY_MARGIN = 1.1

_COMMA = 44
_U8 = np.uint64(8)
_LOWER5 = np.uint64(0x2020202020)  # bit 5 of the first five bytes: ASCII letters to lower case
_LOW4, _LOW5 = np.uint64(0xFFFFFFFF), np.uint64(0xFFFFFFFFFF)
_TRUE = np.uint64(int.from_bytes(b"true", "little"))
_FALSE = np.uint64(int.from_bytes(b"false", "little"))
_US_EPOCH_MIN = 10**15  # kline_lake.core.schemas.to_us: a time at least this is in us


@njit(cache=True, nogil=True, inline="always")
def _int_field(buf, pos, n):
    """``-?[0-9]{1,18}`` at ``buf[pos:]`` -> ``(value, end, ok)``."""
    start = pos
    neg = buf[pos] == _MINUS
    if neg:
        pos += 1
    v, pos = digit_run_nb(buf, pos, n, 0)
    digits = pos - start - neg
    ok = 0 < digits <= _MAX_INT_DIGITS and ends_field(buf[pos])
    return (-v if neg else v), pos, ok


@njit(cache=True, nogil=True, inline="always")
def _float_field(buf, pos, n):
    """A number at ``buf[pos:]`` -> ``(value, end, kind)``: kind 0 exact, 1 a field of
    number characters left to Python's ``float`` (value unset), 2 refused."""
    start = pos
    neg = buf[pos] == _MINUS
    if neg:
        pos += 1
    m, pos = digit_run_nb(buf, pos, n, 0)  # integer part
    digits = pos - start - neg
    k = 0
    if buf[pos] == _DOT:
        pos += 1
        frac_start = pos
        m, pos = fraction_nb(buf, pos, n, m)  # fraction: same accumulator
        k = pos - frac_start
        digits += k
    if (ends_field(buf[pos]) and 0 < digits <= _MAX_INT_DIGITS and m <= _MAX_EXACT_MANTISSA
            and k <= 22):
        v = m / _POW10[k]  # both exact doubles: IEEE division rounds correctly
        return (-v if neg else v), pos, 0
    while not ends_field(buf[pos]):
        if not is_float_char(buf[pos]):
            return 0.0, pos, 2
        pos += 1
    return 0.0, pos, 1 if pos > start else 2


@njit(cache=True, nogil=True, inline="always")
def _bool_field(buf, pos):
    """true/false in any letter case -> ``(value, end, ok)``; the sentinel newline ends
    every comparison before the buffer does."""
    c = buf[pos] | 32
    if c == 116 and (buf[pos + 1] | 32) == 114 and (buf[pos + 2] | 32) == 117 \
            and (buf[pos + 3] | 32) == 101:
        return 1, pos + 4, ends_field(buf[pos + 4])
    if c == 102 and (buf[pos + 1] | 32) == 97 and (buf[pos + 2] | 32) == 108 \
            and (buf[pos + 3] | 32) == 115 and (buf[pos + 4] | 32) == 101:
        return 0, pos + 5, ends_field(buf[pos + 5])
    return 0, pos, False


@njit(cache=True, nogil=True, inline="always")
def _spec_digits(buf, pos, length):
    """The value of the ``length`` (1..8) bytes at ``buf[pos:]`` and whether all are
    digits, from one word (needs ``pos + 8 <= len(buf)``)."""
    x = (load_u64(buf, pos) ^ _ASCII_ZEROS) << (_U8 * np.uint64(8 - length))
    return eight_digits_value(x), nondigit_flags(x) == 0


@njit(cache=True, nogil=True, inline="always")
def _spec_int(buf, pos, length):
    """Is ``buf[pos:]`` exactly ``length`` (1..16) digits then a comma? ``(value, ok)``
    (needs ``pos + 24 <= len(buf)``)."""
    if length <= 8:
        v, ok = _spec_digits(buf, pos, length)
    else:
        hi, ok_hi = _spec_digits(buf, pos, 8)
        lo, ok_lo = _spec_digits(buf, pos + 8, length - 8)
        v = hi * _POW10_INT[length - 8] + lo
        ok = ok_hi and ok_lo
    return v, ok and buf[pos + length] == _COMMA


@njit(cache=True, nogil=True, inline="always")
def _spec_float(buf, pos, ip, fl):
    """Is ``buf[pos:]`` ``ip`` digits, a dot, ``fl`` digits (each 1..8), then a comma?
    ``(value, ok)``, the value the generic fast path gives, m / 10**fl (needs
    ``pos + 24 <= len(buf)``)."""
    a, ok_a = _spec_digits(buf, pos, ip)
    b, ok_b = _spec_digits(buf, pos + ip + 1, fl)
    m = a * _POW10_INT[fl] + b
    ok = ok_a and ok_b and buf[pos + ip] == _DOT and buf[pos + ip + 1 + fl] == _COMMA
    return m / _POW10[fl], ok and m <= _MAX_EXACT_MANTISSA


@njit(cache=True, nogil=True, inline="always")
def _spec_bool(buf, pos):
    """`_bool_field` from one word, with no branch on the value (maker flags are a coin
    toss) (needs ``pos + 8 <= len(buf)``)."""
    w = load_u64(buf, pos) | _LOWER5  # the letters in lower case, as `| 32` per byte
    t = (w & _LOW4) == _TRUE
    f = (w & _LOW5) == _FALSE
    end = pos + 5 - np.int64(t)
    return np.int64(t), end, (t or f) and ends_field(buf[end])


@njit(cache=True, nogil=True, inline="always")
def _dot_split(buf, start, end):
    """``(integer digits, fraction digits)`` of the field ``buf[start:end]`` when it may
    be speculated on (digits, a dot, digits, each 1..8 long), else ``(0, 0)``."""
    for i in range(start, end):
        if buf[i] == _DOT:
            ip, fl = i - start, end - i - 1
            if 1 <= ip <= 8 and 1 <= fl <= 8:
                return ip, fl
            return 0, 0
    return 0, 0


@njit(cache=True, nogil=True, inline="always")
def _spec_len(buf, start, end):
    """The length to speculate on for the INT field ``buf[start:end]``: 0 (none) when it
    has a sign or more than 16 digits."""
    return end - start if end - start <= 16 and buf[start] != _MINUS else 0


@njit(cache=True, nogil=True, inline="always")
def _any_bool(buf, pos, n):
    if pos + 24 <= n:
        return _spec_bool(buf, pos)
    return _bool_field(buf, pos)


@njit(cache=True, nogil=True)
def _trades_nb(buf, pos, row, ncols, ids, floats, times, maker_bits, best_bits, slow):
    """Parse trade rows from ``buf[pos:]`` (which ends in a newline) into row ``row`` on:
    ``ids``, ``floats[0..2]`` (price, quantity, quote quantity), ``times`` (in us),
    the bit-maps ``maker_bits`` and, with 7 columns, ``best_bits`` (zeroed by the caller).

    Each field is first tried at the shape it had on the previous row (`_spec_int`,
    `_spec_float`: a file's fields keep their lengths for long runs): the next field's
    position is then known without waiting for the digit scan, so the loads of a row
    overlap (1.3-1.5x faster). A miss reads the field as the generic reader does and
    takes its shape for the next row; both ways give the generic reader's values.

    Returns ``(status, rows, n_slow, pos)``. ``_OK``: every row parsed, ``slow[:n_slow]``
    = (float column, row, start, end) of the fields left to ``float``. ``_REFUSED``:
    something the generic reader must judge. ``_SLOW_FULL``: ``slow`` is full; ``_FULL``:
    the columns are; ``rows`` and ``pos`` are then the start of the row to resume from
    (its slow fields are not kept).
    """
    n = buf.shape[0]
    nslow = 0
    len_id = 0  # the shapes of the previous row's fields (0: none to try)
    len_time = 0
    int_digits = np.zeros(3, dtype=np.int64)
    frac_digits = np.zeros(3, dtype=np.int64)
    while pos < n:
        c = buf[pos]
        if c == _NL:  # blank lines are skipped, as the generic reader does
            pos += 1
            continue
        if c == _CR and buf[pos + 1] == _NL:
            pos += 2
            continue
        if row == ids.shape[0]:
            return _FULL, row, nslow, pos
        row_pos = pos
        row_slow = nslow
        ok = False
        if len_id and pos + 24 <= n:
            v, ok = _spec_int(buf, pos, len_id)
            pos += len_id if ok else 0
        if not ok:
            v, end, ok = _int_field(buf, pos, n)
            if not ok or buf[end] != _COMMA:
                return _REFUSED, row, nslow, end
            len_id = _spec_len(buf, pos, end)
            pos = end
        ids[row] = v
        for j in range(3):
            start = pos + 1
            ip, fl = int_digits[j], frac_digits[j]
            ok = False
            if ip and start + 24 <= n:
                x, ok = _spec_float(buf, start, ip, fl)
                if ok:
                    pos = start + ip + 1 + fl
                    floats[j, row] = x
            if not ok:
                x, pos, kind = _float_field(buf, start, n)
                if kind == 2 or buf[pos] != _COMMA:
                    return _REFUSED, row, nslow, pos
                if kind == 1:
                    if nslow == slow.shape[0]:
                        return _SLOW_FULL, row, row_slow, row_pos
                    slow[nslow, 0] = j
                    slow[nslow, 1] = row
                    slow[nslow, 2] = start
                    slow[nslow, 3] = pos
                    nslow += 1
                else:
                    floats[j, row] = x
                int_digits[j], frac_digits[j] = _dot_split(buf, start, pos)
        start = pos + 1
        ok = False
        if len_time and start + 24 <= n:
            t, ok = _spec_int(buf, start, len_time)
            pos = start + len_time if ok else pos
        if not ok:
            t, pos, ok = _int_field(buf, start, n)
            if not ok or buf[pos] != _COMMA:
                return _REFUSED, row, nslow, pos
            len_time = _spec_len(buf, start, pos)
        times[row] = t if t >= _US_EPOCH_MIN else t * 1000
        b, pos, ok = _any_bool(buf, pos + 1, n)
        if not ok:
            return _REFUSED, row, nslow, pos
        maker_bits[row >> 3] |= np.uint8(b << (row & 7))
        if ncols == 7:
            if buf[pos] != _COMMA:
                return _REFUSED, row, nslow, pos
            b, pos, ok = _any_bool(buf, pos + 1, n)
            if not ok:
                return _REFUSED, row, nslow, pos
            best_bits[row >> 3] |= np.uint8(b << (row & 7))
        c = buf[pos]
        if c == _CR:
            pos += 1
            c = buf[pos]
        if c != _NL:
            return _REFUSED, row, nslow, pos
        pos += 1
        row += 1
    return _OK, row, nslow, pos


class TradeColumns:
    """The output columns of one file, grown as rows arrive (pages never written are
    never resident, so a generous capacity costs address space, not memory)."""

    def __init__(self, capacity: int, ncols: int) -> None:
        self.ncols = ncols
        self.capacity = 0
        self.ids = np.empty(0, dtype=np.int64)
        self.floats = np.empty((3, 0), dtype=np.float64)
        self.times = np.empty(0, dtype=np.int64)
        self.maker_bits = np.zeros(0, dtype=np.uint8)
        self.best_bits = np.zeros(0, dtype=np.uint8)
        self._grow(max(capacity, 8), 0)

    def _grow(self, capacity: int, rows: int) -> None:
        """Room for ``capacity`` rows, the first ``rows`` kept."""
        ids, floats, times = self.ids, self.floats, self.times
        maker, best = self.maker_bits, self.best_bits
        self.ids = np.empty(capacity, dtype=np.int64)
        self.floats = np.empty((3, capacity), dtype=np.float64)
        self.times = np.empty(capacity, dtype=np.int64)
        self.maker_bits = np.zeros((capacity + 7) // 8, dtype=np.uint8)
        self.best_bits = np.zeros((capacity + 7) // 8 if self.ncols == 7 else 0, dtype=np.uint8)
        self.ids[:rows], self.floats[:, :rows], self.times[:rows] = ids[:rows], floats[:, :rows], times[:rows]
        nbits = (rows + 7) // 8
        self.maker_bits[:nbits] = maker[:nbits]
        self.best_bits[:nbits] = best[:nbits]  # a partial last byte: its later bits are 0
        self.capacity = capacity

    def read(self, buf: np.ndarray, pos: int, row: int) -> int:
        """Parse the lines of ``buf[pos:]`` (ending in a newline) as rows ``row...``; the
        rows reached, or REFUSED for bytes the generic reader must judge."""
        slow = np.empty((_FIRST_SLOW_CAPACITY, 4), dtype=np.int64)
        while True:
            status, row, n_slow, pos = _trades_nb(buf, pos, row, self.ncols, self.ids, self.floats,
                                                  self.times, self.maker_bits, self.best_bits, slow)
            for j, at, start, end in slow[:n_slow].tolist():
                try:
                    self.floats[j, at] = float(buf[start:end].tobytes())
                except ValueError:
                    return REFUSED
            if status == _OK:
                return row
            if status == _REFUSED:
                return REFUSED
            if status == _FULL:
                self._grow(row + max(row // 2, 64), row)
            else:
                slow = np.empty((2 * len(slow), 4), dtype=np.int64)

    def table(self, rows: int) -> pa.Table:
        def bits(bitmap: np.ndarray) -> pa.Array:
            return pa.Array.from_buffers(pa.bool_(), rows, [None, pa.py_buffer(bitmap)])

        best = bits(self.best_bits) if self.ncols == 7 else pa.nulls(rows, pa.bool_())
        columns = [pa.array(self.ids[:rows]), *(pa.array(f[:rows]) for f in self.floats),
                   pa.array(self.times[:rows]).view(TS), bits(self.maker_bits), best]
        return pa.Table.from_arrays(columns, schema=TRADES)


def column_count(data: bytes) -> int:
    """The field count of the first line: 6 (futures) or 7 (spot), else InputError."""
    end = data.find(b"\n")
    n_cols = (data if end < 0 else data[:end]).count(b",") + 1
    if not 6 <= n_cols <= 7:
        raise InputError(f"trades archive CSV has {n_cols} columns, expected 6 to 7")
    return n_cols


def parse_trades_csv(data: bytes, *, header: bool) -> pa.Table:
    """One archive trades CSV (unzipped, not blank) -> the lake's trades table.

    ``header``: the first line is a header row (skipped unread). Raises InputError naming
    the line and column of the first malformed field, as the generic reader words it.
    """
    n_cols = column_count(data)
    table = _fast(data, n_cols, header)
    return _generic(data, n_cols, header) if table is None else table


def estimate_rows(head: bytes, size_bytes: int) -> int:
    """Rows to make room for: ``size_bytes`` at the bytes per line of ``head``, plus a margin."""
    per_line = len(head) / max(head.count(b"\n"), 1)
    return int(size_bytes / per_line * _CAPACITY_MARGIN) + 64


def _fast(data: bytes, n_cols: int, header: bool) -> pa.Table | None:
    """The kernel's table, or None when it refuses the bytes."""
    buf = np.frombuffer(data, dtype=np.uint8)
    last_nl = data.rfind(b"\n")
    cols = TradeColumns(estimate_rows(data[:SAMPLE_BYTES], len(data)), n_cols)
    pos = (data.find(b"\n") + 1 or len(data)) if header else 0
    rows = 0
    if last_nl >= pos:  # whole lines: the newline at their end is the kernel's sentinel
        rows = cols.read(buf[:last_nl + 1], pos, 0)
    tail = data[max(last_nl + 1, pos):]
    if tail and rows != REFUSED:  # a last line without a newline: from a copy of it alone
        rows = cols.read(np.frombuffer(tail + b"\n", dtype=np.uint8), 0, rows)
    return None if rows == REFUSED else cols.table(rows)


def _generic(data: bytes, n_cols: int, header: bool) -> pa.Table:
    """The generic reader's table (or its error): the reference for every refused file."""
    arrays = read_numeric_csv(data, _TRADES_KINDS[:n_cols], skip_first_line=header,
                              what="archive CSV")
    cols = dict(zip(TRADES_CSV_COLUMNS, arrays, strict=False))
    n = len(cols["trade_id"])
    table = pa.table({
        **{name: cols[name] for name in TRADES_CSV_COLUMNS[:4]},
        "time": ts_column(cols["time"]),
        "is_buyer_maker": cols["is_buyer_maker"],
        "is_best_match": cols.get("is_best_match", pa.nulls(n, pa.bool_())),
    })
    return schemas.conform(table, "trades")
