"""The walk-forward HTML report: its figures carry the result's own numbers."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

import backtest
from backtest.cli import main
from backtest.report.walkforward import write_walk_forward_report
from kline_lake.core.series import SeriesKey
from kline_lake.lake.synthetic import synthetic_klines
from kline_lake.lake.writer import LakeWriter

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
GRID = {"fast": [5, 10, 20], "slow": [30, 60, 90]}
OPTS = {"start": "2024-01-01", "end": "2024-05-10", "train": "40d", "test": "20d",
        "funding": False, "exchange_filters": False}
TYPED = {"f8": np.float64, "f4": np.float32, "i4": np.int32, "i2": np.int16, "i1": np.int8,
         "u1": np.uint8, "u2": np.uint16, "u4": np.uint32}


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("wf-report-lake")
    LakeWriter(root).commit(SeriesKey("um", "klines", "BTCUSDT", "1h"),
                            synthetic_klines(T0_MS, 130 * 24, "1h", seed=5))
    return root


@pytest.fixture(scope="module")
def result(lake):
    return backtest.walk_forward("sma_cross", GRID, lake=lake, **OPTS)


def _decode(value) -> np.ndarray:
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=TYPED[value["dtype"]])
    return np.asarray(value, dtype=np.float64)


def _figures(text: str) -> dict[str, dict]:
    found = re.findall(r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>',
                       text, flags=re.S)
    return {key: json.loads(body) for key, body in found}


def _ms(iso: str) -> float:
    return float(np.datetime64(iso.rstrip("Z"), "ms").astype(np.int64))


def test_report_shows_stitched_curve_hindsight_curve_and_choices(result, tmp_path):
    path = write_walk_forward_report(result, tmp_path / "wf.html")
    text = path.read_text()
    assert "http://" not in text.split("<body>")[1] and "src=\"http" not in text
    figs = _figures(text)
    assert set(figs) == {"fig-wf-equity", "fig-wf-params"}
    oos, best = figs["fig-wf-equity"]["data"]
    x_ms = result.equity["open_time"].dt.epoch("ms").to_numpy()
    np.testing.assert_array_equal(_decode(oos["x"]), x_ms)
    np.testing.assert_array_equal(_decode(oos["y"]), result.equity["equity"].to_numpy())
    np.testing.assert_array_equal(_decode(best["y"]), result.equity["in_sample_best"].to_numpy())
    assert "in-sample best" in best["name"]
    # a dotted line at every fold boundary after the first
    shapes = figs["fig-wf-equity"]["layout"]["shapes"]
    assert [s["x0"] for s in shapes] == [_ms(f.test[0]) for f in result.folds[1:]]
    params = figs["fig-wf-params"]["data"]
    assert [t["name"] for t in params] == ["fast", "slow"]
    for trace in params:
        np.testing.assert_array_equal(_decode(trace["x"]), [_ms(f.test[0]) for f in result.folds])
        np.testing.assert_array_equal(_decode(trace["y"]),
                                      [f.params[trace["name"]] for f in result.folds])
    folds_html = text.split('<table id="folds">')[1].split("</table>")[0]
    assert folds_html.count("<tr>") == len(result.folds) + 1  # header + one per fold
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text,
                     flags=re.S).group(1)
    assert json.loads(data) == json.loads(result.to_json())


def test_report_json_path_and_cli(result, lake, tmp_path):
    out = write_walk_forward_report(result, tmp_path / "wf.json")
    assert json.loads(out.read_text()) == json.loads(result.to_json())
    html_path = tmp_path / "cli.html"
    argv = ["walk-forward", "--lake", str(lake), "--symbol", "BTCUSDT", "--interval", "1h",
            "--start", OPTS["start"], "--end", OPTS["end"], "--train", "40d", "--test", "20d",
            "--param", "fast=5,10,20", "--param", "slow=30,60,90", "--no-funding",
            "--no-exchange-filters", "--report", str(html_path)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    figs = _figures(html_path.read_text())
    np.testing.assert_allclose(_decode(figs["fig-wf-equity"]["data"][0]["y"]),
                               result.equity["equity"].to_numpy(), rtol=1e-12)
