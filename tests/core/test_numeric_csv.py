"""numeric_csv.read_numeric_csv against pyarrow's CSV reader (the reference), real files, errors."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake.archive.numeric_csv import BOOL, FLOAT, INT, SKIP, read_numeric_csv
from kline_lake.errors import InputError

REAL = Path(__file__).resolve().parents[1] / "data" / "real_data"
KLINES_DIR = REAL / "spot" / "daily" / "klines" / "BTCUSDT" / "1m"
KLINE_KINDS = [INT, FLOAT, FLOAT, FLOAT, FLOAT, FLOAT, INT, FLOAT, INT, FLOAT, FLOAT, SKIP]
_PA_TYPES = {INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_()}
_NP_DTYPES = {INT: np.int64, FLOAT: np.float64, BOOL: np.bool_}


def _ncsv_pyarrow(data: bytes, kinds: list[int], *, skip_first_line: bool = False) -> list[np.ndarray]:
    """The reference: pyarrow's reader with explicit column types, SKIP columns left out."""
    names = [f"c{i}" for i in range(len(kinds))]
    kept = [name for name, kind in zip(names, kinds, strict=True) if kind != SKIP]
    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if skip_first_line else 0),
        parse_options=pacsv.ParseOptions(quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types={n: _PA_TYPES[k] for n, k in zip(names, kinds, strict=True) if k != SKIP},
            include_columns=kept,
            true_values=["true", "True", "TRUE"],
            false_values=["false", "False", "FALSE"],
        ),
    )
    out = []
    for name in kept:
        col = table.column(name)
        assert col.null_count == 0, f"the reference read nulls in {name}: bad generated input"
        out.append(col.to_numpy())
    return out


def _ncsv_assert_same(got: list[np.ndarray], want: list[np.ndarray], kinds: list[int]) -> None:
    """Same dtypes, same values; floats bit for bit (so -0.0 != 0.0 and 1 ulp counts)."""
    real_kinds = [k for k in kinds if k != SKIP]
    assert len(got) == len(want) == len(real_kinds)
    for j, (g, w, kind) in enumerate(zip(got, want, real_kinds, strict=True)):
        assert g.dtype == _NP_DTYPES[kind], (j, g.dtype)
        assert g.shape == w.shape, (j, g.shape, w.shape)
        if kind == FLOAT:
            bad = np.flatnonzero(g.view(np.int64) != w.astype(np.float64).view(np.int64))
            assert not len(bad), f"column {j}: rows {bad[:5].tolist()} got {g[bad[:5]].tolist()} want {w[bad[:5]].tolist()}"
        else:
            assert np.array_equal(g, w.astype(g.dtype)), j


def _ncsv_error(data: bytes, kinds: list[int], **kwargs) -> str:
    with pytest.raises(InputError) as info:
        read_numeric_csv(data, kinds, **kwargs)
    return str(info.value)


# ---- generated tables against pyarrow -------------------------------------------------------

_digits = st.text(alphabet="0123456789", min_size=1, max_size=1)


@st.composite
def _ncsv_int_field(draw) -> str:
    shape = draw(st.sampled_from(["small", "wide", "max", "zeros"]))
    if shape == "small":
        return str(draw(st.integers(-1000, 1000)))
    if shape == "wide":
        return str(draw(st.integers(-(10**18) + 1, 10**18 - 1)))
    if shape == "max":  # exactly 18 digits, the most an INT field may have
        return draw(st.sampled_from(["", "-"])) + str(draw(st.integers(10**17, 10**18 - 1)))
    width = draw(st.integers(1, 18))  # leading zeros, still at most 18 digits
    return str(draw(st.integers(0, 10**width - 1))).zfill(width)


