"""`run`: load data, compute signals, simulate with the Numba kernel, build the result.

Decisions where the issue is silent (also in the README of this package's docstrings):

- Spot markets (``spot``, ``us``) allow only ``direction="long"`` and ``leverage=1``.
- Sizing: every entry commits ``size`` (a fraction of equity, default 1) times
  ``leverage`` of notional including its fee. Isolated margin per position is
  ``notional / leverage``; funding paid during the trade is taken from that margin.
- Liquidation (``maintenance_margin_rate`` set) closes at the liquidation price with the
  fee rate and no slippage; what is left of the margin stays in the account.
- ``cm`` (COIN-M) is an inverse contract (`backtest.inverse`): the account, ``cash``,
  PnL, fees and funding are in the margin coin (``config["account"] == "coin"``),
  positions whole contracts of ``contractSize`` USD (the lake's cached exchangeInfo, or
  ``contract_size=``), orders/trades in contracts at USD prices; the kernel runs the
  linear mirror. ``buy_hold_equity`` is then a 1x long held in coin.
- Exchange filters (``exchange_filters=True``, the default): entry quantities are rounded
  down to the symbol's LOT_SIZE step and entries below its minimum quantity or notional
  are not placed, from the exchangeInfo cached in the lake (see `backtest.filters`;
  without one the run goes on unfiltered and its warnings say so).
- Ruin: equity gone, or too small for the exchange's minimum order once flat, stops
  trading for good; ``metrics["ruined"]``/``["ruin_time"]`` say when, and a ruined run
  reports no Sharpe, Sortino or Calmar (see `backtest.kernels.simulate_nb`).
- ``jit=False`` runs the kernel's pure-Python body (``simulate_nb.py_func``) for
  debugging; results are identical, only slower.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from backtest import fills, run_inputs
from backtest.coverage import CoverageReport, not_checked
from backtest.data import Bars, FundingEvents, MarkOpens, load_lake_data, parse_time_us
from backtest.fees import FeeModel
from backtest.filters import FILTERS_OFF, ExchangeFilters, resolve_filters
from backtest.funding import align_funding
from backtest.inverse import (
    KernelBars,
    buy_hold_equity,
    check_contract_filters,
    check_contract_size,
    is_inverse,
    mirror_bars,
    mirror_lot,
    resolve_contract_size,
    unmirror,
)
from backtest.kernels import (
    BOTH,
    LONG,
    SHORT,
    STATUS_BELOW_MIN,
    STATUS_LIQUIDATED,
    STATUS_NO_CASH,
    STATUS_RECORDS_FULL,
    STATUS_RUINED,
    order_capacity,
    simulate_nb,
    trade_capacity,
)
from backtest.metrics import compute_metrics
from backtest.records import TRADE_OPEN, empty_orders, empty_trades
from backtest.results import RunResult, orders_frame, trades_frame
from backtest.spread import BookSlippage
from backtest.strategies import SignalFunc, Strategy, get_strategy
from kline_lake.core.markets import get_market
from kline_lake.errors import InputError

DIRECTIONS = {"long": LONG, "short": SHORT, "both": BOTH}
MIRRORED_DIRECTIONS = {LONG: SHORT, SHORT: LONG, BOTH: BOTH}  # a real long is a mirrored short
TimeLike = str | date | datetime
NO_JIT_ENV = "BACKTEST_NO_JIT"


@dataclass(frozen=True)
class Config:
    """Validated simulation settings (all rates are fractions, not percent)."""

    market: str = "um"
    cash: float = 10_000.0
    direction: str = "long"
    fill: str = "next_open"
    fee_rate: float = 0.0005
    slippage_bps: float = 0.0
    funding: bool = True
    leverage: float = 1.0
    size: float = 1.0
    maintenance_margin_rate: float | None = None
    exchange_filters: ExchangeFilters = FILTERS_OFF
    sl_stop: float | None = None
    tp_stop: float | None = None
    sl_trail: bool = False
    contract_size: float | None = None  # cm: USD per contract (resolved before a run)
    margin_coin: str | None = None  # cm: the coin the account is in

    def __post_init__(self) -> None:
        market = get_market(self.market)
        validate_stops(self.sl_stop, self.tp_stop, self.sl_trail)
        if self.contract_size is not None and not self.inverse:
            raise InputError(f"contract_size applies to cm (inverse) contracts only, not "
                             f"{market.name!r}")
        check_contract_size(self.contract_size)
        if self.inverse:
            check_contract_filters(self.exchange_filters)
        if self.direction not in DIRECTIONS:
            raise InputError(f"unknown direction {self.direction!r}; expected long, short or both")
        fills.validate_fill(self.fill)
        fills.slippage_fraction(self.slippage_bps)
        if not (np.isfinite(self.cash) and self.cash > 0):
            raise InputError(f"cash must be positive, got {self.cash}")
        if not 0.0 <= self.fee_rate < 1.0:
            raise InputError(f"fee must be in [0, 1), got {self.fee_rate}")
        if not 0.0 < self.size <= 1.0:
            raise InputError(f"size must be in (0, 1], got {self.size}")
        if not 1.0 <= self.leverage <= 125.0:
            raise InputError(f"leverage must be in [1, 125], got {self.leverage}")
        mmr = self.maintenance_margin_rate
        if mmr is not None and not 0.0 < mmr < 1.0:
            raise InputError(f"maintenance margin rate must be in (0, 1), got {mmr}")
        if not market.is_futures:
            if self.direction != "long":
                raise InputError(f"market {market.name!r} is spot: only --direction long")
            if self.leverage != 1.0:
                raise InputError(f"market {market.name!r} is spot: leverage must be 1")

    @property
    def inverse(self) -> bool:
        """True for an inverse (COIN-M) contract: the kernel runs its mirror."""
        return is_inverse(self.market)

    def stop_args(self) -> tuple[float, float, bool]:
        """``(sl_stop, tp_stop, sl_trail)`` as `simulate_nb` takes them (NaN = off)."""
        return (np.nan if self.sl_stop is None else float(self.sl_stop),
                np.nan if self.tp_stop is None else float(self.tp_stop), bool(self.sl_trail))

    def kernel_args(self) -> tuple:
        """The scalar arguments of `simulate_nb` after the arrays (an inverse contract's
        mirrored direction and lot, `backtest.inverse`)."""
        mmr = np.nan if self.maintenance_margin_rate is None else self.maintenance_margin_rate
        direction = DIRECTIONS[self.direction]
        lot = self.exchange_filters.kernel_args()
        if self.inverse:
            if self.contract_size is None:
                raise InputError("cm: the contract size is not resolved (contract_size=)")
            direction = MIRRORED_DIRECTIONS[direction]
            lot = mirror_lot(self.contract_size, *lot)
        return (direction, self.fill == "close", float(self.cash), float(self.size),
                float(self.leverage), float(self.fee_rate),
                fills.slippage_fraction(self.slippage_bps), float(mmr), *lot)

    def kernel_signals(self, sig: np.ndarray) -> np.ndarray:
        """Signals as the kernel takes them: negated on an inverse mirror."""
        return np.negative(sig) if self.inverse else sig


def validate_stops(sl_stop: float | None, tp_stop: float | None, sl_trail: bool) -> None:
    """Raise InputError unless ``0 < sl_stop < 1``, ``tp_stop > 0`` (None = off) and a
    trailing stop has a stop-loss to trail."""
    if sl_stop is not None and not 0.0 < sl_stop < 1.0:
        raise InputError(f"sl stop must be in (0, 1) (a fraction of the entry), got {sl_stop}")
    if tp_stop is not None and not (np.isfinite(tp_stop) and tp_stop > 0.0):
        raise InputError(f"tp stop must be positive (a fraction of the entry), got {tp_stop}")
    if sl_trail and sl_stop is None:
        raise InputError("sl trail needs an sl stop (--sl-stop) to trail")


def make_config(market: str = "um", cash: float = 10_000.0, direction: str = "long",
                fill: str = "next_open", fee: float | None = None,
                maker_fee: float | None = None, liquidity: str = "taker",
                slippage_bps: float = 0.0, funding: bool = True, leverage: float = 1.0,
                size: float = 1.0, maintenance_margin_rate: float | None = None,
                sl_stop: float | None = None, tp_stop: float | None = None,
                sl_trail: bool = False, contract_size: float | None = None) -> Config:
    """Build a Config; `fee`/`maker_fee` default to the market's base-tier rates;
    `sl_stop`/`tp_stop`/`sl_trail` are the stops of `backtest.kernels.simulate_nb`;
    `contract_size` (cm only, USD per contract) is needed when the lake's exchangeInfo
    does not give it (bars passed directly). For cm, `cash` is in the margin coin."""
    for name, stop in (("sl stop", sl_stop), ("tp stop", tp_stop)):
        if stop is not None and not isinstance(stop, int | float | np.number):
            raise InputError(f"{name} takes one value here (several levels: backtest sweep)")
    for name, value in (("fee", fee), ("maker fee", maker_fee)):
        if value is not None and value < 0:
            raise InputError(f"{name} must not be negative, got {value}")
    model = FeeModel.for_market(market, fee, maker_fee, liquidity)
    return Config(market, float(cash), direction, fill, model.rate, float(slippage_bps),
                  bool(funding), float(leverage), float(size), maintenance_margin_rate,
                  sl_stop=None if sl_stop is None else float(sl_stop),
                  tp_stop=None if tp_stop is None else float(tp_stop), sl_trail=bool(sl_trail),
                  contract_size=check_contract_size(contract_size))


@dataclass(frozen=True)
class MarketData:
    """Bars plus the per-bar funding sums the kernel consumes."""

    bars: Bars
    fund_at_open: np.ndarray
    fund_intra: np.ndarray
    coverage: CoverageReport = not_checked()


def load_market_data(lake: str | Path | None, market: str, symbol: str, interval: str,
                     start: TimeLike | None, end: TimeLike | None, *, bars: Bars | None = None,
                     funding_events: FundingEvents | None = None,
                     mark_opens: MarkOpens | None = None, funding: bool = True,
                     allow_gaps: bool = False) -> MarketData:
    """From the lake (coverage checked, see `backtest.data.load_lake_data`) or from arrays
    given directly to aligned kernel inputs."""
    coverage = not_checked()
    if bars is None:
        if lake is None or start is None or end is None:
            raise InputError("give lake, start and end (or bars=...)")
        loaded = load_lake_data(lake, market, symbol, interval, parse_time_us(start, "start"),
                                parse_time_us(end, "end"), allow_gaps=allow_gaps,
                                funding=funding and funding_events is None)
        bars, coverage = loaded.bars, loaded.coverage
        funding_events = loaded.funding_events if funding_events is None else funding_events
        mark_opens = loaded.mark_opens if mark_opens is None else mark_opens
    if not funding or funding_events is None:
        zeros = np.zeros(len(bars))
        return MarketData(bars, zeros, zeros.copy(), coverage)
    at_open, intra = align_funding(bars, funding_events, mark_opens,
                                   inverse=is_inverse(market))
    return MarketData(bars, at_open, intra, coverage)


def kernel_bars(data: MarketData, config: Config) -> KernelBars:
    """Prices and funding sums as the kernel takes them: the bars, or an inverse
    contract's mirror (`backtest.inverse.mirror_bars`)."""
    b = data.bars
    if config.inverse:
        return mirror_bars(b.open, b.high, b.low, b.close, data.fund_at_open, data.fund_intra)
    return KernelBars(b.open, b.high, b.low, b.close, data.fund_at_open, data.fund_intra)


