"""Coverage holes in the inventory; funding and agg_trades gaps (real exchange data)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake import Lake
from kline_lake.cli import main
from kline_lake.core import ranges as rg
from kline_lake.core.series import SeriesKey
from kline_lake.download.rest_rows import parse_rest_agg_trades
from kline_lake.lake.event_gaps import funding_gaps
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

J_US = JAN_2024_MS * 1000
DAY_US = 86_400_000_000
HOUR = timedelta(hours=1)
FUNDING = SeriesKey("um", "funding", "BTCUSDT")
TRADES = SeriesKey("spot", "agg_trades", "XRPETH")


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_inventory_shows_coverage_holes(lake_root, capsys):
    w = LakeWriter(lake_root)
    key = SeriesKey("spot", "klines", "BTCUSDT", "1m")
    # covered: Jan 1-3, Jan 20-21 and Feb 10-11: two holes of 17 and 19 days inside
    w.commit(key, synthetic_klines(JAN_2024_MS, 60),
             covered=[(J_US, J_US + 3 * DAY_US), (J_US + 19 * DAY_US, J_US + 20 * DAY_US),
                      (J_US + 40 * DAY_US, J_US + 41 * DAY_US)])
    w.commit(SeriesKey("spot", "klines", "ETHUSDT", "1m"), synthetic_klines(JAN_2024_MS, 5))
    inv = Lake(lake_root).inventory()
    btc = inv.filter(pl.col("symbol") == "BTCUSDT").row(0, named=True)
    assert (btc["covered_from"], btc["covered_to"]) == (datetime(2024, 1, 1, tzinfo=UTC),
                                                        datetime(2024, 2, 11, tzinfo=UTC))
    assert (btc["coverage_holes"], btc["coverage_hole_days"]) == (2, 36.0)
    eth = inv.filter(pl.col("symbol") == "ETHUSDT").row(0, named=True)
    assert (eth["coverage_holes"], eth["coverage_hole_days"]) == (None, None)  # no record
    code, out, _ = run(["inventory", "--lake", str(lake_root), "--format", "json"], capsys)
    assert code == 0 and json.loads(out)[0]["coverage_holes"] == 2
    code, out, _ = run(["inventory", "--lake", str(lake_root), "--format", "csv"], capsys)
    assert out.splitlines()[0].endswith(",covered_from,covered_to,coverage_holes,coverage_hole_days")


@pytest.fixture
def funding_lake(lake_root, real_data):
    """Real BTCUSDT funding (1,000 settlements every 8h from 2019-09-10 08:00, some times
    with 1 ms of jitter) with settlements 100-102 and 500 removed, then twelve 4-hourly
    settlements (synthetic) after the last real one: the contract switched to 4h."""
    raw = pl.read_csv(real_data / "usdm" / "funding" /
                      "BTCUSDT_fundingRate_first1000_2019-09-10_2020-08-08.csv")
    times = raw["time"].str.to_datetime(time_zone="UTC").dt.cast_time_unit("us")
    assert (times.dt.millisecond() == 1).sum() > 10  # the jitter is really there
    real_us = times.cast(pl.Int64).to_numpy()
    keep = np.setdiff1d(np.arange(1000), [100, 101, 102, 500])
    last_us = int(real_us[-1] // 3_600_000_000 * 3_600_000_000)
    four_hourly = last_us + np.arange(1, 13, dtype=np.int64) * 4 * 3_600_000_000
    all_us = np.concatenate([real_us[keep], four_hourly])
    table = pa.table({
        "funding_time": pa.array(all_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "funding_rate": np.concatenate([raw["funding_rate"].to_numpy()[keep],
                                        np.full(12, 0.0001)]),
        "mark_price": pa.nulls(len(all_us), pa.float64()),
    })
    # the downloader covered the first 300 settlements only
    LakeWriter(lake_root).commit(FUNDING, table, covered=[(int(real_us[0]), int(real_us[300]))])
    return lake_root


def test_funding_gaps_on_its_settlement_grid(funding_lake, capsys):
    first = datetime(2019, 9, 10, 8, tzinfo=UTC)
    settle = lambda i: first + 8 * i * HOUR  # noqa: E731  the i-th real settlement
    gaps = Lake(funding_lake).gaps("um", "BTCUSDT", dataset="funding")
    assert gaps.columns == ["start", "end", "missing", "status", "cadence"]
    assert gaps.rows() == [
        (settle(100), settle(103), 3, "confirmed", "8h"),   # inside the covered stretch
        (settle(500), settle(501), 1, "unknown", "8h"),     # never fetched
        (settle(999), settle(999) + 4 * HOUR, 0, "interval-change", "8h -> 4h"),
    ]
    assert settle(999) == datetime(2020, 8, 8, 8, tzinfo=UTC)  # the file's last row
    # an explicit range: the settlements before the first record and after the last
    ranged = Lake(funding_lake).gaps("um", "BTCUSDT", start="2019-09-09",
                                     end=settle(999) + 60 * HOUR, dataset="funding")
    assert ranged.row(0) == (datetime(2019, 9, 9, tzinfo=UTC), first, 4, "unknown", "8h")
    assert ranged.row(-1) == (settle(999) + 52 * HOUR, settle(999) + 60 * HOUR, 2, "unknown", "4h")
    code, out, _ = run(["gaps", "--lake", str(funding_lake), "--data", "funding",
                        "--format", "csv"], capsys)
    lines = out.splitlines()
    assert code == 0 and lines[0] == "market,symbol,start,end,missing,status,cadence"
    assert lines[1] == "um,BTCUSDT,2019-10-13T16:00:00.000000+0000," \
                       "2019-10-14T16:00:00.000000+0000,3,confirmed,8h"
    assert len(lines) == 4


def test_agg_trade_gaps_from_id_continuity(lake_root, real_data, capsys):
    rows = json.loads((real_data / "spot" / "aggtrades" /
                       "freqtrade_XRPETH_aggTrades_raw_2019-10-11_2019-10-13.json").read_text())
    table = parse_rest_agg_trades(rows)
    ids = table.column("agg_id").to_numpy()
    assert (np.diff(ids) == 1).all()  # the real ids are contiguous
    times = table.column("transact_time").cast(pa.int64()).to_numpy()
    keep = np.setdiff1d(np.arange(len(ids)), [*range(1000, 1010), 5000])
    LakeWriter(lake_root).commit(TRADES, table.take(pa.array(keep)),
                                 covered=[(int(times[0]), int(times[3000]))])
    gaps = Lake(lake_root).gaps("spot", "XRPETH", dataset="agg_trades")
    at = lambda i: datetime.fromtimestamp(int(times[i]) / 1e6, tz=UTC)  # noqa: E731
    assert gaps.rows() == [
        (at(999), at(1010), 10, "confirmed", int(ids[1000]), int(ids[1009])),
        (at(4999), at(5001), 1, "unknown", int(ids[5000]), int(ids[5000])),
    ]
    assert gaps.columns == ["start", "end", "missing", "status", "first_id", "last_id"]
    code, out, err = run(["gaps", "--lake", str(lake_root), "--data", "agg_trades",
                          "--format", "json"], capsys)
    assert code == 0 and [r["missing"] for r in json.loads(out)] == [10, 1]
    code, _, err = run(["gaps", "--lake", str(lake_root), "--data", "agg_trades",
                        "--interval", "1m"], capsys)
    assert code == 2 and "agg_trades has no interval" in err


def _funding_by_slot(times_us, covered, start_us, end_us):
    """Oracle for an 8-hourly contract: every 8h grid point in the range, one by one."""
    hour = 3_600_000_000
    lo = start_us if start_us is not None else min([int(times_us[0])] + [a for a, _ in covered[:1]])
    hi = end_us if end_us is not None else max([int(times_us[-1]) + 1] + [b for _, b in covered[-1:]])
    present = set(((times_us + hour // 2) // hour).tolist())
    rows = []
    for t in range(-(-lo // (8 * hour)) * 8, -(-hi // hour), 8):
        if t in present:
            continue
        status = "confirmed" if any(a <= t * hour < b for a, b in covered) else "unknown"
        if rows and rows[-1][1] == t * hour and rows[-1][3] == status:
            rows[-1] = (rows[-1][0], (t + 8) * hour, rows[-1][2] + 1, status)
        else:
            rows.append((t * hour, (t + 8) * hour, 1, status))
    return rows


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), ends=st.sampled_from(["none", "start", "end", "both"]))
def test_funding_gaps_equal_slot_by_slot_for_8h(seed, ends):
    rng = np.random.default_rng(seed)
    hour = 3_600_000_000
    slots = J_US + np.arange(60, dtype=np.int64) * 8 * hour
    keep = np.sort(rng.choice(60, size=int(rng.integers(2, 61)), replace=False))
    times = slots[keep] + rng.integers(0, 5, size=len(keep)) * 1000  # ms jitter
    cuts = np.sort(rng.integers(int(slots[0]) - 40 * hour, int(slots[-1]) + 40 * hour,
                                size=2 * int(rng.integers(0, 4))))
    covered = rg.merge((int(a), int(b)) for a, b in zip(cuts[::2], cuts[1::2], strict=True))
    start_us = int(rng.integers(int(slots[0]) - 50 * hour, int(slots[-1]))) \
        if ends in ("start", "both") else None
    end_us = int(rng.integers(start_us or int(slots[0]), int(slots[-1]) + 50 * hour)) + 1 \
        if ends in ("end", "both") else None
    sel = np.ones(len(times), dtype=bool)
    if start_us is not None:
        sel &= times >= start_us
    if end_us is not None:
        sel &= times < end_us
    times = times[sel]
    if len(times) < 2:
        return
    got = funding_gaps(times, covered, start_us, end_us)
    assert set(got["cadence"]) <= {"8h"}  # no interval change is invented
    got = got.select(
        pl.col("start").cast(pl.Int64), pl.col("end").cast(pl.Int64), "missing", "status").rows()
    assert got == _funding_by_slot(times, covered, start_us, end_us)