@st.composite
def _ncsv_float_field(draw) -> str:
    shape = draw(st.sampled_from(["fixed", "repr", "long", "tiny", "exp", "int", "bigfixed"]))
    sign = draw(st.sampled_from(["", "", "-"]))
    if shape == "fixed":  # Binance style: "62193.15000000", "0.00001000", "25.18723000"
        k = draw(st.integers(0, 12))
        ip = draw(st.integers(0, 10**7))
        frac = draw(st.text(alphabet="0123456789", min_size=k, max_size=k))
        return sign + (f"{ip}.{frac}" if k or draw(st.booleans()) else str(ip))
    if shape == "repr":  # up to 17 significant digits, sometimes an exponent or subnormal
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if shape == "long":  # 17-19 digit mantissas, beyond 2**53: the slow path
        n = draw(st.integers(17, 19))
        body = draw(st.text(alphabet="0123456789", min_size=n, max_size=n))
        body = draw(_digits.filter(lambda d: d != "0")) + body[1:]
        dot = draw(st.integers(0, n))
        return sign + (body if dot == n else body[:dot] + "." + body[dot:])
    if shape == "tiny":  # leading zeros: "0.00001000"
        zeros = draw(st.integers(0, 10))
        tail = draw(st.text(alphabet="0123456789", min_size=1, max_size=10))
        return sign + "0." + "0" * zeros + tail
    if shape == "exp":
        m = draw(st.integers(0, 10**draw(st.integers(1, 19))))
        e = draw(st.sampled_from(["e", "E"])) + draw(st.sampled_from(["", "+", "-"]))
        return sign + str(m) + e + str(draw(st.integers(0, 40)))
    if shape == "bigfixed":  # exact mantissas right at and around 2**53
        m = draw(st.integers(2**53 - 5, 2**53 + 5))
        k = draw(st.integers(0, 15))
        s = str(m).zfill(k + 1)
        return sign + (s[:-k] + "." + s[-k:] if k else s)
    return sign + str(draw(st.integers(0, 10**18)))


_ncsv_bool_field = st.sampled_from(["True", "False", "true", "false", "TRUE", "FALSE"])
_ncsv_skip_field = st.text(alphabet="abcxyz 0123456789.-_", max_size=8)
_NCSV_FIELDS = {INT: _ncsv_int_field(), FLOAT: _ncsv_float_field(), BOOL: _ncsv_bool_field,
                SKIP: _ncsv_skip_field}


@st.composite
def _ncsv_tables(draw):
    kinds = draw(st.lists(st.sampled_from([INT, FLOAT, FLOAT, BOOL, SKIP]), min_size=1, max_size=6)
                 .filter(lambda ks: any(k != SKIP for k in ks)))
    n_rows = draw(st.integers(1, 25))
    rows = [[draw(_NCSV_FIELDS[k]) for k in kinds] for _ in range(n_rows)]
    if kinds[0] == SKIP:  # a leading empty SKIP field on a one-column row would be a blank line
        for r in rows:
            r[0] = r[0] or "x"
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = [",".join(r) for r in rows]
    blank_at = draw(st.lists(st.integers(0, n_rows), max_size=3))
    for i in sorted(blank_at, reverse=True):
        lines.insert(i, "")
    header = draw(st.booleans())
    if header:
        lines.insert(0, ",".join(f"col_{i}" for i in range(len(kinds))))
    text = eol.join(lines) + (eol if draw(st.booleans()) else "")
    return text.encode(), kinds, header, rows


@settings(max_examples=200, deadline=None)
@given(_ncsv_tables())
def test_generated_tables_match_pyarrow(table) -> None:
    data, kinds, header, rows = table
    got = read_numeric_csv(data, kinds, skip_first_line=header)
    want = _ncsv_pyarrow(data, kinds, skip_first_line=header)
    assert all(len(col) == len(rows) for col in got)
    _ncsv_assert_same(got, want, kinds)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789.-+eE", max_size=24))
def test_float_field_accepted_exactly_when_python_float_accepts(field: str) -> None:
    """Over the characters a number may hold, a FLOAT field parses iff float() does, to
    the same double (float() is correctly rounded, like pyarrow's reader)."""
    data = f"7,{field}\n".encode()
    try:
        want = float(field)
    except ValueError:
        msg = _ncsv_error(data, [INT, FLOAT], what="probe")
        assert "probe: line 1, column 2" in msg
        return
    (_, got) = read_numeric_csv(data, [INT, FLOAT])
    assert got.view(np.int64)[0] == np.array([want]).view(np.int64)[0], (field, got[0], want)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789-+.", max_size=21))
def test_int_field_accepts_up_to_18_digits_with_optional_minus(field: str) -> None:
    data = f"{field},1.5\n".encode()
    if re.fullmatch(r"-?[0-9]{1,18}", field):
        got, _ = read_numeric_csv(data, [INT, FLOAT])
        assert got.tolist() == [int(field)]
    else:
        assert "line 1, column 1: expected an integer" in _ncsv_error(data, [INT, FLOAT])