def strategy_signals(strat: Strategy, bars: Bars, params: Mapping[str, Any],
                     direction: str) -> np.ndarray:
    """The strategy's int8 signals, negated for `follows_direction` under short."""
    sig = strat.signals(bars, params)
    if strat.follows_direction and direction == "short":
        sig = -sig
    return np.ascontiguousarray(sig, dtype=np.int8)


def use_jit(jit: bool | None) -> bool:
    """Explicit `jit` wins; otherwise BACKTEST_NO_JIT=1 in the environment disables it."""
    if jit is not None:
        return jit
    return os.environ.get(NO_JIT_ENV, "") not in ("1", "true", "yes")


def simulate(data: MarketData, sig: np.ndarray, config: Config, jit: bool | None = None,
             book: BookSlippage | None = None) -> dict:
    """Run the kernel once; returns its output arrays and records. `book`: per-bar
    book-ticker slippage (`backtest.spread`) instead of the fixed bps."""
    b = data.bars
    n = len(b)
    out = {k: np.empty(n) for k in ("equity", "position", "cash", "cum_fees", "cum_funding")}
    orders = empty_orders(order_capacity(n))
    trades = empty_trades(trade_capacity(n))
    kernel = simulate_nb if use_jit(jit) else simulate_nb.py_func
    k = kernel_bars(data, config)
    status, n_ord, n_tr, _, _, ruin_idx = kernel(
        *k.arrays(), config.kernel_signals(sig), k.fund_at_open, k.fund_intra,
        *config.kernel_args(), out["equity"], out["position"], out["cash"], out["cum_fees"],
        out["cum_funding"], orders, trades, *config.stop_args(), config.inverse,
        *(() if book is None else book.kernel_args()))
    out.update(status=int(status), orders=orders[:n_ord], trades=trades[:n_tr],
               ruin_idx=int(ruin_idx))
    return unmirror(out, config.contract_size) if config.inverse else out


