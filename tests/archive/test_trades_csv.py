"""archive.trades_csv (the one-layout trades kernel) against its two references: the generic
reader's table (`numeric_csv` + the old table code, kept as the refusal path) and pyarrow's
CSV reader; on generated files, on mutated ones (same table or same error, word for word),
on the real REST trades rendered in the archive's layout and on the fake exchange's archive
days; and the Parquet file written from either table is the same bytes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake.archive.csv import parse_archive_csv
from kline_lake.archive.trades_csv import TRADES_CSV_COLUMNS, _fast, _generic, parse_trades_csv
from kline_lake.core.schemas import TRADES, to_us
from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from tests.core.test_numeric_csv import _ncsv_bool_field, _ncsv_float_field, _ncsv_int_field

REAL = Path(__file__).resolve().parents[1] / "data" / "real_data" / "spot" / "rest_responses"


def _pyarrow_trades(data: bytes, header: bool, n_cols: int) -> pa.Table:
    """The independent reference: pyarrow's reader, typed columns, times to us."""
    if header:  # pyarrow refuses a header without a line after it: the body alone
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    if not data.strip():
        return TRADES.empty_table()
    names = list(TRADES_CSV_COLUMNS[:n_cols])
    types = [pa.int64(), pa.float64(), pa.float64(), pa.float64(), pa.int64(), pa.bool_(), pa.bool_()]
    raw = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=names),
        parse_options=pacsv.ParseOptions(quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(names, types, strict=False)),
            true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"]),
    )
    n = raw.num_rows
    cols = {name: raw.column(name) for name in names}
    cols["time"] = pa.array(to_us(cols["time"].to_numpy()), pa.int64()).view(TRADES.field("time").type)
    if n_cols == 6:
        cols["is_best_match"] = pa.nulls(n, pa.bool_())
    return pa.Table.from_arrays([cols[f.name] for f in TRADES], schema=TRADES)


def _assert_identical(got: pa.Table, want: pa.Table) -> None:
    """Same schema and values; floats bit for bit (-0.0 != 0.0), nulls where nulls."""
    assert got.schema.equals(want.schema), (got.schema, want.schema)
    assert got.num_rows == want.num_rows
    for name in got.column_names:
        g, w = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_floating(g.type):
            assert np.array_equal(g.to_numpy().view(np.int64), w.to_numpy().view(np.int64)), name
        else:
            assert g.equals(w), name


def _error(fn, *args, **kwargs) -> str | None:
    try:
        fn(*args, **kwargs)
    except InputError as exc:
        return str(exc)
    return None


def _fixed_float(ip: int, fl: int):
    """Numbers of one shape, ``ip`` digits, a dot, ``fl`` digits (as a day of one symbol's
    prices): the kernel's speculative path reads such runs."""
    return st.tuples(st.text("0123456789", min_size=ip, max_size=ip),
                     st.text("0123456789", min_size=fl, max_size=fl)).map(".".join)


@st.composite
def _uniform_row(draw, shapes: tuple) -> list[str]:
    id_width, floats, time_width = shapes
    return [draw(st.text("0123456789", min_size=id_width, max_size=id_width)),
            *(draw(_fixed_float(ip, fl)) for ip, fl in floats),
            draw(st.text("0123456789", min_size=time_width, max_size=time_width))]