# ---- real archive files ---------------------------------------------------------------------

def _ncsv_real_csvs() -> list[tuple[str, bytes]]:
    out = [(p.name, p.read_bytes()) for p in sorted(KLINES_DIR.glob("*.csv"))]
    for p in sorted(KLINES_DIR.glob("*.zip")):
        with zipfile.ZipFile(p) as zf:
            out += [(f"{p.name}:{name}", zf.read(name)) for name in zf.namelist()]
    return out


def test_real_kline_files_match_pyarrow() -> None:
    files = _ncsv_real_csvs()
    assert len(files) >= 10, [name for name, _ in files]
    for name, data in files:
        assert data[:1].isdigit(), name  # spot archive files carry no header
        got = read_numeric_csv(data, KLINE_KINDS, what=name)
        assert len(got) == 11 and len(got[0]) == 1440, (name, len(got[0]))
        _ncsv_assert_same(got, _ncsv_pyarrow(data, KLINE_KINDS), KLINE_KINDS)


def test_real_kline_file_with_header_and_crlf_matches_pyarrow() -> None:
    data = (KLINES_DIR / "BTCUSDT-1m-2025-01-01.csv").read_bytes()  # microsecond timestamps
    header = b"open_time,open,high,low,close,volume,close_time,quote_volume,count,tbv,tbqv,ignore\n"
    crlf = (header + data).replace(b"\n", b"\r\n")
    got = read_numeric_csv(crlf, KLINE_KINDS, skip_first_line=True)
    _ncsv_assert_same(got, _ncsv_pyarrow(data, KLINE_KINDS), KLINE_KINDS)
    assert got[0][0] == 1_735_689_600_000_000


# ---- the slow-field buffer (1024 entries, doubled when full) ---------------------------------

def test_more_than_1024_slow_fields_grow_the_buffer() -> None:
    fields = [f"{12345678901234567 + 7 * i}.123" for i in range(3000)]  # 20 digits: slow
    data = "".join(f"{i},{f},{i}.5\n" for i, f in enumerate(fields)).encode()
    ids, slow, fast = read_numeric_csv(data, [INT, FLOAT, FLOAT])
    assert ids.tolist() == list(range(3000))
    assert slow.tolist() == [float(f) for f in fields]
    assert fast.tolist() == [i + 0.5 for i in range(3000)]
    _ncsv_assert_same([ids, slow, fast], _ncsv_pyarrow(data, [INT, FLOAT, FLOAT]), [INT, FLOAT, FLOAT])


def test_slow_buffer_fills_in_the_middle_of_a_row() -> None:
    """5 slow fields a row: 1024 and 2048 fall inside a row, which must be redone whole."""
    kinds = [FLOAT] * 5
    rows = [[f"{10**17 + 11 * i + j}.{j}" for j in range(5)] for i in range(900)]
    lines = [",".join(r) for r in rows]
    lines[300:300] = ["", ""]  # blank lines too: line numbers must survive the resumes
    data = ("h,h,h,h,h\r\n" + "\r\n".join(lines) + "\r\n").encode()
    got = read_numeric_csv(data, kinds, skip_first_line=True)
    for j in range(5):
        assert got[j].tolist() == [float(r[j]) for r in rows], j
    _ncsv_assert_same(got, _ncsv_pyarrow(data, kinds, skip_first_line=True), kinds)
    # a bad field after two buffer resumes still names its physical line
    bad = data + b"1,2,3,x,5\r\n"
    assert "line 904, column 4" in _ncsv_error(bad, kinds, skip_first_line=True)
    bad_slow = data + b"1,2,3,4e5e5,5\r\n"  # passes the kernel's filter, float() rejects it
    assert "line 904, column 4" in _ncsv_error(bad_slow, kinds, skip_first_line=True)


def test_one_row_with_more_slow_fields_than_the_buffer_holds() -> None:
    """A row is redone whole when the buffer fills, so one row of 3000 slow fields needs
    the buffer doubled twice within that row (1024 -> 2048 -> 4096)."""
    kinds = [FLOAT] * 3000
    rows = [[f"{10**18 + 3 * j + i}.25" for j in range(3000)] for i in range(2)]
    data = "".join(",".join(r) + "\n" for r in rows).encode()
    got = read_numeric_csv(data, kinds)
    assert [c.tolist() for c in got] == [[float(rows[0][j]), float(rows[1][j])] for j in range(3000)]


