"""Performance metrics: pure functions of the equity curve, positions and trades.

Crypto trades every day, so annualization uses 365 days: a bar of length `bar_days`
gives ``bars_per_year = 365 / bar_days``. Definitions (worked numbers in the tests):

- ``returns[t] = equity[t] / equity[t-1] - 1`` with ``equity[-1] = init_cash``.
- ``total_return = final / init_cash - 1``; ``cagr = (final / init_cash) ** (1 / years) - 1``
  with ``years = n_bars * bar_days / 365`` (-1 when the account is wiped out).
- ``sharpe = mean(returns) / std(returns, ddof=1) * sqrt(bars_per_year)`` (risk-free 0);
  ``sortino`` uses the downside deviation ``sqrt(mean(min(returns, 0) ** 2))``.
- ``max_drawdown``: the largest ``1 - equity / running_peak`` (a positive fraction; the
  peak starts at init_cash). ``max_drawdown_duration``: the longest stretch spent below
  a previous peak, in days (bars times bar length), counting an unrecovered drawdown.
- ``calmar = cagr / max_drawdown``.
- Trades: ``n_trades`` counts every trade including one still open at the end (valued at
  the last close, no exit fee); ``win_rate``, ``profit_factor`` (gross profit / gross
  loss; inf without losses) and ``expectancy`` (mean net PnL per trade, quote currency)
  use closed (and liquidated) trades only. PnL is net of fees and funding.
- ``exposure``: the fraction of bars that end with a non-zero position.
- ``n_sl_exits``/``n_tp_exits``/``n_trail_exits``: trades closed by the stop-loss, the
  take-profit and the trailing stop-loss (``TRADE_DT["reason"]``; see `simulate_nb`).
- ``ruined``/``ruin_idx``: the account was ruined at that bar and stopped trading (see
  `backtest.kernels.simulate_nb`); a ruined run has no ``sharpe``, ``sortino`` or
  ``calmar`` (NaN): the returns of an account that is gone are no risk-adjusted
  performance, and near-zero equity makes them noise (a -100 % run once showed +1.58).

Undefined values (a zero denominator) are NaN; JSON output writes them as null.
The ``_nb`` versions are Numba kernels so a parameter sweep computes the very same
numbers inside its compiled loop; the plain-named functions are their Python faces.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.names import METRIC_NAMES  # the fields of one metric record, in report order
from backtest.records import (
    KIND_SL,
    KIND_TP,
    KIND_TRAIL,
    TRADE_DT,
    TRADE_OPEN,
    empty_metrics,
)

DAYS_PER_YEAR = 365.0


def bars_per_year(bar_days: float) -> float:
    """Bars in a 365-day year for bars `bar_days` long."""
    if not bar_days > 0:
        raise ValueError(f"bar length must be positive, got {bar_days} days")
    return DAYS_PER_YEAR / bar_days


@njit(cache=True, error_model="numpy")
def returns_nb(equity, init_cash):
    """Per-bar simple returns; the first bar is measured against `init_cash`."""
    n = equity.shape[0]
    out = np.empty(n)
    prev = init_cash
    for t in range(n):
        out[t] = equity[t] / prev - 1.0
        prev = equity[t]
    return out


@njit(cache=True, error_model="numpy")
def total_return_nb(final_equity, init_cash):
    return final_equity / init_cash - 1.0


@njit(cache=True, error_model="numpy")
def cagr_nb(final_equity, init_cash, n_bars, bar_days):
    years = n_bars * bar_days / DAYS_PER_YEAR
    ratio = final_equity / init_cash
    if not years > 0.0:
        return np.nan
    if ratio <= 0.0:
        return -1.0
    return ratio ** (1.0 / years) - 1.0


@njit(cache=True, error_model="numpy")
def _ratios_nb(mean, sq_dev, sq_down, n, bars_per_year):
    """(sharpe, sortino) from the mean, sum of squared deviations and of squared
    negative returns over n returns."""
    sharpe = np.nan
    sortino = np.nan
    if n >= 2 and sq_dev > 0.0:
        sharpe = mean / np.sqrt(sq_dev / (n - 1)) * np.sqrt(bars_per_year)
    if n >= 1 and sq_down > 0.0:
        sortino = mean / np.sqrt(sq_down / n) * np.sqrt(bars_per_year)
    return sharpe, sortino


@njit(cache=True, error_model="numpy")
def _return_ratios_nb(returns, bars_per_year):
    n = returns.shape[0]
    if n == 0:
        return np.nan, np.nan
    total = 0.0
    for t in range(n):
        total += returns[t]
    mean = total / n
    sq_dev = 0.0
    sq_down = 0.0
    for t in range(n):
        d = returns[t] - mean
        sq_dev += d * d
        if returns[t] < 0.0:
            sq_down += returns[t] * returns[t]
    return _ratios_nb(mean, sq_dev, sq_down, n, bars_per_year)


@njit(cache=True, error_model="numpy")
def equity_ratios_nb(equity, init_cash, bars_per_year):
    """(sharpe, sortino) of the equity curve's returns without materializing them:
    the same arithmetic, in the same order, as `sharpe_nb(returns_nb(...))`."""
    n = equity.shape[0]
    if n == 0:
        return np.nan, np.nan
    total = 0.0
    prev = init_cash
    for t in range(n):
        total += equity[t] / prev - 1.0
        prev = equity[t]
    mean = total / n
    sq_dev = 0.0
    sq_down = 0.0
    prev = init_cash
    for t in range(n):
        r = equity[t] / prev - 1.0
        prev = equity[t]
        d = r - mean
        sq_dev += d * d
        if r < 0.0:
            sq_down += r * r
    return _ratios_nb(mean, sq_dev, sq_down, n, bars_per_year)


@njit(cache=True, error_model="numpy")
def sharpe_nb(returns, bars_per_year):
    return _return_ratios_nb(returns, bars_per_year)[0]


@njit(cache=True, error_model="numpy")
def sortino_nb(returns, bars_per_year):
    return _return_ratios_nb(returns, bars_per_year)[1]


@njit(cache=True, error_model="numpy")
def drawdown_stats_nb(equity, init_cash):
    """(max drawdown fraction, longest run of bars below the running peak), one pass."""
    peak = init_cash
    worst = 0.0
    run = 0
    longest = 0
    for t in range(equity.shape[0]):
        e = equity[t]
        if e >= peak:
            peak = e
            run = 0
        else:
            run += 1
            longest = max(longest, run)
            worst = max(worst, 1.0 - e / peak)
    return worst, longest


@njit(cache=True, error_model="numpy")
def max_drawdown_nb(equity, init_cash):
    return drawdown_stats_nb(equity, init_cash)[0]


@njit(cache=True, error_model="numpy")
def max_drawdown_duration_nb(equity, init_cash, bar_days):
    """Longest run of bars with equity below the running peak, in days."""
    return drawdown_stats_nb(equity, init_cash)[1] * bar_days


@njit(cache=True, error_model="numpy")
def calmar_nb(cagr, max_drawdown):
    if not max_drawdown > 0.0:
        return np.nan
    return cagr / max_drawdown


@njit(cache=True, error_model="numpy")
def trade_stats_nb(pnl, closed):
    """(win_rate, profit_factor, expectancy) over the trades where `closed` is True."""
    wins = 0
    n = 0
    gross_win = 0.0
    gross_loss = 0.0
    for k in range(pnl.shape[0]):
        if not closed[k]:
            continue
        n += 1
        if pnl[k] > 0.0:
            wins += 1
            gross_win += pnl[k]
        else:
            gross_loss -= pnl[k]
    if n == 0:
        return np.nan, np.nan, np.nan
    if gross_loss > 0.0:
        pf = gross_win / gross_loss
    elif gross_win > 0.0:
        pf = np.inf
    else:
        pf = np.nan
    return wins / n, pf, (gross_win - gross_loss) / n


@njit(cache=True, error_model="numpy")
def _closed_trade_stats_nb(trades):
    closed = np.empty(trades.shape[0], dtype=np.bool_)
    pnl = np.empty(trades.shape[0])
    for k in range(trades.shape[0]):
        rec = trades[k]
        closed[k] = rec["status"] != TRADE_OPEN
        pnl[k] = rec["pnl"]
    return trade_stats_nb(pnl, closed)


@njit(cache=True)
def exit_counts_nb(trades):
    """(stop-loss, take-profit, trailing-stop) exits among `trades` (by ``reason``)."""
    n_sl = n_tp = n_trail = 0
    for k in range(trades.shape[0]):
        r = trades[k]["reason"]
        if r == KIND_SL:
            n_sl += 1
        elif r == KIND_TP:
            n_tp += 1
        elif r == KIND_TRAIL:
            n_trail += 1
    return n_sl, n_tp, n_trail


@njit(cache=True, error_model="numpy")
def exposure_nb(position):
    n = position.shape[0]
    if n == 0:
        return np.nan
    held = 0
    for t in range(n):
        if position[t] != 0.0:
            held += 1
    return held / n


@njit(cache=True, error_model="numpy")
def metrics_nb(equity, position, trades, init_cash, fees_paid, funding_paid, bars_per_year,
               bar_days, ruin_idx, out, k):
    """Fill record `k` of `out` (a METRICS_DT array) from one simulated run; `ruin_idx`
    is the kernel's ruin bar (-1 if none)."""
    n = equity.shape[0]
    final = equity[n - 1] if n > 0 else init_cash
    m = out[k]
    m["final_equity"] = final
    m["total_return"] = total_return_nb(final, init_cash)
    cagr = cagr_nb(final, init_cash, n, bar_days)
    m["cagr"] = cagr
    m["sharpe"], m["sortino"] = equity_ratios_nb(equity, init_cash, bars_per_year)
    worst, longest = drawdown_stats_nb(equity, init_cash)
    m["max_drawdown"] = worst
    m["calmar"] = calmar_nb(cagr, worst)
    m["max_drawdown_duration"] = longest * bar_days
    m["n_trades"] = trades.shape[0]
    m["win_rate"], m["profit_factor"], m["expectancy"] = _closed_trade_stats_nb(trades)
    m["exposure"] = exposure_nb(position)
    m["fees_paid"] = fees_paid
    m["funding_paid"] = funding_paid
    m["n_sl_exits"], m["n_tp_exits"], m["n_trail_exits"] = exit_counts_nb(trades)
    m["ruined"] = ruin_idx >= 0
    m["ruin_idx"] = ruin_idx
    if ruin_idx >= 0:  # no risk-adjusted ratio for an account that is gone
        m["sharpe"] = np.nan
        m["sortino"] = np.nan
        m["calmar"] = np.nan


