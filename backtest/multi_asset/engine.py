"""`backtest.portfolio`: many assets, one account, target weights.

``portfolio(strategy, params, lake=..., universe="um:BTCUSDT,spot:BTCUSDT", interval="1h",
start=..., end=...)`` loads the aligned panel (`panel.load_panel`), computes the
strategy's weights (`strategies`), validates them, fills them with the kernel
(`kernel.simulate_portfolio_nb`, where the order of events is documented) and builds a
`PortfolioResult`.

Decisions where the issue is silent:

- ``fee=None`` charges each asset its market's base-tier taker rate (`backtest.fees`).
- ``rebalance`` ("8h", "1d", ...): the bars whose close falls on that UTC grid
  (``(open_time + bar) % period == 0``) are the rebalance bars; their weights fill at
  the next open (or at their close). ``None`` rebalances on every bar.
- Weights: an asset before its first tradable bar is set to 0; after a delisting the
  position is already closed and its weights are ignored. A row whose gross weight
  ``sum |w|`` exceeds ``leverage`` is an error, as is a negative spot weight.
- COIN-M: the account is in the margin coin (``cash`` in coin) and every asset of the
  universe must be ``cm`` with the same margin coin. Positions are whole contracts of
  ``contractSize`` USD (target rounded toward zero), PnL ``contracts * contractSize *
  (1/entry - 1/exit)``, fees ``fee_rate * contracts * contractSize / price`` and funding
  ``contracts * contractSize / mark * rate`` in coin: the kernel runs the mirrored
  linear model described in `kernel`.
- Stops (``sl_stop``, ``tp_stop``, ``sl_trail``; one setting for every asset): per asset
  position, resolved as in `backtest.run` (`backtest.stops`, worked numbers there),
  anchored at the fill that opened the position (a same-side resize keeps the levels);
  after a stop exit the asset stays flat until the next rebalance fill re-applies its
  target weight. Exits are orders of kind ``sl``/``tp``/``trail``, counted in the
  metrics (``n_sl_exits``, ``n_tp_exits``, ``n_trail_exits``) and per asset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from backtest import fills
from backtest.engine import use_jit, validate_stops
from backtest.fees import FeeModel
from backtest.multi_asset.kernel import N_ACC, order_capacity, simulate_portfolio_nb
from backtest.multi_asset.panel import SPOT_MARKETS, Panel, load_panel
from backtest.multi_asset.records import empty_orders
from backtest.multi_asset.results import PortfolioResult, build_result
from backtest.multi_asset.strategies import WeightFunc, get_weight_func, resolve_params
from kline_lake.errors import InputError

_PERIOD = re.compile(r"^(\d+)([mhdw])$")
_UNIT_US = {"m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000, "w": 604_800_000_000}


def rebalance_mask(panel: Panel, rebalance: str | None) -> np.ndarray:
    """Bars on the rebalance grid (every bar when `rebalance` is None)."""
    n = panel.n_bars
    if rebalance is None:
        return np.ones(n, dtype=np.bool_)
    match = _PERIOD.match(str(rebalance).strip())
    if not match or int(match.group(1)) <= 0:
        raise InputError(f"--rebalance {rebalance!r}: expected a period like 8h, 1d, 30m, 1w")
    period_us = int(match.group(1)) * _UNIT_US[match.group(2)]
    if period_us < panel.bar_ms * 1000:
        raise InputError(f"--rebalance {rebalance} is shorter than the {panel.interval} bars")
    return (panel.time_us + panel.bar_ms * 1000) % period_us == 0


def fee_rates(panel: Panel, fee: float | None) -> np.ndarray:
    """Per-asset taker fee rate: `fee`, or each market's base tier."""
    if fee is not None and not (np.isfinite(fee) and 0.0 <= fee < 1.0):
        raise InputError(f"fee must be in [0, 1), got {fee}")
    return np.array([FeeModel.for_market(m, fee).rate for m in panel.markets], dtype=np.float64)


def check_weights(panel: Panel, weights: Any, leverage: float,
                  rebal: np.ndarray | None = None) -> np.ndarray:
    """The strategy's weights as a float64 (n, m) array (the strategy's own array when it
    is one: not copied, not modified); InputError on a wrong shape, an infinite value,
    or, on a rebalance bar `rebal`, a spot short or a row over the leverage (weights
    before an asset's listing count 0: the kernel never trades an untradable asset)."""
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"weights are not numeric: {exc}") from exc
    shape = (panel.n_bars, panel.n_assets)
    if w.shape != shape:
        raise InputError(f"weights have shape {w.shape}; expected bars x assets {shape}")
    if np.isinf(w).any():
        raise InputError("weights must be finite (NaN leaves an asset as it is)")
    rows = np.arange(panel.n_bars) if rebal is None else np.flatnonzero(rebal)
    sub = masked_weights(panel, w, rows)
    spot = np.array([m in SPOT_MARKETS for m in panel.markets])
    bad = np.nonzero(spot & (sub < 0).any(axis=0))[0]  # NaN < 0 is False
    if bad.size:
        raise InputError(f"spot asset {panel.assets[bad[0]]} has a negative weight: spot is "
                         "long-only")
    gross = np.abs(sub)
    np.nan_to_num(gross, copy=False)
    gross = gross.sum(axis=1)
    over = np.nonzero(gross > leverage * (1.0 + 1e-9))[0]
    if over.size:
        t = rows[over[0]]
        raise InputError(f"leverage exceeded: gross weight {gross[over[0]]:.6g} > "
                         f"{leverage:g} at {np.datetime64(int(panel.time_us[t]), 'us')}Z")
    return np.ascontiguousarray(w)