# ---- errors name the line and the column ----------------------------------------------------

_HEAD = b"a,b,c\n\n1,2.5,true\n"  # header (line 1), a blank line (2), a good row (3)
_HEAD_CRLF = b"a,b,c\r\n\r\n1,2.5,true\r\n"
_KINDS_IFB = [INT, FLOAT, BOOL]


@pytest.mark.parametrize("head", [_HEAD, _HEAD_CRLF], ids=["lf", "crlf"])
@pytest.mark.parametrize(("row", "column", "found"), [
    (b"7,abc,true", 2, "abc"),
    (b"7,1.2.3,true", 2, "1.2.3"),
    (b"7,,true", 2, ""),
    (b"7,nan,true", 2, "nan"),
    (b"7,inf,true", 2, "inf"),
    (b"7,-,true", 2, "-"),
    (b"7,1e,true", 2, "1e"),
    (b"7,1 ,true", 2, "1 "),
    (b"1.5,2,true", 1, "1.5"),
    (b"1234567890123456789,2,true", 1, "1234567890123456789"),
    (b"-1234567890123456789,2,true", 1, "-1234567890123456789"),
    (b",2,true", 1, ""),
    (b"7,2,yes", 3, "yes"),
    (b"7,2,1", 3, "1"),
    (b"7,2,truee", 3, "truee"),
    (b"7,2,fals", 3, "fals"),
])
def test_bad_field_names_line_column_and_input(head: bytes, row: bytes, column: int, found: str) -> None:
    eol = b"\r\n" if head.endswith(b"\r\n") else b"\n"
    msg = _ncsv_error(head + b"\n" + row + eol, _KINDS_IFB, skip_first_line=True, what="BTCUSDT-1m.csv")
    assert f"malformed BTCUSDT-1m.csv: line 5, column {column}:" in msg
    assert msg.endswith(f"found {found!r}"), msg


@pytest.mark.parametrize(("row", "found"), [(b"7,2.5", 2), (b"7", 1), (b"7,2.5,true,0", 4),
                                            (b"7,2.5,true,", 4)])
def test_wrong_field_count_names_line_and_counts(row: bytes, found: int) -> None:
    msg = _ncsv_error(_HEAD + row + b"\n1,2,false\n", _KINDS_IFB, skip_first_line=True, what="my.csv")
    assert "malformed my.csv: line 4 " in msg
    assert f"has {found} field(s), expected 3" in msg


def test_long_row_in_the_middle_of_a_file_is_reported_at_its_line() -> None:
    data = b"1,2\n3,4\n\n\n5,6,7\n8,9\n"
    assert "line 5 has 3 field(s), expected 2" in _ncsv_error(data, [INT, FLOAT])


@pytest.mark.parametrize("row", [b"7,2\r5,true", b"7\r,2.5,true", b"7,2.5,tr\rue", b"7,2.5,true\r9"],
                         ids=["float", "int", "bool", "end"])
def test_lone_carriage_return_inside_a_row_is_an_error(row: bytes) -> None:
    msg = _ncsv_error(_HEAD + row + b"\n", _KINDS_IFB, skip_first_line=True, what="cr.csv")
    assert "malformed cr.csv: line 4, column " in msg
    column = 1 + row.split(b"\r")[0].count(b",")
    assert f"line 4, column {column}:" in msg


def test_crlf_at_the_end_of_a_row_is_not_a_lone_carriage_return() -> None:
    ids, prices, flags = read_numeric_csv(b"7,2.5,true\r\n8,3,False\r\n", _KINDS_IFB)
    assert ids.tolist() == [7, 8] and prices.tolist() == [2.5, 3.0] and flags.tolist() == [True, False]


def test_lone_carriage_return_in_a_skip_column_is_an_error() -> None:
    msg = _ncsv_error(b"1,ok,2\n1,x\ry,2\n", [INT, SKIP, FLOAT])
    assert "line 2, column 2:" in msg


