"""archive.trades_stream: a trades CSV read in chunks (any chunk size, size known or not,
from memory or a zip member) gives exactly parse_archive_csv's table of the same bytes, or
its error word for word."""

from __future__ import annotations

import io
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake.archive.csv import parse_archive_csv
from kline_lake.archive.trades_stream import parse_trades_stream
from kline_lake.errors import InputError
from tests.archive.test_trades_csv import _MUTANTS, _assert_identical, _trades_files


def _outcome(fn):
    try:
        return fn(), None
    except InputError as exc:
        return None, str(exc)


def _check(data: bytes, chunk: int, known_size: bool) -> None:
    want, want_error = _outcome(lambda: parse_archive_csv(data, "trades"))
    got, got_error = _outcome(lambda: parse_trades_stream(
        lambda: io.BytesIO(data), size_bytes=len(data) if known_size else None, chunk_bytes=chunk))
    assert got_error == want_error
    if want is not None:
        _assert_identical(got, want)


@settings(max_examples=150, deadline=None)
@given(_trades_files(), st.integers(1, 300), st.booleans())
def test_any_chunking_gives_the_bytes_table(case, chunk: int, known_size: bool) -> None:
    _check(case[0], chunk, known_size)


@settings(max_examples=150, deadline=None)
@given(_trades_files(), st.data(), st.integers(1, 300))
def test_mutated_files_in_chunks_give_the_bytes_table_or_error(case, data_, chunk: int) -> None:
    data = case[0]
    at = data_.draw(st.integers(0, max(len(data) - 1, 0)))
    _check(data[:at] + data_.draw(_MUTANTS) + data[at + 1:], chunk, data_.draw(st.booleans()))


def test_a_zip_member_streams_through_many_chunks_and_grows_its_columns() -> None:
    # long lines first, then short ones: the head's line length overestimates the bytes
    # per row, so the columns must grow (and copy) mid-file
    rows = [f"{10**9 + i},{60000 + i % 997}.12345678,0.00{i % 89 + 10}000,1234.{i:08d},"
            f"{1735689600000000 + 7 * i},{'True' if i % 3 else 'False'},True" for i in range(4000)]
    rows += [f"{10**9 + i},1,2,3,{1735689600000000 + i},False,True" for i in range(4000, 30000)]
    data = ("\n".join(rows) + "\n").encode()
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("X-trades-2025-01-01.csv", data)
    with zipfile.ZipFile(sink) as zf:
        size = zf.getinfo("X-trades-2025-01-01.csv").file_size
        got = parse_trades_stream(lambda: zf.open("X-trades-2025-01-01.csv"), size_bytes=size,
                                  chunk_bytes=4096)
    assert got.num_rows == 30000
    _assert_identical(got, parse_archive_csv(data, "trades"))
