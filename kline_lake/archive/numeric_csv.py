"""A Numba reader for the archive's all-numeric CSV files: bytes in, NumPy columns out.

Every data.binance.vision CSV we ingest is plain comma-separated numbers and booleans, no
quoting: ``1634860800000,62193.15000000,...,1300,25.18723000,1566233.44403950,0``. A
general CSV reader (pyarrow's) spends most of its time on what these files never hold;
this one is a single pass over the bytes that writes each field straight into its output
column, reading digit runs eight bytes at a time (`_digit_run_nb`: one word load and three
multiplications per eight digits, about 10% faster on a month of 1m klines than a digit
at a time), which makes it 2.0-2.8x faster than pyarrow's on a month of 1m klines and on a day
of aggTrades (``benchmarks/archive_ingest.py``, same bytes, same run). pyarrow's reader stays the reference it is tested
against (``tests/core/test_numeric_csv.py``): both must produce identical columns.

Floats are exact, not approximately right: a field whose digits form an integer
``m <= 2**53`` with ``k <= 22`` decimals is ``m / 10**k``, which IEEE division rounds
correctly because both operands are exact doubles (Clinger's fast path). Archive prices
and quantities (``62193.15000000``: m = 6219315000000, k = 8) always take it. A field
outside it (more than ~16 significant digits, an exponent, a sign inside) is handed back
by position and converted with Python's ``float``, which is also correctly rounded; so
every field is converted to the nearest double, as pyarrow's reader does.

Rules: fields are separated by ``,``, rows end in ``\\n`` or ``\\r\\n``, empty lines are
skipped, and every row must have exactly as many fields as there are column kinds.
Anything else is an ``InputError`` naming the line (and the column of a bad field).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

from kline_lake.errors import InputError

# column kinds
INT, FLOAT, BOOL, SKIP = 0, 1, 2, 3
_KIND_NAMES = {INT: "an integer", FLOAT: "a number", BOOL: "true or false", SKIP: "a field"}
# kernel status codes
_OK, _BAD_FIELD, _FIELD_COUNT, _SLOW_FULL = 0, 1, 2, 3
# the columns of the slow-field table: output float column, row, byte start, byte end
_SLOW_COLUMNS = 4
_FIRST_SLOW_CAPACITY = 1024

_NL, _CR, _COMMA, _DOT, _MINUS = 10, 13, 44, 46, 45
_POW10 = np.array([10.0**i for i in range(23)])  # exact doubles up to 1e22
_MAX_EXACT_MANTISSA = 2**53
# 10**18 - 1 < 2**63: longer fields are refused (INT) or sent to float() (FLOAT) after the
# digit loop, so the value a longer field wraps to inside the loop is never used
_MAX_INT_DIGITS = 18


_U8 = np.uint64(8)
_ASCII_ZEROS = np.uint64(0x3030303030303030)
_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_ADD_76 = np.uint64(0x7676767676767676)
_HIGH_BITS = np.uint64(0x8080808080808080)
_BYTE_0_4 = np.uint64(0x000000FF000000FF)
_MUL_100_1E6 = np.uint64(100 + (1_000_000 << 32))
_MUL_1_1E4 = np.uint64(1 + (10_000 << 32))
_U10 = np.uint64(10)
_U16 = np.uint64(16)
_U32 = np.uint64(32)
_U_LOW32 = np.uint64(0xFFFFFFFF)
_POW10_INT = np.array([10**i for i in range(9)], dtype=np.int64)


@intrinsic
def _load_u64(typingctx, arr, index):
    """The 8 bytes ``arr[index:index + 8]`` of a uint8 array as one little-endian uint64
    (an unaligned load; the caller checks the bounds)."""
    sig = types.uint64(arr, index)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.gep(array.data, [args[1]])
        return builder.load(builder.bitcast(address, ir.IntType(64).as_pointer()), align=1)

    return sig, codegen


@njit(cache=True, nogil=True, inline="always")
def _nondigit_flags(x):
    """For ``x`` = 8 bytes XOR ``'0' * 8``: the high bit of every byte that was not an
    ASCII digit (a digit byte is then 0..9; no carry crosses a byte)."""
    return (((x & _LOW7) + _ADD_76) | x) & _HIGH_BITS


@njit(cache=True, nogil=True, inline="always")
def _eight_digits_value(x):
    """The decimal value of 8 digit values 0..9, first byte most significant (Lemire's
    conversion: three multiplications instead of eight dependent ones)."""
    x = x * _U10 + (x >> _U8)
    x = ((x & _BYTE_0_4) * _MUL_100_1E6 + ((x >> _U16) & _BYTE_0_4) * _MUL_1_1E4) >> _U32
    return np.int64(x & _U_LOW32)


@njit(cache=True, nogil=True, inline="always")
def _digit_run_nb(buf, pos, n, m):
    """Append the run of ASCII digits at ``buf[pos:]`` to the decimal accumulator ``m``:
    ``(m * 10**len + digits, pos + len)``, eight bytes per step (SWAR, no per-digit branch).

    Each step loads 8 bytes as one word, flags the non-digit bytes, takes the leading
    digits (trailing zeros of the flags / 8) and converts them at once, shifted to the
    word's top so that the missing ones count as leading zeros. Near the end of the
    buffer (fewer than 8 bytes left) it reads a byte at a time. Like a byte loop, ``m``
    wraps past 18 digits; callers reject such fields by their digit count.
    """
    while pos + 8 <= n:
        x = _load_u64(buf, pos) ^ _ASCII_ZEROS  # a digit byte becomes its value 0..9
        flags = _nondigit_flags(x)
        if flags == 0:
            m = m * 100_000_000 + _eight_digits_value(x)
            pos += 8
            continue
        run = np.int64(trailing_zeros(flags)) >> 3
        if run:
            m = m * _POW10_INT[run] + _eight_digits_value(x << (_U8 * np.uint64(8 - run)))
        return m, pos + run
    d = np.int64(buf[pos]) - 48
    while 0 <= d <= 9:  # the last bytes of the buffer: one at a time
        m = m * 10 + d
        pos += 1
        d = np.int64(buf[pos]) - 48
    return m, pos


@njit(cache=True, nogil=True, inline="always")
def _fraction_nb(buf, pos, n, m):
    """`_digit_run_nb` for a fraction, with the archive's common case first: exactly 8
    decimals then the field's end. There the next position does not wait for the digit
    flags (only a well-predicted branch does), which keeps the row's byte position off
    the slow dependency chain."""
    if pos + 9 <= n and _ends_field(buf[pos + 8]):
        x = _load_u64(buf, pos) ^ _ASCII_ZEROS
        if _nondigit_flags(x) == 0:
            return m * 100_000_000 + _eight_digits_value(x), pos + 8
    return _digit_run_nb(buf, pos, n, m)


@njit(cache=True, nogil=True)
def _count_newlines_nb(buf):
    n = 0
    for i in range(buf.shape[0]):
        n += buf[i] == _NL
    return n


@njit(cache=True, nogil=True, inline="always")
def _ends_field(c):
    return c == _COMMA or c == _NL or c == _CR  # noqa: SIM109 (Numba: no tuple membership)


@njit(cache=True, nogil=True, inline="always")
def _is_float_char(c):
    # 0-9 . + - e E: what Python's float() may accept here (it still validates the field)
    return (48 <= c <= 57) or c == 46 or c == 43 or c == 45 or c == 101 or c == 69


@njit(cache=True, nogil=True)
def _read_nb(buf, pos, row, line, kinds, out_int, out_float, slow):
    """Parse rows from ``buf[pos:]`` into ``out_int[j, row]`` / ``out_float[j, row]``.

    ``buf`` must end with a newline: it is the sentinel that stops every inner loop, so
    none of them needs a bounds check. INT and BOOL columns fill ``out_int`` (in column
    order), FLOAT columns ``out_float``; SKIP columns are stepped over.

    The digit loops are written out three times (integer part, fraction, INT) on
    purpose: folding them into an inlined helper returning ``(value, pos)`` made this
    kernel 2.2x slower (14.4 vs 6.6 ms on a month of 1m klines, measured).

    Returns ``(status, rows, n_slow, line, pos)``. On ``_OK``: rows parsed and slow
    fields recorded. On ``_BAD_FIELD``/``_FIELD_COUNT``: ``line`` (1-based) and ``pos``
    locate the offending field. On ``_SLOW_FULL``: ``slow`` is full; ``rows``, ``line``
    and ``pos`` are the start of the row to resume from (its slow fields are not kept).
    """
    n = buf.shape[0]
    ncols = kinds.shape[0]
    nslow = 0
    while pos < n:
        line += 1
        c = buf[pos]
        if c == _NL:
            pos += 1
            continue
        if c == _CR and buf[pos + 1] == _NL:
            pos += 2
            continue
        row_pos = pos
        row_slow = nslow
        ii = 0
        fi = 0
        col = 0
        while True:
            kind = kinds[col]
            start = pos
            if kind == FLOAT:
                neg = buf[pos] == _MINUS
                if neg:
                    pos += 1
                m, pos = _digit_run_nb(buf, pos, n, 0)  # integer part
                digits = pos - start - neg
                k = 0
                if buf[pos] == _DOT:
                    pos += 1
                    frac_start = pos
                    m, pos = _fraction_nb(buf, pos, n, m)  # fraction: same accumulator
                    k = pos - frac_start
                    digits += k
                c = buf[pos]
                exact = digits <= _MAX_INT_DIGITS and m <= _MAX_EXACT_MANTISSA and k <= 22
                if _ends_field(c) and digits > 0 and exact:
                    # e.g. "62193.15000000": m = 6219315000000, k = 8 -> 62193.15 exactly rounded
                    v = m / _POW10[k]
                    out_float[fi, row] = -v if neg else v
                else:
                    # too many digits, an exponent, or junk: Python's float() decides
                    while not _ends_field(buf[pos]):
                        if not _is_float_char(buf[pos]):
                            return _BAD_FIELD, row, nslow, line, start
                        pos += 1
                    if pos == start:
                        return _BAD_FIELD, row, nslow, line, start
                    if nslow == slow.shape[0]:
                        return _SLOW_FULL, row, row_slow, line - 1, row_pos
                    slow[nslow, 0] = fi
                    slow[nslow, 1] = row
                    slow[nslow, 2] = start
                    slow[nslow, 3] = pos
                    nslow += 1
                fi += 1
            elif kind == INT:
                neg = buf[pos] == _MINUS
                if neg:
                    pos += 1
                v, pos = _digit_run_nb(buf, pos, n, 0)
                digits = pos - start - neg
                c = buf[pos]
                if digits == 0 or digits > _MAX_INT_DIGITS or not _ends_field(c):
                    return _BAD_FIELD, row, nslow, line, start
                out_int[ii, row] = -v if neg else v
                ii += 1
            elif kind == BOOL:
                # true/false in any letter case (spot writes True/False, futures true/false)
                c = buf[pos] | 32
                if c == 116 and (buf[pos + 1] | 32) == 114 and (buf[pos + 2] | 32) == 117 \
                        and (buf[pos + 3] | 32) == 101:
                    out_int[ii, row] = 1
                    pos += 4
                elif c == 102 and (buf[pos + 1] | 32) == 97 and (buf[pos + 2] | 32) == 108 \
                        and (buf[pos + 3] | 32) == 115 and (buf[pos + 4] | 32) == 101:
                    out_int[ii, row] = 0
                    pos += 5
                else:
                    return _BAD_FIELD, row, nslow, line, start
                c = buf[pos]
                if not _ends_field(c):
                    return _BAD_FIELD, row, nslow, line, start
                ii += 1
            else:  # SKIP
                while not _ends_field(buf[pos]):
                    pos += 1
            col += 1
            c = buf[pos]
            if c == _COMMA:
                if col == ncols:
                    return _FIELD_COUNT, row, nslow, line, row_pos
                pos += 1
                continue
            if c == _CR:
                if buf[pos + 1] != _NL:
                    return _BAD_FIELD, row, nslow, line, start
                pos += 1
            if col != ncols:
                return _FIELD_COUNT, row, nslow, line, row_pos
            pos += 1  # the newline
            break
        row += 1
    return _OK, row, nslow, line, pos


def read_numeric_csv(data: bytes, kinds: Sequence[int], *, skip_first_line: bool = False,
                     what: str = "CSV") -> list[np.ndarray]:
    """Parse ``data`` into one array per non-SKIP column, in column order: int64 for
    INT, float64 for FLOAT, bool for BOOL. ``what`` names the input in error messages.

    Raises InputError for the first malformed line: its line number, and the column and
    text of a field that is not what its kind expects, or the field count of a row that
    has too few or too many.
    """
    kinds_arr = np.asarray(kinds, dtype=np.int64)
    if kinds_arr.ndim != 1 or not len(kinds_arr) or kinds_arr.min() < INT or kinds_arr.max() > SKIP:
        raise ValueError(f"bad column kinds {kinds!r}")
    if data and not data.endswith(b"\n"):
        data += b"\n"  # the kernel's sentinel (one copy, only for a file without one)
    buf = np.frombuffer(data, dtype=np.uint8)
    pos, line = 0, 0
    if skip_first_line:
        pos, line = data.find(b"\n") + 1 if data else 0, 1
    capacity = int(_count_newlines_nb(buf))
    n_int = int(np.count_nonzero((kinds_arr == INT) | (kinds_arr == BOOL)))
    n_float = int(np.count_nonzero(kinds_arr == FLOAT))
    out_int = np.empty((n_int, capacity), dtype=np.int64)
    out_float = np.empty((n_float, capacity), dtype=np.float64)
    slow = np.empty((_FIRST_SLOW_CAPACITY, _SLOW_COLUMNS), dtype=np.int64)
    slow_parts, row = [], 0
    while True:
        status, row, n_slow, line, pos = _read_nb(buf, pos, row, line, kinds_arr, out_int, out_float, slow)
        slow_parts.append(slow[:n_slow].copy())
        if status != _SLOW_FULL:
            break
        slow = np.empty((2 * len(slow), _SLOW_COLUMNS), dtype=np.int64)
    # the slow fields all lie before where the kernel stopped: convert them first, so an
    # error among them is reported ahead of the kernel's own (the first bad field wins)
    _convert_slow_fields(data, kinds_arr, np.concatenate(slow_parts), out_float, what)
    if status != _OK:
        raise InputError(_describe_error(data, kinds_arr, status, line, pos, what))
    return _columns(kinds_arr, out_int[:, :row], out_float[:, :row])


def _convert_slow_fields(data: bytes, kinds: np.ndarray, slow: np.ndarray,
                         out_float: np.ndarray, what: str) -> None:
    """Fill the fields the kernel left to Python's (correctly rounded) ``float``."""
    for j, row, start, end in slow.tolist():
        try:
            out_float[j, row] = float(data[start:end])
        except ValueError:
            line = data.count(b"\n", 0, start) + 1
            raise InputError(_describe_error(data, kinds, _BAD_FIELD, line, start, what)) from None


