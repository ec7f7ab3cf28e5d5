"""Downloads into an object-store lake (a real S3-compatible server on loopback: moto's
ThreadedMotoServer): equal to a local download row for row, read by plain Polars and
DuckDB, survive SIGKILL and a rerun, and two concurrent writers leave one clean lake."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
import duckdb
import polars as pl
import pytest

from kline_lake import Lake
from kline_lake.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.errors import LakeError
from kline_lake.fake_exchange.server import FakeExchange
from kline_lake.lake.storage import StorageLock, open_storage
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.fetch import KLINE_LAKE, NOW_MS
from tests.support.lake import JAN_2024_MS

SYMBOLS = ("BTCUSDT", "ETHUSDT")
# auto: archive days May 29..31, then REST for June 1 up to the fake's now
ARGS = ["download", "--market", "um", "--data", "klines", "--symbols", ",".join(SYMBOLS),
        "--interval", "1h", "--start", "2024-05-29", "--quiet", "--source", "auto"]


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=5, now_ms=NOW_MS) as server:
        yield server


@pytest.fixture(scope="module")
def clean(fx, tmp_path_factory) -> Path:
    """The same download into a local lake: the oracle."""
    root = tmp_path_factory.mktemp("clean") / "lake"
    Lake(root, create=True).download("um", "klines", list(SYMBOLS), interval="1h",
                                     start="2024-05-29", base_url=fx.base_url)
    return root


def _keys(url: str) -> list[str]:
    return open_storage(url).list_files()


def assert_same_as_clean(url: str, clean: Path) -> None:
    """Row for row and coverage equal to the local lake; no temp or lock objects left."""
    remote, local = Lake(url), Lake(clean)
    for symbol in SYMBOLS:
        a, b = local.klines("um", symbol, "1h"), remote.klines("um", symbol, "1h")
        assert b.height == a.height > 3 * 24 and b.equals(a)
        assert remote.covered("um", "klines", symbol, "1h") == \
            local.covered("um", "klines", symbol, "1h") != []
    keys = _keys(url)
    assert not [k for k in keys if k.endswith((".tmp", ".lock"))]
    data = sorted(k for k in keys if k.endswith(".parquet"))
    assert data == sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*.parquet"))


def test_lake_download_into_s3_equals_a_local_download_and_plain_readers_read_it(
        fx, clean, bucket, s3_env):
    url = f"s3://{bucket}/team/lake"
    lake = Lake(url)
    totals = lake.download("um", "klines", list(SYMBOLS), interval="1h", start="2024-05-29",
                           base_url=fx.base_url)
    assert totals.rows_written == Lake(clean).sql("SELECT count(*) FROM klines").item()
    assert_same_as_clean(url, clean)
    # plain Polars, no kline_lake: the Hive layout in place on S3
    glob = f"{url}/um/klines/**/*.parquet"
    options = {"aws_endpoint_url": s3_env, "aws_allow_http": "true", "aws_region": "us-east-1"}
    got = (pl.scan_parquet(glob, hive_partitioning=True, storage_options=options)
           .filter(pl.col("symbol") == "ETHUSDT").drop("symbol", "interval", "year", "month")
           .sort("open_time").collect())
    assert got.equals(Lake(clean).klines("um", "ETHUSDT", "1h"))
    # plain DuckDB over s3fs (its httpfs extension cannot be installed offline)
    import s3fs

    con = duckdb.connect()
    con.register_filesystem(s3fs.S3FileSystem(endpoint_url=s3_env))
    duck = con.sql(f"SELECT symbol, count(*) AS n, sum(volume) AS v FROM read_parquet('{glob}', "
                   "hive_partitioning = true) GROUP BY symbol ORDER BY symbol").pl()
    want = Lake(clean).sql("SELECT symbol, count(*) AS n, sum(volume) AS v FROM klines "
                           "GROUP BY symbol ORDER BY symbol")
    assert duck["n"].to_list() == want["n"].to_list()
    assert duck["v"].to_list() == pytest.approx(want["v"].to_list(), rel=1e-12)
    # a rerun fetches nothing and rewrites nothing
    before = {k: open_storage(url).read_bytes(k) for k in _keys(url) if k.endswith(".parquet")}
    again = lake.download("um", "klines", list(SYMBOLS), interval="1h", start="2024-05-29",
                          base_url=fx.base_url)
    assert again.rows_written == 0
    assert {k: open_storage(url).read_bytes(k) for k in before} == before


def _slow_exchange():
    # every request answered after 0.2 s: the run lasts seconds, so a kill lands mid-run
    return FakeExchange(seed=5, now_ms=NOW_MS, faults="slow:1.0", slow_s=0.2)


def _run(url: str, base_url: str) -> subprocess.Popen:
    return subprocess.Popen([KLINE_LAKE, *ARGS, "--lake", url, "--base-url", base_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)


def _download(url: str, base_url: str):
    return Lake(url).download("um", "klines", list(SYMBOLS), interval="1h",
                              start="2024-05-29", base_url=base_url)


def test_sigkill_mid_download_into_s3_then_rerun_equals_clean(fx, clean, bucket, s3_env):
    url = f"s3://{bucket}/lake"
    s3 = boto3.client("s3", endpoint_url=s3_env)
    with _slow_exchange() as slow:
        proc = _run(url, slow.base_url)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix="lake/um/").get("Contents", [])
            if listed:  # the first partition object is there: kill mid-run
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the download finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
    assert_partial_is_consistent(url, clean)
    _download(url, fx.base_url)  # the rerun (same seed, no delay)
    assert_same_as_clean(url, clean)


def assert_partial_is_consistent(url: str, clean: Path) -> None:
    """What a killed run left: fewer rows than the clean run, every stored row equal to
    the clean lake's, and every covered range holding exactly the clean rows (coverage
    never claims rows that are not there)."""
    partial, local = Lake(url), Lake(clean)
    total = 0
    for symbol in SYMBOLS:
        want = local.klines("um", symbol, "1h")
        got = partial.klines("um", symbol, "1h") if partial.root.list_files(
            f"um/klines/symbol={symbol}") else want.clear()
        total += got.height
        assert got.equals(want.join(got.select("open_time"), on="open_time", how="semi"))
        for a, b in partial.covered("um", "klines", symbol, "1h"):
            lo, hi = pl.lit(a).cast(pl.Datetime("us", "UTC")), pl.lit(b).cast(
                pl.Datetime("us", "UTC"))
            inside = pl.col("open_time").is_between(lo, hi, closed="left")
            assert got.filter(inside).equals(want.filter(inside))
    assert total < sum(local.klines("um", s, "1h").height for s in SYMBOLS)


def test_two_concurrent_downloads_into_one_s3_lake_serialise(fx, clean, bucket, s3_env):
    url = f"s3://{bucket}/shared"
    s3 = boto3.client("s3", endpoint_url=s3_env)
    with _slow_exchange() as slow:
        other = _run(url, slow.base_url)  # another process ...
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and other.poll() is None and not s3.list_objects_v2(
                Bucket=bucket, Prefix="shared/").get("Contents"):
            time.sleep(0.02)  # ... has started writing (its exchangeInfo cache) ...
        assert other.poll() is None, "the other download finished before this one started"
        _download(url, slow.base_url)  # ... and this one writes the same series meanwhile
        error = other.communicate(timeout=120)[1].decode()
    assert other.returncode == 0, error
    assert_same_as_clean(url, clean)


def test_a_held_series_lock_object_refuses_a_second_writer_in_one_line(bucket):
    url = f"s3://{bucket}/locked"
    key = SeriesKey("um", "klines", "BTCUSDT", "1h")
    first, second = LakeWriter(url), LakeWriter(url, lock_timeout_s=0.3)
    rows = synthetic_klines(JAN_2024_MS, 48, seed=3, interval="1h")
    with first.lock(key):
        with pytest.raises(LakeError) as exc:
            second.commit(key, rows, covered=[(JAN_2024_MS * 1000, (JAN_2024_MS + 2 * 86_400_000)
                                               * 1000)])
        assert "is locked by another writer" in str(exc.value) and "\n" not in str(exc.value)
        assert second.covered(key) == [] and not Lake(url).root.list_files("um")
    second.commit(key, rows)  # released: the next writer proceeds
    assert Lake(url).klines("um", "BTCUSDT", "1h").height == 48
    assert not open_storage(url).exists(first.lock(key).key)


def test_a_lock_left_by_a_killed_writer_on_this_host_is_broken(bucket):
    url = f"s3://{bucket}/stale"
    key = SeriesKey("um", "klines", "BTCUSDT", "1h")
    writer = LakeWriter(url, lock_timeout_s=5)
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock_key = writer.lock(key).key
    owner = {"host": socket.gethostname(), "pid": dead.pid, "time": time.time()}
    open_storage(url).put_bytes(lock_key, json.dumps(owner).encode())
    writer.commit(key, synthetic_klines(JAN_2024_MS, 24, seed=3, interval="1h"))
    assert Lake(url).klines("um", "BTCUSDT", "1h").height == 24
    assert not open_storage(url).exists(lock_key)
    # a live holder (this process) is never broken
    with StorageLock(open_storage(url), key=lock_key), pytest.raises(LakeError):
        LakeWriter(url, lock_timeout_s=0.2).commit(
            key, synthetic_klines(JAN_2024_MS, 24, seed=4, interval="1h"))


def _cli_error(lake: str, capsys) -> str:
    """`kline-lake download --lake LAKE` in-process (the console script's `main`): exit 2
    and the one stderr line."""
    with pytest.raises(SystemExit) as exc:
        main(["download", "--market", "um", "--data", "klines", "--symbols", "BTCUSDT",
              "--interval", "1h", "--start", "2024-05-01", "--lake", lake,
              "--base-url", "http://127.0.0.1:9"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize(("lake", "message"), [
    ("foo://bucket/lake", "unknown storage scheme foo://"),
    ("s3://no-such-bucket-anywhere/lake", "bucket 'no-such-bucket-anywhere' does not exist"),
    ("s3://", "names no bucket"),
])
def test_download_bad_object_store_is_one_line_exit_2(s3_env, capsys, lake, message):
    assert message in _cli_error(lake, capsys)


def test_download_without_credentials_is_one_line_exit_2(s3_env, bucket, tmp_path,
                                                         monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    err = _cli_error(f"s3://{bucket}/lake", capsys)
    assert f"no credentials for s3://{bucket}/lake" in err and "testing" not in err
