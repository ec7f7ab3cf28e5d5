"""The archive tree over the wire: paths, CHECKSUMs, quirks, publication, consistency."""

from __future__ import annotations

import hashlib
import io
import zipfile

import httpx
import pytest

from kline_lake.archive.csv import parse_archive_csv
from kline_lake.core.intervals import next_open_ms
from kline_lake.download.rest_rows import parse_rest_klines
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.archive import kline_opens_in, parse_archive_path
from kline_lake.fake_exchange.universe import utc_ms


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
        "/data/spot/monthly/klines/BTCUSDT/1M/BTCUSDT-1M-2024-01.zip",  # the archive says 1mo
        "/data/spot/daily/klines/BTCUSDT/1w/BTCUSDT-1w-2024-01-30.zip",  # no week opens on a Tuesday
        "/data/spot/daily/klines/BTCUSDT/1mo/BTCUSDT-1mo-2024-01-02.zip",  # nor a month on the 2nd
        "/data/spot/daily/klines/BTCUSDT/3d/BTCUSDT-3d-2024-01-04.zip",  # 3d opens: Jan 3, 6, 9...
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


def test_parse_archive_path_calendar_month_is_1mo() -> None:
    key = parse_archive_path("/data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1mo-2024-02.zip")
    assert key is not None and key.interval == "1M"  # the API's name, for the 1M series
    assert (key.start_ms, key.end_ms, key.ready_ms) == (utc_ms("2024-02-01 00:00"), utc_ms("2024-03-01 00:00"),
                                                        utc_ms("2024-03-01 00:00"))
    daily = parse_archive_path("/data/futures/um/daily/klines/BTCUSDT/1mo/BTCUSDT-1mo-2024-02-01.zip.CHECKSUM")
    assert daily is not None and daily.interval == "1M" and daily.checksum
    assert daily.ready_ms == utc_ms("2024-03-01 00:00")  # its one kline closes with the month
    for refused in (
        "/data/spot/monthly/klines/BTCUSDT/1M/BTCUSDT-1M-2024-02.zip",  # no 1M folder
        "/data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1M-2024-02.zip",
        "/data/spot/monthly/klines/BTCUSDT/1M/BTCUSDT-1mo-2024-02.zip",
        "/data/futures/cm/monthly/indexPriceKlines/BTCUSD/1M/BTCUSD-1M-2024-02.zip",
    ):
        assert parse_archive_path(refused) is None, refused
    week = parse_archive_path("/data/spot/monthly/klines/BTCUSDT/1w/BTCUSDT-1w-2024-01.zip")
    assert week is not None and week.interval == "1w"
    # published once the week opening on Monday Jan 29 has closed (Feb 4, 23:59:59.999)
    assert week.ready_ms == utc_ms("2024-02-05 00:00")
    three = parse_archive_path("/data/futures/um/monthly/markPriceKlines/BTCUSDT/3d/BTCUSDT-3d-2024-01.zip")
    assert three is not None and three.interval == "3d"


def test_kline_opens_in() -> None:
    jan, feb, mar = utc_ms("2024-01-01 00:00"), utc_ms("2024-02-01 00:00"), utc_ms("2024-03-01 00:00")
    assert (kline_opens_in(jan, feb, "1w"), kline_opens_in(feb, mar, "1w")) == (5, 4)
    assert kline_opens_in(jan, mar, "1M") == 2 and kline_opens_in(jan + 1, feb, "1M") == 0
    assert kline_opens_in(jan, feb, "1h") == 31 * 24
    assert kline_opens_in(feb, mar, "3d") == 10  # Feb 2, 5, ..., 29
    assert kline_opens_in(feb + 86_400_000, feb + 2 * 86_400_000, "1w") == 0


def _rest_klines_opening_in(client: httpx.Client, api: str, symbol: str, interval: str,
                            start_ms: int, end_ms: int):
    rows = client.get(f"{api}/klines", params={"symbol": symbol, "interval": interval, "startTime": start_ms,
                                               "endTime": end_ms - 1, "limit": 1000}).json()
    return parse_rest_klines(rows, "klines")


