"""`Lake(s3://...)` and `Lake(memory://...)`: a lake written by LakeWriter, published
object by object, reads back identically to the local lake (series, coverage, SQL)."""

from __future__ import annotations

import uuid

import polars as pl
import pytest

from kline_lake import Lake
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake.storage import open_storage
from kline_lake.lake.synthetic import synthetic_funding, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

DAY_MS = 86_400_000
BTC = SeriesKey("um", "klines", "BTCUSDT", "1m")


@pytest.fixture
def local_lake(tmp_path):
    root = tmp_path / "lake"
    w = LakeWriter(root)
    start = JAN_2024_MS - 40 * DAY_MS  # Nov 22 .. Jan 31: three partitions
    w.commit(BTC, synthetic_klines(start, 70 * 1440, seed=1),
             covered=[(start * 1000, (start + 70 * DAY_MS) * 1000)])
    w.commit(SeriesKey("spot", "klines", "ETHUSDT", "1h"), synthetic_klines(JAN_2024_MS, 48,
                                                                            seed=2,
                                                                            interval="1h"))
    w.commit(SeriesKey("um", "funding", "BTCUSDT"), synthetic_funding(JAN_2024_MS, 30))
    return root


def _publish(local_root, url: str) -> None:
    storage = open_storage(url)
    for path in sorted(p for p in local_root.rglob("*") if p.is_file()):
        storage.put_file(path.relative_to(local_root).as_posix(), path)


@pytest.fixture(params=["s3", "memory"])
def both(request, local_lake):
    if request.param == "s3":
        url = f"s3://{request.getfixturevalue('bucket')}/shared/lake"
    else:
        url = f"memory://m{uuid.uuid4().hex[:8]}/lake"
    _publish(local_lake, url)
    return Lake(local_lake), Lake(url)


def test_series_reads_are_identical(both):
    local, remote = both
    for start, end in [(None, None), ("2023-12-31T23:00", "2024-01-02"),
                       ("2024-01-05", "2024-01-05T00:01")]:
        a = local.klines("um", "BTCUSDT", "1m", start, end)
        b = remote.klines("um", "BTCUSDT", "1m", start, end)
        assert b.height == a.height > 0 and b.equals(a)
    assert remote.funding("um", "BTCUSDT").equals(local.funding("um", "BTCUSDT"))
    assert remote.klines("spot", "ETHUSDT", "1h").equals(local.klines("spot", "ETHUSDT", "1h"))
    assert remote.covered("um", "klines", "BTCUSDT", "1m") == \
        local.covered("um", "klines", "BTCUSDT", "1m") != []
    assert remote.covered("um", "klines", "ETHUSDT", "1m") == []


def test_sql_views_over_the_object_store(both):
    local, remote = both
    q = ("SELECT market, symbol, interval, year, month, count(*) AS n FROM klines "
         "GROUP BY ALL ORDER BY ALL")
    assert remote.sql(q).equals(local.sql(q))
    assert remote.sql("SELECT count(*) FROM funding").item() == 30


def test_a_series_the_object_lake_does_not_hold_is_an_input_error(both):
    local, remote = both
    with pytest.raises(InputError, match="no um klines for BTCUSDT 5m in the lake"):
        remote.klines("um", "BTCUSDT", "5m")
    with pytest.raises(InputError, match="no um klines for BTCUSDT 5m in the lake"):
        remote.gaps("um", "BTCUSDT", "5m")
    assert remote.inventory().equals(local.inventory())  # no longer local-only


def test_a_lazy_one_day_read_prunes_to_one_object(bucket, local_lake):
    url = f"s3://{bucket}/lake"
    _publish(local_lake, url)
    storage = open_storage(url)
    # corrupt December: a January read never opens it
    dec = [k for k in storage.list_files("um/klines") if "month=12" in k]
    assert len(dec) == 1
    storage.put_bytes(dec[0], b"not parquet")
    got = Lake(url).klines("um", "BTCUSDT", "1m", "2024-01-05", "2024-01-06")
    want = Lake(local_lake).klines("um", "BTCUSDT", "1m", "2024-01-05", "2024-01-06")
    assert got.height == 1440 and got.equals(want)
    with pytest.raises(pl.exceptions.ComputeError):
        Lake(url).klines("um", "BTCUSDT", "1m", "2023-12-05", "2023-12-06")
