"""Strategy inputs and book-ticker fills over a lake downloaded from the fake exchange
(klines, metrics, book_ticker over loopback HTTP), checked against the same rows joined
independently with Polars' as-of join."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import backtest
from backtest.strategies import INPUT_REGISTRY
from kline_lake.core.timeutil import parse_utc_ms
from kline_lake.download.orchestrate import run_download
from kline_lake.download.request import validate_request
from kline_lake.fake_exchange import FakeExchange
from kline_lake.lake.catalog import Lake

SYMBOL, START, END = "SRMUSDT", "2022-06-01", "2022-06-02"


@pytest.fixture(autouse=True)
def _state(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("KLINE_LAKE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


def _download(base_url: str, lake: Path, dataset: str, interval: str | None = None) -> None:
    request = validate_request(market="um", dataset=dataset, symbols=SYMBOL, interval=interval,
                               start=START, end=END, lake=lake, base_url=base_url,
                               source="archive")
    asyncio.run(run_download(request))


def _asof(left: pl.DataFrame, right: pl.DataFrame, right_on: str, **kw) -> pl.DataFrame:
    right = right.with_columns(pl.col(right_on).dt.cast_time_unit("us")).sort(right_on)
    return left.join_asof(right, left_on="t", right_on=right_on, strategy="backward", **kw)


def test_oi_momentum_with_book_fills_over_a_downloaded_lake(tmp_path: Path) -> None:
    with FakeExchange(seed=4, now_ms=parse_utc_ms("2022-07-01")) as fx:
        _download(fx.base_url, tmp_path, "klines", "15m")
        for dataset in ("metrics", "book_ticker"):
            _download(fx.base_url, tmp_path, dataset)
    seen = {}

    def spy(b, window=3):
        seen.update(b.inputs)
        return INPUT_REGISTRY["oi_momentum"].func(b, window)

    res = backtest.run(spy, lake=tmp_path, symbol=SYMBOL, interval="15m", start=START,
                       end=END, funding=False, inputs=["open_interest", "spread"],
                       slippage="book_ticker", direction="both", exchange_filters=False)
    lake = Lake(tmp_path)
    close_t = res.equity.select(t=pl.col("open_time") + pl.duration(minutes=15)
                                - pl.duration(milliseconds=1))
    metrics = _asof(close_t, lake.metrics("um", SYMBOL), "create_time",
                    tolerance="4m59s999ms")
    np.testing.assert_array_equal(seen["sum_open_interest"],
                                  metrics["sum_open_interest"].fill_null(np.nan).to_numpy())
    assert np.isfinite(seen["sum_open_interest"]).all()
    book = lake.book_ticker("um", SYMBOL).select("transaction_time", "best_bid_price",
                                                "best_ask_price")
    at_close = _asof(close_t, book, "transaction_time")
    np.testing.assert_array_equal(seen["best_ask"], at_close["best_ask_price"].to_numpy())
    assert res.metrics["n_trades"] >= 2 and res.config["inputs"]["unknown_gaps"] == 0
    orders = res.orders.with_columns(t=pl.col("time").dt.cast_time_unit("us"))
    quoted = _asof(orders.sort("t"), book, "transaction_time")
    expected = np.where(quoted["side"] == "buy", quoted["best_ask_price"],
                        quoted["best_bid_price"])
    np.testing.assert_allclose(quoted["price"].to_numpy(), expected, rtol=1e-12)
