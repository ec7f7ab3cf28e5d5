"""verify catches corrupted pages (checksums) and insane values (named by file and row)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake import Lake
from kline_lake.archive.csv import parse_archive_csv
from kline_lake.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.errors import LakeError
from kline_lake.lake import layout
from kline_lake.lake.synthetic import synthetic_agg_trades, synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

SPOT_1M = SeriesKey("spot", "klines", "BTCUSDT", "1m")


@pytest.fixture
def real_lake(lake_root, real_data):
    """Five real days of spot BTCUSDT 1m (2021-10-20..24) committed through the writer."""
    folder = real_data / "spot" / "daily" / "klines" / "BTCUSDT" / "1m"
    table = pa.concat_tables([
        parse_archive_csv((folder / f"BTCUSDT-1m-2021-10-{day}.csv").read_bytes(), "klines")
        for day in range(20, 25)])
    start_us = table.column("open_time")[0].value
    LakeWriter(lake_root).commit(SPOT_1M, table,
                                 covered=[(start_us, start_us + 5 * 86_400_000_000)])
    return lake_root, layout.partition_dir(lake_root, SPOT_1M, 2021, 10) / "data.parquet", table


def _zero_inside_column(path, column: str, offset: int = 2000, length: int = 500) -> None:
    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(column))
    assert chunk.total_compressed_size > offset + length  # the bytes lie inside the page
    data = bytearray(path.read_bytes())
    start = chunk.data_page_offset + offset
    data[start:start + length] = bytes(length)
    path.write_bytes(bytes(data))


def test_real_file_verifies_clean(real_lake):
    root, _, table = real_lake
    report = Lake(root).verify()
    assert report.problems == [] and report.rows_checked == table.num_rows == 7200


def test_zeroed_page_fails_verify_and_names_the_file(real_lake, capsys):
    root, path, _ = real_lake
    _zero_inside_column(path, "open")
    # the damage decodes without an error: prices become denormals/zeros, nothing raises
    garbage = pq.read_table(path).column("open").to_numpy()
    assert (garbage < 1.0).any()
    with pytest.raises(SystemExit) as exc:
        main(["verify", "--lake", str(root)])
    out = capsys.readouterr().out
    assert exc.value.code == 1
    line = next(x for x in out.splitlines() if x.startswith("error:"))
    assert line.startswith(f"error: checksum: {path}: ")
    assert "column open, row group 0 (rows 0..7199)" in line
    assert "1 error(s)" in out
    # a rewrite of that partition refuses to launder the corrupted rows
    with pytest.raises(LakeError, match="data.parquet"):
        LakeWriter(root).commit(SPOT_1M, synthetic_klines(1_634_860_800_000, 1))


def _with(table: pa.Table, **changes: dict[int, object]) -> pa.Table:
    """`table` with single cells replaced: column=name -> {row: value}."""
    for name, cells in changes.items():
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            values = column.cast(pa.int64()).to_numpy().copy()
            for row, value in cells.items():
                values[row] = value
            new = pa.array(values, pa.int64()).cast(column.type)
        else:
            values = column.to_numpy(zero_copy_only=False).copy()
            for row, value in cells.items():
                values[row] = value
            new = pa.array(values, column.type)
        table = table.set_column(table.schema.get_field_index(name), name, new)
    return table


def test_insane_kline_values_named_by_file_and_row(real_lake):
    root, path, table = real_lake
    open_us = table.column("open_time").cast(pa.int64()).to_numpy()
    bad = _with(
        table,
        open={17: 2e-322},                              # a denormal "price", below low
        high={40: float("nan")},
        volume={100: -1.0},
        taker_buy_volume={250: table.column("volume")[250].as_py() + 1.0},
        close_time={300: int(open_us[300]) + 60_000_000},  # the next kline's open
    )
    pq.write_table(bad, path, write_page_checksum=True)
    report = Lake(root).verify()
    assert {p.path for p in report.errors} == {str(path)}
    assert {p.kind for p in report.errors} == {"bad-values"}
    found = {p.message.split('"')[1]: p.message for p in report.errors}
    assert set(found) == {"prices > 0 and finite", "low <= open, close <= high",
                          "volumes >= 0 and finite", "taker-buy <= volume",
                          "close_time inside the 1m kline"}
    assert found["prices > 0 and finite"].startswith("2 row(s) break")  # rows 17 and 40
    assert "first at row 17 (open_time 2021-10-20T00:17:00+00:00): open=2e-322" \
        in found["prices > 0 and finite"]
    assert "first at row 17 " in found["low <= open, close <= high"]
    assert "first at row 100 " in found["volumes >= 0 and finite"] and "volume=-1.0" \
        in found["volumes >= 0 and finite"]
    # rows 100 (volume -1 < taker-buy) and 250
    assert found["taker-buy <= volume"].startswith("2 row(s)") and "row 100 " \
        in found["taker-buy <= volume"]
    assert "first at row 300 " in found["close_time inside the 1m kline"]
    assert "close_time=2021-10-20T05:01:00+00:00" in found["close_time inside the 1m kline"]


def test_insane_trades_and_funding(lake_root):
    writer = LakeWriter(lake_root)
    trades_key = SeriesKey("um", "agg_trades", "BTCUSDT")
    funding_key = SeriesKey("um", "funding", "BTCUSDT")
    premium_key = SeriesKey("um", "premium_klines", "BTCUSDT", "1h")
    trades = synthetic_agg_trades(JAN_2024_MS, 50)
    writer.commit(trades_key, _with(trades, price={5: 0.0}, quantity={9: -2.0}))
    writer.commit(funding_key, _with(synthetic_funding(JAN_2024_MS, 10),
                                     funding_rate={2: float("inf"), 3: -0.0003}))
    # a premium index is negative whenever the perpetual trades below the index: no error
    premium = synthetic_klines(JAN_2024_MS, 24, "1h", price_only=True)
    negative = {c: pa.array(-np.asarray(premium.column(c)) * 1e-6)
                for c in ("open", "high", "low", "close")}
    premium = pa.table({**{c: premium.column(c) for c in premium.column_names},
                        "open": negative["open"], "high": negative["low"],
                        "low": negative["high"], "close": negative["close"]})
    writer.commit(premium_key, premium.select(["open_time", "open", "high", "low", "close",
                                               "close_time"]))
    errors = Lake(lake_root).verify().errors
    trade_file = layout.partition_dir(lake_root, trades_key, 2024, 1) / "2024-01-01.parquet"
    fund_file = layout.partition_dir(lake_root, funding_key, 2024, 1) / "data.parquet"
    assert [(p.path, p.kind) for p in errors] == [(str(trade_file), "bad-values"),
                                                  (str(fund_file), "bad-values")]
    assert errors[0].message.startswith('2 row(s) break "price and quantity > 0 and finite"; '
                                        "first at row 5 ")
    assert "price=0.0" in errors[0].message
    assert errors[1].message.startswith('1 row(s) break "funding rate finite"; first at row 2 ')
    assert "funding_rate=inf" in errors[1].message
