"""Loading from a lake on disk, including real Binance files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
import vectorbt as vbt

import backtest
from backtest.data import load_bars, load_funding, parse_time_us
from kline_lake.archive.csv import parse_archive_csv
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake.scan import empty_frame
from kline_lake.lake.writer import LakeWriter
from tests.support.backtest import iso, make_bars, write_funding, write_klines

REAL = Path(__file__).resolve().parents[1] / "data" / "real_data"
H_US = 3_600_000_000


def test_load_bars_filters_range_and_months(lake):
    root, bars = lake
    start = int(bars.open_time_us[100])
    end = int(bars.open_time_us[2000])
    loaded = load_bars(root, "um", "BTCUSDT", "1h", start, end)
    assert len(loaded) == 1900
    np.testing.assert_array_equal(loaded.close, bars.close[100:2000])
    np.testing.assert_array_equal(loaded.open_time_us, bars.open_time_us[100:2000])
    assert loaded.bar_days == pytest.approx(1 / 24)


def test_empty_range_names_market_symbol_interval_and_range(lake):
    root, _ = lake
    with pytest.raises(InputError, match=r"um ETHUSDT 1h klines .*2023-01-01"):
        load_bars(root, "um", "ETHUSDT", "1h", parse_time_us("2023-01-01", "s"),
                  parse_time_us("2023-02-01", "e"))
    with pytest.raises(InputError, match="no um BTCUSDT 1h klines"):
        load_bars(root, "um", "BTCUSDT", "1h", parse_time_us("2030-01-01", "s"),
                  parse_time_us("2030-02-01", "e"))
    with pytest.raises(InputError, match="after"):
        load_bars(root, "um", "BTCUSDT", "1h", 10, 10)
    with pytest.raises(InputError, match="cannot parse"):
        parse_time_us("yesterday", "start")


def test_duplicate_rows_across_files_are_deduplicated(tmp_path):
    bars = make_bars(48, seed=2)
    write_klines(tmp_path, bars)
    month = next((tmp_path / "um" / "klines").rglob("month=01"))
    table = pq.read_table(next(month.glob("*.parquet")))
    pq.write_table(table.slice(0, 10), month / "part-dup.parquet")
    loaded = load_bars(tmp_path, "um", "BTCUSDT", "1h", int(bars.open_time_us[0]),
                       int(bars.open_time_us[-1]) + 1)
    assert len(loaded) == 48


def _real_spot_lake(root: Path) -> None:
    days = ["2021-10-20", "2021-10-21", "2021-10-22", "2021-10-23", "2021-10-24"]
    tables = [parse_archive_csv((REAL / "spot/daily/klines/BTCUSDT/1m" /
                                 f"BTCUSDT-1m-{d}.csv").read_bytes(), "klines") for d in days]
    base = root / "spot/klines/symbol=BTCUSDT/interval=1m/year=2021/month=10"
    base.mkdir(parents=True)
    for d, t in zip(days, tables, strict=True):
        pq.write_table(t, base / f"{d}.parquet")


def test_real_binance_klines_sma_cross_matches_vectorbt(tmp_path):
    _real_spot_lake(tmp_path)
    res = backtest.run("sma_cross", {"fast": 20, "slow": 90}, lake=tmp_path, market="spot",
                       symbol="BTCUSDT", interval="1m", start="2021-10-20", end="2021-10-25",
                       fee=0.001, slippage_bps=1)
    assert res.config["n_bars"] == 5 * 1440
    close = res.equity["close"].to_numpy()
    open_ = res.equity["open"].to_numpy()
    f = vbt.MA.run(pd.Series(close), 20).ma
    s = vbt.MA.run(pd.Series(close), 90).ma
    up = np.r_[False, f.vbt.crossed_above(s).to_numpy()[:-1]]
    down = np.r_[False, f.vbt.crossed_below(s).to_numpy()[:-1]]
    pf = vbt.Portfolio.from_signals(close, up, down, price=open_, fees=0.001, slippage=1e-4,
                                    init_cash=10_000.0, freq="1min")
    np.testing.assert_allclose(res.equity_curve, pf.value().to_numpy(), rtol=1e-9)
    assert res.metrics["n_trades"] == pf.trades.count() > 20
    assert res.metrics["funding_paid"] == 0.0  # spot: no funding
    # spot cannot short or lever
    with pytest.raises(InputError, match="spot"):
        backtest.run("hold", lake=tmp_path, market="spot", symbol="BTCUSDT", interval="1m",
                     start="2021-10-20", end="2021-10-21", direction="short")


def test_real_funding_history_with_jitter(tmp_path):
    df = pl.read_csv(REAL / "usdm/funding/BTCUSDT_fundingRate_first1000_2019-09-10_2020-08-08.csv")
    t_us = (df["time"].str.to_datetime("%Y-%m-%d %H:%M:%S%.f%:z").dt.cast_time_unit("us")
            .cast(pl.Int64).to_numpy())
    rates = df["funding_rate"].to_numpy()
    write_funding(tmp_path, "um", "BTCUSDT", t_us, rates)  # archive-style: no mark price
    t0_ms = 1_568_073_600_000  # 2019-09-10T00:00Z
    bars = make_bars(24 * 120, seed=5, t0_ms=t0_ms, vol=0.002)
    write_klines(tmp_path, bars)
    end_us = int(bars.open_time_us[-1]) + H_US
    # the file is BTCUSDT's funding history from its first settlement (2019-09-10 08:00):
    # a download of this range records it as covered (backtest.coverage checks funding)
    LakeWriter(tmp_path).commit(SeriesKey("um", "funding", "BTCUSDT"),
                                empty_frame("funding").to_arrow(),
                                [(int(bars.open_time_us[0]), end_us)])
    ev = load_funding(tmp_path, "um", "BTCUSDT", int(bars.open_time_us[0]), end_us)
    assert ev.time_us.shape[0] == 359  # 2019-09-10 08:00 .. 2020-01-07 16:00 and np.isnan(ev.mark_price).all()
    assert (ev.time_us % H_US != 0).sum() >= 4  # the real jittered stamps are there
    res = backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                       start=iso(bars.open_time_us[0]), end=iso(end_us), fee=0.0)
    qty = res.trades["qty"][0]
    held = ev.time_us > bars.open_time_us[1]  # entered at bar 1's open (not charged then)
    k = (ev.time_us[held] - bars.open_time_us[0]) // H_US  # jitter -> bar containing T
    expected = (qty * bars.open[k] * ev.rate[held]).sum()
    assert res.metrics["funding_paid"] == pytest.approx(expected, rel=1e-12)
    without = backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT",
                           interval="1h", start=iso(bars.open_time_us[0]), end=iso(end_us),
                           fee=0.0, funding=False)
    assert res.metrics["final_equity"] == (without.metrics["final_equity"]
                                           - res.metrics["funding_paid"])