@st.composite
def _trades_files(draw):
    """A trades file: 6 or 7 columns, Binance-like or edge-case fields, or runs of rows
    with fields of one shape; ms or us times, header or not, LF or CRLF, blank lines, with
    or without a last newline."""
    n_cols = draw(st.sampled_from([6, 7]))
    n_rows = draw(st.integers(0, 30))
    rows = []
    first_id = draw(st.integers(0, 10**12))
    shape = st.integers(1, 9)
    shapes = (draw(st.integers(1, 17)), [(draw(shape), draw(shape)) for _ in range(3)],
              draw(st.sampled_from([13, 16, 1, 17])))
    uniform = draw(st.booleans())
    for i in range(n_rows):
        if uniform and draw(st.integers(0, 9)):
            fields = draw(_uniform_row(shapes))
        else:
            trade_id = str(first_id + i) if draw(st.integers(0, 4)) else draw(_ncsv_int_field())
            time = draw(st.one_of(st.integers(10**12, 2 * 10**12), st.integers(10**15, 2 * 10**15),
                                  st.integers(-(10**17), 10**17))).__str__()
            fields = [trade_id, *(draw(_ncsv_float_field()) for _ in range(3)), time]
        fields += [draw(_ncsv_bool_field) for _ in range(n_cols - 5)]
        rows.append(",".join(fields))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    for i in sorted(draw(st.lists(st.integers(0, n_rows), max_size=3)), reverse=True):
        rows.insert(i, "")
    header = draw(st.booleans())
    if header:
        rows.insert(0, "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"[:None if n_cols == 7 else -14])
    text = eol.join(rows) + (eol if draw(st.booleans()) else "")
    return text.encode(), header, n_cols


@settings(max_examples=150, deadline=None)
@given(_trades_files())
def test_generated_files_equal_the_generic_reader_and_pyarrow(case) -> None:
    data, header, n_cols = case
    if not data.strip() or data.split(b"\n")[0].rstrip(b"\r") == b"":
        return  # blank files and a blank first line are csv.py's to judge (tested below)
    got = _fast(data, n_cols, header)  # valid files: the kernel reads them, refusing none
    assert got is not None
    _assert_identical(got, _generic(data, n_cols, header))
    _assert_identical(got, _pyarrow_trades(data, header, n_cols))
    _assert_identical(parse_archive_csv(data, "trades"), got)  # csv.py tells the header apart


_MUTANTS = st.sampled_from([b"x", b",", b"\n", b"\r", b"-", b".", b"e", b"", b" ", b"T", b"9", b",,"])


@settings(max_examples=150, deadline=None)
@given(_trades_files(), st.data())
def test_mutated_files_give_the_generic_readers_table_or_its_error(case, data_) -> None:
    """A byte replaced, dropped or doubled anywhere: the same table, or the same error line."""
    data, header, n_cols = case
    if len(data) < 2:
        return
    at = data_.draw(st.integers(0, len(data) - 1))
    mutant = data[:at] + data_.draw(_MUTANTS) + data[at + 1:]
    if not mutant.strip() or mutant.split(b"\n")[0].count(b",") + 1 != n_cols:
        return  # a different column count is csv.py's check (tested below)
    want_error = _error(_generic, mutant, n_cols, header)
    got_error = _error(parse_trades_csv, mutant, header=header)
    assert got_error == want_error
    if want_error is None:
        _assert_identical(parse_trades_csv(mutant, header=header), _generic(mutant, n_cols, header))


def _archive_rows(trades: list[dict], *, micros: bool, best_match: bool) -> bytes:
    """REST trade objects in the archive's CSV layout (spot: True/False; futures: 6 columns,
    true/false)."""
    out = []
    for t in trades:
        time = t["time"] * 1000 + 123 if micros else t["time"]
        fields = [str(t["id"]), t["price"], t["qty"], t["quoteQty"], str(time)]
        if best_match:
            fields += [str(t["isBuyerMaker"]), str(t["isBestMatch"])]
        else:
            fields += [str(t["isBuyerMaker"]).lower()]
        out.append(",".join(fields) + "\n")
    return "".join(out).encode()


@pytest.mark.parametrize("body", ["nautilus_http_spot_market_historical_trades.json",
                                  "nautilus_http_spot_market_trades.json"])
@pytest.mark.parametrize(("micros", "best_match"), [(False, True), (True, True), (False, False)])
def test_real_rest_trades_in_archive_layout(body: str, micros: bool, best_match: bool) -> None:
    trades = json.loads((REAL / body).read_text())
    assert len(trades) >= 10
    data = _archive_rows(trades, micros=micros, best_match=best_match)
    n_cols = 7 if best_match else 6
    got = parse_archive_csv(data, "trades")
    assert got.column("trade_id").to_pylist() == [t["id"] for t in trades]
    assert got.column("price").to_pylist() == [float(t["price"]) for t in trades]
    _assert_identical(got, _generic(data, n_cols, False))
    _assert_identical(got, _pyarrow_trades(data, False, n_cols))
    with_header = b"id,price,qty,quote_qty,time,is_buyer_maker" + b",is_best_match" * best_match + b"\n" + data
    _assert_identical(parse_archive_csv(with_header, "trades"), got)


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=4, now_ms=1_740_000_000_000) as server:
        yield server


