"""The lake's questions on an object store (a real S3-compatible server on loopback):
a lake written by LakeWriter("s3://...") answers inventory, gaps, verify and compact as the
same lake written locally does; compact writes through the storage seam."""

from __future__ import annotations

import io

import polars as pl
import pyarrow.parquet as pq
import pytest

from kline_lake import Lake
from kline_lake.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.lake.storage import Storage
from kline_lake.lake.synthetic import synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

DAY_MS = 86_400_000
BTC = SeriesKey("um", "klines", "BTCUSDT", "1h")
FUNDING = SeriesKey("um", "funding", "BTCUSDT")
PART = "um/klines/symbol=BTCUSDT/interval=1h/year=2024/month=01"


def _fill(root) -> None:
    """The same commits into a local or an object-store lake: two covered stretches of
    1h klines with a never-fetched hole and a confirmed-empty stretch, and funding."""
    w = LakeWriter(root)
    rows = synthetic_klines(JAN_2024_MS, 20 * 24, seed=7, interval="1h")
    first, second = rows.slice(0, 5 * 24), rows.slice(8 * 24, 10 * 24)
    w.commit(BTC, first, covered=[(JAN_2024_MS * 1000, (JAN_2024_MS + 5 * DAY_MS) * 1000)])
    w.commit(BTC, second, covered=[((JAN_2024_MS + 7 * DAY_MS) * 1000,
                                    (JAN_2024_MS + 18 * DAY_MS) * 1000)])
    w.commit(FUNDING, synthetic_funding(JAN_2024_MS, 12),
             covered=[(JAN_2024_MS * 1000, (JAN_2024_MS + 4 * DAY_MS) * 1000)])


@pytest.fixture
def pair(tmp_path, bucket):
    local, url = tmp_path / "lake", f"s3://{bucket}/lake"
    _fill(local)
    _fill(url)
    return Lake(local), Lake(url)


def test_objects_written_through_the_seam_are_the_local_bytes(pair):
    local, remote = pair
    storage = remote.root
    files = sorted(p.relative_to(local.root).as_posix() for p in local.root.rglob("*")
                   if p.is_file() and "locks" not in p.parts)
    assert storage.list_files() == files
    for rel in files:
        assert storage.read_bytes(rel) == (local.root / rel).read_bytes(), rel


def test_inventory_and_gaps_match_the_local_lake(pair):
    local, remote = pair
    assert remote.inventory().equals(local.inventory())
    assert remote.inventory()["coverage_holes"].to_list() == [0, 1]
    gaps = remote.gaps("um", "BTCUSDT", "1h")
    assert gaps.equals(local.gaps("um", "BTCUSDT", "1h"))
    assert set(gaps["status"]) == {"confirmed", "unknown"}
    assert remote.gaps("um", "BTCUSDT", dataset="funding").equals(
        local.gaps("um", "BTCUSDT", dataset="funding"))


def _foreign(lake: Lake, table) -> None:
    """A file another tool dropped into January (rows overlapping data.parquet)."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    if isinstance(lake.root, Storage):
        lake.root.put_bytes(f"{PART}/part-foreign.parquet", buf.getvalue())
    else:
        (lake.root / PART / "part-foreign.parquet").write_bytes(buf.getvalue())


def test_verify_and_compact_on_the_object_store(pair):
    local, remote = pair
    assert remote.verify().ok and remote.verify().files_checked == local.verify().files_checked
    extra = synthetic_klines(JAN_2024_MS + 4 * DAY_MS, 48, seed=9, interval="1h")
    _foreign(local, extra)
    _foreign(remote, extra)
    report = remote.verify()
    kinds = sorted((p.kind, p.path) for p in report.problems)
    assert ("extra-file", remote.root.uri(f"{PART}/part-foreign.parquet")) in kinds
    assert ("duplicate-keys", remote.root.uri(PART)) in kinds
    assert [k for k, _ in kinds] == sorted(p.kind for p in local.verify().problems)
    before = remote.klines("um", "BTCUSDT", "1h")
    assert before.equals(local.klines("um", "BTCUSDT", "1h"))
    done = remote.compact()
    assert (done.partitions_compacted, done.files_before, done.files_after) == (1, 3, 2)
    assert done.compacted == [remote.root.uri(PART)]
    local.compact()
    assert remote.root.list_files(PART) == [f"{PART}/data.parquet"]
    assert remote.root.read_bytes(f"{PART}/data.parquet") == \
        (local.root / PART / "data.parquet").read_bytes()
    after = remote.klines("um", "BTCUSDT", "1h")
    assert after.equals(before) and after.height == 16 * 24  # days 0-4, 5 (foreign), 8-17
    assert remote.verify().ok and not [k for k in remote.root.list_files() if "locks" in k]


def test_inventory_and_gaps_from_the_cli(pair, capsys):
    _, remote = pair
    url = remote.root.uri()
    with pytest.raises(SystemExit) as exc:
        main(["inventory", "--lake", url, "--format", "csv"])
    assert exc.value.code == 0
    frame = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert frame["symbol"].to_list() == ["BTCUSDT", "BTCUSDT"]
    assert frame["rows"].to_list() == [12, 15 * 24]
    with pytest.raises(SystemExit) as exc:
        main(["gaps", "--lake", url, "--market", "um", "--symbols", "BTCUSDT",
              "--interval", "1h", "--format", "csv"])
    assert exc.value.code == 0
    gaps = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert gaps.height == remote.gaps("um", "BTCUSDT", "1h").height > 0


def test_a_missing_bucket_is_one_line_exit_2_for_the_catalog_and_the_backtester(s3_env, capsys):
    from backtest.cli import main as backtest_main

    for run, argv in [(main, ["inventory", "--lake", "s3://no-such-bucket-here/lake"]),
                      (backtest_main, ["run", "--lake", "s3://no-such-bucket-here/lake",
                                       "--market", "um", "--symbol", "BTCUSDT", "--interval",
                                       "1h", "--start", "2024-01-01", "--end", "2024-01-05"])]:
        with pytest.raises(SystemExit) as exc:
            run(argv)
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 2, err
        assert err.endswith("bucket 'no-such-bucket-here' does not exist "
                            "(s3://no-such-bucket-here/lake)")
        assert len(err.splitlines()) == 1
