"""Technical indicators as Numba kernels over float64 arrays (NaN until warmed up)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True)
def sma_nb(x, window):
    """Simple moving average via a running sum: ``(S[t] - S[t-w]) / w``.

    NaN for the first ``window - 1`` bars. The running-sum form is O(n) per window; its
    rounding is that of pandas/vectorbt rolling means, so crossovers agree with them.
    """
    n = x.shape[0]
    out = np.empty(n)
    csum = np.empty(n)
    acc = 0.0
    for t in range(n):
        acc = acc + x[t]
        csum[t] = acc
        if t < window - 1:
            out[t] = np.nan
        elif t < window:
            out[t] = acc / window
        else:
            out[t] = (acc - csum[t - window]) / window
    return out


@njit(cache=True)
def ema_nb(x, span):
    """Exponential moving average, ``alpha = 2 / (span + 1)``, seeded with the first value
    (pandas ``ewm(span, adjust=False)``); NaN for the first ``span - 1`` bars."""
    n = x.shape[0]
    out = np.empty(n)
    alpha = 2.0 / (span + 1.0)
    acc = np.nan
    for t in range(n):
        acc = x[t] if t == 0 else alpha * x[t] + (1.0 - alpha) * acc
        out[t] = acc if t >= span - 1 else np.nan
    return out


@njit(cache=True)
def rsi_nb(x, window):
    """Wilder's RSI: gains and losses smoothed with ``alpha = 1 / window``, seeded by the
    simple mean of the first `window` changes; NaN until then."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n <= window:
        return out
    gain = 0.0
    loss = 0.0
    for t in range(1, window + 1):
        d = x[t] - x[t - 1]
        gain += max(d, 0.0)
        loss += max(-d, 0.0)
    gain /= window
    loss /= window
    for t in range(window, n):
        if t > window:
            d = x[t] - x[t - 1]
            gain = (gain * (window - 1) + max(d, 0.0)) / window
            loss = (loss * (window - 1) + max(-d, 0.0)) / window
        if loss == 0.0:
            out[t] = 100.0 if gain > 0.0 else 50.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + gain / loss)
    return out


@njit(cache=True)
def rolling_max_prev_nb(x, window):
    """Max of the `window` bars *before* t (excluding t); NaN until available."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(window, n):
        m = x[t - window]
        for k in range(t - window + 1, t):
            m = max(m, x[k])
        out[t] = m
    return out


@njit(cache=True)
def rolling_min_prev_nb(x, window):
    """Min of the `window` bars before t (excluding t); NaN until available."""
    return -rolling_max_prev_nb(-x, window)


@njit(cache=True, parallel=True)
def ma_lines_nb(x, windows, exponential):
    """One SMA (or EMA) row per window, computed in parallel: shape (len(windows), n)."""
    out = np.empty((windows.shape[0], x.shape[0]))
    for k in prange(windows.shape[0]):
        if exponential:
            out[k] = ema_nb(x, windows[k])
        else:
            out[k] = sma_nb(x, windows[k])
    return out
