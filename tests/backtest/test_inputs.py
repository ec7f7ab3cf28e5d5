"""Strategy inputs (backtest.inputs): open interest, ratios and the book-ticker spread in
force at each bar's close (``T <= open + bar - 1 ms``; metrics only while ``< T + 5 min``),
hand-computed; unknown metrics refuse or are flagged; the user function and oi_momentum
receive the columns; the CLI's --input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import backtest
from backtest.cli import main
from backtest.data import Bars
from backtest.inputs import in_force, with_inputs
from backtest.strategies import get_strategy
from kline_lake.core.schemas import conform
from kline_lake.core.series import SeriesKey
from kline_lake.errors import CoverageError, InputError
from kline_lake.lake.writer import LakeWriter
from tests.support.backtest import T0_MS, iso, write_klines

MIN_US = 60_000_000
T0 = T0_MS * 1000
RATIOS = ("count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio",
          "count_long_short_ratio", "sum_taker_long_short_vol_ratio")


def bars_15m(close: list[float]) -> Bars:
    n = len(close)
    c = np.asarray(close, dtype=np.float64)
    t = T0 + np.arange(n, dtype=np.int64) * 15 * MIN_US
    return Bars("um", "BTCUSDT", "15m", t, c.copy(), c + 1.0, c - 1.0, c, np.ones(n))


def metrics_table(times_us: list[int], oi: list[float]) -> pa.Table:
    n = len(times_us)
    cols = {"create_time": pa.array(times_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "sum_open_interest": oi, "sum_open_interest_value": [v * 10.0 for v in oi]}
    cols |= {name: [k + 0.5] * n for k, name in enumerate(RATIOS)}
    return conform(pa.table(cols), "metrics")


def ticker_table(times_us: list[int], bid: list[float], ask: list[float]) -> pa.Table:
    n = len(times_us)
    ts = pa.array(times_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return conform(pa.table({"update_id": list(range(1, n + 1)), "best_bid_price": bid,
                             "best_bid_qty": [1.0] * n, "best_ask_price": ask,
                             "best_ask_qty": [1.0] * n, "transaction_time": ts,
                             "event_time": ts}), "book_ticker")


def build(root: Path, bars: Bars, slots: list[int], covered_until_us: int | None = None) -> None:
    """Klines, and metrics on the 5-minute slots `slots` (value = 1000 + slot) with a
    coverage record over the bars' span (or up to `covered_until_us`)."""
    write_klines(root, bars)
    end = int(bars.open_time_us[-1]) + 15 * MIN_US
    times = [T0 + k * 5 * MIN_US for k in slots]
    LakeWriter(root).commit(SeriesKey("um", "metrics", "BTCUSDT"),
                            metrics_table(times, [1000.0 + k for k in slots]),
                            [(T0, covered_until_us or end)])


def _run(root: Path, bars: Bars, strategy, **kw):
    return backtest.run(strategy, lake=root, symbol="BTCUSDT", interval="15m",
                        start=iso(bars.open_time_us[0]), end=iso(bars.open_time_us[-1] + 1),
                        funding=False, exchange_filters=False, **kw)


def test_in_force_is_the_last_row_at_or_before_and_ages_out() -> None:
    times = np.array([0, 10, 20], dtype=np.int64)
    idx = in_force(times, np.array([-1, 0, 9, 10, 29, 30, 35]), max_age_us=10)
    assert idx.tolist() == [-1, 0, 0, 1, 2, -1, -1]