# ---- Python faces ---------------------------------------------------------------------

def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def returns(equity, init_cash: float) -> np.ndarray:
    """Per-bar simple returns, the first against `init_cash`."""
    return returns_nb(_f64(equity), float(init_cash))


def final_equity(equity) -> float:
    """Equity at the last bar."""
    return float(_f64(equity)[-1])


def total_return(equity, init_cash: float) -> float:
    """final / init_cash - 1."""
    return float(total_return_nb(final_equity(equity), float(init_cash)))


def cagr(equity, init_cash: float, bar_days: float) -> float:
    """Compound annual growth rate over len(equity) bars of `bar_days` (365-day year)."""
    eq = _f64(equity)
    return float(cagr_nb(eq[-1], float(init_cash), eq.shape[0], float(bar_days)))


def sharpe(rets, bars_per_year: float) -> float:
    """Annualized Sharpe ratio of per-bar returns (risk-free rate 0, ddof=1)."""
    return float(sharpe_nb(_f64(rets), float(bars_per_year)))


def sortino(rets, bars_per_year: float) -> float:
    """Annualized Sortino ratio (downside deviation over all bars, target 0)."""
    return float(sortino_nb(_f64(rets), float(bars_per_year)))


def max_drawdown(equity, init_cash: float) -> float:
    """Largest peak-to-trough loss as a positive fraction."""
    return float(max_drawdown_nb(_f64(equity), float(init_cash)))