def _columns(kinds: np.ndarray, ints: np.ndarray, floats: np.ndarray) -> list[np.ndarray]:
    out, ii, fi = [], 0, 0
    for kind in kinds.tolist():
        if kind == FLOAT:
            out.append(floats[fi])
            fi += 1
        elif kind == INT:
            out.append(ints[ii])
            ii += 1
        elif kind == BOOL:
            out.append(ints[ii].astype(bool))
            ii += 1
    return out


def _describe_error(data: bytes, kinds: np.ndarray, status: int, line: int, pos: int,
                    what: str) -> str:
    """One line naming the line, the column and what was found there."""
    line_start = data.rfind(b"\n", 0, pos) + 1
    line_end = data.find(b"\n", pos)
    text = data[line_start:line_end].rstrip(b"\r").decode("ascii", "replace")
    if status == _FIELD_COUNT:
        found = text.count(",") + 1
        return (f"malformed {what}: line {line} has {found} field(s), expected {len(kinds)}: "
                f"{text[:120]!r}")
    column = data.count(b",", line_start, pos)
    field_end = min((i for i in (data.find(b",", pos, line_end), line_end) if i >= 0), default=line_end)
    field = data[pos:field_end].rstrip(b"\r").decode("ascii", "replace")
    return (f"malformed {what}: line {line}, column {column + 1}: expected "
            f"{_KIND_NAMES[int(kinds[column])]}, found {field[:40]!r}")
