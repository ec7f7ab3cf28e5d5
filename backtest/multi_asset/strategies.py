"""Built-in portfolio strategies: pure functions ``f(panel, **params) -> weights``.

A weight matrix is ``bars x assets``: the signed fraction of account equity each asset
should hold after the bar's close (filled at the next open, see `kernel`); NaN leaves
the asset as it is. Assets that are not tradable at a bar get weight 0; a row with too
few assets to rank is all NaN (no rebalance). Keyword defaults are the parameters.

- ``equal_weight(exposure=1)``: every tradable asset long ``exposure / count``.
- ``momentum_rank(lookback=24, k=1)``: return over `lookback` bars; long the top `k`,
  short the bottom `k` among perpetuals (``0.5 / k`` each side); long-only top `k` at
  ``1 / k`` when the universe has no perpetual.
- ``funding_carry(lookback=24, k=1)``: trailing sum of settled funding over `lookback`
  bars of the perpetuals; short the `k` highest, long the `k` lowest, ``0.5 / k`` each.
- ``basis()``: for each base asset with a tradable spot and perpetual: spot long, perp
  short, each leg half of the equity divided among the pairs.
- ``inverse_vol(lookback=24)``: long-only, weights proportional to ``1 / std`` of log
  returns over `lookback` bars, summing to 1.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numba import njit

from backtest.multi_asset.panel import Panel
from kline_lake.errors import InputError

WeightFunc = Callable[..., np.ndarray]


def _lookback(value: Any, name: str = "lookback") -> int:
    if int(value) != value or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value}")
    return int(value)


def equal_weight(panel: Panel, exposure: float = 1.0) -> np.ndarray:
    """Every tradable asset long ``exposure / number tradable``."""
    if not exposure > 0.0:
        raise InputError(f"exposure must be positive, got {exposure}")
    count = panel.tradable.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(panel.tradable, exposure / np.maximum(count, 1), 0.0)
    return w


def _trailing_return(close: np.ndarray, lookback: int) -> np.ndarray:
    out = np.full(close.shape, np.nan)
    if close.shape[0] > lookback:
        out[lookback:] = close[lookback:] / close[:-lookback] - 1.0
    return out


@njit(cache=True)
def _take_nb(w, t, keys, eligible, taken, k, value):
    """Set ``w[t, a] = value`` for the k eligible, untaken columns with the smallest
    keys (ties: lower column first); False when the row has fewer than k."""
    m = keys.shape[0]
    for _ in range(k):
        best = -1
        best_key = np.inf
        for a in range(m):
            if eligible[a] and not taken[a] and (best < 0 or keys[a] < best_key):
                best = a
                best_key = keys[a]
        if best < 0:
            return False
        taken[best] = True
        w[t, best] = value
    return True


@njit(cache=True)
def _rank_weights_nb(score, tradable, long_ok, short_ok, k, longs_high):
    """Per row: long the k best / short the k worst by `score` among the tradable
    assets with a finite score (ties by column; the short side picks among those the
    long side left); rows with too few candidates are NaN."""
    n, m = score.shape
    any_short = False
    for a in range(m):
        any_short = any_short or short_ok[a]
    side = 0.5 / k if any_short else 1.0 / k
    w = np.zeros((n, m))
    keys = np.empty(m)
    neg = np.empty(m)
    can_long = np.empty(m, dtype=np.bool_)
    can_short = np.empty(m, dtype=np.bool_)
    taken = np.empty(m, dtype=np.bool_)
    for t in range(n):
        for a in range(m):
            ok = tradable[t, a] and np.isfinite(score[t, a])
            keys[a] = (-score[t, a] if longs_high else score[t, a]) if ok else 0.0
            neg[a] = -keys[a]
            can_long[a] = ok and long_ok[a]
            can_short[a] = ok and short_ok[a]
            taken[a] = False
        valid = _take_nb(w, t, keys, can_long, taken, k, side)
        if valid and any_short:
            valid = _take_nb(w, t, neg, can_short, taken, k, -side)
        if not valid:
            w[t, :] = np.nan
    return w


def _rank_weights(score: np.ndarray, tradable: np.ndarray, long_ok: np.ndarray,
                  short_ok: np.ndarray, k: int, longs_high: bool) -> np.ndarray:
    """`_rank_weights_nb` on contiguous arrays."""
    return _rank_weights_nb(np.ascontiguousarray(score, dtype=np.float64),
                            np.ascontiguousarray(tradable, dtype=np.bool_),
                            np.ascontiguousarray(long_ok, dtype=np.bool_),
                            np.ascontiguousarray(short_ok, dtype=np.bool_), int(k),
                            bool(longs_high))


def momentum_rank(panel: Panel, lookback: int = 24, k: int = 1) -> np.ndarray:
    """Long the top `k` by trailing return, short the bottom `k` perpetuals."""
    lookback, k = _lookback(lookback), _lookback(k, "k")
    score = _trailing_return(panel.close, lookback)
    perp = panel.is_perp
    return _rank_weights(score, panel.tradable, np.ones(panel.n_assets, bool), perp, k, True)


def funding_carry(panel: Panel, lookback: int = 24, k: int = 1) -> np.ndarray:
    """Short the perps with the highest trailing funding, long the lowest."""
    lookback, k = _lookback(lookback), _lookback(k, "k")
    perp = panel.is_perp
    if not perp.any():
        raise InputError("funding_carry needs perpetuals (um/cm) in the universe")
    csum = np.cumsum(np.vstack([np.zeros((1, panel.n_assets)), panel.funding_rate]), axis=0)
    score = np.full(panel.close.shape, np.nan)
    if panel.n_bars >= lookback:
        score[lookback - 1:] = csum[lookback:] - csum[:-lookback]
    tradable = panel.tradable & perp
    return _rank_weights(score, tradable, perp, perp, k, longs_high=False)


def basis(panel: Panel) -> np.ndarray:
    """Long spot, short the perpetual of each base asset listed on both."""
    markets = panel.markets
    spot = {panel.base_asset(a): a for a in range(panel.n_assets) if markets[a] in ("spot", "us")}
    perp = {panel.base_asset(a): a for a in range(panel.n_assets) if markets[a] == "um"}
    pairs = [(spot[b], perp[b]) for b in spot if b in perp]
    if not pairs:
        raise InputError("basis needs a spot and a USD-M perpetual of the same base asset")
    w = np.zeros(panel.close.shape)
    live = np.stack([panel.tradable[:, s] & panel.tradable[:, p] for s, p in pairs], axis=1)
    count = np.maximum(live.sum(axis=1), 1)
    for j, (s, p) in enumerate(pairs):
        w[:, s] = np.where(live[:, j], 0.5 / count, 0.0)
        w[:, p] = np.where(live[:, j], -0.5 / count, 0.0)
    return w


def inverse_vol(panel: Panel, lookback: int = 24) -> np.ndarray:
    """Long-only weights proportional to 1 / volatility of log returns."""
    lookback = _lookback(lookback)
    if lookback < 2:
        raise InputError("inverse_vol needs lookback >= 2")
    logret = np.full(panel.close.shape, np.nan)
    logret[1:] = np.log(panel.close[1:] / panel.close[:-1])
    vol = np.full(panel.close.shape, np.nan)
    if panel.n_bars > lookback:
        windows = np.lib.stride_tricks.sliding_window_view(logret, lookback, axis=0)
        vol[lookback - 1:] = windows.std(axis=-1, ddof=1)
    inv = np.where(panel.tradable & np.isfinite(vol) & (vol > 0), 1.0 / vol, 0.0)
    total = inv.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(total > 0, inv / total, np.nan)
    return w


PORTFOLIO_STRATEGIES: dict[str, WeightFunc] = {
    "equal_weight": equal_weight,
    "momentum_rank": momentum_rank,
    "funding_carry": funding_carry,
    "basis": basis,
    "inverse_vol": inverse_vol,
}


def get_weight_func(strategy: str | WeightFunc) -> tuple[str, WeightFunc]:
    """(name, function) of a built-in name or a user function."""
    if callable(strategy):
        return getattr(strategy, "__name__", "custom"), strategy
    if strategy not in PORTFOLIO_STRATEGIES:
        raise InputError(f"unknown portfolio strategy {strategy!r}; expected one of: "
                         f"{', '.join(PORTFOLIO_STRATEGIES)} (or pass a function)")
    return strategy, PORTFOLIO_STRATEGIES[strategy]


def resolve_params(func: WeightFunc, params: Mapping[str, Any]) -> dict[str, Any]:
    """The function's keyword defaults updated by `params`; unknown names are InputError."""
    sig = inspect.signature(func)
    defaults = {n: p.default for n, p in list(sig.parameters.items())[1:]
                if p.default is not inspect.Parameter.empty}
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [n for n in params if n not in defaults and not accepts_any]
    if unknown:
        raise InputError(f"unknown parameter(s) {', '.join(unknown)} for {func.__name__}; "
                         f"expected: {', '.join(defaults) or 'none'}")
    return {**defaults, **params}
