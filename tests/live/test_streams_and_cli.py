"""Stream names, splitting within limits, payload parsing, WS URL resolution, and the
follow command's bad-input lines (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kline_lake.core.markets import get_market, resolve_ws_url
from kline_lake.errors import InputError
from kline_lake.live import streams


def test_stream_names_and_combined_url() -> None:
    assert streams.stream_name("klines", "BTCUSDT", "1m") == "btcusdt@kline_1m"
    assert streams.stream_name("agg_trades", "BTCUSD_PERP") == "btcusd_perp@aggTrade"
    assert streams.combined_url("ws://h:1/fstream/", ["a@kline_1m", "b@kline_1m"]) == \
        "ws://h:1/fstream/stream?streams=a@kline_1m/b@kline_1m"
    with pytest.raises(InputError):
        streams.validate_stream_dataset(get_market("um"), "funding")


def test_split_streams_respects_the_per_connection_limits() -> None:
    names = [f"s{i}@kline_1m" for i in range(1500)]
    um = streams.split_streams(names, "um")
    assert [len(c) for c in um] == [200] * 7 + [100]
    spot = streams.split_streams(names, "spot")
    assert [len(c) for c in spot] == [1024, 476]
    assert [n for c in um for n in c] == names  # every stream exactly once, in order
    assert [len(c) for c in streams.split_streams(names[:5], "spot", 2)] == [2, 2, 1]
    assert [len(c) for c in streams.split_streams(names[:300], "cm", 5000)] == [200, 100]  # capped


def test_parse_closed_kline_from_combined_and_raw() -> None:
    event = {"e": "kline", "E": 1_000_060_001, "s": "BTCUSDT", "k": {
        "t": 1_000_000_000, "T": 1_000_059_999, "s": "BTCUSDT", "i": "1m", "f": -1, "L": -1,
        "o": "1.5", "c": "2.5", "h": "3.0", "l": "1.0", "v": "10", "n": 7, "x": True,
        "q": "20", "V": "4", "Q": "8", "B": "0"}}
    stream, data = streams.parse_message(json.dumps({"stream": "btcusdt@kline_1m", "data": event}))
    assert stream == "btcusdt@kline_1m"
    k = streams.closed_kline(data)
    assert k.row == (1_000_000_000, "1.5", "3.0", "1.0", "2.5", "10", 1_000_059_999, "20", 7, "4", "8", "0")
    assert k.event_ms == 1_000_060_001
    assert streams.parse_message(json.dumps(event)) == (None, event)
    event["k"]["x"] = False
    assert streams.closed_kline(event) is None
    assert streams.closed_kline({"result": None, "id": 1}) is None
    with pytest.raises(ValueError):
        streams.closed_kline({"e": "kline", "E": 1, "k": {"x": True}})
    with pytest.raises(ValueError):
        streams.parse_message("not json")


def test_parse_agg_trade_and_mark_price_events() -> None:
    trade = {"e": "aggTrade", "E": 1_000_000_500, "s": "BTCUSDT", "a": 26129, "p": "0.01633102", "q": "4.7",
             "f": 27781, "l": 27781, "T": 1_000_000_400, "m": True, "M": True}
    t = streams.agg_trade(trade)
    assert (t.symbol, t.agg_id, t.time_ms) == ("BTCUSDT", 26129, 1_000_000_400)
    assert t.row == {k: trade[k] for k in ("a", "p", "q", "f", "l", "T", "m", "M")}
    update = {"e": "markPriceUpdate", "E": 1_562_305_380_000, "s": "BTCUSDT", "p": "11794.15000000",
              "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167", "T": 1_562_306_400_000}
    u = streams.mark_price_update(update)
    assert u.key == u.time_ms == 1_562_305_380_000 and u.row == {
        "event_time": 1_562_305_380_000, "mark_price": 11794.15, "index_price": 11784.62659091,
        "estimated_settle_price": 11784.25641265, "funding_rate": 0.00038167, "next_funding_time": 1_562_306_400_000}
    assert streams.agg_trade(update) is None and streams.mark_price_update(trade) is None
    with pytest.raises(ValueError):
        streams.mark_price_update({"e": "markPriceUpdate", "E": 1, "s": "X"})
    assert streams.stream_name("mark_price", "BTCUSDT") == "btcusdt@markPrice@1s"
    ticker = {"e": "bookTicker", "u": 400900217, "E": 1_568_014_460_893, "T": 1_568_014_460_891, "s": "BNBUSDT",
              "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}
    b = streams.book_ticker_update(ticker)
    assert (b.key, b.time_ms) == (400900217, 1_568_014_460_891) and b.row["best_ask_qty"] == 40.66
    assert b.row["event_time"] == 1_568_014_460_893 and streams.book_ticker_update(update) is None


@pytest.mark.parametrize(("market", "data", "needle"), [
    ("us", "mark_price", "no stream for dataset 'mark_price' on market 'us'"),
    ("spot", "mark_price", "no stream for dataset 'mark_price' on market 'spot'"),
    ("um", "spot_book_ticker", "no stream for dataset 'spot_book_ticker' on market 'um'"),
])
def test_recorder_datasets_on_spot_markets_are_refused(market: str, data: str, needle: str, tmp_path) -> None:
    from kline_lake.cli.follow_cmd import build_request

    with pytest.raises(InputError, match=needle):  # the CLI prints it as one line, exit 2 (above)
        build_request(market=market, data=data, interval="1m", symbols="BTCUSDT", lake=str(tmp_path),
                      base_url=None, ws_url=None, duration=None, flush_seconds="5", silence_seconds="30",
                      streams_per_connection=None)


@pytest.mark.parametrize("market", ["spot", "us"])
def test_book_ticker_on_spot_markets_records_spot_book_ticker(market: str, tmp_path) -> None:
    """Spot/us bookTicker events carry no exchange time: `--data book_ticker` there records the
    `spot_book_ticker` dataset (update id + the follower's receive time), no longer refused."""
    from kline_lake.cli.follow_cmd import build_request

    req = build_request(market=market, data="book_ticker", interval="1m", symbols="BTCUSDT", lake=str(tmp_path),
                        base_url=None, ws_url=None, duration=None, flush_seconds="5", silence_seconds="30",
                        streams_per_connection=None)
    assert req.dataset == "spot_book_ticker" and streams.stream_name(req.dataset, "BTCUSDT") == "btcusdt@bookTicker"
    # the spot docs' payload (no e, E, T), stamped with the receive time
    spot = {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000", "a": "25.36520000",
            "A": "40.66000000"}
    r = streams.spot_book_ticker_update(spot, 1_767_225_600_123_456)
    assert (r.key, r.time_ms) == (400900217, 1_767_225_600_123) and r.row["recv_time"] == 1_767_225_600_123_456
    assert r.row["best_bid_price"] == 25.3519 and r.row["best_ask_qty"] == 40.66
    assert streams.spot_book_ticker_update({"e": "aggTrade", "u": 1}, 0) is None
    with pytest.raises(ValueError):
        streams.spot_book_ticker_update({"u": 1, "s": "X"}, 0)


def test_download_refuses_spot_book_ticker(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from kline_lake.cli import main; main()", "download",
                           "--market", "spot", "--data", "book_ticker", "--symbols", "BTCUSDT", "--start",
                           "2026-01-01", "--lake", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "only on futures markets" in lines[0], proc.stderr
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_download_refuses_the_recorder_dataset(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from kline_lake.cli import main; main()", "download",
                           "--market", "um", "--data", "mark_price", "--symbols", "BTCUSDT", "--start", "2026-01-01",
                           "--lake", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no history" in lines[0] and "follow --data mark_price" in lines[0], proc.stderr


def test_ws_url_resolution() -> None:
    um = get_market("um")
    assert resolve_ws_url(um, env={}) == "wss://fstream.binance.com"
    assert resolve_ws_url(um, base_url="http://127.0.0.1:9/", env={}) == "ws://127.0.0.1:9/fstream"
    assert resolve_ws_url(um, base_url="https://x.example", env={}) == "wss://x.example/fstream"
    assert resolve_ws_url(um, env={"KLINE_LAKE_UM_WS_URL": "ws://a:1/z"}) == "ws://a:1/z"
    assert resolve_ws_url(um, "ws://b:2", base_url="http://c:3", env={"KLINE_LAKE_UM_WS_URL": "ws://a:1"}) == "ws://b:2"
    assert resolve_ws_url(get_market("us"), base_url="http://h:5", env={}) == "ws://h:5/us"
    assert resolve_ws_url(get_market("spot"), env={"KLINE_LAKE_BASE_URL": "http://h:5"}) == "ws://h:5"
    with pytest.raises(InputError):
        resolve_ws_url(um, env={"KLINE_LAKE_UM_WS_URL": "http://a:1"})


@pytest.mark.parametrize(("args", "needle"), [
    (["--market", "um", "--data", "funding", "--symbols", "BTCUSDT"], "no stream for dataset 'funding'"),
    (["--market", "spot", "--data", "mark_price", "--symbols", "BTCUSDT"],
     "no stream for dataset 'mark_price' on market 'spot'"),
    (["--market", "xx", "--symbols", "BTCUSDT"], "unknown market"),
    (["--market", "um", "--symbols", "BTCUSDT", "--ws-url", "http://h:1"], "--ws-url must start with ws://"),
    (["--market", "um", "--symbols", "BTCUSDT", "--duration", "soon"], "--duration must be"),
    (["--market", "um", "--symbols", "BTCUSDT", "--duration", "-3h"], "--duration must be"),
    (["--market", "um", "--symbols", "BTCUSDT", "--interval", "7m"], "interval"),
    (["--market", "um", "--symbols", "BTC/USDT"], "invalid symbol"),
    (["--market", "um", "--symbols", "BTCUSDT", "--flush-seconds", "0"], "--flush-seconds must be > 0"),
    (["--market", "um", "--symbols", "BTCUSDT", "--start", "yesterday"], "--start"),
])
def test_follow_bad_input_is_one_line_exit_2(args: list[str], needle: str, tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-c", "from kline_lake.cli import main; main()", "follow", "--lake", str(tmp_path), *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_status_lines_one_per_series(capsys) -> None:
    import threading
    from types import SimpleNamespace

    from kline_lake.cli.follow_cmd import _status_loop

    series = {s: SimpleNamespace(symbol=s, last_closed_ms=1_767_225_600_000, covered_ms=1_767_225_660_000,
                                 reconnects=r) for s, r in (("BTCUSDT", 0), ("ETHUSDT", 2))}
    follower = SimpleNamespace(totals=SimpleNamespace(messages=10), series=series,
                               server_now_ms=1_767_225_663_500)
    stop = threading.Event()
    t = threading.Thread(target=_status_loop, args=(follower, stop))
    t.start()
    threading.Timer(1.3, stop.set).start()
    t.join(timeout=5)
    err = capsys.readouterr().err
    assert "BTCUSDT" in err and "ETHUSDT" in err
    assert "lag    3.5 s" in err and "reconnects 2" in err
