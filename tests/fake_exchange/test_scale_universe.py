"""benchmarks/scale.py's universe: the first 200 trading generated spot pairs trade the
whole two-year range before its pinned now, so every symbol adds the same rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kline_lake.fake_exchange.universe import get_symbol, utc_ms

_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"
_SPEC = importlib.util.spec_from_file_location("scale_benchmark", _FILE)
assert _SPEC is not None and _SPEC.loader is not None
scale = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(scale)


def test_months_are_the_whole_months_before_now() -> None:
    months = scale.month_starts(24)
    assert len(months) == 24 and months[-1] == "2030-06-01" and months[0] == "2028-07-01"
    assert scale.month_starts(1) == ["2030-06-01"]
    assert scale.FAKE_NOW.startswith("2030-07-01")


def test_every_symbol_trades_the_whole_range() -> None:
    start = utc_ms(scale.month_starts(24)[0] + " 00:00")
    now = utc_ms(scale.FAKE_NOW.replace("T", " "))
    symbols = scale.universe(200)
    assert len(set(symbols)) == 200
    for name in symbols:
        spec = get_symbol("spot", name)
        assert spec.listed_ms < start, name
        assert spec.delisted_ms is None or spec.delisted_ms >= now, name
    # the next one would not: the benchmark's sizes stop where the claim does
    late = get_symbol("spot", scale.universe(260)[-1])
    assert late.listed_ms > start
