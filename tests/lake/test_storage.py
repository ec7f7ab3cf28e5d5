"""The storage seam (kline_lake.lake.storage) on a local directory, memory:// and a real
S3-compatible server on loopback (moto's ThreadedMotoServer), read back by plain Polars
and DuckDB with partition pruning."""

from __future__ import annotations

import threading
import uuid

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kline_lake.errors import InputError, LakeError
from kline_lake.lake.storage import LocalStorage, StorageLock, open_storage


@pytest.fixture(params=["local", "memory", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return open_storage(tmp_path / "lake")
    if request.param == "memory":
        return open_storage(f"memory://t{uuid.uuid4().hex[:8]}/lake")
    return open_storage(f"s3://{request.getfixturevalue('bucket')}/team/lake")


def test_round_trip_list_delete_and_exclusive_create(storage, tmp_path):
    assert storage.list_files() == []
    storage.put_bytes("um/klines/a.parquet", b"one")
    storage.put_bytes("um/klines/a.parquet", b"two")  # replaced whole
    built = tmp_path / "built.bin"
    built.write_bytes(b"x" * 1000)
    storage.put_file("_meta/coverage/b.json", built)
    assert storage.read_bytes("um/klines/a.parquet") == b"two"
    assert storage.size("_meta/coverage/b.json") == 1000
    assert storage.list_files() == ["_meta/coverage/b.json", "um/klines/a.parquet"]
    assert storage.list_files("um") == ["um/klines/a.parquet"]
    assert storage.list_files("spot") == []
    assert storage.create_exclusive("_meta/locks/w", b"me") is True
    assert storage.create_exclusive("_meta/locks/w", b"you") is False
    assert storage.read_bytes("_meta/locks/w") == b"me"
    storage.delete("_meta/locks/w")
    storage.delete("_meta/locks/w")  # missing: nothing
    assert not storage.exists("_meta/locks/w")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("nope")
    for bad in ["../x", "a/../../b", "/"]:
        with pytest.raises(ValueError):
            storage.put_bytes(bad, b"")


def test_local_paths_and_file_urls_are_local(tmp_path):
    assert isinstance(open_storage(tmp_path), LocalStorage)
    assert open_storage(f"file://{tmp_path}").uri() == str(tmp_path)


def test_exactly_one_of_many_concurrent_creators_wins_on_s3(bucket):
    storage = open_storage(f"s3://{bucket}/lake")
    wins: list[int] = []

    def contend(k: int) -> None:
        if storage.create_exclusive("_meta/locks/writer.lock", str(k).encode()):
            wins.append(k)

    threads = [threading.Thread(target=contend, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert storage.read_bytes("_meta/locks/writer.lock") == str(wins[0]).encode()


def test_two_writers_are_kept_apart_by_the_lock_object(bucket):
    a = open_storage(f"s3://{bucket}/lake")
    b = open_storage(f"s3://{bucket}/lake")
    with StorageLock(a), pytest.raises(LakeError, match="locked by another writer"):
        StorageLock(b, timeout_s=0.3).acquire()
    with StorageLock(b, timeout_s=1) as lock:  # released: the next writer gets it
        assert lock.held and b.exists(StorageLock.KEY)
    assert not b.exists(StorageLock.KEY)


def test_a_stale_lock_left_by_a_killed_writer_can_be_broken(bucket):
    storage = open_storage(f"s3://{bucket}/lake")
    storage.put_bytes(StorageLock.KEY, b'{"host": "gone", "pid": 1, "time": 0}')
    with StorageLock(storage, timeout_s=1, break_stale_s=60) as lock:
        assert lock.held


def _klines(month: int) -> pa.Table:
    t0 = np.datetime64(f"2024-{month:02d}-01T00:00", "us").astype(np.int64)
    n = 24 * 28
    ts = pa.array(t0 + np.arange(n, dtype=np.int64) * 3_600_000_000).cast(
        pa.timestamp("us", tz="UTC"))
    close = 100.0 + month + np.arange(n) / 100
    return pa.table({"open_time": ts, "close": close})


def _publish(storage, tmp_path) -> pl.DataFrame:
    frames = []
    for month in (1, 2, 3):
        local = tmp_path / f"m{month}.parquet"
        pq.write_table(_klines(month), local)
        storage.put_file(f"um/klines/symbol=BTCUSDT/interval=1h/year=2024/month={month:02d}/"
                         "part-0.parquet", local)
        frames.append(pl.from_arrow(_klines(month)))
    return pl.concat(frames)


def test_plain_polars_and_duckdb_read_an_s3_lake_with_pruning(bucket, tmp_path):
    storage = open_storage(f"s3://{bucket}/lake")
    whole = _publish(storage, tmp_path)
    glob = storage.uri("um/klines/symbol=BTCUSDT/interval=1h/**/*.parquet")
    got = (pl.scan_parquet(glob, hive_partitioning=True,
                           storage_options=storage.storage_options())
           .select("open_time", "close").sort("open_time").collect())
    assert got.equals(whole)
    con = duckdb.connect()
    con.register_filesystem(storage.fs)
    duck = con.sql(f"SELECT open_time, close FROM read_parquet('{glob}', "
                   "hive_partitioning = true) ORDER BY open_time").pl()
    assert duck["close"].to_list() == whole["close"].to_list()
    # pruning: a corrupt March object is never opened by a February query
    storage.put_bytes("um/klines/symbol=BTCUSDT/interval=1h/year=2024/month=03/"
                      "part-0.parquet", b"not parquet")
    feb = whole.filter(pl.col("open_time").dt.month() == 2)
    pl_feb = (pl.scan_parquet(glob, hive_partitioning=True,
                              storage_options=storage.storage_options())
              .filter(pl.col("month") == 2).select("open_time", "close").collect())
    assert pl_feb.sort("open_time").equals(feb)
    duck_feb = con.sql(f"SELECT close FROM read_parquet('{glob}', hive_partitioning = true) "
                       "WHERE month = 2 ORDER BY open_time").pl()
    assert duck_feb["close"].to_list() == feb["close"].to_list()


@pytest.mark.parametrize(("root", "message"), [
    ("foo://bucket/lake", "unknown storage scheme foo:// in lake 'foo://bucket/lake'"),
    ("s3://", "names no bucket"),
])
def test_bad_urls_are_one_line(root, message):
    with pytest.raises(InputError, match=message) as exc:
        open_storage(root)
    assert "\n" not in str(exc.value)


def test_missing_bucket_is_one_line(s3_env):
    with pytest.raises(InputError) as exc:
        open_storage("s3://no-such-bucket-here/lake")
    assert str(exc.value) == ("bucket 'no-such-bucket-here' does not exist "
                              "(s3://no-such-bucket-here/lake)")


def test_no_credentials_is_one_line_and_names_no_secret(s3_env, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(InputError) as exc:
        open_storage("s3://some-bucket/lake")
    text = str(exc.value)
    assert text.startswith("no credentials for s3://some-bucket/lake: set AWS_ACCESS_KEY_ID")
    assert "\n" not in text and "testing" not in text
