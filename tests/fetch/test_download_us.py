"""Binance.US downloads against the fake exchange: Binance.US is its own venue.

The fake exchange serves every market on one server, Binance.US under `/us/api/v3`; a
base URL shared by every market (`--base-url`, KLINE_LAKE_BASE_URL) sends `--market us`
there, never to spot's `/api/v3` (issue 12 item 17: it used to store spot data labelled
`us`). A server without Binance.US is a one-line error, exit 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kline_lake.core.markets import ENV_BASE_URL, SPOT, UM, US, resolve_base_url
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import ms_to_us, parse_utc_ms
from kline_lake.fake_exchange import FakeExchange
from kline_lake.fake_exchange import universe as uni
from tests.support.fetch import NOW_MS, cli, download, read_series, server_klines

START, END = "2019-09-01", "2020-07-01"


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=3, now_ms=NOW_MS) as server:
        yield server


def _oracle(base_url: str, market: str):
    return server_klines(base_url, market, "klines", "ETHUSDT", "1h", parse_utc_ms(START), parse_utc_ms(END))


def test_shared_base_url_resolves_binance_us_under_us() -> None:
    env = {ENV_BASE_URL: "http://127.0.0.1:9/"}
    assert resolve_base_url(US, None, env) == "http://127.0.0.1:9/us"
    assert resolve_base_url(SPOT, None, env) == "http://127.0.0.1:9"
    assert resolve_base_url(UM, None, env) == "http://127.0.0.1:9"
    assert resolve_base_url(US, "http://127.0.0.1:8", env) == "http://127.0.0.1:8/us"
    # a market's own URL is its API root, used as given; so is the real Binance.US host
    own = {**env, "KLINE_LAKE_US_URL": "http://127.0.0.1:7/"}
    assert resolve_base_url(US, None, own) == "http://127.0.0.1:7"
    assert resolve_base_url(US, "https://api.binance.us", {}) == "https://api.binance.us"
    assert resolve_base_url(US, None, {}) == "https://api.binance.us"


def test_us_download_stores_binance_us_data(fx, tmp_path: Path) -> None:
    before = fx.stats()
    download(fx.base_url, tmp_path, market="us", symbols="ETHUSDT", interval="1h", start=START, end=END)
    after = fx.stats()
    assert after["spot"]["requests"] == before["spot"]["requests"]  # nothing asked of spot
    assert after["us"]["requests"] > before["us"]["requests"]
    lake = read_series(tmp_path, SeriesKey("us", "klines", "ETHUSDT", "1h"))
    us_oracle = _oracle(fx.base_url + "/us", "us")
    assert lake.equals(us_oracle)
    # distinguishable from spot: Binance.US opened 2019-09-23, spot ETHUSDT trades since
    # 2017, so the same request on spot holds other rows
    first_open_us = lake.column("open_time").cast("int64")[0].as_py()
    assert first_open_us == ms_to_us(uni.listing_ms("us", "ETHUSDT"))
    spot_rows = _oracle(fx.base_url, "spot")
    assert spot_rows.column("open_time").cast("int64")[0].as_py() == ms_to_us(parse_utc_ms(START))
    assert not spot_rows.equals(us_oracle)


def test_cli_with_only_the_shared_env_url_reaches_binance_us(fx, tmp_path: Path) -> None:
    """The exact setting of the report: KLINE_LAKE_BASE_URL only, `--market us`."""
    before = fx.stats()
    res = cli("download", "--market", "us", "--data", "klines", "--symbols", "BTCUSDT", "--interval", "1d",
              "--start", "2020-01-01", "--end", "2020-02-01", "--lake", str(tmp_path), "--quiet",
              env={ENV_BASE_URL: fx.base_url})
    assert res.returncode == 0, res.stderr
    after = fx.stats()
    assert after["spot"]["requests"] == before["spot"]["requests"]
    assert after["us"]["requests"] > before["us"]["requests"]
    lake = read_series(tmp_path, SeriesKey("us", "klines", "BTCUSDT", "1d"))
    assert lake.num_rows == 31
    oracle = server_klines(fx.base_url + "/us", "us", "klines", "BTCUSDT", "1d",
                           parse_utc_ms("2020-01-01"), parse_utc_ms("2020-02-01"))
    assert lake.equals(oracle)


@pytest.mark.parametrize("how", ["env", "flag"])
def test_us_at_a_server_without_binance_us_is_one_line_exit_2(tmp_path: Path, how: str) -> None:
    with FakeExchange(seed=3, now_ms=NOW_MS, venues=("spot", "um", "cm")) as spot_only:
        env: dict[str, str] = {}
        args = ["download", "--market", "us", "--data", "klines", "--symbols", "BTCUSDT", "--interval", "1d",
                "--start", "2020-01-01", "--end", "2020-02-01", "--lake", str(tmp_path / "lake")]
        if how == "env":
            env[ENV_BASE_URL] = spot_only.base_url
        else:
            args += ["--base-url", spot_only.base_url]
        res = cli(*args, env=env)
        stats = spot_only.stats()
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "no us API at" in lines[0] and "/us" in lines[0] and "KLINE_LAKE_US_URL" in lines[0]
    assert stats["spot"]["requests"] == 0  # spot's /api/v3 was never asked for Binance.US
    assert not list((tmp_path / "lake").rglob("*.parquet"))


def test_market_url_pointing_at_the_us_root(fx, tmp_path: Path) -> None:
    """KLINE_LAKE_US_URL names Binance.US's own API root: the fake's `/us` works as given."""
    res = cli("download", "--market", "us", "--data", "klines", "--symbols", "ETHUSDT", "--interval", "1d",
              "--start", "2020-01-01", "--end", "2020-01-11", "--lake", str(tmp_path), "--quiet",
              env={"KLINE_LAKE_US_URL": fx.base_url + "/us", ENV_BASE_URL: "http://127.0.0.1:9"})
    assert res.returncode == 0, res.stderr
    assert read_series(tmp_path, SeriesKey("us", "klines", "ETHUSDT", "1d")).num_rows == 10
