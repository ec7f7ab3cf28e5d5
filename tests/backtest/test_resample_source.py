"""A lake with only 1m klines backtests at 1h (issue 12 item 12): bars are resampled
exactly from the finest interval present, the result says so, and coverage is checked on
the source interval. Oracle: the hand aggregation of the same 1m rows written as 1h
klines into a second lake gives the identical backtest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import backtest
from backtest.cli import main
from kline_lake.core.schemas import ms_to_ts
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import parse_utc_us
from kline_lake.errors import InputError
from kline_lake.lake.synthetic import synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter

START, END = "2024-01-01", "2024-01-04"
T0_US = parse_utc_us(START)
MIN_US = 60_000_000
H_US = 60 * MIN_US
N_MIN = 3 * 24 * 60


def _key(interval: str, market: str = "um") -> SeriesKey:
    return SeriesKey(market, "klines", "BTCUSDT", interval)


def _minutes(missing: slice | None = None) -> pa.Table:
    table = synthetic_klines(T0_US // 1000, N_MIN, "1m", seed=11)
    if missing is None:
        return table
    keep = np.ones(N_MIN, dtype=bool)
    keep[missing] = False
    return table.filter(pa.array(keep))


def _write(root: Path, table: pa.Table, interval: str, covered: list[tuple[int, int]],
           market: str = "um") -> None:
    writer = LakeWriter(root)
    writer.commit(_key(interval, market), table, covered)
    if market == "um":
        writer.commit(SeriesKey("um", "funding", "BTCUSDT"),
                      synthetic_funding(T0_US // 1000, 9, seed=4), [(T0_US, T0_US + 72 * H_US)])


def _hourly_by_hand(minutes: pa.Table) -> pa.Table:
    """1h klines aggregated with NumPy from 60 consecutive 1m rows each."""
    col = {c: minutes.column(c).to_numpy().reshape(-1, 60) for c in
           ("open", "high", "low", "close", "volume", "quote_volume", "trades",
            "taker_buy_volume", "taker_buy_quote_volume")}
    opens_ms = T0_US // 1000 + np.arange(col["open"].shape[0], dtype=np.int64) * 3_600_000
    return pa.table({
        "open_time": ms_to_ts(opens_ms), "open": col["open"][:, 0],
        "high": col["high"].max(axis=1), "low": col["low"].min(axis=1),
        "close": col["close"][:, -1], "volume": col["volume"].sum(axis=1),
        "close_time": ms_to_ts(opens_ms + 3_600_000 - 1),
        "quote_volume": col["quote_volume"].sum(axis=1), "trades": col["trades"].sum(axis=1),
        "taker_buy_volume": col["taker_buy_volume"].sum(axis=1),
        "taker_buy_quote_volume": col["taker_buy_quote_volume"].sum(axis=1),
    })


def _run(root: Path, interval: str = "1h", **kw):
    return backtest.run("sma_cross", {"fast": 3, "slow": 10}, lake=root, market="um",
                        symbol="BTCUSDT", interval=interval, start=START, end=END,
                        direction="both", **kw)


def test_1h_from_a_lake_with_only_1m_equals_stored_1h(tmp_path):
    minutes = _minutes()
    _write(tmp_path / "m", minutes, "1m", [(T0_US, T0_US + N_MIN * MIN_US)])
    hourly = _hourly_by_hand(minutes)
    _write(tmp_path / "h", hourly, "1h", [(T0_US, T0_US + 72 * H_US)])
    res = _run(tmp_path / "m")
    ref = _run(tmp_path / "h")
    assert res.config["n_bars"] == 72 and res.config["interval"] == "1h"
    for c in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(res.equity[c].to_numpy(), hourly.column(c).to_numpy())
    np.testing.assert_array_equal(res.equity_curve, ref.equity_curve)
    assert res.metrics == ref.metrics
    assert res.metrics["n_trades"] > 2 and res.metrics["funding_paid"] != 0.0
    assert res.config["coverage"]["source_interval"] == "1m"
    assert res.config["coverage"]["resampled"] is True
    assert any("1h bars resampled exactly from the lake's 1m klines" in w for w in res.warnings)
    assert ref.config["coverage"]["resampled"] is False
    assert not any("resampled" in w for w in ref.warnings)


def test_the_finest_present_interval_is_the_source_and_the_requested_one_wins(tmp_path):
    minutes = _minutes()
    fifteen = synthetic_klines(T0_US // 1000, N_MIN // 15, "15m", seed=5)
    _write(tmp_path, fifteen, "15m", [(T0_US, T0_US + N_MIN * MIN_US)])
    assert _run(tmp_path).config["coverage"]["source_interval"] == "15m"
    _write(tmp_path, minutes, "1m", [(T0_US, T0_US + N_MIN * MIN_US)])
    via_1m = _run(tmp_path)
    assert via_1m.config["coverage"]["source_interval"] == "1m"
    np.testing.assert_array_equal(via_1m.equity["close"].to_numpy(),
                                  _hourly_by_hand(minutes).column("close").to_numpy())
    _write(tmp_path, _hourly_by_hand(minutes), "1h", [(T0_US, T0_US + 72 * H_US)])
    assert _run(tmp_path).config["coverage"]["source_interval"] == "1h"


def test_coverage_is_checked_on_the_source_interval(tmp_path):
    # 10:15..10:45 on day one never fetched: neither rows nor coverage
    hole = slice(10 * 60 + 15, 10 * 60 + 45)
    covered = [(T0_US, T0_US + hole.start * MIN_US), (T0_US + hole.stop * MIN_US,
                                                      T0_US + N_MIN * MIN_US)]
    _write(tmp_path, _minutes(hole), "1m", covered)
    with pytest.raises(InputError) as exc:
        _run(tmp_path)
    msg = str(exc.value)
    assert "um BTCUSDT 1h (resampled from 1m)" in msg
    assert "never fetched 30 1m klines in 1 hole(s): 2024-01-01T10:15 .. 2024-01-01T10:45" in msg
    assert ("kline-lake download --market um --data klines --symbols BTCUSDT --interval 1m "
            "--start 2024-01-01T10:15 --end 2024-01-01T10:45") in msg
    res = _run(tmp_path, allow_gaps=True)
    assert res.config["n_bars"] == 71  # the incomplete 10:00 bar is dropped
    assert 10 * H_US + T0_US not in res.equity["open_time"].cast(int).to_list()
    assert res.config["unknown_gaps"] == 1


def test_confirmed_missing_minutes_keep_their_hour(tmp_path):
    hole = slice(10 * 60, 10 * 60 + 30)  # 10:00..10:30 maintenance, inside coverage
    minutes = _minutes(hole)
    _write(tmp_path, minutes, "1m", [(T0_US, T0_US + N_MIN * MIN_US)])
    res = _run(tmp_path)
    assert res.config["n_bars"] == 72
    bar = res.equity.row(10, named=True)
    full = _minutes().column("open").to_numpy()
    assert bar["open"] == full[10 * 60 + 30]  # the first minute the exchange traded
    assert any("1 gap(s) the exchange confirmed (30 1m bars" in w for w in res.warnings)


def test_sweep_and_cli_resample_too(tmp_path, capsys):
    _write(tmp_path, _minutes(), "1m", [(T0_US, T0_US + N_MIN * MIN_US)], market="spot")
    res = backtest.sweep("sma_cross", {"fast": [3, 5], "slow": [10, 20]}, lake=tmp_path,
                         market="spot", symbol="BTCUSDT", interval="4h", start=START, end=END)
    assert res.config["n_bars"] == 18 and res.config["coverage"]["source_interval"] == "1m"
    assert any("4h bars resampled exactly" in w for w in res.warnings)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--lake", str(tmp_path), "--market", "spot", "--symbol", "BTCUSDT",
              "--interval", "1h", "--start", START, "--end", END, "--strategy", "hold"])
    assert exit_.value.code == 0
    assert "note: 1h bars resampled exactly from the lake's 1m klines" in capsys.readouterr().err


def test_finer_intervals_tile_exactly():
    from backtest.data import finer_intervals

    assert finer_intervals("1h", "um") == ["1m", "3m", "5m", "15m", "30m"]
    assert finer_intervals("1h", "spot")[0] == "1s"
    assert "3d" not in finer_intervals("1w", "um") and "1d" in finer_intervals("1w", "um")
    assert finer_intervals("1M", "um")[-1] == "1d"
    assert finer_intervals("1m", "um") == []
