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


# A dead proxy for https: a run that tried a real host (https://data.binance.vision)
# fails on loopback instead of reaching the internet.
NO_INTERNET = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _five_month_lake(fx, root: Path) -> None:
    res = cli("download", "--market", "spot", "--data", "klines", "--symbols", "BTCUSDT",
              "--interval", "1d", "--start", "2023-01-01", "--end", "2023-06-01",
              "--lake", str(root), "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "5 archive files" in res.stdout


def test_verify_refresh_archive_honours_kline_lake_base_url(fx, tmp_path: Path) -> None:
    # issue 12 item 8: download takes the archive from KLINE_LAKE_BASE_URL; so does verify
    _five_month_lake(fx, tmp_path)
    res = cli("verify", "--lake", str(tmp_path), "--refresh-archive",
              env={"KLINE_LAKE_BASE_URL": fx.base_url, **NO_INTERNET})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "archive refresh: 5 files checked, 5 unchanged, 0 re-ingested" in res.stdout
    # a market's own REST URL (KLINE_LAKE_SPOT_URL) points its archive there too, as in download
    res = cli("verify", "--lake", str(tmp_path), "--refresh-archive",
              env={"KLINE_LAKE_SPOT_URL": fx.base_url, **NO_INTERNET})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "5 files checked, 5 unchanged" in res.stdout


def test_verify_refresh_archive_stops_at_the_first_connection_failure(fx, tmp_path: Path) -> None:
    import time

    _five_month_lake(fx, tmp_path)
    dead = _closed_port_url()
    t0 = time.monotonic()
    res = cli("verify", "--lake", str(tmp_path), "--refresh-archive", "--archive-url", dead)
    elapsed = time.monotonic() - t0
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("kline-lake: error: archive refresh stopped: cannot connect to "
                               f"{dead}"), lines[0]
    assert "nothing was re-ingested" in lines[0]
    assert res.stdout == ""  # no per-file lines, no verify report after it
    assert elapsed < 30
