"""What the report files contain: the charts' data, the metrics, the trades, no URLs."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import polars as pl
import pytest

import backtest
from backtest.report import (
    run_report_html,
    sweep_report_html,
    write_report,
    write_run_report,
    write_sweep_report,
)
from backtest.results import LOWER_IS_BETTER, RunResult, SweepResult
from tests.support.report import (
    MINUTE_US,
    decode,
    make_bars,
    make_run,
    make_sweep,
    parse_report,
    trace,
)

URL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def _ms(series: pl.Series) -> np.ndarray:
    return series.dt.epoch("ms").to_numpy().astype(np.float64)


def _same(a: float, b: str) -> bool:
    x = float(b)
    return (math.isnan(a) and math.isnan(x)) or a == x


def test_run_report_is_self_contained(run_report):
    text = run_report.read_text()
    parsed = parse_report(text)
    assert parsed.script_srcs == [] and parsed.link_hrefs == []
    assert not URL.search(text.replace(text[text.index("/**\n* plotly.js"):text.index(
        "</script>", text.index("/**\n* plotly.js"))], ""))
    assert "/**\n* plotly.js v" in text  # the library itself is inlined, once
    assert text.count("* plotly.js v") == 1
    assert (run_report.stat().st_mode & 0o044) == 0o044  # readable like any written file


def test_run_report_charts_carry_the_results_series(run_result, run_report):
    parsed = parse_report(run_report.read_text())
    assert list(parsed.figures) == ["fig-price", "fig-equity", "fig-drawdown", "fig-costs"]
    eq = run_result.equity
    x = _ms(eq.get_column("open_time"))
    close = trace(parsed.figures["fig-price"], "close")
    assert np.array_equal(decode(close["x"]), x)
    assert np.array_equal(decode(close["y"]), eq.get_column("close").to_numpy())
    fig = parsed.figures["fig-equity"]
    assert np.array_equal(decode(trace(fig, "strategy")["y"]), eq.get_column("equity").to_numpy())
    assert np.array_equal(decode(trace(fig, "buy and hold")["y"]),
                          eq.get_column("buy_hold_equity").to_numpy())
    dd = trace(parsed.figures["fig-drawdown"], "drawdown")
    assert np.array_equal(decode(dd["y"]), -eq.get_column("drawdown").to_numpy())
    costs = parsed.figures["fig-costs"]
    assert np.array_equal(decode(trace(costs, "fees paid")["y"]),
                          eq.get_column("cum_fees").to_numpy())
    funding = decode(trace(costs, "funding paid (< 0: received)")["y"])
    assert np.array_equal(funding, eq.get_column("cum_funding").to_numpy())
    assert funding[-1] == pytest.approx(run_result.metrics["funding_paid"]) and funding[-1] > 0
    for spec in parsed.figures.values():
        assert spec["layout"]["xaxis"]["type"] == "date"


def test_price_chart_marks_every_entry_and_exit_at_its_fill(run_result, run_report):
    parsed = parse_report(run_report.read_text())
    trades = run_result.trades
    assert trades.height > 5
    entries = trace(parsed.figures["fig-price"], "long entry")
    assert np.array_equal(decode(entries["x"]), _ms(trades.get_column("entry_time")))
    assert np.array_equal(decode(entries["y"]), trades.get_column("entry_price").to_numpy())
    closed = trades.filter(pl.col("status") == "closed")
    exits = trace(parsed.figures["fig-price"], "exit")
    assert np.array_equal(decode(exits["x"]), _ms(closed.get_column("exit_time")))
    assert np.array_equal(decode(exits["y"]), closed.get_column("exit_price").to_numpy())


def test_metrics_table_values_equal_result_metrics(run_result, run_report):
    parsed = parse_report(run_report.read_text())
    rows = parsed.tables["metrics"][1:]
    cells = {r[1]["data-key"]: r[1] for r in rows}
    assert set(cells) == set(run_result.metrics)
    shown = {r[1]["data-key"]: r[1]["text"] for r in rows}
    for name, value in run_result.metrics.items():
        if isinstance(value, bool) or value is None:  # ruined, ruin_time: text only
            assert "data-value" not in cells[name], name
            continue
        assert _same(float(value), cells[name]["data-value"]), name
    assert shown["ruined"] == "no" and shown["ruin_time"] == "n/a"
    assert shown["total_return"] == f"{run_result.metrics['total_return']:.2%}"
    assert shown["final_equity"] == f"{run_result.metrics['final_equity']:,.2f}"
    assert parsed.data["sharpe"] == pytest.approx(run_result.metrics["sharpe"])
    assert parsed.data["params"] == {"fast": 10, "slow": 50}


def test_trades_table_lists_every_trade(run_result, run_report):
    parsed = parse_report(run_report.read_text())
    header, *rows = parsed.tables["trades"]
    names = [c["text"] for c in header]
    assert names[:3] == ["entry_time", "exit_time", "side"]
    assert len(rows) == run_result.trades.height
    pnl_col = names.index("pnl")
    pnl = [float(r[pnl_col]["data-value"]) for r in rows]
    assert pnl == run_result.trades.get_column("pnl").to_list()
    first_entry = run_result.trades.get_column("entry_time")[0].strftime("%Y-%m-%d %H:%M:%S")
    assert rows[0][0]["text"] == first_entry


def test_long_trade_lists_show_both_ends_with_a_note(run_result):
    text = run_report_html(run_result, max_points=20_000)
    assert "trades not shown" not in text
    from backtest.report.tables import trades_table

    small = trades_table(run_result.trades, max_rows=6)
    table = parse_report(small).tables["trades"]
    assert len(table) == 1 + 3 + 1 + 3
    assert "trades not shown" in table[4][0]["text"]
    pnl = run_result.trades.get_column("pnl").to_list()
    assert float(table[-1][9]["data-value"]) == pnl[-1]


def test_user_text_is_escaped_everywhere():
    evil = "</script><img src=x onerror=alert(1)>"
    result = make_run(n=300, symbol=evil, params={"fast": 5, "slow": 20})
    text = run_report_html(result)
    assert evil not in text and "<img" not in text
    parsed = parse_report(text)
    assert evil in parsed.h1 and evil in parsed.title
    assert evil in parsed.figures["fig-price"]["layout"]["title"]["text"]
    assert parsed.data["config"]["symbol"] == evil


def test_year_of_minute_bars_is_thinned_but_keeps_extremes(tmp_path):
    result = make_run(n=120_000, step_us=MINUTE_US, params={"fast": 30, "slow": 240},
                      fee=0.0)
    path = write_run_report(result, tmp_path / "big.html", max_points=4_000)
    parsed = parse_report(path.read_text())
    assert path.stat().st_size < 6_500_000  # plotly.js alone is ~4.8 MB
    eq = result.equity
    for fig_id, name, column, sign in (("fig-equity", "strategy", "equity", 1),
                                       ("fig-drawdown", "drawdown", "drawdown", -1),
                                       ("fig-price", "close", "close", 1)):
        spec = parsed.figures[fig_id]
        y = decode(trace(spec, name)["y"]) * sign
        full = eq.get_column(column).to_numpy()
        assert len(y) <= 4_000 < len(full)
        assert y.max() == full.max() and y.min() == full.min()
        assert y[0] == full[0] and y[-1] == full[-1]
        assert "M4 downsampling" in spec["layout"]["title"]["text"]
    rows = parsed.tables["metrics"][1:]
    drawdown = next(r[1] for r in rows if r[1]["data-key"] == "max_drawdown")
    assert float(drawdown["data-value"]) == result.metrics["max_drawdown"]


def test_sweep_report_heatmap_equals_the_grid(sweep_result, sweep_report):
    parsed = parse_report(sweep_report.read_text())
    assert parsed.script_srcs == []
    heat = parsed.figures["fig-sweep"]["data"][0]
    assert heat["type"] == "heatmap"
    assert heat["x"] == ["5", "10", "20"] and heat["y"] == ["30", "50", "100", "200"]
    z = decode(heat["z"]).reshape(4, 3)
    grid = sweep_result.to_frame()
    for row in grid.iter_rows(named=True):
        i = heat["y"].index(str(row["slow"]))
        j = heat["x"].index(str(row["fast"]))
        assert _same(row["sharpe"], repr(float(z[i, j])))
    best = parsed.tables["best-rows"]
    names = [c["text"] for c in best[0]]
    sharpe = [float(r[names.index("sharpe")]["data-value"]) for r in best[1:]]
    assert sharpe == sorted(sharpe, reverse=True)
    assert sharpe[0] == pytest.approx(sweep_result.best("sharpe")["sharpe"])
    assert len(parsed.data["grid"]) == grid.height


def test_sweep_over_three_params_shows_best_over_the_rest():
    bars = make_bars(600)
    sweep = backtest.sweep("rsi", {"window": [7, 14], "lower": [20.0, 30.0],
                                   "upper": [60.0, 70.0, 80.0]}, bars=bars)
    text = sweep_report_html(sweep, metric="max_drawdown", x="window", y="lower")
    heat = parse_report(text).figures["fig-sweep"]
    assert "best over upper" in heat["layout"]["title"]["text"]
    z = decode(heat["data"][0]["z"]).reshape(2, 2)
    grid = sweep.to_frame()
    assert "max_drawdown" in LOWER_IS_BETTER  # so "best" is the smallest
    for i, lower in enumerate([20.0, 30.0]):
        for j, window in enumerate([7, 14]):
            cell = grid.filter((pl.col("window") == window) & (pl.col("lower") == lower))
            assert cell.height == 3
            assert z[i, j] == cell.get_column("max_drawdown").min()


def test_one_parameter_sweep_is_a_line():
    sweep = make_sweep({"fast": [5, 10, 20], "slow": [60]}, n=400)
    text = sweep_report_html(sweep, metric="total_return", x="fast", y=None)
    assert parse_report(text).figures["fig-sweep"]["data"][0]["type"] == "heatmap"
    one = SweepResult(sweep.grid.drop("slow"), sweep.strategy, ["fast"], sweep.config)
    spec = parse_report(sweep_report_html(one, "total_return")).figures["fig-sweep"]
    line = spec["data"][0]
    assert line["type"] == "scatter" and line["x"] == ["5", "10", "20"]
    assert list(decode(line["y"])) == sweep.grid.get_column("total_return").to_list()


def test_sweep_report_counts_every_skipped_point_not_the_kept_sample():
    sweep = make_sweep({"fast": [5, 10], "slow": [60]}, n=400)
    kept = [{"fast": 70, "slow": 60, "reason": "fast must be < slow"}]
    capped = SweepResult(sweep.grid, sweep.strategy, sweep.param_names, sweep.config,
                         skipped=kept, n_skipped=12_345)
    text = sweep_report_html(capped, "total_return")
    assert "12,345 skipped as invalid" in text
    assert "<li>fast must be &lt; slow</li>" in text  # the reasons section, escaped


def test_bad_sweep_report_arguments(sweep_result, tmp_path):
    with pytest.raises(ValueError, match="not a swept parameter"):
        write_sweep_report(sweep_result, tmp_path / "s.html", x="nope")
    with pytest.raises(ValueError, match="different"):
        write_sweep_report(sweep_result, tmp_path / "s.html", x="fast", y="fast")
    with pytest.raises(ValueError, match="unknown metric"):
        write_sweep_report(sweep_result, tmp_path / "s.html", metric="nope")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_json_paths_write_the_results_json(run_result, sweep_result, tmp_path):
    run_json = write_report(run_result, tmp_path / "run.json")
    assert json.loads(run_json.read_text()) == json.loads(run_result.to_json())
    sweep_json = write_report(sweep_result, tmp_path / "sweep.JSON")
    assert len(json.loads(sweep_json.read_text())) == sweep_result.to_frame().height
    with pytest.raises(TypeError):
        write_report({"not": "a result"}, tmp_path / "x.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "sweep.JSON"]


def test_empty_result_is_refused(run_result):
    empty = RunResult(run_result.metrics, run_result.equity.head(0), run_result.trades,
                      run_result.orders, "x", {}, {})
    with pytest.raises(ValueError, match="no bars"):
        run_report_html(empty)


def test_run_without_trades_still_reports():
    result = make_run(n=200, params={"fast": 150, "slow": 400})
    assert result.trades.height == 0
    parsed = parse_report(run_report_html(result))
    assert len(parsed.tables["trades"]) == 1  # the header only
    assert [t["name"] for t in parsed.figures["fig-price"]["data"]] == ["close"]
    assert "2024-01-01T00:00:00Z to 2024-01-09T07:00:00Z" in run_report_html(result)