def test_line_numbers_count_header_and_blank_lines() -> None:
    body = b"1,2\n\n\r\n3,4\n\n5,x\n"
    assert "line 6, column 2" in _ncsv_error(body, [INT, FLOAT])
    assert "line 7, column 2" in _ncsv_error(b"h,h\n" + body, [INT, FLOAT], skip_first_line=True)
    # the same counting when the bad field goes through Python's float()
    body_slow = body.replace(b"5,x", b"5,1e5e5")
    assert "line 6, column 2" in _ncsv_error(body_slow, [INT, FLOAT])
    assert "line 7, column 2" in _ncsv_error(b"h,h\n" + body_slow, [INT, FLOAT], skip_first_line=True)


@pytest.mark.parametrize(("data", "first"), [
    (b"1,1.2.3\n2,abc\n", "line 1, column 2: expected a number, found '1.2.3'"),
    (b"1,1e5e5\n2,3\n4\n", "line 1, column 2: expected a number, found '1e5e5'"),
    (b"1,2\n3,1-2\n4,5,6\n", "line 2, column 2: expected a number, found '1-2'"),
])
def test_the_first_malformed_field_is_the_one_reported(data: bytes, first: str) -> None:
    """The docstring's promise: "the line and column of the first malformed field", also
    when that field is one the kernel hands to float() and a later line is bad too."""
    assert first in _ncsv_error(data, [INT, FLOAT])


def test_default_what_is_csv() -> None:
    assert _ncsv_error(b"x\n", [INT]).startswith("malformed CSV: line 1, column 1:")


@pytest.mark.parametrize("kinds", [[], [4], [-1], [[INT, FLOAT]]])
def test_bad_kinds_are_a_value_error(kinds) -> None:
    with pytest.raises(ValueError, match="bad column kinds"):
        read_numeric_csv(b"1\n", kinds)


# ---- edge cases ------------------------------------------------------------------------------

_EDGE_KINDS = [INT, SKIP, FLOAT, BOOL]


def _ncsv_assert_empty(cols: list[np.ndarray]) -> None:
    assert [c.dtype for c in cols] == [np.int64, np.float64, np.bool_]
    assert [len(c) for c in cols] == [0, 0, 0]


@pytest.mark.parametrize("data", [b"", b"\n", b"\n\n\r\n"])
def test_empty_input_gives_empty_typed_columns(data: bytes) -> None:
    _ncsv_assert_empty(read_numeric_csv(data, _EDGE_KINDS))


@pytest.mark.parametrize("data", [b"", b"a,b,c,d", b"a,b,c,d\n", b"a,b,c,d\r\n", b"a,b,c,d\n\n"])
def test_header_only_gives_empty_typed_columns(data: bytes) -> None:
    _ncsv_assert_empty(read_numeric_csv(data, _EDGE_KINDS, skip_first_line=True))


def test_blank_lines_anywhere_are_skipped() -> None:
    data = b"\n\r\n1,a,1.5,true\n\n\n2,b,2.5,False\r\n\r\n\n3,c,3.5,TRUE\n\n"
    ints, floats, bools = read_numeric_csv(data, _EDGE_KINDS)
    assert ints.tolist() == [1, 2, 3]
    assert floats.tolist() == [1.5, 2.5, 3.5]
    assert bools.tolist() == [True, False, True]


def test_skip_columns_take_any_text_but_count_as_a_field() -> None:
    ints, floats, bools = read_numeric_csv(b"1,x y z,1.5,true\n2,,2.5,false\n3,\t\"q\"!,0,true\n",
                                           _EDGE_KINDS)
    assert ints.tolist() == [1, 2, 3] and floats.tolist() == [1.5, 2.5, 0.0]
    assert bools.tolist() == [True, False, True]
    # the SKIP column is still a field: leave it out and the row is short
    assert "line 1 has 3 field(s), expected 4" in _ncsv_error(b"1,x,2.5\n", _EDGE_KINDS)
    # only SKIP columns: rows are counted but no array comes back
    assert read_numeric_csv(b"a\nb\n", [SKIP]) == []


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_no_trailing_newline(eol: str) -> None:
    data = eol.join(["1,a,1.5,true", "2,b,2.5,false", "3,c,62193.15000000,True"]).encode()
    ints, floats, bools = read_numeric_csv(data, _EDGE_KINDS)
    assert ints.tolist() == [1, 2, 3]
    assert floats.tolist() == [1.5, 2.5, 62193.15]
    assert bools.tolist() == [True, False, True]
    # the last row is still checked in full
    assert "line 3, column 4" in _ncsv_error(data[:-1], _EDGE_KINDS)
    assert "line 3 has 3 field(s)" in _ncsv_error(data.rsplit(b",", 1)[0], _EDGE_KINDS)