def test_monthly_1w_files_hold_the_weeks_opening_in_the_month(client: httpx.Client) -> None:
    counts = []
    for month in range(1, 13):
        start, end = utc_ms(f"2024-{month:02d}-01 00:00"), next_open_ms(utc_ms(f"2024-{month:02d}-01 00:00"), "1M")
        csv, _ = _fetch(client, f"/data/spot/monthly/klines/BTCUSDT/1w/BTCUSDT-1w-2024-{month:02d}.zip")
        table = parse_archive_csv(csv, "klines")
        opens_ms = [t // 1000 for t in table.column("open_time").cast("int64").to_pylist()]
        assert all(start <= t < end for t in opens_ms)
        assert all((t // 86_400_000) % 7 == 4 for t in opens_ms)  # Mondays (epoch: Thursday)
        assert [b - a for a, b in zip(opens_ms, opens_ms[1:], strict=False)] == [7 * 86_400_000] * (len(opens_ms) - 1)
        # whole weeks, also the last one that ends in the next month
        assert table.equals(_rest_klines_opening_in(client, "/api/v3", "BTCUSDT", "1w", start, end))
        counts.append(len(opens_ms))
    assert set(counts) == {4, 5} and sum(counts) == 53  # 2024: Monday Jan 1 to Monday Dec 30


def test_1mo_and_3d_files_microsecond_close_times(client: httpx.Client) -> None:
    """Spot 2025 files: close time in us is the next open in us - 1, also for calendar months."""
    csv, _ = _fetch(client, "/data/spot/monthly/klines/ETHUSDT/1mo/ETHUSDT-1mo-2025-02.zip")
    (row,) = [line.split(",") for line in csv.decode().splitlines()]
    assert int(row[0]) == utc_ms("2025-02-01 00:00") * 1000
    assert int(row[6]) == utc_ms("2025-03-01 00:00") * 1000 - 1  # 28 days, not a fixed length
    table = parse_archive_csv(csv, "klines")
    start, end = utc_ms("2025-02-01 00:00"), utc_ms("2025-03-01 00:00")
    assert table.equals(_rest_klines_opening_in(client, "/api/v3", "ETHUSDT", "1M", start, end))
    csv3, _ = _fetch(client, "/data/spot/monthly/klines/ETHUSDT/3d/ETHUSDT-3d-2025-02.zip")
    rows = [line.split(",") for line in csv3.decode().splitlines()]
    assert len(rows) == kline_opens_in(start, end, "3d") == 9
    assert all(int(r[6]) == int(r[0]) + 3 * 86_400_000_000 - 1 for r in rows)


def test_daily_files_of_long_intervals(client: httpx.Client) -> None:
    """A daily 3d/1w/1mo file holds the kline opening that day (futures 2024: header row)."""
    for interval, day in (("1w", "2024-01-29"), ("3d", "2024-01-30"), ("1mo", "2024-02-01")):
        csv, _ = _fetch(client, f"/data/futures/um/daily/klines/BTCUSDT/{interval}/BTCUSDT-{interval}-{day}.zip")
        assert csv.startswith(b"open_time,")
        table = parse_archive_csv(csv, "klines")
        day_ms = utc_ms(f"{day} 00:00")
        api_interval = "1M" if interval == "1mo" else interval
        assert table.num_rows == 1
        assert table.equals(_rest_klines_opening_in(client, "/fapi/v1", "BTCUSDT", api_interval, day_ms,
                                                    day_ms + 86_400_000))


def test_long_interval_files_wait_for_their_last_kline() -> None:
    """Data clock 2025-04-02 12:00: March's weekly file waits for the week of Monday March 31."""
    with FakeExchange(seed=1, now_ms=utc_ms("2025-04-02 12:00")) as fx, \
            httpx.Client(base_url=fx.base_url, timeout=10) as c:
        base = "/data/spot/{}/klines/BTCUSDT/{}/BTCUSDT-{}-{}.zip"
        expect = [
            ("monthly", "1w", "2025-03", 404),  # the week of March 31 ends April 6
            ("monthly", "1w", "2025-02", 200),  # the week of February 24 ended March 2
            ("daily", "1w", "2025-03-24", 200),
            ("daily", "1w", "2025-03-31", 404),
            ("monthly", "1mo", "2025-03", 200),
            ("daily", "1mo", "2025-03-01", 200),
            ("monthly", "3d", "2025-03", 404),  # the 3d kline of March 31 ends April 2
            ("monthly", "3d", "2025-02", 200),
        ]
        got = [(p, iv, d, c.get(base.format(p, iv, iv, d)).status_code) for p, iv, d, _ in expect]
        assert got == expect
