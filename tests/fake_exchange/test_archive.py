"""The archive tree over the wire: paths, CHECKSUMs, quirks, publication, consistency."""

from __future__ import annotations

import hashlib
import io
import zipfile

import httpx
import pytest

from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.archive import parse_archive_path
from kline_lake.fake_exchange.universe import utc_ms
from kline_lake.parsing import parse_archive_csv, parse_rest_klines


def _fetch(c: httpx.Client, path: str) -> tuple[bytes, str]:
    r = c.get(path)
    assert r.status_code == 200, (path, r.status_code)
    ck = c.get(path + ".CHECKSUM")
    assert ck.status_code == 200
    digest, name = ck.text.split()
    assert digest == hashlib.sha256(r.content).hexdigest()
    assert name == path.rsplit("/", 1)[1]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        (entry,) = zf.namelist()
        assert entry == name[:-4] + ".csv"
        return zf.read(entry), ck.text


def test_spot_daily_klines_equal_rest(client: httpx.Client) -> None:
    csv, _ = _fetch(client, "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-10-22.zip")
    assert csv[:1].isdigit()  # spot: never a header
    table = parse_archive_csv(csv, "klines")
    assert table.num_rows == 1440
    day0 = utc_ms("2021-10-22 00:00")
    rest = []
    for start in (day0, day0 + 1000 * 60_000):
        rest += client.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": start,
                                                     "endTime": day0 + 86_399_999, "limit": 1000}).json()
    assert parse_rest_klines(rest, "klines").equals(table)


def test_spot_2025_microseconds(client: httpx.Client) -> None:
    csv, _ = _fetch(client, "/data/spot/daily/klines/ETHUSDT/1m/ETHUSDT-1m-2025-01-01.zip")
    first = csv.split(b"\n", 1)[0].split(b",")
    assert len(first[0]) == 16 and int(first[6]) == int(first[0]) + 59_999_999
    old, _ = _fetch(client, "/data/spot/daily/klines/ETHUSDT/1m/ETHUSDT-1m-2024-12-31.zip")
    assert len(old.split(b",", 1)[0]) == 13
    trades, _ = _fetch(client, "/data/spot/daily/aggTrades/ETHUSDT/ETHUSDT-aggTrades-2025-01-02.zip")
    row = trades.split(b"\n", 1)[0].split(b",")
    assert len(row) == 8 and len(row[5]) == 16 and row[6] in (b"True", b"False")


def test_futures_header_from_2022(client: httpx.Client) -> None:
    old, _ = _fetch(client, "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2021-12-31.zip")
    new, _ = _fetch(client, "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2022-01-01.zip")
    assert old[:1].isdigit() and new.startswith(b"open_time,open,high,low,close,volume,close_time")
    assert parse_archive_csv(old, "klines").num_rows == 24 == parse_archive_csv(new, "klines").num_rows
    funding, _ = _fetch(client, "/data/futures/um/monthly/fundingRate/ETHUSDT/ETHUSDT-fundingRate-2023-02.zip")
    assert funding.startswith(b"calc_time,funding_interval_hours,last_funding_rate\n")
    assert parse_archive_csv(funding, "funding").num_rows == 28 * 6
    mark, _ = _fetch(client, "/data/futures/cm/daily/markPriceKlines/BTCUSD_PERP/1m/BTCUSD_PERP-1m-2021-05-05.zip")
    assert parse_archive_csv(mark, "mark_klines").num_rows == 1440


def test_agg_trades_archive_equals_rest(client: httpx.Client) -> None:
    csv, _ = _fetch(client, "/data/futures/um/daily/aggTrades/ETHUSDT/ETHUSDT-aggTrades-2023-06-01.zip")
    table = parse_archive_csv(csv, "agg_trades")
    assert table.num_rows == 86_400
    ids = table.column("agg_id").to_pylist()
    assert ids == list(range(ids[0], ids[0] + 86_400))
    rest = client.get("/fapi/v1/aggTrades", params={"symbol": "ETHUSDT", "fromId": ids[0], "limit": 3}).json()
    assert [r["a"] for r in rest] == ids[:3]
    assert [float(r["q"]) for r in rest] == table.column("quantity").to_pylist()[:3]


@pytest.mark.parametrize(
    "path",
    [
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-11-20.zip",  # today: not yet published
        "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2025-11.zip",  # month not over
        "/data/spot/daily/klines/NEWUSDT/1m/NEWUSDT-1m-2024-01-01.zip",  # before listing
        "/data/spot/daily/klines/XMRUSDT/1m/XMRUSDT-1m-2024-03-01.zip",  # after delisting
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1h-2021-01-01.zip",  # interval mismatch
        "/data/futures/um/daily/klines/BTCUSDT/1s/BTCUSDT-1s-2021-01-01.zip",  # no 1s on futures
        "/data/spot/daily/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2021-01-01.zip",
        "/data/spot/daily/klines/NOPE/1m/NOPE-1m-2021-01-01.zip",
        "/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-02-30.zip",
    ],
)
def test_404(client: httpx.Client, path: str) -> None:
    assert client.get(path).status_code == 404
    assert client.get(path + ".CHECKSUM").status_code == 404


def test_published_after_period_end(client: httpx.Client) -> None:
    assert client.get("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-11-19.zip").status_code == 200
    assert client.get("/data/spot/monthly/klines/BTCUSDT/1d/BTCUSDT-1d-2025-10.zip").status_code == 200


def test_delisting_day_is_partial(client: httpx.Client) -> None:
    csv, _ = _fetch(client, "/data/spot/daily/klines/XMRUSDT/1h/XMRUSDT-1h-2024-02-20.zip")
    assert parse_archive_csv(csv, "klines").num_rows == 3


def test_zip_bytes_deterministic() -> None:
    path = "/data/spot/daily/klines/BTCUSDT/5m/BTCUSDT-5m-2020-05-05.zip"
    bodies = []
    for _ in range(2):
        with FakeExchange(seed=11, now_ms=utc_ms("2025-01-01 00:00")) as fx:
            bodies.append(httpx.get(fx.base_url + path).content)
    assert bodies[0] == bodies[1]


def test_parse_archive_path() -> None:
    key = parse_archive_path("/data/futures/cm/monthly/klines/BTCUSD_PERP/1h/BTCUSD_PERP-1h-2021-02.zip.CHECKSUM")
    assert key is not None and key.checksum and key.market == "cm" and key.interval == "1h"
    assert key.end_ms - key.start_ms == 28 * 86_400_000
    assert parse_archive_path("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-01.zip") is None


def test_archive_counted_in_stats(fx: FakeExchange, client: httpx.Client) -> None:
    before = fx.stats()["archive"]
    r = client.get("/data/spot/daily/klines/BTCUSDT/1d/BTCUSDT-1d-2021-01-01.zip")
    after = fx.stats()["archive"]
    assert after["requests"] == before["requests"] + 1
    assert after["bytes"] == before["bytes"] + len(r.content) and after["weight"] == 0