def with_exchange_filters(config: Config, exchange_filters: bool | ExchangeFilters,
                          lake: str | Path | None, symbol: str) -> tuple[Config, list[str]]:
    """`config` with the symbol's exchange filters resolved (see `backtest.filters`),
    and the notes to show when they could not be applied; for cm also the contract size
    and margin coin (`backtest.inverse.resolve_contract_size`)."""
    filters, notes = resolve_filters(exchange_filters, lake, config.market, symbol)
    config = replace(config, exchange_filters=filters)
    if config.inverse:
        size, coin = resolve_contract_size(config.contract_size, lake, symbol)
        config = replace(config, contract_size=size, margin_coin=coin)
    return config, notes


def account_info(config: Config) -> dict[str, Any]:
    """What the account is in, for the result's config: ``{"account": "quote"}`` or, for
    cm, ``"coin"`` with the margin coin and the contract size."""
    if not config.inverse:
        return {"account": "quote"}
    return {"account": "coin", "margin_coin": config.margin_coin,
            "contract_size": config.contract_size}


def _status_warnings(status: int, ruin_time: str | None) -> list[str]:
    notes = []
    if status & STATUS_RUINED:
        notes.append(f"account ruined at {ruin_time}: equity gone or below the exchange's "
                     "minimum order; trading stopped there (no Sharpe/Sortino/Calmar)")
    if status & STATUS_NO_CASH:
        notes.append("an entry was skipped because equity was not positive")
    if status & STATUS_BELOW_MIN:
        notes.append("an entry was skipped: below the exchange's minimum quantity/notional")
    if status & STATUS_RECORDS_FULL:
        notes.append("record buffers overflowed; orders/trades are truncated")
    if status & STATUS_LIQUIDATED:
        notes.append("at least one position was liquidated")
    return notes


