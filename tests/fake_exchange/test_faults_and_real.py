"""Fault injection rates and kinds; --data-dir with real files; the CLI."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange.faults import FaultInjector, parse_faults


def test_parse_faults() -> None:
    spec = parse_faults("500:0.05,503:0.02,slow:0.02,drop:0.01,truncate:0.01,corrupt-archive:0.1")
    assert dict(spec.rates)["corrupt-archive"] == 0.1
    for bad in ("nope:0.1", "500", "500:2", "500:0.6,503:0.6", "500:x"):
        with pytest.raises(InputError):
            parse_faults(bad)


def test_fault_sequence_is_seeded_and_rates_hold() -> None:
    spec = parse_faults("500:0.1,drop:0.05,truncate:0.05")
    a = [FaultInjector(spec, 5).draw(False) for _ in range(1)]
    inj1, inj2 = FaultInjector(spec, 5), FaultInjector(spec, 5)
    seq1 = [inj1.draw(False) for _ in range(4000)]
    seq2 = [inj2.draw(False) for _ in range(4000)]
    assert seq1 == seq2 and a[0] == seq1[0]
    assert 0.08 < seq1.count("500") / 4000 < 0.12
    assert 0.03 < seq1.count("drop") / 4000 < 0.07


def test_faults_over_the_wire() -> None:
    with FakeExchange(seed=2, faults="500:0.2,503:0.1,drop:0.1,truncate:0.1") as fx, \
            httpx.Client(base_url=fx.base_url) as c:
        outcomes = {"ok": 0, "500": 0, "503": 0, "drop": 0, "truncate": 0}
        for _ in range(150):
            try:
                r = c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1h", "limit": 50})
                if r.status_code in (500, 503):
                    assert r.json()["code"] in (-1001, -1008)
                    outcomes[str(r.status_code)] += 1
                else:
                    assert len(r.json()) == 50
                    outcomes["ok"] += 1
            except httpx.RemoteProtocolError as exc:
                outcomes["drop" if "without sending a response" in str(exc) else "truncate"] += 1
        assert all(outcomes[k] > 3 for k in outcomes), outcomes
        assert fx.stats()["spot"]["requests"] == 150


def test_corrupt_archive_fails_checksum() -> None:
    path = "/data/spot/daily/klines/BTCUSDT/1d/BTCUSDT-1d-2021-01-01.zip"
    with FakeExchange(seed=4, faults="corrupt-archive:0.5") as fx, httpx.Client(base_url=fx.base_url) as c:
        digests = set()
        for _ in range(30):
            body = c.get(path).content
            digests.add(hashlib.sha256(body).hexdigest())
        good = [c.get(path + ".CHECKSUM").text.split()[0] for _ in range(3)]
        assert len(set(good)) == 1 and good[0] in digests and len(digests) == 2


def test_slow_fault_delays() -> None:
    with FakeExchange(faults="slow:1.0", slow_s=0.3) as fx, httpx.Client(base_url=fx.base_url) as c:
        r = c.get("/api/v3/ping")
        assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.3


def test_data_dir_serves_real_rows(real_data: Path) -> None:
    recorded = __import__("json").loads((real_data / "spot/rest_responses/nautilus_http_spot_market_klines.json").read_text())
    with FakeExchange(data_dir=real_data) as fx, httpx.Client(base_url=fx.base_url) as c:
        rows = c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                               "startTime": recorded[0][0], "limit": len(recorded)}).json()
        assert rows[:-1] == recorded[:-1]  # the recorded last row was still open
        us = c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                             "startTime": 1735689600000, "limit": 1}).json()
        assert us[0][0] == 1735689600000 and us[0][6] == 1735689659999
        gap = c.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                              "startTime": 1577923140000, "limit": 2}).json()
        assert [r[0] for r in gap] == [1577923140000, 1577923200000]
        z = c.get("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip").content
        assert z == (real_data / "spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2020-01-01.zip").read_bytes()
        ck = c.get("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-10-20.zip.CHECKSUM").text
        z2 = c.get("/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2021-10-20.zip").content
        assert ck.split()[0] == hashlib.sha256(z2).hexdigest()
        assert zipfile.ZipFile(__import__("io").BytesIO(z2)).namelist() == ["BTCUSDT-1m-2021-10-20.csv"]
        info = c.get("/api/v3/exchangeInfo").json()
        assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT"]
        assert c.get("/api/v3/klines", params={"symbol": "ETHUSDT", "interval": "1m"}).json()["code"] == -1121


def test_cli_serves_and_stops() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from kline_lake.cli import main; main()", "fake-exchange", "--port", "0",
                             "--minute-seconds", "10"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("serving on http://127.0.0.1:")
        url = line.split()[-1]
        r = httpx.get(url + "/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 2})
        assert r.status_code == 200 and r.headers["x-mbx-used-weight-10s"] == "2"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_cli_bad_options_exit_2() -> None:
    for args in (["--faults", "boom:1"], ["--weight-limit", "0"], ["--data-dir", "/nonexistent/dir"],
                 ["--port", "http"], ["--port", "70000"], ["--minute-seconds", "2.5"], ["--venues", "spot,kraken"],
                 ["--seed", "-1"]):
        proc = subprocess.run([sys.executable, "-c", "from kline_lake.cli import main; main()", "fake-exchange", *args],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and "error" in proc.stderr, (args, proc.stderr)


def test_us_venue_budget_and_stats() -> None:
    with FakeExchange() as fx, httpx.Client(base_url=fx.base_url) as c:
        info = c.get("/us/api/v3/exchangeInfo")
        assert info.json()["rateLimits"][0]["limit"] == 1200
        assert info.headers["x-mbx-used-weight-1m"] == "10"
        assert c.get("/us/api/v3/klines", params={"symbol": "XMRUSDT", "interval": "1m"}).json()["code"] == -1121
        assert c.get("/us/api/v3/aggTrades", params={"symbol": "BTCUSDT", "limit": 1}).status_code == 200
        stats = fx.stats()
        assert stats["us"]["requests"] == 3 and stats["us"]["weight"] == 10 + 1 + 1  # exchangeInfo, klines, aggTrades
        assert stats["spot"]["requests"] == 0


def test_concurrent_clients(fx: FakeExchange) -> None:
    import concurrent.futures

    def work(i: int) -> int:
        with httpx.Client(base_url=fx.base_url, timeout=30) as c:
            rows = c.get("/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1m", "limit": 200,
                                                    "startTime": 1_600_000_000_000 + i * 86_400_000}).json()
            return len(rows)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(16))) == [200] * 16


def test_exchange_info_symbol_filter_and_head(client: httpx.Client) -> None:
    body = client.get("/api/v3/exchangeInfo", params={"symbols": '["ETHUSDT","BTCUSDT"]'}).json()
    assert [s["symbol"] for s in body["symbols"]] == ["ETHUSDT", "BTCUSDT"]
    assert client.get("/api/v3/exchangeInfo", params={"symbol": "NOPE"}).json()["code"] == -1121
    head = client.head("/data/spot/daily/klines/BTCUSDT/1d/BTCUSDT-1d-2021-01-01.zip")
    assert head.status_code == 200 and int(head.headers["content-length"]) > 0 and head.content == b""


def test_bad_constructor_arguments() -> None:
    for kwargs in ({"minute_seconds": 0}, {"minute_seconds": 2.5}, {"venues": ("spot", "kraken")}, {"venues": ()},
                   {"weight_limit": -1}):
        with pytest.raises(ValueError):
            FakeExchange(**kwargs)