def max_drawdown_duration(equity, init_cash: float, bar_days: float) -> float:
    """Longest time below a previous peak, in days."""
    return float(max_drawdown_duration_nb(_f64(equity), float(init_cash), float(bar_days)))


def calmar(cagr_value: float, max_drawdown_value: float) -> float:
    """CAGR divided by max drawdown."""
    return float(calmar_nb(float(cagr_value), float(max_drawdown_value)))


def win_rate(pnl, closed=None) -> float:
    """Share of closed trades with positive net PnL."""
    return _trade_stats(pnl, closed)[0]


def profit_factor(pnl, closed=None) -> float:
    """Gross profit / gross loss of closed trades (inf when nothing was lost)."""
    return _trade_stats(pnl, closed)[1]


def expectancy(pnl, closed=None) -> float:
    """Mean net PnL per closed trade, in quote currency."""
    return _trade_stats(pnl, closed)[2]


def _trade_stats(pnl, closed) -> tuple[float, float, float]:
    p = _f64(pnl)
    mask = np.ones(p.shape[0], dtype=np.bool_) if closed is None else np.asarray(closed, bool)
    w, pf, e = trade_stats_nb(p, mask)
    return float(w), float(pf), float(e)


def exposure(position) -> float:
    """Fraction of bars ending with a non-zero position."""
    return float(exposure_nb(_f64(position)))


def compute_metrics(equity, position, trades: np.ndarray, init_cash: float, fees_paid: float,
                    funding_paid: float, bar_days: float, ruin_idx: int = -1
                    ) -> dict[str, float]:
    """Every metric of METRIC_NAMES for one run, as a dict; `trades` is a TRADE_DT array."""
    if trades.dtype != TRADE_DT:
        raise ValueError(f"trades must be a backtest.records.TRADE_DT array, not {trades.dtype}")
    out = empty_metrics(1)
    metrics_nb(_f64(equity), _f64(position), np.ascontiguousarray(trades), float(init_cash),
               float(fees_paid), float(funding_paid), bars_per_year(bar_days),
               float(bar_days), int(ruin_idx), out, 0)
    return metrics_record_to_dict(out[0])


def metrics_record_to_dict(rec: np.void) -> dict[str, float]:
    """One METRICS_DT record -> {name: Python value}, in METRIC_NAMES order."""
    return {name: rec[name].item() for name in METRIC_NAMES}