def masked_weights(panel: Panel, w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A copy of the rows `rows` of `w`, 0 where the asset is not yet listed."""
    sub = w[rows]
    listed = np.logical_or.accumulate(panel.tradable, axis=0)[rows]
    sub[~listed & ~np.isnan(sub)] = 0.0
    return sub


def target_weights(panel: Panel, w: np.ndarray, rebal: np.ndarray) -> np.ndarray:
    """The weights as the kernel uses them: NaN off the rebalance bars, 0 before an
    asset's listing (what `vectorbt.Portfolio.from_orders` is given in the oracle)."""
    out = np.full(w.shape, np.nan)
    rows = np.flatnonzero(rebal)
    out[rows] = masked_weights(panel, w, rows)
    return out


def account_kind(panel: Panel) -> str:
    """'linear' or 'inverse'; InputError when cm mixes with other markets or coins."""
    cm = panel.is_inverse
    if not cm.any():
        return "linear"
    if not cm.all():
        raise InputError("a cm (COIN-M) universe is margined in coin: it cannot share an "
                         "account with spot/um/us assets")
    coins = {panel.info[k].margin_asset or panel.base_asset(k) for k in range(panel.n_assets)}
    if len(coins) > 1:
        raise InputError(f"mixed cm margin coins {', '.join(sorted(coins))}: a cm universe "
                         "must share one margin coin")
    if not (panel.contract_size > 0).all():
        raise InputError("cm contract sizes unknown: the lake has no cached cm exchangeInfo "
                         "(download any cm series to cache it)")
    return "inverse"


def check_stops(sl_stop: float | None, tp_stop: float | None,
                sl_trail: bool) -> tuple[float, float, bool]:
    """The stops as the kernel takes them (NaN = off); InputError as `backtest.run`
    gives it (``0 < sl_stop < 1``, ``tp_stop > 0``, a trail needs a stop-loss)."""
    for name, stop in (("sl stop", sl_stop), ("tp stop", tp_stop)):
        if stop is not None and (isinstance(stop, bool)
                                 or not isinstance(stop, int | float | np.number)):
            raise InputError(f"{name} takes one value here (several levels: a portfolio "
                             "sweep)")
    validate_stops(sl_stop, tp_stop, bool(sl_trail))
    return (np.nan if sl_stop is None else float(sl_stop),
            np.nan if tp_stop is None else float(tp_stop), bool(sl_trail))


def kernel_inputs(panel: Panel, w: np.ndarray, inverse: bool,
                  stops: bool = False) -> dict[str, np.ndarray]:
    """Prices, weights and funding as the kernel takes them (mirrored for inverse);
    high and low only with `stops` (else no rows: the kernel does not read them)."""
    m = panel.n_assets
    none = np.empty((0, m))
    if not inverse:
        return {"open": panel.open, "close": panel.close, "weights": w,
                "fund_at_open": panel.fund_at_open, "fund_intra": panel.fund_intra,
                "inverse": np.zeros(m, np.bool_), "lot_step": np.zeros(m),
                "high": panel.high if stops else none, "low": panel.low if stops else none}
    with np.errstate(divide="ignore"):  # the mirror's high is the real low's mirror
        return {"open": 1.0 / panel.open, "close": 1.0 / panel.close, "weights": -w,
                "fund_at_open": -panel.fund_at_open, "fund_intra": -panel.fund_intra,
                "inverse": np.ones(m, np.bool_), "lot_step": panel.contract_size.copy(),
                "high": 1.0 / panel.low if stops else none,
                "low": 1.0 / panel.high if stops else none}


def simulate(panel: Panel, w: np.ndarray, rebal: np.ndarray, *, cash: float,
             fee_rate: np.ndarray, slip: float, leverage: float, fill: str, threshold: float,
             inverse: bool, jit: bool | None = None,
             stops: tuple[float, float, bool] = (np.nan, np.nan, False)) -> dict[str, Any]:
    """One kernel call; returns its output arrays (kernel units) and records. `stops`:
    ``(sl_stop, tp_stop, sl_trail)`` of `check_stops`."""
    n, m = panel.n_bars, panel.n_assets
    stops_on = not (np.isnan(stops[0]) and np.isnan(stops[1]))
    k = kernel_inputs(panel, w, inverse, stops_on)
    out = {name: np.empty(n) for name in ("equity", "cash", "gross", "net", "fees", "funding")}
    out["position"] = np.empty((n, m))
    acc = np.zeros((m, N_ACC))
    orders = empty_orders(order_capacity(w, rebal, stops_on))
    kernel = simulate_portfolio_nb if use_jit(jit) else simulate_portfolio_nb.py_func
    status, n_ord = kernel(
        np.ascontiguousarray(k["open"]), np.ascontiguousarray(k["close"]), panel.tradable,
        np.ascontiguousarray(k["weights"]), rebal, np.ascontiguousarray(k["fund_at_open"]),
        np.ascontiguousarray(k["fund_intra"]), panel.delist_idx, k["inverse"], k["lot_step"],
        fill == "close", float(cash), fee_rate, slip, float(leverage), float(threshold),
        out["equity"], out["cash"], out["gross"], out["net"], out["fees"], out["funding"],
        out["position"], acc, orders, np.ascontiguousarray(k["high"]),
        np.ascontiguousarray(k["low"]), *stops)
    out.update(status=int(status), orders=orders[:n_ord], acc=acc, close=k["close"])
    return out


def without_funding(panel: Panel, funding: bool) -> Panel:
    """`panel` itself, or (``funding=False``) a copy whose funding charges are 0."""
    if funding:
        return panel
    zeros = np.zeros_like(panel.fund_at_open)
    return replace(panel, fund_at_open=zeros, fund_intra=zeros.copy())


def check_settings(cash: float, leverage: float, fill: str, threshold: float) -> None:
    """InputError for a fill, cash, leverage or threshold out of range."""
    fills.validate_fill(fill)
    if not (np.isfinite(cash) and cash > 0):
        raise InputError(f"cash must be positive, got {cash}")
    if not 1.0 <= leverage <= 125.0:
        raise InputError(f"leverage must be in [1, 125], got {leverage}")
    if not (np.isfinite(threshold) and 0.0 <= threshold < 1.0):
        raise InputError(f"threshold must be in [0, 1), got {threshold}")


def portfolio(strategy: str | WeightFunc = "equal_weight",
              params: Mapping[str, Any] | None = None, *, lake: str | Path | None = None,
              universe: str | list[str] | None = None, interval: str = "1h", start: Any = None,
              end: Any = None, panel: Panel | None = None, cash: float = 10_000.0,
              fee: float | None = None, slippage_bps: float = 0.0, funding: bool = True,
              leverage: float = 1.0, fill: str = "next_open", rebalance: str | None = None,
              threshold: float = 0.0, allow_gaps: bool = False,
              sl_stop: float | None = None, tp_stop: float | None = None,
              sl_trail: bool = False, jit: bool | None = None) -> PortfolioResult:
    """Backtest a portfolio strategy over ``[start, end)`` of the lake's `universe`.

    `strategy`: a built-in name (`PORTFOLIO_STRATEGIES`) or ``f(panel, **params) ->
    weights``. `panel` replaces lake/universe/interval/start/end (already loaded).
    Settings share `backtest.run`'s names (cash, fee, slippage_bps, funding, leverage,
    fill, allow_gaps, sl_stop, tp_stop, sl_trail) plus `rebalance` and `threshold`; see
    the module docstring (stops: per asset position, flat until the next rebalance). The
    lake's coverage is checked per asset as in `backtest.run`: never-fetched holes refuse
    (CoverageError, exit 2) unless ``allow_gaps=True``, which runs and says so.
    """
    check_settings(cash, leverage, fill, threshold)
    stops = check_stops(sl_stop, tp_stop, sl_trail)
    slip = fills.slippage_fraction(slippage_bps)
    name, func = get_weight_func(strategy)
    resolved = resolve_params(func, dict(params or {}))
    if panel is None:
        if lake is None or universe is None or start is None or end is None:
            raise InputError("give lake, universe, start and end (or panel=...)")
        panel = load_panel(lake, universe, interval, start, end, funding=funding,
                           allow_gaps=allow_gaps)
    panel = without_funding(panel, funding)
    inverse = account_kind(panel) == "inverse"
    rebal = rebalance_mask(panel, rebalance)
    w = check_weights(panel, func(panel, **resolved), leverage, rebal)
    rates = fee_rates(panel, fee)
    sim = simulate(panel, w, rebal, cash=cash, fee_rate=rates, slip=slip, leverage=leverage,
                   fill=fill, threshold=threshold, inverse=inverse, jit=jit, stops=stops)
    config = {"universe": list(panel.assets), "interval": panel.interval, "cash": float(cash),
              "fee_rates": rates.tolist(), "slippage_bps": float(slippage_bps),
              "funding": bool(funding), "leverage": float(leverage), "fill": fill,
              "rebalance": rebalance, "threshold": float(threshold),
              "sl_stop": sl_stop if sl_stop is None else float(sl_stop),
              "tp_stop": tp_stop if tp_stop is None else float(tp_stop),
              "sl_trail": bool(sl_trail),
              "account": "coin" if inverse else "quote", "n_bars": panel.n_bars,
              "allow_gaps": bool(allow_gaps), "unknown_gaps": panel.unknown_gaps}
    return build_result(panel, lambda: target_weights(panel, w, rebal), sim, name, resolved,
                        config, inverse)
