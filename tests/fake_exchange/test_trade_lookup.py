"""The fake exchange's trade-id lookup (`trades.agg_id_of_trade`, behind historicalTrades
`fromId`) answers by its definition: the agg id `a` with first(a) <= id < first(a + 1),
where first is the agg's first trade id computed directly from its second; at the first
trade, around a maintenance gap, the last trade and past it; in fewer probes than plain
bisection takes (each probe computes a second's trades from the whole history before
it), and never more than the search's guard allows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kline_lake.fake_exchange import series
from kline_lake.fake_exchange import trades as trade_stream
from kline_lake.fake_exchange import universe as uni
from kline_lake.fake_exchange.rest import SyntheticSource

NOW_MS = 1_740_000_000_000


def _first(path, life, agg_id: int) -> int:
    sec = series.second_of_agg_id(life, agg_id)
    return int(series.trades_for_seconds(path, np.array([sec]), np.array([sec * 1000]), life)["f"][0])


@pytest.mark.parametrize(("market", "symbol"), [("spot", "BTCUSDT"), ("um", "SRMUSDT")])
def test_agg_id_of_trade_by_definition(market, symbol, monkeypatch):
    source = SyntheticSource(4)
    path = source.synthetic.path(source.spec(market, symbol))
    life = path.segments(None)
    n_aggs = series.agg_id_of_second(life, NOW_MS // 1000 + 1)
    last_agg = n_aggs - 1
    last_trade = _first(path, life, last_agg) + int(path.level("second", np.array(
        [series.second_of_agg_id(life, last_agg)]))["t"][0]) - 1
    # trade ids just before and after the first maintenance gap inside the life
    gap_start_s = next(g0 // 1000 for g0, _ in uni.gaps(market, symbol)
                       if life[0][0] < g0 // 1000 < life[-1][1])
    agg_at_gap = series.agg_id_of_second(life, gap_start_s)
    ids = [0, 1, _first(path, life, agg_at_gap) - 1, _first(path, life, agg_at_gap),
           _first(path, life, agg_at_gap) + 1, last_trade // 3, last_trade - 1, last_trade]
    calls = {"n": 0}
    probe = trade_stream._first_trade_of_agg

    def counted(*args):
        calls["n"] += 1
        return probe(*args)

    monkeypatch.setattr(trade_stream, "_first_trade_of_agg", counted)
    bisection = math.ceil(math.log2(n_aggs))
    probes = []
    for trade_id in ids:
        calls["n"] = 0
        got = trade_stream.agg_id_of_trade(path, trade_id, NOW_MS)
        probes.append(calls["n"])
        assert calls["n"] <= 3 * bisection + 2, (trade_id, calls["n"])  # the bisection guard
        assert _first(path, life, got) <= trade_id, trade_id
        if got < last_agg:
            assert trade_id < _first(path, life, got + 1), trade_id
    assert sum(probes) < len(ids) * bisection / 2, probes
    assert trade_stream.agg_id_of_trade(path, last_trade, NOW_MS) == last_agg
    # past the last trade: the last agg (its trades are then all filtered out by id)
    assert trade_stream.agg_id_of_trade(path, last_trade + 10**6, NOW_MS) == last_agg
    assert trade_stream.trades(path, last_trade + 1, 10, NOW_MS)["id"].size == 0
