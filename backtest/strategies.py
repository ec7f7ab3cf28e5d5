"""Strategies: pure functions from bars and parameters to an int8 signal per bar.

A signal is computed on bar t's close: ``+1`` bullish, ``-1`` bearish, ``0`` no change.
The engine turns signals into positions by direction: ``long`` goes long on +1 and flat
on -1; ``short`` mirrors it (short on -1, flat on +1); ``both`` is long on +1 and short
on -1. A repeated signal in the current direction does nothing (no pyramiding).

Built in: ``sma_cross``, ``ema_cross``, ``rsi``, ``donchian``, ``hold``, ``oi_momentum``.
Add your own by passing any function ``f(bars, **params) -> array`` to `backtest.run` /
`backtest.sweep` (its keyword defaults are its parameters), or by building a `Strategy`.
With ``run(..., inputs=[...])`` the function's `bars` also carry the strategy inputs
(`backtest.inputs`): ``bars.inputs["sum_open_interest"]`` or ``bars.sum_open_interest``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from backtest.data import Bars
from backtest.indicators import ema_nb, rolling_max_prev_nb, rolling_min_prev_nb, rsi_nb, sma_nb
from backtest.kernels import cross_signal_nb
from kline_lake.errors import InputError

SignalFunc = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Strategy:
    """A named signal function, its default parameters and their validation.

    `cross_line` ("sma"/"ema") marks crossover strategies whose sweeps compute each
    moving average once per distinct window and cross them inside the batch kernel.
    `follows_direction` marks strategies whose +1 means "enter in the chosen
    direction" (``hold``): under ``short`` their signal is negated. `inputs` are the
    strategy inputs (`backtest.inputs.INPUTS`) a run loads for it (``oi_momentum``).
    """

    name: str
    func: SignalFunc
    defaults: Mapping[str, float] = field(default_factory=dict)
    validate: Callable[[dict], None] | None = None
    cross_line: str | None = None
    follows_direction: bool = False
    inputs: tuple[str, ...] = ()

    def resolve_params(self, given: Mapping[str, float]) -> dict:
        """Defaults overridden by `given`; InputError on unknown names or bad values."""
        unknown = sorted(set(given) - set(self.defaults))
        if unknown:
            allowed = ", ".join(self.defaults) or "none"
            raise InputError(
                f"strategy {self.name!r} has no parameter {', '.join(unknown)} (allowed: {allowed})"
            )
        params = {**self.defaults, **given}
        missing = [k for k, v in params.items() if v is None]
        if missing:
            raise InputError(f"strategy {self.name!r} needs parameter(s) {', '.join(missing)}")
        if self.validate is not None:
            self.validate(params)
        return params

    def signals(self, bars: Bars, params: Mapping[str, float]) -> np.ndarray:
        """Run the function and check its output is one finite signal per bar."""
        sig = np.asarray(self.func(bars, **params))
        if sig.shape != (len(bars),):
            raise InputError(
                f"strategy {self.name!r} returned shape {sig.shape}, expected ({len(bars)},)"
            )
        return np.sign(np.nan_to_num(sig.astype(np.float64))).astype(np.int8)


def _window(params: dict, name: str, minimum: int = 1) -> int:
    value = params[name]
    if int(value) != value or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _validate_cross(params: dict) -> None:
    fast, slow = _window(params, "fast"), _window(params, "slow")
    if fast >= slow:
        raise InputError(f"fast must be < slow, got fast={fast} slow={slow}")
    params["fast"], params["slow"] = fast, slow


def _validate_rsi(params: dict) -> None:
    params["window"] = _window(params, "window", 2)
    lower, upper = params["lower"], params["upper"]
    if not 0 < lower < upper < 100:
        raise InputError(f"rsi needs 0 < lower < upper < 100, got lower={lower} upper={upper}")


def _validate_donchian(params: dict) -> None:
    params["window"] = _window(params, "window")


def _validate_none(params: dict) -> None:
    return None


def sma_cross(bars: Bars, fast: int = 10, slow: int = 50) -> np.ndarray:
    """+1 when SMA(close, fast) crosses above SMA(close, slow), -1 when it crosses below."""
    return cross_signal_nb(sma_nb(bars.close, fast), sma_nb(bars.close, slow))


def ema_cross(bars: Bars, fast: int = 12, slow: int = 26) -> np.ndarray:
    """+1 / -1 when EMA(close, fast) crosses above / below EMA(close, slow)."""
    return cross_signal_nb(ema_nb(bars.close, fast), ema_nb(bars.close, slow))


def rsi(bars: Bars, window: int = 14, lower: float = 30.0, upper: float = 70.0) -> np.ndarray:
    """Mean reversion: +1 while RSI(window) < lower (oversold), -1 while > upper."""
    r = rsi_nb(bars.close, window)
    out = np.zeros(len(bars), dtype=np.int8)
    out[r < lower] = 1
    out[r > upper] = -1
    return out


def donchian(bars: Bars, window: int = 20) -> np.ndarray:
    """Breakout: +1 when close exceeds the highest high of the previous `window` bars,
    -1 when it falls below their lowest low."""
    hi = rolling_max_prev_nb(bars.high, window)
    lo = rolling_min_prev_nb(bars.low, window)
    out = np.zeros(len(bars), dtype=np.int8)
    out[bars.close > hi] = 1
    out[bars.close < lo] = -1
    return out


def hold(bars: Bars) -> np.ndarray:
    """Enter on the first bar and hold to the end: the buy-and-hold baseline."""
    out = np.zeros(len(bars), dtype=np.int8)
    if len(bars):
        out[0] = 1
    return out


def oi_momentum(bars: Bars, window: int = 12) -> np.ndarray:
    """+1 when the close and the open interest (``sum_open_interest`` in force at the
    bar's close, `backtest.inputs`) both rose over the last `window` bars, -1 when the
    close fell; 0 otherwise and where the open interest is unknown (NaN)."""
    oi = getattr(bars, "inputs", {}).get("sum_open_interest")
    if oi is None:
        raise InputError("oi_momentum needs the open_interest input (inputs=['open_interest'])")
    out = np.zeros(len(bars), dtype=np.int8)
    if len(bars) <= window:
        return out
    d_close = bars.close[window:] - bars.close[:-window]
    with np.errstate(invalid="ignore"):
        d_oi = oi[window:] - oi[:-window]
        out[window:][(d_close > 0) & (d_oi > 0)] = 1
    out[window:][d_close < 0] = -1
    return out


REGISTRY: Mapping[str, Strategy] = MappingProxyType({
    "sma_cross": Strategy("sma_cross", sma_cross, {"fast": 10, "slow": 50}, _validate_cross,
                          cross_line="sma"),
    "ema_cross": Strategy("ema_cross", ema_cross, {"fast": 12, "slow": 26}, _validate_cross,
                          cross_line="ema"),
    "rsi": Strategy("rsi", rsi, {"window": 14, "lower": 30.0, "upper": 70.0}, _validate_rsi),
    "donchian": Strategy("donchian", donchian, {"window": 20}, _validate_donchian),
    "hold": Strategy("hold", hold, {}, _validate_none, follows_direction=True),
})
# strategies that need strategy inputs (`backtest.inputs`): runs only, not batched sweeps
INPUT_REGISTRY: Mapping[str, Strategy] = MappingProxyType({
    "oi_momentum": Strategy("oi_momentum", oi_momentum, {"window": 12}, _validate_donchian,
                            inputs=("open_interest",)),
})


def from_function(func: SignalFunc) -> Strategy:
    """Wrap a user function ``f(bars, **params)``; its keyword defaults are its params."""
    sig = inspect.signature(func)
    names = list(sig.parameters)[1:]
    defaults = {}
    for name in names:
        default = sig.parameters[name].default
        defaults[name] = None if default is inspect.Parameter.empty else default
    return Strategy(getattr(func, "__name__", "custom"), func, defaults, None)


def get_strategy(strategy: str | Strategy | SignalFunc) -> Strategy:
    """A registered name, a `Strategy`, or a plain function -> `Strategy`."""
    if isinstance(strategy, Strategy):
        return strategy
    if callable(strategy):
        return from_function(strategy)
    known = {**REGISTRY, **INPUT_REGISTRY}
    try:
        return known[strategy]
    except KeyError:
        raise InputError(
            f"unknown strategy {strategy!r}; expected one of {', '.join(known)}"
        ) from None
