"""Pure parts of the fetcher: time parsing, backoff schedule, page plans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kline_lake.core import ranges as rg
from kline_lake.core.timeutil import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, format_ms, parse_utc_ms
from kline_lake.download import pages as pg
from kline_lake.errors import InputError
from kline_lake.exchange.retry import RetryPolicy, backoff_delay_s, backoff_schedule_s

T0 = 1_704_067_200_000  # 2024-01-01T00:00Z


# ---------------------------------------------------------------- timeutil
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01", T0),
        ("2024-01-01T12:30", T0 + 12 * MS_PER_HOUR + 30 * MS_PER_MINUTE),
        ("2024-01-01 12:30", T0 + 12 * MS_PER_HOUR + 30 * MS_PER_MINUTE),
        ("2024-01-01T00:00:07Z", T0 + 7000),
        ("2024-01-01T00:00:07.250+00:00", T0 + 7250),
        ("2024-02-29", T0 + 59 * MS_PER_DAY),
    ],
)
def test_parse_utc_ms(text: str, expected: int) -> None:
    assert parse_utc_ms(text) == expected
    assert format_ms(expected).startswith(text[:10])


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01", "2023-02-29", "2024-01-01T25:00",
                                  "2024-01-01T12:30+02:00", "01/02/2024", "2024-1-1"])
def test_parse_utc_ms_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_utc_ms(text)


# ------------------------------------------------------------------- retry
def test_backoff_schedule_is_exponential_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay_s=0.5, max_delay_s=4.0, jitter=0.5)
    assert backoff_schedule_s(policy, [0.0] * 5) == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_schedule_s(policy, [1.0] * 5) == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert backoff_delay_s(2, policy, 0.5) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        backoff_delay_s(0, policy, 1.5)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2.0)


# ------------------------------------------------------------ kline plans
def kline_row(open_ms: int, step_ms: int = MS_PER_MINUTE) -> list:
    return [open_ms, "1", "2", "0.5", "1.5", "10", open_ms + step_ms - 1, "15", 3, "5", "7", "0"]


def test_plan_kline_chunks_cover_range_exactly() -> None:
    chunks = pg.plan_kline_chunks(T0, T0 + 5000 * MS_PER_MINUTE + 7, "1m", 1000, 2)
    assert chunks[0] == (T0, T0 + 2000 * MS_PER_MINUTE)
    assert chunks[-1][1] == T0 + 5000 * MS_PER_MINUTE + 7
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))


def test_plan_kline_chunks_respects_coin_m_window() -> None:
    chunks = pg.plan_kline_chunks(T0, T0 + 1000 * MS_PER_DAY, "1d", 499, 4, pg.CM_KLINE_WINDOW_MS)
    assert all(b - a <= pg.CM_KLINE_WINDOW_MS for a, b in chunks)
    assert chunks[0][0] == T0 and chunks[-1][1] == T0 + 1000 * MS_PER_DAY
    params = pg.kline_page_params(chunks[0][0], chunks[0][1], 499)
    assert params["endTime"] - params["startTime"] <= pg.CM_KLINE_WINDOW_MS


def test_plan_monthly_klines_by_calendar() -> None:
    end = parse_utc_ms("2030-01-01")
    chunks = pg.plan_kline_chunks(parse_utc_ms("2020-01-15"), end, "1M", 12, 1)
    assert chunks[0] == (parse_utc_ms("2020-01-15"), parse_utc_ms("2021-01-01"))
    assert chunks[1] == (parse_utc_ms("2021-01-01"), parse_utc_ms("2022-01-01"))


@given(st.integers(0, 10_000), st.integers(1, 5_000), st.integers(1, 1000), st.integers(1, 8))
def test_kline_chunks_partition_the_range(offset: int, n: int, limit: int, pages: int) -> None:
    start = T0 + offset * 1000
    end = start + n * MS_PER_MINUTE
    chunks = pg.plan_kline_chunks(start, end, "1m", limit, pages)
    assert chunks[0][0] == start and chunks[-1][1] == end
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(b - a <= limit * pages * MS_PER_MINUTE for a, b in chunks)


def test_full_kline_page_continues_after_last_close() -> None:
    rows = [kline_row(T0 + i * MS_PER_MINUTE) for i in range(3)]
    page = pg.interpret_kline_page(rows, T0, T0 + 10 * MS_PER_MINUTE, 3, "1m", T0 + MS_PER_DAY)
    assert page.covered == (T0, T0 + 3 * MS_PER_MINUTE)
    assert page.next_cursor_ms == T0 + 3 * MS_PER_MINUTE
    assert page.holes == [] and len(page.rows) == 3


def test_short_page_confirms_to_chunk_end_and_records_gap() -> None:
    # the exchange skips a maintenance gap: asked at T0, first row 5 minutes later
    rows = [kline_row(T0 + 5 * MS_PER_MINUTE), kline_row(T0 + 6 * MS_PER_MINUTE),
            kline_row(T0 + 9 * MS_PER_MINUTE)]
    end = T0 + 12 * MS_PER_MINUTE
    page = pg.interpret_kline_page(rows, T0, end, 1000, "1m", T0 + MS_PER_DAY)
    assert page.covered == (T0, end) and page.next_cursor_ms is None
    assert page.holes == [(T0, T0 + 5 * MS_PER_MINUTE), (T0 + 7 * MS_PER_MINUTE, T0 + 9 * MS_PER_MINUTE),
                          (T0 + 10 * MS_PER_MINUTE, end)]


def test_empty_page_confirms_empty_range() -> None:
    page = pg.interpret_kline_page([], T0, T0 + MS_PER_HOUR, 1000, "1m", T0 + MS_PER_DAY)
    assert page.covered == (T0, T0 + MS_PER_HOUR) and page.rows == [] and page.next_cursor_ms is None


def test_open_kline_is_dropped_and_coverage_stops_at_its_open() -> None:
    now = T0 + 2 * MS_PER_MINUTE + 30_000  # third kline still open
    rows = [kline_row(T0 + i * MS_PER_MINUTE) for i in range(3)]
    page = pg.interpret_kline_page(rows, T0, T0 + MS_PER_HOUR, 3, "1m", now)
    assert [r[0] for r in page.rows] == [T0, T0 + MS_PER_MINUTE]
    assert page.covered == (T0, T0 + 2 * MS_PER_MINUTE) and page.next_cursor_ms is None
    assert pg.kline_upper_bound_ms(T0 + MS_PER_HOUR, "1m", now) == T0 + 2 * MS_PER_MINUTE


def test_listing_clamp() -> None:
    ranges = [(T0, T0 + 10 * MS_PER_DAY), (T0 + 12 * MS_PER_DAY, T0 + 20 * MS_PER_DAY)]
    todo, empty = pg.clamp_to_first_open(ranges, T0 + 11 * MS_PER_DAY, T0 + 20 * MS_PER_DAY)
    assert empty == [(T0, T0 + 10 * MS_PER_DAY)]
    assert todo == [(T0 + 12 * MS_PER_DAY, T0 + 20 * MS_PER_DAY)]
    todo, empty = pg.clamp_to_first_open(ranges, None, T0 + 20 * MS_PER_DAY)
    assert todo == [] and empty == ranges


# --------------------------------------------------------------- agg plans
def agg(i: int, t: int) -> dict:
    return {"a": i, "p": "1.0", "q": "2.0", "f": i * 2, "l": i * 2 + 1, "T": t, "m": True}


def test_futures_agg_window_is_under_one_hour() -> None:
    params = pg.agg_window_params(T0, T0 + MS_PER_DAY, True, 1000)
    assert params["endTime"] - params["startTime"] < MS_PER_HOUR
    spot = pg.agg_window_params(T0, T0 + MS_PER_DAY, False, 1000)
    assert spot["endTime"] == T0 + MS_PER_DAY - 1


def test_agg_empty_window_advances_an_hour() -> None:
    window = pg.agg_window_params(T0, T0 + 3 * MS_PER_HOUR, True, 1000)
    page = pg.interpret_agg_page([], chunk_end_ms=T0 + 3 * MS_PER_HOUR, cap_ms=T0 + MS_PER_DAY,
                                 limit=1000, window=window)
    assert page.next_window_ms == T0 + MS_PER_HOUR and page.covered_end_ms is None


def test_agg_pages_continue_by_id_and_stop_at_chunk_end() -> None:
    end = T0 + 10_000
    first = pg.interpret_agg_page([agg(5, T0 + 1), agg(6, T0 + 2)], chunk_end_ms=end, cap_ms=end * 2,
                                  limit=2, window=pg.agg_window_params(T0, end, False, 2))
    assert first.next_from_id == 7
    last = pg.interpret_agg_page([agg(7, T0 + 5), agg(8, end)], chunk_end_ms=end, cap_ms=end * 2,
                                 limit=2, from_id=7)
    assert [r["a"] for r in last.rows] == [7] and last.covered_end_ms == end


def test_agg_hole_detected_and_short_page_ends_stream() -> None:
    page = pg.interpret_agg_page([agg(10, T0), agg(12, T0 + 1)], chunk_end_ms=T0 + 100,
                                 cap_ms=T0 + 50, limit=1000, from_id=9)
    assert page.holes == [(9, 10), (11, 12)]
    assert page.covered_end_ms == T0 + 50


def test_cross_chunk_id_holes() -> None:
    from kline_lake.download.rest_source import cross_chunk_id_holes

    spans = [(0, 10, 1, 5), (10, 20, None, None), (20, 30, 6, 9), (30, 40, 12, 13), (50, 60, 20, 21)]
    assert cross_chunk_id_holes(spans) == [(10, 12)]


# ---------------------------------------------------------------- funding
def test_funding_pages() -> None:
    rows = [{"symbol": "X", "fundingTime": T0 + i * 8 * MS_PER_HOUR, "fundingRate": "0.0001",
             "markPrice": "1"} for i in range(3)]
    full = pg.interpret_funding_page(rows, T0, T0 + 100 * MS_PER_DAY, 3, T0 + 200 * MS_PER_DAY)
    assert full.covered == (T0, T0 + 16 * MS_PER_HOUR + 1)
    assert full.next_cursor_ms == T0 + 16 * MS_PER_HOUR + 1
    short = pg.interpret_funding_page(rows, T0, T0 + 100 * MS_PER_DAY, 1000, T0 + 2 * MS_PER_DAY)
    assert short.covered == (T0, T0 + 2 * MS_PER_DAY) and short.next_cursor_ms is None


def test_merge_and_clip_ranges() -> None:
    assert rg.merge([(5, 7), (1, 3), (3, 4), (8, 8)]) == [(1, 4), (5, 7)]
    assert rg.clip([(0, 10), (20, 30)], 5, 25) == [(5, 10), (20, 25)]


# ---------------------------------------------------------- exchange info
def test_exchange_info_symbols_cache_and_real_rate_limits(real_data) -> None:
    import json

    from kline_lake.exchange import exchange_info as xi

    with open(real_data / "exchange_info/usdm_exchangeInfo_2024-10-20.json") as fh:
        info = json.load(fh)
    symbols = xi.symbols_of(info)
    assert symbols["BTCUSDT"].onboard_ms == 1569398400000 and symbols["BTCUSDT"].pair == "BTCUSDT"
    everything = xi.resolve_symbols(info, ["ALL"])
    assert everything and all(s.trading for s in everything)
    assert len(everything) < len(symbols)  # delisted/settling ones are left out
    with pytest.raises(InputError, match="unknown symbol 'NOPE'"):
        xi.resolve_symbols(info, ["NOPE"])
    with pytest.raises(InputError, match="invalid symbol"):
        xi.resolve_symbols(info, ["BTC/USDT"])
    assert xi.rate_windows(info)[0].limit == 2400
    cm = {"symbols": [{"symbol": "BTCUSD_PERP", "pair": "BTCUSD", "contractStatus": "TRADING"}]}
    assert xi.resolve_symbols(cm, ["BTCUSD"], by_pair=True)[0].pair == "BTCUSD"
    with pytest.raises(InputError):
        xi.resolve_symbols(cm, ["BTCUSD"])
    cached = xi.with_cache_meta(info, "http://x", 1000.0)
    assert xi.cache_is_fresh(cached, "http://x", 1500.0)
    assert not xi.cache_is_fresh(cached, "http://y", 1500.0)
    assert not xi.cache_is_fresh(cached, "http://x", 1000.0 + xi.DEFAULT_MAX_AGE_S)
    assert not xi.cache_is_fresh(None, "http://x", 1500.0)
