"""Ctrl-C during `kline-lake download` (issue 12 item 10): exit 130, no traceback, no
asyncio warning, and a summary line that counts exactly what the lake holds."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from kline_lake.fake_exchange import FakeExchange
from tests.support.fetch import KLINE_LAKE, NOW_MS, cli

# 2 symbols x 60 days of 3m klines over REST: ~116 pages of weight 2 on a budget of 40
# per second, so the run lasts several seconds and the signal lands mid-run.
LONG = ["download", "--market", "um", "--data", "klines", "--symbols", "BTCUSDT,ETHUSDT",
        "--interval", "3m", "--start", "2024-01-01", "--end", "2024-03-01", "--quiet",
        "--source", "rest", "--batch-rows", "2000"]


def _lake_rows(lake: Path) -> int:
    return sum(pq.read_metadata(f).num_rows for f in (lake / "um" / "klines").rglob("*.parquet"))


@pytest.mark.slow
def test_ctrl_c_exits_130_with_what_was_committed(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with FakeExchange(seed=5, now_ms=NOW_MS, minute_seconds=1, weight_limit=40) as fx:
        proc = subprocess.Popen([KLINE_LAKE, *LONG, "--lake", str(lake), "--base-url", fx.base_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cov = lake / "_meta" / "coverage"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(cov.rglob("*.json"))) < 2:
            time.sleep(0.05)
        time.sleep(0.3)  # a few more commits, then Ctrl-C mid-flight
        assert proc.poll() is None, "the download finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, (out, err)
        assert "Aborted!" not in err and "Traceback" not in err, err
        assert "never awaited" not in err and "Warning" not in err, err
        lines = out.strip().splitlines()
        assert len(lines) == 1, out
        match = re.match(r"download interrupted: ([\d,]+) rows written, 2 series, ", lines[0])
        assert match, lines[0]
        written = int(match.group(1).replace(",", ""))
        assert 0 < written == _lake_rows(lake) < 2 * 60 * 480
        assert "rerun the same command to fetch the rest" in err
        # the lake is consistent: a rerun fetches only the rest and completes it
        rerun = cli(*LONG, "--lake", str(lake), "--base-url", fx.base_url)
        assert rerun.returncode == 0, rerun.stderr
        assert _lake_rows(lake) == 2 * 60 * 480
