"""Builders of real backtest results and a reader for report HTML (stdlib parser)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser

import numpy as np

import backtest
from backtest import Bars, FundingEvents

JAN_2024_US = 1_704_067_200_000_000
HOUR_US = 3_600_000_000
MINUTE_US = 60_000_000
TYPED = {"f8": np.float64, "f4": np.float32, "i4": np.int32, "i2": np.int16, "i1": np.int8,
         "u4": np.uint32, "u2": np.uint16, "u1": np.uint8}


def make_bars(n: int, step_us: int = HOUR_US, symbol: str = "BTCUSDT", seed: int = 0,
              vol: float = 0.01) -> Bars:
    """A seeded random walk of `n` bars with consistent OHLC."""
    rng = np.random.default_rng(seed)
    t = JAN_2024_US + np.arange(n, dtype=np.int64) * step_us
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    interval = {HOUR_US: "1h", MINUTE_US: "1m"}[step_us]
    return Bars("um", symbol, interval, t, open_, high, low, close, np.ones(n))


def make_funding(bars: Bars, rate: float = 0.0001) -> FundingEvents:
    """A funding event every 8 hours at the bar opens, priced at the close."""
    every = max(1, 8 * HOUR_US // int(bars.open_time_us[1] - bars.open_time_us[0]))
    t = bars.open_time_us[::every]
    return FundingEvents(t, np.full(t.shape[0], rate), bars.close[::every])


def make_run(n: int = 1500, step_us: int = HOUR_US, symbol: str = "BTCUSDT",
             params: dict | None = None, **settings) -> backtest.RunResult:
    bars = make_bars(n, step_us, symbol)
    return backtest.run("sma_cross", params or {"fast": 10, "slow": 50}, bars=bars,
                        funding_events=make_funding(bars), **settings)


def make_sweep(grid: dict | None = None, n: int = 1500) -> backtest.SweepResult:
    bars = make_bars(n)
    grid = grid or {"fast": [5, 10, 20], "slow": [30, 50, 100, 200]}
    return backtest.sweep("sma_cross", grid, bars=bars, funding_events=make_funding(bars))


def decode(value) -> np.ndarray:
    """A plotly JSON array (a list or a ``{"dtype", "bdata"}`` typed array) as NumPy."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=TYPED[value["dtype"]])
    return np.asarray(value)


@dataclass
class ParsedReport:
    """What a report page contains, as a browser-free parser sees it."""

    figures: dict[str, dict] = field(default_factory=dict)
    data: dict | list | None = None
    tables: dict[str, list[list[dict]]] = field(default_factory=dict)
    script_srcs: list[str] = field(default_factory=list)
    link_hrefs: list[str] = field(default_factory=list)
    title: str = ""
    h1: str = ""


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = ParsedReport()
        self._script: dict | None = None
        self._text: list[str] = []
        self._table: str | None = None
        self._cell: dict | None = None
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if "src" in a:
                self.out.script_srcs.append(a["src"])
            self._script, self._text = a, []
        elif tag == "link" and "href" in a:
            self.out.link_hrefs.append(a["href"])
        elif tag == "table":
            self._table = a.get("id", "")
            self.out.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.out.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = {"tag": tag, "text": "", **a}
        elif tag in ("title", "h1"):
            self._in = tag

    def handle_data(self, data):
        if self._script is not None:
            self._text.append(data)
        elif self._cell is not None:
            self._cell["text"] += data
        elif self._in == "title":
            self.out.title += data
        elif self._in == "h1":
            self.out.h1 += data

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            text = "".join(self._text)
            if self._script.get("type") == "application/json":
                if "data-figure" in self._script:
                    self.out.figures[self._script["data-figure"]] = json.loads(text)
                elif self._script.get("id") == "report-data":
                    self.out.data = json.loads(text)
            self._script = None
        elif tag in ("td", "th") and self._cell is not None:
            self.out.tables[self._table][-1].append(self._cell)
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == self._in:
            self._in = None


def parse_report(text: str) -> ParsedReport:
    """Parse report HTML: figure specs, embedded data, tables (cells with attrs)."""
    reader = _Reader()
    reader.feed(text)
    reader.close()
    return reader.out


def trace(fig: dict, name: str) -> dict:
    """The trace called `name` in a figure spec."""
    for t in fig["data"]:
        if t.get("name") == name:
            return t
    raise KeyError(f"no trace {name!r} in {[t.get('name') for t in fig['data']]}")