def test_metrics_in_force_at_each_close_hand_computed(tmp_path: Path) -> None:
    # 4 bars of 15 m: closes (last ms) 00:14:59.999, 00:29:59.999, 00:44:59.999, 00:59:59.999;
    # slots every 5 min 00:00..01:00, slot 5 (00:25) missing (confirmed by the record)
    bars = bars_15m([100.0, 101.0, 102.0, 103.0])
    slots = [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    build(tmp_path, bars, slots)
    seen = {}

    def spy(b):
        seen.update(b.inputs)
        seen["attr"] = b.sum_open_interest
        return np.zeros(len(b))

    res = _run(tmp_path, bars, spy, inputs=["open_interest", "ratios"])
    # bar 0 sees slot 2 (00:10), not slot 3 (00:15, stamped at bar 1's open); bar 1's
    # slot 5 is missing and slot 4 (00:20) is 10 min old at 00:29:59.999 -> NaN
    np.testing.assert_array_equal(seen["sum_open_interest"], [1002.0, np.nan, 1008.0, 1011.0])
    np.testing.assert_array_equal(seen["attr"], seen["sum_open_interest"])
    np.testing.assert_array_equal(seen["sum_open_interest_value"],
                                  [10020.0, np.nan, 10080.0, 10110.0])
    for k, name in enumerate(RATIOS):
        np.testing.assert_array_equal(seen[name], [k + 0.5, np.nan, k + 0.5, k + 0.5])
    assert res.config["inputs"]["unknown_gaps"] == 0
    assert res.config["inputs"]["nan_bars"]["sum_open_interest"] == 1


def test_spread_input_is_the_quote_in_force_at_the_close(tmp_path: Path) -> None:
    bars = bars_15m([100.0, 101.0, 102.0])
    build(tmp_path, bars, list(range(9)))
    close_ms = 15 * MIN_US - 1000
    times = [T0 - 30_000_000, T0 + close_ms, T0 + close_ms + 1000, T0 + 30 * MIN_US]
    LakeWriter(tmp_path).commit(SeriesKey("um", "book_ticker", "BTCUSDT"),
                                ticker_table(times, [99.0, 99.5, 100.0, 100.5],
                                             [101.0, 100.5, 100.1, 101.5]),
                                [(T0 - MIN_US, T0 + 45 * MIN_US)])
    seen = {}
    _run(tmp_path, bars, lambda b: seen.update(b.inputs) or np.zeros(len(b)),
         inputs=["spread"])
    # bar 0 (close 00:14:59.999): the update stamped exactly then; bar 1: the one at 00:15
    # is still in force at 00:29:59.999 (the next comes at 00:30, bar 2's open); bar 2: it
    np.testing.assert_array_equal(seen["best_bid"], [99.5, 100.0, 100.5])
    np.testing.assert_array_equal(seen["best_ask"], [100.5, 100.1, 101.5])
    np.testing.assert_allclose(seen["spread_bps"], [1.0 / 100.0 * 1e4, 0.1 / 100.05 * 1e4,
                                                    1.0 / 101.0 * 1e4], rtol=1e-12)


def test_unknown_metrics_refuse_or_are_flagged(tmp_path: Path) -> None:
    bars = bars_15m([100.0, 101.0, 102.0, 103.0])
    build(tmp_path, bars, [0, 1, 2, 3, 4, 5], covered_until_us=T0 + 30 * MIN_US)
    with pytest.raises(CoverageError, match=r"never fetched its metrics .*--data metrics"):
        _run(tmp_path, bars, "oi_momentum", params={"window": 1})
    res = _run(tmp_path, bars, "oi_momentum", params={"window": 1}, allow_gaps=True)
    assert res.config["inputs"]["unknown_gaps"] == 1
    assert any("never fetched" in w and "NaN" in w for w in res.warnings)
    assert res.config["inputs"]["nan_bars"]["sum_open_interest"] == 2


def test_oi_momentum_enters_when_price_and_oi_rise_together() -> None:
    bars = bars_15m([10.0, 11.0, 12.0, 11.0, 12.0, 13.0])
    oi = np.array([5.0, 6.0, 5.0, 5.5, 6.0, np.nan])
    strat = get_strategy("oi_momentum")
    sig = strat.signals(with_inputs(bars, {"sum_open_interest": oi}), {"window": 1})
    # price up & oi up -> +1; price up & oi down -> 0; price down -> -1; oi NaN -> 0
    assert sig.tolist() == [0, 1, 0, -1, 1, 0]
    assert strat.inputs == ("open_interest",)
    with pytest.raises(InputError, match="needs the open_interest input"):
        strat.signals(bars, {"window": 1})


def test_bad_inputs_are_one_clear_error(tmp_path: Path) -> None:
    bars = bars_15m([100.0, 101.0])
    with pytest.raises(InputError, match="unknown input 'oi'"):
        backtest.run("hold", bars=bars, inputs=["oi"])
    with pytest.raises(InputError, match="read from the lake"):
        backtest.run("hold", bars=bars, inputs=["open_interest"])
    spot = Bars("spot", *list(bars.__dict__.values())[1:])
    with pytest.raises(InputError, match="um and cm futures only"):
        backtest.run("hold", bars=spot, inputs=["open_interest"])


def test_cli_input_flag(tmp_path: Path) -> None:
    bars = bars_15m([100.0, 101.0, 102.0, 101.0, 103.0, 104.0])
    build(tmp_path, bars, list(range(19)))
    out = tmp_path / "run.json"
    argv = ["run", "--lake", str(tmp_path), "--symbol", "BTCUSDT", "--interval", "15m",
            "--start", iso(bars.open_time_us[0]), "--end", iso(bars.open_time_us[-1] + 1),
            "--no-funding", "--no-exchange-filters", "--strategy", "sma_cross", "--param",
            "fast=1", "--param", "slow=2", "--input", "open_interest", "--json", str(out)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert json.loads(out.read_text())["config"]["inputs"]["columns"] == [
        "sum_open_interest", "sum_open_interest_value"]
    with pytest.raises(SystemExit) as exc:
        main([*argv[:-4], "--input", "nope"])
    assert exc.value.code == 2


@pytest.mark.parametrize("kw, dataset", [({"inputs": ["ratios"]}, "metrics"),
                                         ({"slippage": "book_ticker"}, "book_ticker")])
def test_a_dataset_the_lake_lacks_refuses(tmp_path: Path, kw: dict, dataset: str) -> None:
    bars = bars_15m([100.0, 101.0, 102.0])
    write_klines(tmp_path, bars)
    with pytest.raises(CoverageError, match=rf"never fetched its {dataset} for 1 hole\(s\): "
                                            r"2024-01-01 \.\. 2024-01-01T00:45"):
        _run(tmp_path, bars, "hold", **kw)


def test_close_times_are_the_last_ms_of_each_bar_calendar_months_too() -> None:
    from backtest.inputs import close_times_us
    from kline_lake.core.timeutil import to_us

    opens = np.array([to_us("2024-01-01", "t"), to_us("2024-02-01", "t")])
    monthly = Bars("um", "BTCUSDT", "1M", opens, *[np.ones(2)] * 5)
    assert close_times_us(monthly).tolist() == [to_us("2024-02-01", "t") - 1000,
                                                to_us("2024-03-01", "t") - 1000]
    assert close_times_us(bars_15m([1.0]))[0] == T0 + 15 * MIN_US - 1000
