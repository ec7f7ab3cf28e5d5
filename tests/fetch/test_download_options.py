"""What freqtrade users expect from a downloader (issue 12 item 15): several intervals in
one command, `--days N`, symbols by pattern and quote asset, a public `Lake.download`;
and help that says what each option takes (item 14, download and fake-exchange)."""

from __future__ import annotations

import asyncio
import json
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

from kline_lake.core.intervals import ALL_INTERVALS
from kline_lake.core.series import SeriesKey
from kline_lake.core.timeutil import parse_utc_ms
from kline_lake.download.select import select_symbols
from kline_lake.errors import InputError
from kline_lake.fake_exchange import FakeExchange
from tests.support.fetch import NOW_MS, cli, read_series, server_klines


@pytest.fixture(scope="module")
def fx():
    with FakeExchange(seed=9, now_ms=NOW_MS) as server:  # now: 2024-06-01T12:00:30Z
        yield server


def _oracle(fx, market: str, symbol: str, interval: str, start: str, end: str):
    return server_klines(fx.base_url, market, "klines", symbol, interval, parse_utc_ms(start),
                         parse_utc_ms(end))


def test_several_intervals_in_one_command(fx, tmp_path: Path) -> None:
    res = cli("download", "--market", "um", "--data", "klines", "--symbols", "BTCUSDT,ETHUSDT",
              "--interval", "1h,4h,1d", "--start", "2024-05-01", "--end", "2024-05-04",
              "--lake", str(tmp_path), "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "6 series" in res.stdout
    for symbol in ("BTCUSDT", "ETHUSDT"):
        for interval, rows in (("1h", 72), ("4h", 18), ("1d", 3)):
            stored = read_series(tmp_path, SeriesKey("um", "klines", symbol, interval))
            assert stored.num_rows == rows
            assert stored.equals(_oracle(fx, "um", symbol, interval, "2024-05-01", "2024-05-04"))


def test_days_counts_back_from_midnight(fx, tmp_path: Path) -> None:
    # --days 2 at 2024-06-01T12:00:30: from 2024-05-30T00:00 to now (12:00 still open)
    res = cli("download", "--market", "um", "--data", "klines", "--symbols", "ETHUSDT",
              "--interval", "1h", "--days", "2", "--source", "rest", "--lake", str(tmp_path),
              "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    stored = read_series(tmp_path, SeriesKey("um", "klines", "ETHUSDT", "1h"))
    assert stored.num_rows == 2 * 24 + 12
    assert stored.equals(_oracle(fx, "um", "ETHUSDT", "1h", "2024-05-30", "2024-06-01T12:00"))
    # with --end: N days before the end's day
    res = cli("download", "--market", "um", "--data", "klines", "--symbols", "BTCUSDT",
              "--interval", "1d", "--days", "10", "--end", "2024-03-01", "--lake", str(tmp_path),
              "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    days = read_series(tmp_path, SeriesKey("um", "klines", "BTCUSDT", "1d")).column("open_time")
    assert (days[0].value // 1000, days[-1].value // 1000) == (parse_utc_ms("2024-02-20"),
                                                              parse_utc_ms("2024-02-29"))


def test_symbols_by_pattern_and_quote(fx, tmp_path: Path) -> None:
    # um lists BTCUSDT, ETHUSDT (TRADING) and SRMUSDT (SETTLING, delisted)
    res = cli("download", "--market", "um", "--data", "klines", "--quote", "USDT",
              "--interval", "1d", "--start", "2024-05-01", "--end", "2024-05-03",
              "--lake", str(tmp_path), "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "2 series" in res.stdout
    assert "--symbols ALL --quote USDT: 2 symbols: BTCUSDT, ETHUSDT" in res.stderr
    res = cli("download", "--market", "um", "--data", "klines", "--symbols", "eth*,BTCUSDT",
              "--interval", "1d", "--start", "2024-05-01", "--end", "2024-05-03",
              "--lake", str(tmp_path / "b"), "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "--symbols ETH*,BTCUSDT: 2 symbols: BTCUSDT, ETHUSDT" in res.stderr
    assert sorted(p.name for p in (tmp_path / "b" / "um" / "klines").iterdir()) == [
        "symbol=BTCUSDT", "symbol=ETHUSDT"]


@pytest.mark.parametrize(("args", "message"), [
    (["--symbols", "ZZZ*"], "--symbols 'ZZZ*' matches no TRADING symbol of the exchange's 3"),
    (["--symbols", "SRM*"], "(not trading, name them to download: SRMUSDT)"),
    (["--quote", "EUR"], "--quote EUR: no TRADING symbol quotes EUR; the exchange's quote assets are USDT"),
    (["--symbols", "BTCUSDT", "--quote", "BTC"], "--symbols BTCUSDT: its quote asset is USDT, not --quote BTC"),
    (["--symbols", "BTC/*"], "invalid symbol pattern"),
    ([], "--symbols: give symbols"),
    (["--symbols", "BTCUSDT", "--days", "0"], "--days must be within 1..36600, got 0"),
    (["--symbols", "BTCUSDT", "--days", "2", "--start", "2024-01-01"], "either --start or --days"),
    (["--symbols", "BTCUSDT", "--interval", "1h,2m"], "unknown interval '2m'"),
])
def test_bad_selection_is_one_line_exit_2(fx, tmp_path: Path, args, message) -> None:
    start = [] if "--days" in args else ["--start", "2024-05-01"]
    res = cli("download", "--market", "um", "--data", "klines", *start, *args,
              "--lake", str(tmp_path / "lake"), "--base-url", fx.base_url, "--quiet")
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not (tmp_path / "lake").exists()


def test_select_symbols_on_a_real_exchange_info(real_data: Path) -> None:
    info = json.loads((real_data / "exchange_info" / "spot_exchangeInfo_2021-12-17_body.json").read_text())
    raw = info["symbols"]
    expected = sorted(s["symbol"] for s in raw if s["status"] == "TRADING"
                      and fnmatchcase(s["symbol"], "BTC*") and s["quoteAsset"] == "USDT")
    assert [s.symbol for s in select_symbols(info, ["BTC*"], "USDT")] == expected
    assert "BTCUSDT" in expected and "BTCBUSD" not in expected and len(expected) > 1
    busd = sorted(s["symbol"] for s in raw if s["status"] == "TRADING" and s["quoteAsset"] == "BUSD")
    assert [s.symbol for s in select_symbols(info, ["ALL"], "BUSD")] == busd and len(busd) > 100
    # names first as given, then matches; each once
    got = [s.symbol for s in select_symbols(info, ["ETHBTC", "ETH*USDT", "ETHUPUSDT"])]
    matches = sorted(s["symbol"] for s in raw if s["status"] == "TRADING"
                     and fnmatchcase(s["symbol"], "ETH*USDT") and s["symbol"] != "ETHUPUSDT")
    assert got == ["ETHBTC", "ETHUPUSDT", *matches] and "ETHUSDT" in matches
    with pytest.raises(InputError, match="quote asset is BTC"):
        select_symbols(info, ["ETHBTC"], "USDT")


def test_lake_download_is_the_public_api(fx, tmp_path: Path) -> None:
    import kline_lake
    from kline_lake import Lake
    from kline_lake.lake.catalog import Lake as Catalog

    with pytest.raises(InputError, match="does not exist"):
        Lake(tmp_path / "lake")  # a typo is not an empty lake
    lake = Lake(tmp_path / "lake", create=True)
    assert isinstance(lake, Catalog)
    tmp_path = tmp_path / "lake"
    totals = lake.download("um", "klines", ["BTCUSDT"], interval=["1h", "1d"],
                           start="2024-05-01", end="2024-05-03", base_url=fx.base_url)
    assert totals.series == 2 and totals.rows_written == 48 + 2
    frame = lake.klines("um", "BTCUSDT", "1h", "2024-05-01", "2024-05-03")
    assert frame.height == 48
    oracle = _oracle(fx, "um", "BTCUSDT", "1h", "2024-05-01", "2024-05-03")
    assert frame.to_arrow().select(oracle.column_names).cast(oracle.schema).equals(oracle)

    # the same from inside a running event loop (a notebook), and with datetime bounds
    from datetime import UTC, datetime

    async def in_a_notebook():
        return kline_lake.download_data(tmp_path, "um", "funding", "BTCUSDT",
                                        start=datetime(2024, 5, 1, tzinfo=UTC),
                                        end=datetime(2024, 5, 3), base_url=fx.base_url)

    funding = asyncio.run(in_a_notebook())
    assert funding.rows_written == 6  # every 8 hours for two days
    assert lake.funding("um", "BTCUSDT", "2024-05-01", "2024-05-03").height == 6
    again = lake.download("um", "klines", "BTCUSDT", interval="1h,1d", start="2024-05-01",
                          end="2024-05-03", base_url=fx.base_url)
    assert again.rows_written == 0
    with pytest.raises(InputError, match="unknown interval"):
        lake.download("um", "klines", "BTCUSDT", interval="7m", start="2024-05-01",
                      base_url=fx.base_url)
    lake.close()


def _help(*command: str) -> str:
    res = cli(*command, "--help")
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("command", ["download", "fake-exchange"])
def test_help_is_typed_described_and_has_an_example(command: str) -> None:
    from kline_lake.cli import cli as group

    cmd = group.get_command(None, command)
    undescribed = [p.name for p in cmd.params if getattr(p, "help", None) is None
                   and not getattr(p, "hidden", False)]
    assert undescribed == []
    text = _help(command)
    assert "Examples:" in text and f"kline-lake {command} --" in text
    assert " TEXT " not in text  # every option says what it takes
    if command == "fake-exchange":
        for typed in ("--port INTEGER", "--seed INTEGER", "--minute-seconds INTEGER",
                      "--weight-limit INTEGER", "--slow-seconds FLOAT", "--universe-size INTEGER"):
            assert typed in text, typed
    else:
        assert "--days INTEGER" in text and "--interval INTERVALS" in text
        listed = text.split("--interval INTERVALS", 1)[1].split("--start", 1)[0]
        assert set(re.findall(r"\b\d+[smhdwM]\b", listed)) >= set(ALL_INTERVALS), listed


def test_notebooks_use_the_public_download_api() -> None:
    import nbformat

    notebooks = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 2
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "kline_lake.download" not in code and "run_download" not in code, path.name
        assert "await " not in code, path.name
        assert "lake.download(" in code and "from kline_lake import Lake" in code, path.name


def test_readme_download_examples_of_the_new_options_run(fx, tmp_path: Path) -> None:
    import shlex

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    text = readme.replace("\\\n", " ")
    commands = [line.strip() for line in text.splitlines()
                if line.strip().startswith("kline-lake download")
                and any(flag in line for flag in ("--days", "--quote", "1m,1h"))]
    assert len(commands) >= 2, commands
    for n, command in enumerate(commands):
        args = shlex.split(command)[1:]
        res = cli(*args, "--lake", str(tmp_path / str(n)), "--quiet",
                  env={"KLINE_LAKE_BASE_URL": fx.base_url})
        assert res.returncode == 0, (command, res.stderr)
        assert "download done:" in res.stdout and " 0 rows written" not in res.stdout, command