def bar_frame(data: MarketData, sig: np.ndarray, sim: dict, cash: float,
              inverse: bool = False) -> pl.DataFrame:
    """The per-bar frame of a run (see `RunResult`; inverse: position in contracts,
    cash and equity in coin, `backtest.inverse.buy_hold_equity`)."""
    b = data.bars
    n = len(b)
    entry = np.zeros(n, dtype=bool)
    exit_ = np.zeros(n, dtype=bool)
    tr = sim["trades"]
    entry[tr["entry_idx"]] = True
    exit_[tr["exit_idx"][tr["status"] != TRADE_OPEN]] = True
    equity = sim["equity"]
    peak = np.maximum.accumulate(np.concatenate(([cash], equity)))[1:]
    return pl.DataFrame({
        "open_time": pl.Series(b.open_time_us).cast(pl.Datetime("us", "UTC")),
        "open": b.open, "high": b.high, "low": b.low, "close": b.close,
        "signal": sig, "entry": entry, "exit": exit_,
        "position": sim["position"], "cash": sim["cash"], "equity": equity,
        "buy_hold_equity": (buy_hold_equity(cash, b.open[0], b.close) if inverse
                            else cash * b.close / b.open[0]),
        "drawdown": 1.0 - equity / peak,
        "cum_fees": sim["cum_fees"], "cum_funding": sim["cum_funding"],
    })


