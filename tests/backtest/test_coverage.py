"""Backtests check the lake's coverage first (issue 12 item 1): never-fetched holes and
ranges the lake does not cover refuse to run, confirmed gaps are history, --allow-gaps
runs anyway and says so. Lakes are written with the lake writer and coverage records,
as a download leaves them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import backtest
from backtest.coverage import (
    Hole,
    check_coverage,
    download_command,
    funding_holes,
    human_time,
)
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import parse_utc_ms, parse_utc_us
from kline_lake.errors import InputError
from kline_lake.lake.synthetic import synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter

H_US = 3_600_000_000
KLINES = SeriesKey("um", "klines", "BTCUSDT", "1h")
FUNDING = SeriesKey("um", "funding", "BTCUSDT")


def us(text: str) -> int:
    return parse_utc_us(text)


def commit_klines(root: Path, start: str, end: str, key: SeriesKey = KLINES, seed: int = 0,
                  covered_from: str | None = None, drop: tuple[str, str] | None = None) -> None:
    """Klines of `key` on every slot of [start, end), recorded as covered from
    `covered_from` (default start) to end; `drop` leaves [a, b) out of the rows only
    (a gap the exchange confirmed)."""
    step = 60_000_000 if key.interval == "1m" else H_US
    n = (us(end) - us(start)) // step
    table = synthetic_klines(us(start) // 1000, n, key.interval, seed=seed)
    if drop is not None:
        t = table.column("open_time").cast(pa.int64()).to_numpy()
        table = table.filter(pa.array((t < us(drop[0])) | (t >= us(drop[1]))))
    LakeWriter(root).commit(key, table, [(us(covered_from or start), us(end))])


def commit_funding(root: Path, start: str, end: str, record: bool = True) -> None:
    """8-hourly funding over [start, end), with its coverage record unless `record` is
    False (a lake built without the downloader)."""
    n = (us(end) - us(start)) // (8 * H_US)
    LakeWriter(root).commit(FUNDING, synthetic_funding(us(start) // 1000, n),
                            [(us(start), us(end))] if record else [])


@pytest.fixture(scope="module")
def issue_lake(tmp_path_factory) -> Path:
    """The issue's lake: um BTCUSDT 1h for 2023-2025 and November 2026 only, funding
    alike."""
    root = tmp_path_factory.mktemp("issue_lake")
    commit_klines(root, "2023-01-01", "2026-01-01", seed=1)
    commit_klines(root, "2026-11-01", "2026-12-01", seed=2)
    commit_funding(root, "2023-01-01", "2026-01-01")
    commit_funding(root, "2026-11-01", "2026-12-01")
    return root


def test_hole_inside_the_range_refuses_naming_it_and_the_download(issue_lake):
    with pytest.raises(InputError) as exc:
        backtest.run("hold", lake=issue_lake, market="um", symbol="BTCUSDT", interval="1h",
                     start="2025-06-01", end="2026-12-01")
    msg = str(exc.value)
    assert "\n" not in msg
    # Jan..Oct 2026 = 304 days = 7296 hourly bars
    assert "never fetched 7296 1h klines in 1 hole(s): 2026-01-01 .. 2026-11-01 (7296 bars)" in msg
    assert (f"kline-lake download --market um --data klines --symbols BTCUSDT --interval 1h "
            f"--start 2026-01-01 --end 2026-11-01 --lake {issue_lake}") in msg
    # funding is missing over the same months, and said so with its own command
    assert "funding was never fetched for 1 hole(s): 2026-01-01 .. 2026-11-01" in msg
    assert "--data funding --symbols BTCUSDT --start 2026-01-01 --end 2026-11-01" in msg
    assert "--allow-gaps" in msg


def test_range_starting_before_the_data_refuses_instead_of_shrinking(issue_lake):
    with pytest.raises(InputError, match=r"8760 1h klines in 1 hole\(s\): 2022-01-01 \.\. "
                                         r"2023-01-01 \(8760 bars\)"):
        backtest.run("hold", lake=issue_lake, market="um", symbol="BTCUSDT", interval="1h",
                     start="2022-01-01", end="2023-02-01", funding=False)


def test_allow_gaps_runs_and_says_so_in_the_result(issue_lake):
    res = backtest.run("hold", lake=issue_lake, market="um", symbol="BTCUSDT", interval="1h",
                       start="2025-06-01", end="2026-12-01", allow_gaps=True)
    # Jun..Dec 2025 (214 days) and November 2026 (30 days)
    assert res.config["n_bars"] == (214 + 30) * 24
    assert res.config["unknown_gaps"] == 2  # one kline hole, one funding hole
    cov = res.config["coverage"]
    assert cov["allow_gaps"] is True
    assert cov["unknown_gaps"] == [["2026-01-01T00:00:00Z", "2026-11-01T00:00:00Z", 7296]]
    assert cov["funding_unknown"] == [["2026-01-01T00:00:00Z", "2026-11-01T00:00:00Z", 912]]
    assert any("allow_gaps: running across 1 never-fetched kline hole(s)" in w
               for w in res.warnings)
    assert any("counted as no funding" in w for w in res.warnings)
    assert json.loads(res.to_json())["config"]["unknown_gaps"] == 2


def test_complete_range_runs_with_no_unknown_gaps(issue_lake):
    res = backtest.run("hold", lake=issue_lake, market="um", symbol="BTCUSDT", interval="1h",
                       start="2024-01-01", end="2024-03-01")
    assert res.config["n_bars"] == 60 * 24
    assert res.config["unknown_gaps"] == 0
    assert res.config["coverage"]["confirmed_gaps"] == 0
    assert not any("allow_gaps" in w for w in res.warnings)


def test_confirmed_maintenance_is_history_and_noted(tmp_path):
    commit_klines(tmp_path, "2024-01-01", "2024-01-11", drop=("2024-01-05T02:00", "2024-01-05T05:00"))
    res = backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                       start="2024-01-01", end="2024-01-11", funding=False)
    assert res.config["n_bars"] == 240 - 3
    assert res.config["coverage"]["confirmed_missing_bars"] == 3
    assert any("1 gap(s) the exchange confirmed (3 1h bars, e.g. maintenance)" in w
               for w in res.warnings)


def test_rows_without_a_record_are_evidence_but_missing_rows_are_holes(tmp_path):
    """A lake written without coverage records: stored bars are facts; a missing slot
    nobody confirmed is unknown."""
    table = synthetic_klines(us("2024-01-01") // 1000, 48, "1h")
    t = table.column("open_time").cast(pa.int64()).to_numpy()
    LakeWriter(tmp_path).commit(KLINES, table.filter(pa.array(t != us("2024-01-01T10:00"))))
    with pytest.raises(InputError, match=r"2024-01-01T10:00 \.\. 2024-01-01T11:00 \(1 bars\)"):
        backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                     start="2024-01-01", end="2024-01-03", funding=False)
    res = backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                       start="2024-01-01T11:00", end="2024-01-03", funding=False)
    assert res.config["n_bars"] == 37


def test_range_before_listing_confirmed_empty_starts_at_the_first_bar(tmp_path):
    # the download asked from 2022 and the exchange answered nothing before 2023-01-01
    commit_klines(tmp_path, "2023-01-01", "2023-03-01", covered_from="2022-01-01")
    commit_funding(tmp_path, "2023-01-01", "2023-03-01")
    res = backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                       start="2022-01-01", end="2023-02-01")
    assert res.config["start"].startswith("2023-01-01T00:00:00")
    assert res.config["n_bars"] == 31 * 24
    assert res.config["coverage"]["first_bar"] == "2023-01-01T00:00:00Z"
    assert any("no bars before 2023-01-01: the exchange confirmed [2022-01-01, 2023-01-01) "
               "empty (e.g. before listing); the run starts at the first bar" in w
               for w in res.warnings)
    with pytest.raises(InputError, match="the exchange confirmed it empty"):
        backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                     start="2022-01-01", end="2022-06-01")


def test_funding_hole_refuses_and_no_funding_runs(tmp_path):
    commit_klines(tmp_path, "2024-01-01", "2024-03-01")
    commit_funding(tmp_path, "2024-01-01", "2024-02-01")
    commit_funding(tmp_path, "2024-02-10", "2024-03-01")
    with pytest.raises(InputError) as exc:
        backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                     start="2024-01-01", end="2024-03-01")
    msg = str(exc.value)
    assert "1h klines in" not in msg  # the klines are complete
    assert "funding was never fetched for 1 hole(s): 2024-02-01 .. 2024-02-10" in msg
    assert "--data funding --symbols BTCUSDT --start 2024-02-01 --end 2024-02-10" in msg
    res = backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                       start="2024-01-01", end="2024-03-01", funding=False)
    assert res.config["unknown_gaps"] == 0 and res.metrics["funding_paid"] == 0.0
    # funding over the complete part alone runs
    ok = backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                      start="2024-01-01", end="2024-02-01")
    assert ok.config["coverage"]["funding_checked"] is True
    assert ok.metrics["funding_paid"] != 0.0


def test_no_funding_at_all_refuses_on_perpetuals_not_on_spot(tmp_path):
    commit_klines(tmp_path, "2024-01-01", "2024-01-03")
    with pytest.raises(InputError, match="funding was never fetched .*2024-01-01 .. 2024-01-03"):
        backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                     start="2024-01-01", end="2024-01-03")
    spot = SeriesKey("spot", "klines", "BTCUSDT", "1h")
    commit_klines(tmp_path, "2024-01-01", "2024-01-03", key=spot)
    res = backtest.run("hold", lake=tmp_path, market="spot", symbol="BTCUSDT", interval="1h",
                       start="2024-01-01", end="2024-01-03")
    assert res.config["coverage"]["funding_checked"] is False


def test_funding_rows_without_a_record_missing_settlements_are_a_hole(tmp_path):
    commit_klines(tmp_path, "2024-01-01", "2024-01-05")
    n = 12  # 8-hourly from 2024-01-01 00:00 to 2024-01-04 16:00, then drop two records
    table = synthetic_funding(us("2024-01-01") // 1000, n)
    keep = np.ones(n, dtype=bool)
    keep[[4, 5]] = False  # 2024-01-02 08:00 and 16:00
    LakeWriter(tmp_path).commit(FUNDING, table.filter(pa.array(keep)))
    with pytest.raises(InputError, match=r"funding was never fetched for 1 hole\(s\): "
                                         r"2024-01-02T08:00 \.\. 2024-01-03 \(2 settlements\);"):
        backtest.run("hold", lake=tmp_path, market="um", symbol="BTCUSDT", interval="1h",
                     start="2024-01-01", end="2024-01-05")


def test_sweep_refuses_and_allows_gaps_like_run(issue_lake):
    grid = {"fast": [5, 10], "slow": [20, 40]}
    with pytest.raises(InputError, match="2026-01-01 .. 2026-11-01"):
        backtest.sweep("sma_cross", grid, lake=issue_lake, market="um", symbol="BTCUSDT",
                       interval="1h", start="2025-10-01", end="2026-12-01", funding=False)
    res = backtest.sweep("sma_cross", grid, lake=issue_lake, market="um", symbol="BTCUSDT",
                         interval="1h", start="2025-10-01", end="2026-12-01", funding=False,
                         allow_gaps=True)
    assert res.config["unknown_gaps"] == 1
    assert res.config["coverage"]["unknown_gaps"][0][2] == 7296
    assert any("allow_gaps: running across 1" in w for w in res.warnings)


def _cli(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "backtest"
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)


def test_cli_refuses_with_one_line_exit_2_and_allow_gaps_runs(issue_lake, tmp_path):
    common = ["--lake", str(issue_lake), "--market", "um", "--symbol", "BTCUSDT",
              "--interval", "1h", "--start", "2025-06-01", "--end", "2026-12-01"]
    proc = _cli("run", *common, "--strategy", "hold")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backtest: error: refusing to backtest um "
                                                   "BTCUSDT 1h over [2025-06-01, 2026-12-01)")
    assert "kline-lake download --market um --data klines" in lines[0]
    assert proc.stdout == ""
    out = tmp_path / "gaps.json"
    proc = _cli("run", *common, "--strategy", "hold", "--allow-gaps", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "note: allow_gaps: running across 1 never-fetched kline hole(s)" in proc.stderr
    assert json.loads(out.read_text())["config"]["unknown_gaps"] == 2
    sweep = ["sweep", *common, "--param", "fast=5,10", "--param", "slow=20", "--no-funding"]
    proc = _cli(*sweep)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = _cli(*sweep, "--allow-gaps")
    assert proc.returncode == 0, proc.stderr
    assert "note: allow_gaps: running across 1" in proc.stderr


# ------------------------------------------------------------------ pure rules
def test_check_coverage_by_hand():
    t0 = us("2024-01-01")
    present = t0 + np.array([0, 1, 2, 5, 6, 9], dtype=np.int64) * H_US  # 3,4 and 7,8 missing
    covered = [(t0, t0 + 5 * H_US)]  # 3,4 confirmed; 7,8 and 10,11 (after data) unknown
    rep = check_coverage(market="um", symbol="BTCUSDT", interval="1h", source_interval="1h",
                         start_us=t0, end_us=t0 + 12 * H_US, present_us=present,
                         covered=covered)
    assert rep.confirmed == (Hole(t0 + 3 * H_US, t0 + 5 * H_US, 2),)
    assert rep.unknown == (Hole(t0 + 7 * H_US, t0 + 9 * H_US, 2),
                           Hole(t0 + 10 * H_US, t0 + 12 * H_US, 2))
    assert (rep.first_bar_us, rep.last_bar_end_us) == (t0, t0 + 10 * H_US)
    # a clock at 10:30: slots 10 and 11 have not closed, so they are no hole yet
    now = check_coverage(market="um", symbol="BTCUSDT", interval="1h", source_interval="1h",
                         start_us=t0, end_us=t0 + 12 * H_US, present_us=present,
                         covered=covered, now_us=t0 + 10 * H_US + H_US // 2)
    assert now.unknown == (Hole(t0 + 7 * H_US, t0 + 9 * H_US, 2),)
    assert now.end_us == t0 + 10 * H_US  # the open of the kline still open at 10:30
    assert any("ends in the future" in n for n in now.notes())


def test_future_end_is_checked_up_to_now(tmp_path):
    from backtest.data import load_lake_data

    commit_klines(tmp_path, "2024-01-01", "2024-01-03")
    data = load_lake_data(tmp_path, "um", "BTCUSDT", "1h", us("2024-01-01"), us("2024-02-01"),
                          funding=False, now_us=us("2024-01-03T00:30"))
    assert len(data.bars) == 48 and data.coverage.n_unknown == 0
    with pytest.raises(InputError, match=r"2024-01-03 \.\. 2024-01-03T02:00 \(2 bars\)"):
        load_lake_data(tmp_path, "um", "BTCUSDT", "1h", us("2024-01-01"), us("2024-02-01"),
                       funding=False, now_us=us("2024-01-03T02:00"))


def test_funding_holes_by_hand():
    """Settlements on the contract's own cadence: 4-hourly records, one missing, and the
    span running 8 h past the last record; the first missing run is confirmed."""
    four = 4 * H_US
    t = np.array([0, 1, 2, 4, 5, 6], dtype=np.int64) * four  # 12:00 (3) missing
    holes = funding_holes((0, 9 * four), t, covered=[])
    assert holes == [Hole(3 * four, 4 * four, 1, "settlements"),
                     Hole(7 * four, 9 * four, 2, "settlements")]
    assert funding_holes((0, 9 * four), t, covered=[(2 * four, 5 * four)]) == [
        Hole(7 * four, 9 * four, 2, "settlements")]


def test_human_times_parse_back_for_the_download_command():
    for text in ("2024-01-01T00:00:00Z", "2024-01-01T12:30:00Z", "2024-01-01T12:30:00.001Z"):
        ts = us(text)
        assert parse_utc_us(human_time(ts)) == ts
        assert parse_utc_ms(human_time(ts)) * 1000 == ts
    cmd = download_command("/my lake", "um", "klines", "BTCUSDT", "1m",
                           [Hole(us("2024-02-01"), us("2024-02-02"), 1440),
                            Hole(us("2024-01-01T12:30"), us("2024-01-01T13:00"), 30)])
    assert cmd == ("kline-lake download --market um --data klines --symbols BTCUSDT "
                   "--interval 1m --start 2024-01-01T12:30 --end 2024-02-02 --lake '/my lake'")
