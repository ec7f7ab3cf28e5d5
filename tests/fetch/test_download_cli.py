"""`kline-lake download` as a user runs it: bad input (exit 2, one line, lake untouched),
SIGKILL mid-run then rerun, two concurrent downloads into one lake."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kline_lake.fake_exchange import FakeExchange
from tests.support.fetch import KLINE_LAKE, NOW_MS, assert_same_lake, cli, download


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=5, now_ms=NOW_MS) as server:
        yield server


BASE_ARGS = ["download", "--market", "spot", "--data", "klines", "--symbols", "BTCUSDT",
             "--start", "2024-01-01", "--end", "2024-01-02"]


def _with(args: list[str], **changes: str) -> list[str]:
    out = list(args)
    for flag, value in changes.items():
        flag = "--" + flag.replace("_", "-")
        if flag in out:
            out[out.index(flag) + 1] = value
        else:
            out += [flag, value]
    return out


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"symbols": "NOPEUSDT"}, "unknown symbol 'NOPEUSDT'"),
        ({"interval": "7m"}, "unknown interval '7m'"),
        ({"market": "um", "interval": "1s"}, "1s exists only on the spot market"),
        ({"start": "2024-02-01"}, "is not before --end"),
        ({"start": "2024-13-45"}, "cannot parse --start"),
        ({"end": "tomorrow"}, "cannot parse --end"),
        ({"symbols": "../../etc"}, "invalid symbol"),
        ({"symbols": "BTC/USDT"}, "invalid symbol"),
        ({"market": "spot", "data": "funding"}, "exists only on futures markets"),
        ({"start": "2030-01-01", "end": None}, "is not before the end"),
        ({"start": "2030-01-01", "end": "2030-02-01"}, "the exchange has no data after its now"),
        ({"data": "agg_trades", "interval": "1h"}, "--interval applies only to kline datasets"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(fx, tmp_path: Path, changes, message) -> None:
    lake = tmp_path / "lake"
    end = changes.pop("end", "keep")
    args = _with(BASE_ARGS, **changes, lake=str(lake), base_url=fx.base_url)
    if end is None:
        i = args.index("--end")
        del args[i:i + 2]
    elif end != "keep":
        args = _with(args, end=end)
    result = cli(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not lake.exists()


def test_lake_path_that_is_a_file(fx, tmp_path: Path) -> None:
    lake = tmp_path / "file"
    lake.write_text("not a lake")
    result = cli(*_with(BASE_ARGS, lake=str(lake), base_url=fx.base_url))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "not a directory" in result.stderr
    assert lake.read_text() == "not a lake"


def test_env_base_url_and_summary_line(fx, tmp_path: Path) -> None:
    result = cli(*_with(BASE_ARGS, lake=str(tmp_path), end="2024-01-01T03:00"), "--quiet",
                 env={"KLINE_LAKE_BASE_URL": fx.base_url})
    assert result.returncode == 0, result.stderr
    assert "download done: 180 rows written, 1 series" in result.stdout
    assert "0 x 429" in result.stdout and "gaps found" in result.stdout


# `--source rest`: these tests are about the REST path (the archive path would finish the
# whole range in a few zips, before there is anything to kill or to share a budget over).
LONG = ["download", "--market", "um", "--data", "klines", "--symbols", "BTCUSDT,ETHUSDT",
        "--interval", "3m", "--start", "2024-01-01", "--end", "2024-03-01", "--quiet",
        "--source", "rest"]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_equals_clean_run(tmp_path: Path) -> None:
    # ~116 pages of weight 2 on a 40-per-second budget: the run lasts seconds, so the
    # kill lands mid-run whatever the machine's speed.
    with FakeExchange(seed=5, now_ms=NOW_MS, minute_seconds=1, weight_limit=40) as fx:
        clean, killed = tmp_path / "clean", tmp_path / "killed"
        download(fx.base_url, clean, market="um", symbols="BTCUSDT,ETHUSDT", interval="3m",
                 start="2024-01-01", end="2024-03-01")
        proc = subprocess.Popen([KLINE_LAKE, *LONG, "--lake", str(killed), "--base-url", fx.base_url,
                                 "--batch-rows", "2000"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        cov = killed / "_meta" / "coverage"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(cov.rglob("*.json"))) < 2:
            time.sleep(0.05)
        time.sleep(0.2)  # a few more commits, then kill mid-flight
        assert proc.poll() is None, "the download finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        rerun = cli(*LONG, "--lake", str(killed), "--base-url", fx.base_url)
        assert rerun.returncode == 0, rerun.stderr
        assert_same_lake(clean, killed)


@pytest.mark.slow
def test_two_concurrent_downloads_into_one_lake(tmp_path: Path) -> None:
    """Two processes, one IP, one small budget: each follows the other's weight through
    the server header (and paces its window), so neither earns a 429; the lake ends up
    exactly as one clean run leaves it."""
    with FakeExchange(seed=5, now_ms=NOW_MS, minute_seconds=5, weight_limit=100) as fx:
        clean, shared = tmp_path / "clean", tmp_path / "shared"
        a = ["download", "--market", "um", "--data", "klines", "--interval", "15m", "--quiet",
             "--lake", str(shared), "--base-url", fx.base_url, "--batch-rows", "3000",
             "--source", "rest"]
        procs = [
            subprocess.Popen([KLINE_LAKE, *a, "--symbols", "BTCUSDT,ETHUSDT", "--start", "2023-11-01",
                              "--end", "2024-02-01"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True),
            subprocess.Popen([KLINE_LAKE, *a, "--symbols", "ETHUSDT,BTCUSDT", "--start", "2023-12-01",
                              "--end", "2024-02-01"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True),
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        stats = fx.stats()["um"]
        assert stats["429"] == 0 and stats["418"] == 0, (stats, outs)
        download(fx.base_url, clean, market="um", symbols="BTCUSDT,ETHUSDT", interval="15m",
                 start="2023-11-01", end="2024-02-01")
        assert_same_lake(clean, shared)