def run(strategy: str | Strategy | SignalFunc = "sma_cross",
        params: Mapping[str, Any] | None = None, *, lake: str | Path | None = None,
        market: str = "um", symbol: str = "BTCUSDT", interval: str = "1h",
        start: TimeLike | None = None, end: TimeLike | None = None, bars: Bars | None = None,
        funding_events: FundingEvents | None = None, mark_opens: MarkOpens | None = None,
        jit: bool | None = None, exchange_filters: bool | ExchangeFilters = True,
        allow_gaps: bool = False, inputs: Sequence[str] = (), slippage: str = "fixed",
        **settings: Any) -> RunResult:
    """Backtest one strategy over ``[start, end)`` of the lake (or over `bars`).

    `settings` are those of `make_config`: cash, direction, fill, fee, maker_fee,
    liquidity, slippage_bps, funding, leverage, size, maintenance_margin_rate, and the
    stops ``sl_stop`` (fraction below the entry fill for a long, above for a short),
    ``tp_stop``, ``sl_trail`` (the stop-loss follows the best price since the entry;
    resolution inside a bar, with worked numbers, in `backtest.stops`).
    `exchange_filters`: True applies the symbol's LOT_SIZE/MIN_NOTIONAL from the lake's
    cached exchangeInfo, False none, an `ExchangeFilters` the values given.
    ``market="cm"``: an inverse contract, `cash` in the margin coin and the results in
    coin, contracts and USD prices (module docstring; `contract_size` when bars are
    given without a lake).
    The lake's coverage is checked first (`backtest.coverage`): never-fetched holes refuse
    to run unless `allow_gaps`; ``config["unknown_gaps"]`` counts those run across.
    `inputs` (``open_interest``, ``ratios``, ``spread``): strategy inputs in force at each
    bar's close, on the bars the signal function gets (`backtest.inputs`);
    ``slippage="book_ticker"`` fills at the book ticker's ask/bid (`backtest.spread`).
    """
    config = make_config(market=bars.market if bars is not None else market, **settings)
    strat = get_strategy(strategy)
    resolved = strat.resolve_params(dict(params or {}))
    names = run_inputs.check(inputs, strat.inputs, slippage, config)
    data = load_market_data(lake, config.market, symbol, interval, start, end, bars=bars,
                            funding_events=funding_events, mark_opens=mark_opens,
                            funding=config.funding, allow_gaps=allow_gaps)
    b = data.bars
    config, notes = with_exchange_filters(config, exchange_filters, lake, b.symbol)
    notes[:0] = data.coverage.notes()
    extra = run_inputs.prepare(lake, b, names, slippage, config, allow_gaps)
    data, b = replace(data, bars=extra.bars), extra.bars
    notes += extra.notes
    sig = strategy_signals(strat, b, resolved, config.direction)
    sim = simulate(data, sig, config, jit, extra.book)
    metrics = compute_metrics(sim["equity"], sim["position"], sim["trades"], config.cash,
                              float(sim["cum_fees"][-1]), float(sim["cum_funding"][-1]),
                              b.bar_days, sim["ruin_idx"])
    ruin_idx = sim["ruin_idx"]
    metrics["ruin_time"] = _iso(b.open_time_us[ruin_idx]) if ruin_idx >= 0 else None
    cfg = asdict(config) | {"symbol": b.symbol, "interval": b.interval,
                            "start": _iso(b.open_time_us[0]), "end": _iso(b.open_time_us[-1]),
                            "n_bars": len(b), "coverage": data.coverage.summary(),
                            "unknown_gaps": data.coverage.n_unknown} | account_info(config) \
        | extra.config
    notes += _status_warnings(sim["status"], metrics["ruin_time"])
    return RunResult(metrics, bar_frame(data, sig, sim, config.cash, config.inverse),
                     _trades(sim["trades"], b.open_time_us, config),
                     orders_frame(sim["orders"], b.open_time_us), strat.name, resolved, cfg,
                     sim["status"], notes)


def _trades(trades: np.ndarray, open_time_us: np.ndarray, config: Config) -> pl.DataFrame:
    """The trades frame; a cm trade's return is on its coin notional (`backtest.inverse`)."""
    frame = trades_frame(trades, open_time_us)
    if not config.inverse or frame.height == 0:
        return frame
    notional = pl.col("qty") * config.contract_size / pl.col("entry_price")
    return frame.with_columns((pl.col("pnl") / notional).alias("return"))


def _iso(ts_us: int) -> str:
    return str(np.datetime64(int(ts_us), "us")) + "Z"
