"""A typo is an error naming what the lake holds, never an empty answer."""

from __future__ import annotations

import pytest

from kline_lake import Lake
from kline_lake.cli import main
from kline_lake.core.series import SeriesKey
from kline_lake.errors import InputError
from kline_lake.lake.synthetic import synthetic_agg_trades, synthetic_klines
from kline_lake.lake.writer import LakeWriter
from tests.support.lake import JAN_2024_MS

J_US = JAN_2024_MS * 1000
HOUR_US = 3_600_000_000


@pytest.fixture
def lake(lake_root):
    w = LakeWriter(lake_root)
    w.commit(SeriesKey("um", "klines", "BTCUSDT", "1m"), synthetic_klines(JAN_2024_MS, 60),
             covered=[(J_US, J_US + HOUR_US)])
    w.commit(SeriesKey("um", "klines", "BTCUSDT", "1h"), synthetic_klines(JAN_2024_MS, 5, "1h"))
    w.commit(SeriesKey("um", "klines", "ETHUSDT", "1m"), synthetic_klines(JAN_2024_MS, 60))
    w.commit(SeriesKey("spot", "klines", "SOLUSDT", "1m"), synthetic_klines(JAN_2024_MS, 60))
    # the exchange answered empty everywhere: coverage and no rows (an existing series)
    w.commit(SeriesKey("um", "klines", "NEWUSDT", "1m"), synthetic_klines(JAN_2024_MS, 0),
             covered=[(J_US, J_US + HOUR_US)])
    w.commit(SeriesKey("um", "agg_trades", "BTCUSDT"), synthetic_agg_trades(JAN_2024_MS, 10))
    return lake_root


def test_unknown_symbol_names_what_the_lake_holds(lake):
    with pytest.raises(InputError) as exc:
        Lake(lake).klines("um", "BTCUSTD", "1h")
    assert str(exc.value) == ("no um klines for BTCUSTD in the lake; it holds "
                              "BTCUSDT, ETHUSDT, NEWUSDT")
    with pytest.raises(InputError, match="^no um klines for BTCUSDT 4h in the lake; it holds "
                                         "BTCUSDT 1m, 1h$"):
        Lake(lake).klines("um", "BTCUSDT", "4h")
    with pytest.raises(InputError, match="^no cm klines for BTCUSDT in the lake; it holds no cm klines$"):
        Lake(lake).klines("cm", "BTCUSDT", "1m")
    with pytest.raises(InputError, match="no um agg_trades for ETHUSDT in the lake; it holds BTCUSDT"):
        Lake(lake).agg_trades("um", "ETHUSDT")
    with pytest.raises(InputError, match="no um funding for BTCUSDT in the lake; it holds no um funding"):
        Lake(lake).funding("um", "BTCUSDT")
    with pytest.raises(InputError, match="unknown interval '7m'"):
        Lake(lake).klines("um", "BTCUSDT", "7m")
    with pytest.raises(InputError, match="no um klines for BTCUSTD"):
        Lake(lake).gaps("um", "BTCUSTD", "1m")
    with pytest.raises(InputError, match="no um klines for BTCUSDT 5m"):
        Lake(lake).resample("um", "BTCUSDT", "5m", "1h")


def test_held_series_with_no_rows_in_range_is_an_empty_frame(lake):
    assert Lake(lake).klines("um", "BTCUSDT", "1m", "2025-01-01", "2025-02-01").height == 0
    empty = Lake(lake).klines("um", "NEWUSDT", "1m")  # coverage only
    assert empty.height == 0 and empty.columns[0] == "open_time"
    assert Lake(lake).gaps("um", "NEWUSDT", "1m")["status"].to_list() == ["confirmed"]


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_gaps_cli_typos_are_one_line_errors(lake, capsys):
    code, out, err = run(["gaps", "--lake", str(lake), "--symbols", "FOO"], capsys)
    assert (code, out) == (2, "")
    assert err == ("kline-lake: error: no klines for FOO in the lake; it holds "
                   "BTCUSDT, ETHUSDT, NEWUSDT, SOLUSDT\n")
    code, _, err = run(["gaps", "--lake", str(lake), "--market", "um",
                        "--symbols", "BTCUSDT,SOLUSDT"], capsys)
    assert code == 2 and err == ("kline-lake: error: no um klines for SOLUSDT in the lake; "
                                 "it holds BTCUSDT, ETHUSDT, NEWUSDT\n")
    code, _, err = run(["gaps", "--lake", str(lake), "--interval", "7m"], capsys)
    assert code == 2 and "'7m' is not one of '1s', '1m'" in err
    code, _, err = run(["gaps", "--lake", str(lake), "--symbols", "ETHUSDT", "--interval", "1h"],
                       capsys)
    assert code == 2 and err == ("kline-lake: error: no klines at 1h for ETHUSDT in the lake; "
                                 "it holds 1m\n")
    code, out, _ = run(["gaps", "--lake", str(lake), "--symbols", "BTCUSDT", "--interval", "1m",
                        "--format", "csv"], capsys)
    assert code == 0 and out.splitlines() == ["market,symbol,interval,start,end,missing,status"]
