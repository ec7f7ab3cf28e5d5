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


def _pick(key: np.ndarray, eligible: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k columns with the smallest `key` among `eligible` (ties: lower
    column first) and whether the row had k of them (the columns of a row without k
    are unspecified: callers discard that row)."""
    masked = np.where(eligible, key, np.inf)
    n = masked.shape[0]
    rows = np.arange(n)
    order = np.empty((n, k), dtype=np.intp)
    for j in range(k):  # k argmin passes (first minimum = lower column) beat a full sort
        col = np.argmin(masked, axis=1) if masked.shape[1] else np.zeros(n, np.intp)
        order[:, j] = col
        if masked.shape[1]:
            masked[rows, col] = np.inf
    return order, eligible.sum(axis=1) >= k


def _rank_weights(score: np.ndarray, tradable: np.ndarray, long_ok: np.ndarray,
                  short_ok: np.ndarray, k: int, longs_high: bool) -> np.ndarray:
    """Per row: long the k best / short the k worst by `score` (ties by column); rows
    with too few candidates are NaN."""
    n, m = score.shape
    ok = tradable & np.isfinite(score)
    key = np.where(ok, -score if longs_high else score, 0.0)
    any_short = bool(short_ok.any())
    side = 0.5 / k if any_short else 1.0 / k
    rows = np.arange(n)[:, None]
    top, valid = _pick(key, ok & long_ok[None, :], k)
    w = np.zeros((n, m))
    w[rows, top] = side
    if any_short:
        rest = ok & short_ok[None, :]
        rest[rows, top] = False
        bottom, valid_s = _pick(-key, rest, k)
        w[rows, bottom] = -side
        valid &= valid_s
    w[~valid] = np.nan
    return w


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
