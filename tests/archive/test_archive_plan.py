"""The hybrid planner: pure range arithmetic and archive names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kline_lake.archive.plan import (
    DAILY,
    MONTHLY,
    REST,
    PlanPiece,
    archive_frequencies,
    archive_path,
    archive_url,
    fallback_to_rest,
    merge_rest_pieces,
    plan_for_source,
    plan_range,
)
from kline_lake.core.markets import CM, SPOT, UM, US
from kline_lake.core.timeutil import US_PER_DAY, month_floor_us, next_month_us
from kline_lake.errors import InputError


def us(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1_000_000


def check_tiling(pieces: list[PlanPiece], start: int, end: int) -> None:
    if start == end:
        assert pieces == []
        return
    assert pieces[0].start_us == start
    assert pieces[-1].end_us == end
    for a, b in zip(pieces, pieces[1:], strict=False):
        assert a.end_us == b.start_us  # contiguous, no overlap, no hole
    for p in pieces:
        assert p.start_us < p.end_us
        assert p.period_start_us <= p.start_us < p.end_us <= p.period_end_us


def test_auto_plan_months_days_today() -> None:
    now = us(2024, 3, 5, 14, 30)
    pieces = plan_range(us(2023, 12, 20), us(2024, 3, 5, 16), now)
    kinds = [(p.kind, p.period_label) for p in pieces]
    assert kinds[:12] == [(DAILY, f"2023-12-{d:02d}") for d in range(20, 32)]
    assert kinds[12:14] == [(MONTHLY, "2024-01"), (MONTHLY, "2024-02")]
    assert kinds[14:18] == [(DAILY, f"2024-03-{d:02d}") for d in range(1, 5)]
    assert pieces[-1] == PlanPiece(us(2024, 3, 5), us(2024, 3, 5, 16), REST, us(2024, 3, 5), us(2024, 3, 5, 16))
    assert len(pieces) == 19
    check_tiling(pieces, us(2023, 12, 20), us(2024, 3, 5, 16))


def test_partial_edge_days_are_clipped_daily_files() -> None:
    now = us(2024, 6, 1)
    pieces = plan_range(us(2024, 1, 10, 12, 30), us(2024, 1, 12, 6), now)
    assert [(p.kind, p.period_label, p.is_clipped) for p in pieces] == [
        (DAILY, "2024-01-10", True), (DAILY, "2024-01-11", False), (DAILY, "2024-01-12", True),
    ]
    assert pieces[0].start_us == us(2024, 1, 10, 12, 30)
    assert pieces[0].period_start_us == us(2024, 1, 10)


def test_current_month_and_yesterday_publication() -> None:
    now = us(2024, 2, 1, 0, 0, 1)  # January just ended: its monthly file counts as published
    pieces = plan_range(us(2024, 1, 1), us(2024, 2, 1, 1), now)
    assert [(p.kind, p.period_label) for p in pieces] == [(MONTHLY, "2024-01"), (REST, "2024-02-01")]
    # the day that is still running is REST, yesterday is a daily file
    pieces = plan_range(us(2024, 2, 3), us(2024, 2, 5), us(2024, 2, 4, 9))
    assert [p.kind for p in pieces] == [DAILY, REST]


def test_funding_has_monthly_files_only() -> None:
    freqs = archive_frequencies(UM, "funding")
    assert freqs == (MONTHLY,)
    pieces = plan_range(us(2024, 1, 15), us(2024, 3, 10), us(2024, 3, 20), freqs)
    assert [(p.kind, p.period_label, p.is_clipped) for p in pieces] == [
        (MONTHLY, "2024-01", True), (MONTHLY, "2024-02", False), (REST, "2024-03-01", False),
    ]
    assert pieces[2].start_us == us(2024, 3, 1) and pieces[2].end_us == us(2024, 3, 10)


def test_no_archive_for_us_and_rest_source() -> None:
    assert archive_frequencies(US, "klines") == ()
    assert plan_range(us(2020, 1, 1), us(2021, 1, 1), us(2024, 1, 1), ()) == [
        PlanPiece(us(2020, 1, 1), us(2021, 1, 1), REST, us(2020, 1, 1), us(2021, 1, 1))
    ]
    rest = plan_for_source("rest", us(2020, 1, 1), us(2021, 1, 1), us(2024, 1, 1), (MONTHLY, DAILY))
    assert [p.kind for p in rest] == [REST]
    with pytest.raises(InputError):
        plan_for_source("ftp", 0, 1, 2, ())
    with pytest.raises(InputError):
        plan_range(5, 4, 10)
    assert plan_range(5, 5, 10) == []


def test_fallback_merges_with_neighbouring_rest() -> None:
    now = us(2024, 3, 5, 12)
    pieces = plan_range(us(2024, 3, 3), us(2024, 3, 5, 6), now)
    assert [p.kind for p in pieces] == [DAILY, DAILY, REST]
    replaced = [pieces[0], fallback_to_rest(pieces[1]), pieces[2]]
    merged = merge_rest_pieces(replaced)
    assert [p.kind for p in merged] == [DAILY, REST]
    assert merged[1].start_us == us(2024, 3, 4) and merged[1].end_us == us(2024, 3, 5, 6)


def test_month_arithmetic() -> None:
    assert month_floor_us(us(2024, 2, 29, 23, 59)) == us(2024, 2, 1)
    assert next_month_us(us(2023, 12, 1)) == us(2024, 1, 1)
    assert next_month_us(us(2024, 1, 1)) == us(2024, 2, 1)


_t = st.integers(min_value=us(2017, 1, 1), max_value=us(2027, 1, 1))


@settings(max_examples=300, deadline=None)
@given(_t, _t, _t, st.sampled_from([(MONTHLY, DAILY), (MONTHLY,), ()]))
def test_pieces_tile_the_range_exactly(a: int, b: int, now: int, freqs: tuple[str, ...]) -> None:
    start, end = min(a, b), max(a, b)
    # keep ranges under ~3 years so day-by-day planning stays fast in the property test
    end = min(end, start + 1100 * US_PER_DAY)
    pieces = plan_range(start, end, now, freqs)
    check_tiling(pieces, start, end)
    published = now - now % US_PER_DAY
    for p in pieces:
        if p.is_archive:
            assert p.kind in freqs
            assert p.period_end_us <= published  # never ask for an unpublished file
        if p.kind == DAILY:
            assert p.period_end_us - p.period_start_us == US_PER_DAY
        if p.kind == MONTHLY:
            assert p.period_start_us == month_floor_us(p.period_start_us)
            assert p.period_end_us == next_month_us(p.period_start_us)
            if DAILY in freqs:
                assert not p.is_clipped  # whole months only when days are available
    for x, y in zip(pieces, pieces[1:], strict=False):
        assert not (x.kind == REST and y.kind == REST)  # adjacent REST pieces merged


def test_archive_paths_every_market_and_dataset() -> None:
    day = PlanPiece(us(2024, 1, 2), us(2024, 1, 3), DAILY, us(2024, 1, 2), us(2024, 1, 3))
    month = PlanPiece(us(2024, 1, 1), us(2024, 2, 1), MONTHLY, us(2024, 1, 1), us(2024, 2, 1))
    assert archive_path(SPOT, "klines", "BTCUSDT", "1m", month) == (
        "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip"
    )
    assert archive_path(SPOT, "klines", "BTCUSDT", "1M", month) == (
        "data/spot/monthly/klines/BTCUSDT/1mo/BTCUSDT-1mo-2024-01.zip"
    )
    assert archive_path(SPOT, "agg_trades", "BTCUSDT", None, day) == (
        "data/spot/daily/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-02.zip"
    )
    assert archive_path(UM, "funding", "BTCUSDT", None, month) == (
        "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip"
    )
    for dataset, folder in (("mark_klines", "markPriceKlines"), ("index_klines", "indexPriceKlines"),
                            ("premium_klines", "premiumIndexKlines")):
        assert archive_path(CM, dataset, "BTCUSD_PERP", "1h", day) == (
            f"data/futures/cm/daily/{folder}/BTCUSD_PERP/1h/BTCUSD_PERP-1h-2024-01-02.zip"
        )
    assert archive_url("http://127.0.0.1:9/", "data/x.zip") == "http://127.0.0.1:9/data/x.zip"
    with pytest.raises(InputError):
        archive_path(SPOT, "klines", "../etc", "1m", day)
    with pytest.raises(InputError):
        archive_path(US, "klines", "BTCUSDT", "1m", day)
    with pytest.raises(ValueError):
        archive_path(SPOT, "klines", "BTCUSDT", "1m", fallback_to_rest(day))


def test_agg_trades_use_daily_files_only() -> None:
    freqs = archive_frequencies(SPOT, "agg_trades")
    assert freqs == (DAILY,)
    pieces = plan_range(us(2024, 1, 1), us(2024, 3, 1), us(2024, 6, 1), freqs)
    assert len(pieces) == 60 and {p.kind for p in pieces} == {DAILY}


@settings(max_examples=150, deadline=None)
@given(_t, st.integers(min_value=1, max_value=400 * US_PER_DAY), _t, st.data())
def test_fallbacks_still_tile(start: int, length: int, now: int, data) -> None:
    pieces = plan_range(start, start + length, now)
    flags = data.draw(st.lists(st.booleans(), min_size=len(pieces), max_size=len(pieces)))
    replaced = [fallback_to_rest(p) if f and p.is_archive else p for p, f in zip(pieces, flags, strict=True)]
    merged = merge_rest_pieces(replaced)
    check_tiling(merged, start, start + length)
    for x, y in zip(merged, merged[1:], strict=False):
        assert not (x.kind == REST and y.kind == REST)


def test_archive_url_resolution_order() -> None:
    from kline_lake.archive.plan import resolve_download_archive_url as r

    env = {"KLINE_LAKE_ARCHIVE_URL": "http://a/", "KLINE_LAKE_BASE_URL": "http://b"}
    assert r("http://x/", "http://y", env) == "http://x"
    assert r(None, "http://y", env) == "http://a"
    assert r(None, "http://y", {"KLINE_LAKE_BASE_URL": "http://b"}) == "http://y"
    assert r(None, None, {"KLINE_LAKE_BASE_URL": "http://b"}) == "http://b"
    assert r(None, None, {}) == "https://data.binance.vision"


def test_fallback_of_a_late_monthly_file_tries_its_days() -> None:
    from kline_lake.archive.plan import fallback_pieces

    month = plan_range(us(2024, 2, 1), us(2024, 3, 1), us(2024, 3, 4))[0]
    assert month.kind == MONTHLY
    days = fallback_pieces(month, (MONTHLY, DAILY), us(2024, 3, 4))
    assert [p.period_label for p in days] == [f"2024-02-{d:02d}" for d in range(1, 30)]
    check_tiling(days, us(2024, 2, 1), us(2024, 3, 1))
    # long over: absent, not late -> REST; no daily files (funding) -> REST
    assert [p.kind for p in fallback_pieces(month, (MONTHLY, DAILY), us(2024, 6, 1))] == [REST]
    assert [p.kind for p in fallback_pieces(month, (MONTHLY,), us(2024, 3, 4))] == [REST]
    assert fallback_pieces(days[0], (MONTHLY, DAILY), us(2024, 3, 4)) == [fallback_to_rest(days[0])]


def test_archive_base_url_is_downloads_rule_for_every_market() -> None:
    # issue 12 item 8: one rule for download and verify --refresh-archive
    from kline_lake.archive.plan import archive_base_url as base
    from kline_lake.core.markets import SPOT, UM

    assert base(SPOT, None, None, {}) == "https://data.binance.vision"
    assert base(SPOT, None, None, {"KLINE_LAKE_BASE_URL": "http://fx:1/"}) == "http://fx:1"
    assert base(UM, None, None, {"KLINE_LAKE_UM_URL": "http://um:2"}) == "http://um:2"
    assert base(SPOT, None, None, {"KLINE_LAKE_UM_URL": "http://um:2"}) == "https://data.binance.vision"
    assert base(UM, None, "http://flag:3", {"KLINE_LAKE_BASE_URL": "http://fx:1"}) == "http://flag:3"
    env = {"KLINE_LAKE_ARCHIVE_URL": "http://arch:4", "KLINE_LAKE_BASE_URL": "http://fx:1"}
    assert base(UM, None, None, env) == "http://arch:4"
    assert base(UM, "http://cli:5", None, env) == "http://cli:5"
    # the exchange's own REST host is no override: the real archive
    assert base(UM, None, "https://fapi.binance.com", {}) == "https://data.binance.vision"
