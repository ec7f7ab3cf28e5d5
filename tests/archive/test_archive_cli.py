"""The command line: `kline-lake download --source auto|archive --archive-url` and
`kline-lake verify --refresh-archive`, in a subprocess against the fake exchange."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kline_lake.fake_exchange import FakeExchange

NOW_MS = int(datetime(2024, 3, 5, 12, 0, tzinfo=UTC).timestamp() * 1000)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KLINE_LAKE_")}
    return subprocess.run([sys.executable, "-c", "from kline_lake.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120, env={**clean, **(env or {})})


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=11, now_ms=NOW_MS) as exchange:
        yield exchange


def test_download_auto_summary(fx, tmp_path: Path) -> None:
    res = cli("download", "--market", "um", "--data", "klines", "--symbols", "BTCUSDT",
              "--interval", "1h", "--start", "2024-01-01", "--lake", str(tmp_path),
              "--base-url", fx.base_url, "--archive-url", fx.base_url)
    assert res.returncode == 0, res.stderr
    summary = res.stdout.strip().splitlines()[-1]
    assert "6 archive files" in summary  # January, February, March 1..4
    assert "1,536 rows from archive" in summary and "12 rows from REST" in summary
    # (the archive bars are drawn on a terminal only; HybridProgress is tested in-process)


def test_default_source_is_auto(fx, tmp_path: Path) -> None:
    res = cli("download", "--market", "spot", "--data", "klines", "--symbols", "ETHUSDT",
              "--interval", "1d", "--start", "2023-01-01", "--end", "2023-03-01",
              "--lake", str(tmp_path), "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "2 archive files" in res.stdout and "59 rows written" in res.stdout


def test_bad_archive_input_exits_2(fx, tmp_path: Path) -> None:
    res = cli("download", "--market", "us", "--data", "klines", "--symbols", "BTCUSDT",
              "--start", "2023-01-01", "--lake", str(tmp_path), "--base-url", fx.base_url,
              "--source", "archive")
    assert res.returncode == 2 and "no archive" in res.stderr
    res = cli("download", "--market", "spot", "--data", "klines", "--symbols", "BTCUSDT",
              "--start", "2023-01-01", "--lake", str(tmp_path), "--base-url", fx.base_url,
              "--archive-url", "ftp://nope")
    assert res.returncode == 2 and "--archive-url" in res.stderr
    assert not any(tmp_path.iterdir())


def test_verify_refresh_archive(fx, tmp_path: Path) -> None:
    res = cli("download", "--market", "spot", "--data", "klines", "--symbols", "BTCUSDT",
              "--interval", "1h", "--start", "2024-02-01", "--end", "2024-02-03",
              "--lake", str(tmp_path), "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    res = cli("verify", "--lake", str(tmp_path), "--refresh-archive", "--archive-url", fx.base_url)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "archive refresh: 2 files checked, 2 unchanged" in res.stdout
    res = cli("verify", "--lake", str(tmp_path), "--refresh-archive", "--json",
              env={"KLINE_LAKE_ARCHIVE_URL": fx.base_url})
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["archive_refresh"] == {"checked": 2, "unchanged": 2, "changed": [], "missing": [],
                                      "errors": []}
    res = cli("verify", "--lake", str(tmp_path), "--refresh-archive", "--archive-url", "ftp://x")
    assert res.returncode == 2 and "--archive-url" in res.stderr