def test_input_bytes_are_not_modified() -> None:
    data = b"1,a,1.5,true"
    read_numeric_csv(data, _EDGE_KINDS)
    assert data == b"1,a,1.5,true"


# ---- exact values by hand -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("62193.15000000", 62193.15),
    ("-0.00010000", -0.0001),
    ("1e-05", 1e-05),
    ("0.1", 0.1),
    ("0.00001000", 1e-05),
    ("1566233.44403950", 1566233.44403950),
    ("9007199254740993", 9007199254740992.0),  # 2**53 + 1: ties to even, down
    ("9007199254740995", 9007199254740996.0),  # 2**53 + 3: ties to even, up
    ("0.30000000000000004", 0.30000000000000004),
    ("12345678901234567.123", 12345678901234568.0),
    ("1.7976931348623157e308", 1.7976931348623157e308),
    ("5e-324", 5e-324),
    ("123.", 123.0),
    (".5", 0.5),
])
def test_exact_values(text: str, value: float) -> None:
    (got,) = read_numeric_csv(text.encode(), [FLOAT])
    assert got.view(np.int64)[0] == np.float64(value).view(np.int64), (text, got[0], value)


def test_negative_zero_keeps_its_sign() -> None:
    (got,) = read_numeric_csv(b"-0\n-0.000\n0.0\n", [FLOAT])
    assert np.signbit(got).tolist() == [True, True, False]


def test_int_bounds_and_bool_spellings() -> None:
    ints, bools = read_numeric_csv(
        b"999999999999999999,True\n-999999999999999999,false\n0,TRUE\n-0,FALSE\n007,tRuE\n",
        [INT, BOOL])
    assert ints.tolist() == [10**18 - 1, -(10**18) + 1, 0, 0, 7]
    assert bools.tolist() == [True, False, True, False, True]


# ---- the eight-bytes-at-a-time digit runs ---------------------------------------------------

@pytest.mark.parametrize("tail", ["", "\n", ",1\n"], ids=["no-newline", "newline", "more-fields"])
def test_digit_runs_of_every_length_at_every_distance_from_the_end(tail: str) -> None:
    """Integer parts of 1..18 digits and fractions of 0..23 decimals (runs shorter than,
    equal to and longer than the 8-byte word), each followed by a field end, the buffer's
    end or junk: every value is Python's int/float of the same text, every junk field is
    refused. Fields sit at every offset before the end, so the word loads and the
    byte-at-a-time tail both run."""
    rng = np.random.default_rng(5)
    for n_int in range(1, 19):
        for n_frac in range(24):
            digits = "".join(str(d) for d in rng.integers(0, 10, n_int + n_frac))
            text = digits[:n_int] + ("." + digits[n_int:] if n_frac else "")
            kinds = [FLOAT, INT] if tail == ",1\n" else [FLOAT]
            for pad in range(3):
                data = f"{text}{tail}".encode()
                rows = (b"1.5" + (b",1" if len(kinds) == 2 else b"") + b"\n") * pad
                got = read_numeric_csv(rows + data, kinds)[0]
                assert got[-1] == float(text), (text, tail, pad)
            junk = f"{text}x{tail}".encode()
            with pytest.raises(InputError, match="column 1"):
                read_numeric_csv(junk, kinds)
        field = "".join(str(d) for d in rng.integers(1, 10, n_int))
        got = read_numeric_csv(f"{field}{tail}".encode(), [INT, INT] if tail == ",1\n" else [INT])[0]
        assert got.tolist() == [int(field)]


def test_digit_runs_across_word_boundaries_in_a_long_row() -> None:
    """A row of many fields of lengths 1..17 (so every field starts at a different offset
    within an 8-byte word) parses to the same values as pyarrow's reader."""
    fields = [("1" * n) + "." + ("2" * (n % 9)) if n % 9 else "3" * n for n in range(1, 18)]
    row = ",".join(fields) + "\n"
    kinds = [FLOAT] * len(fields)
    data = (row * 40).encode()
    _ncsv_assert_same(read_numeric_csv(data, kinds), _ncsv_pyarrow(data, kinds), kinds)