@pytest.mark.parametrize(("root", "sym", "day"), [
    ("spot", "ETHUSDT", "2025-01-10"), ("spot", "XMRUSDT", "2021-06-01"),
    ("futures/um", "SRMUSDT", "2022-06-01"), ("futures/um", "SRMUSDT", "2021-06-01"),
    ("futures/cm", "ETHUSD_PERP", "2023-06-01"),
])
def test_fake_archive_days_equal_the_references_and_write_the_same_parquet(fx, root: str, sym: str,
                                                                           day: str) -> None:
    r = httpx.get(f"{fx.base_url}/data/{root}/daily/trades/{sym}/{sym}-trades-{day}.zip", timeout=60)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        data = zf.read(zf.namelist()[0])
    header = data.startswith(b"id,")
    n_cols = data.split(b"\n", 1)[0].count(b",") + 1
    got = parse_archive_csv(data, "trades")
    assert got.num_rows > 1000
    want = _generic(data, n_cols, header)
    _assert_identical(got, want)
    _assert_identical(got, _pyarrow_trades(data, header, n_cols))
    files = []
    for table in (got, want):
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=1000)
        files.append(sink.getvalue())
    assert files[0] == files[1]


@pytest.mark.parametrize(("data", "message"), [
    (b"1,2.5,3,7.5,1735689600000,True,True\n2,2.5,3,7.5,17356x9600000,True,True\n",
     "malformed archive CSV: line 2, column 5: expected an integer, found '17356x9600000'"),
    (b"1,2.5,3,7.5,1735689600000,True,True\n\n3,2.5,3,7.5,1,Maybe,True\n",
     "malformed archive CSV: line 3, column 6: expected true or false, found 'Maybe'"),
    (b"1,2.5,3,7.5,1735689600000,True,True\n2,2.5,3,7.5,1735689600000,True\n",
     "malformed archive CSV: line 2 has 6 field(s), expected 7"),
    (b"id,price,qty,quote_qty,time,is_buyer_maker\n1,2.5,3,1e400x,5,true\n",
     "malformed archive CSV: line 2, column 4: expected a number, found '1e400x'"),
    (b"1,2.5,3\n", "trades archive CSV has 3 columns, expected 6 to 7"),
])
def test_errors_name_the_line_and_column_as_the_generic_reader_does(data: bytes, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_archive_csv(data, "trades")
    assert str(info.value).startswith(message), str(info.value)
    if "columns, expected" not in message:
        assert str(info.value) == _error(_generic, data, data.split(b"\n")[0].count(b",") + 1,
                                         data.startswith(b"id"))


def test_slow_fields_last_line_without_newline_and_blank_files() -> None:
    # 17 significant digits and an exponent go to float(); more slow fields than the first
    # slow table holds; a last line without its newline; CRLF
    rows = [f"{i},123456789.12345678,1e-3,{i}.5E2,{1735689600000 + i},false,TRUE" for i in range(3000)]
    data = "\r\n".join(rows).encode()
    got = parse_archive_csv(data, "trades")
    assert got.num_rows == 3000
    assert got.column("price")[0].as_py() == float("123456789.12345678")
    assert got.column("quote_quantity")[2999].as_py() == 299950.0
    _assert_identical(got, _generic(data, 7, False))
    assert parse_archive_csv(b" \r\n\n", "trades").equals(TRADES.empty_table())
    header_only = parse_archive_csv(b"id,price,qty,quote_qty,time,is_buyer_maker", "trades")
    assert header_only.num_rows == 0 and header_only.schema.equals(TRADES)
