"""`kline-lake sync` / `sync_lake`: local -> S3 (loopback moto server) -> local, only
changed objects copied, readers see the same lake, one writer at a time."""

from __future__ import annotations

import pytest

from kline_lake import Lake
from kline_lake.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError, LakeError
from kline_lake.lake.storage import StorageLock, open_storage
from kline_lake.lake.sync import MANIFEST_KEY, sync_lake
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

DAY_MS = 86_400_000
BTC = SeriesKey("um", "klines", "BTCUSDT", "1m")
START_MS = JAN_2024_MS - 40 * DAY_MS  # three monthly partitions


def _cover(n_days: int) -> list[tuple[int, int]]:
    return [(START_MS * 1000, (START_MS + n_days * DAY_MS) * 1000)]


@pytest.fixture
def local_lake(tmp_path):
    root = tmp_path / "lake"
    LakeWriter(root).commit(BTC, synthetic_klines(START_MS, 50 * 1440, seed=1),
                            covered=_cover(50))
    return root


def _files(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file() and "/locks/" not in p.as_posix()
            and "/sync/" not in p.as_posix()}


def test_publish_incrementally_and_read_back(local_lake, bucket, tmp_path):
    url = f"s3://{bucket}/lake"
    first = sync_lake(local_lake, url)
    n_objects = len(_files(local_lake))
    assert len(first.copied) == n_objects >= 4 and first.unchanged == 0
    assert first.copied[-1].startswith("_meta/")  # records after data
    again = sync_lake(local_lake, url)
    assert again.copied == [] and again.unchanged == n_objects
    # ten more days: January's partition and the coverage record change, the rest not
    before = _files(local_lake)
    LakeWriter(local_lake).commit(BTC, synthetic_klines(START_MS + 50 * DAY_MS, 10 * 1440,
                                                        seed=3), covered=_cover(60))
    changed = sorted(k for k, v in _files(local_lake).items() if before.get(k) != v)
    assert any("month=01" in k for k in changed) and any("coverage" in k for k in changed)
    assert not any("month=11" in k or "month=12" in k for k in changed)
    third = sync_lake(local_lake, url)
    assert sorted(third.copied) == changed and third.unchanged == n_objects - len(changed)
    a, b = Lake(local_lake), Lake(url)
    assert b.klines("um", "BTCUSDT", "1m").equals(a.klines("um", "BTCUSDT", "1m"))
    assert b.covered("um", "klines", "BTCUSDT", "1m") == _cover(60)
    back = tmp_path / "back"
    sync_lake(url, back)
    assert _files(back) == _files(local_lake)


def test_an_object_the_manifest_does_not_know_is_hashed(local_lake, bucket):
    url = f"s3://{bucket}/lake"
    sync_lake(local_lake, url)
    dst = open_storage(url)
    dst.delete(MANIFEST_KEY)
    key = next(k for k in dst.list_files() if "month=12" in k)
    good = dst.read_bytes(key)
    dst.put_bytes(key, bytes(len(good)))  # same size, wrong bytes
    report = sync_lake(local_lake, url)
    assert report.copied == [key]
    assert dst.read_bytes(key) == good


def test_delete_removes_what_the_source_lacks(local_lake, bucket):
    url = f"s3://{bucket}/lake"
    dst = open_storage(url)
    dst.put_bytes("um/klines/symbol=OLD/interval=1m/year=2020/month=01/data.parquet", b"x")
    assert sync_lake(local_lake, url).deleted == []
    report = sync_lake(local_lake, url, delete=True)
    assert report.deleted == ["um/klines/symbol=OLD/interval=1m/year=2020/month=01/data.parquet"]


def test_a_second_writer_waits_then_is_refused(local_lake, bucket):
    url = f"s3://{bucket}/lake"
    with StorageLock(open_storage(url)), pytest.raises(LakeError, match="locked by another"):
        sync_lake(local_lake, url, lock_timeout_s=0.2)
    assert sync_lake(local_lake, url).copied  # lock released: the next sync runs


def test_same_root_and_missing_source_are_input_errors(local_lake, tmp_path):
    with pytest.raises(InputError, match="same lake"):
        sync_lake(local_lake, local_lake)
    with pytest.raises(InputError, match="is not a lake directory"):
        sync_lake(tmp_path / "nope", tmp_path / "dst")


def _run(argv) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def test_cli_sync_and_its_bad_input(local_lake, bucket, capsys):
    url = f"s3://{bucket}/cli"
    assert _run(["sync", str(local_lake), url]) in (0, None)
    out = capsys.readouterr().out
    assert out.startswith(f"synced {local_lake} -> {url}: ") and " 0 unchanged" in out
    for argv, message in [
        (["sync", str(local_lake), "foo://b/lake"], "unknown storage scheme foo://"),
        (["sync", str(local_lake), "s3://no-such-bucket-zz/lake"],
         "bucket 'no-such-bucket-zz' does not exist"),
    ]:
        assert _run(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
