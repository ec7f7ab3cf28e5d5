"""Overfitting statistics for parameter searches: the Deflated Sharpe Ratio and the PBO.

Pure: NumPy arrays in, numbers out; no I/O, no state.

- `deflated_sharpe_ratio`: Bailey, D. H. and M. Lopez de Prado (2014), "The Deflated
  Sharpe Ratio: Correcting for Selection Bias, Backtest Overfitting and Non-Normality",
  The Journal of Portfolio Management 40 (5), 94-107. The Sharpe ratio of the selected
  strategy is tested against the Sharpe ratio the best of N unskilled trials would be
  expected to reach (`expected_max_sharpe`, the paper's eq. for ``SR_0``), with the
  Probabilistic Sharpe Ratio (`probabilistic_sharpe_ratio`), which accounts for the
  skewness and kurtosis of the returns and the length of the track record.
- `probability_of_backtest_overfitting`: Bailey, D. H., J. M. Borwein, M. Lopez de Prado
  and Q. J. Zhu (2015), "The Probability of Backtest Overfitting", Journal of
  Computational Finance 20 (4), 39-69. Combinatorially symmetric cross-validation
  (CSCV): the T x N matrix of per-period returns of N trials is cut into S blocks of
  rows; for every one of the C(S, S/2) ways of choosing half the blocks as the
  in-sample set (the rest is out-of-sample), the trial with the best in-sample Sharpe
  ratio is ranked out of sample; PBO is the share of splits where that rank is at or
  below the median (logit <= 0).

Every Sharpe ratio here is per period (not annualised): the unit the formulas need.
Kurtosis is the plain (not excess) fourth standardised moment: 3 for a normal law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def _finite(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be finite (no NaN or inf)")
    return arr


def sharpe_per_period(returns: np.ndarray) -> float:
    """mean / std (ddof=1) of one return series; NaN when it has no spread."""
    r = _finite(returns, "returns")
    if r.shape[0] < 2:
        return math.nan
    sd = float(np.std(r, ddof=1))
    return float(np.mean(r)) / sd if sd > 0.0 else math.nan


def moments(returns: np.ndarray) -> tuple[float, float]:
    """(skewness, kurtosis) of `returns` from population moments (kurtosis 3 = normal)."""
    r = _finite(returns, "returns")
    d = r - r.mean()
    m2 = float(np.mean(d * d))
    if not m2 > 0.0:
        return math.nan, math.nan
    return float(np.mean(d ** 3)) / m2 ** 1.5, float(np.mean(d ** 4)) / m2 ** 2


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """Expected maximum Sharpe ratio of `n_trials` unskilled trials (true SR 0) whose
    estimated Sharpe ratios have variance `var_sharpe` (Bailey and Lopez de Prado 2014):

    ``SR_0 = sqrt(V) * ((1 - g) * Z^-1(1 - 1/N) + g * Z^-1(1 - 1/(N e)))``,

    g the Euler-Mascheroni constant, Z^-1 the standard normal quantile. One trial has
    nothing to select from: 0.
    """
    if int(n_trials) != n_trials or n_trials < 1:
        raise ValueError(f"the number of trials must be a positive integer, got {n_trials}")
    if not (math.isfinite(var_sharpe) and var_sharpe >= 0.0):
        raise ValueError(f"the variance of the trials' Sharpe ratios must be >= 0, got {var_sharpe}")
    if n_trials == 1:
        return 0.0
    z1 = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    z2 = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(var_sharpe) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, n_obs: int,
                               skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Probability that the true Sharpe ratio exceeds `benchmark`, given the per-period
    `sharpe` estimated from `n_obs` returns of that skewness and kurtosis:

    ``PSR = Z((SR - SR*) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2))``

    (Bailey and Lopez de Prado 2014, after their 2012 "The Sharpe Ratio Efficient
    Frontier"). NaN when an input is NaN or the variance term is not positive.
    """
    if n_obs < 2:
        raise ValueError(f"the PSR needs at least 2 observations, got {n_obs}")
    values = (sharpe, benchmark, skew, kurtosis)
    if any(math.isnan(v) for v in values):
        return math.nan
    var_term = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe
    if not var_term > 0.0:
        return math.nan
    z = (sharpe - benchmark) * math.sqrt(n_obs - 1.0) / math.sqrt(var_term)
    return _NORMAL.cdf(z)


@dataclass(frozen=True)
class DeflatedSharpe:
    """The DSR of one selected strategy and the numbers it was computed from."""

    dsr: float  # probability the true Sharpe exceeds the expected best of N unskilled trials
    sharpe: float  # per-period Sharpe ratio of the selected strategy
    expected_max_sharpe: float  # SR_0, per period
    n_trials: int
    var_trial_sharpe: float  # variance (ddof=1) of the trials' per-period Sharpe ratios
    n_obs: int
    skew: float
    kurtosis: float

    def to_dict(self) -> dict[str, float | int]:
        return {"dsr": self.dsr, "sharpe": self.sharpe,
                "expected_max_sharpe": self.expected_max_sharpe, "n_trials": self.n_trials,
                "var_trial_sharpe": self.var_trial_sharpe, "n_obs": self.n_obs,
                "skew": self.skew, "kurtosis": self.kurtosis}


def deflated_sharpe_ratio(selected_returns: np.ndarray, trial_sharpes: np.ndarray
                          ) -> DeflatedSharpe:
    """DSR of the strategy whose per-period returns are `selected_returns`, chosen out of
    the trials whose per-period Sharpe ratios are `trial_sharpes` (the selected one
    included; NaN entries, trials with no spread, are left out of the variance but
    still count as trials). ``DSR = PSR(SR_0)`` with ``SR_0 = expected_max_sharpe``.
    """
    r = _finite(selected_returns, "returns")
    sr_all = np.asarray(trial_sharpes, dtype=np.float64)
    n_trials = int(sr_all.shape[0])
    if n_trials < 1:
        raise ValueError("the DSR needs at least one trial")
    finite = sr_all[np.isfinite(sr_all)]
    var = float(np.var(finite, ddof=1)) if finite.shape[0] >= 2 else 0.0
    sr0 = expected_max_sharpe(n_trials, var)
    sr = sharpe_per_period(r)
    skew, kurt = moments(r)
    dsr = probabilistic_sharpe_ratio(sr, sr0, int(r.shape[0]), skew, kurt)
    return DeflatedSharpe(dsr, sr, sr0, n_trials, var, int(r.shape[0]), skew, kurt)


@dataclass(frozen=True)
class PBOResult:
    """CSCV output: the PBO, one logit per split, and how the matrix was cut."""

    pbo: float
    logits: np.ndarray  # ln(w / (1 - w)) of the in-sample best's out-of-sample rank w
    n_blocks: int
    n_splits: int
    n_trials: int
    rows_used: int  # T minus the (T mod S) earliest rows dropped so blocks are equal

    def to_dict(self) -> dict[str, float | int]:
        return {"pbo": self.pbo, "n_blocks": self.n_blocks, "n_splits": self.n_splits,
                "n_trials": self.n_trials, "rows_used": self.rows_used,
                "logit_median": float(np.median(self.logits))}


def _sharpe_scores(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """mean / sqrt(var) elementwise; a trial with no spread scores +inf, -inf or 0 by the
    sign of its mean (so a steady winner ranks first and a flat trial in the middle)."""
    sd = np.sqrt(np.maximum(var, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mean / sd
    flat = sd <= 1e-12 * np.abs(mean)  # no spread, or only rounding left of it
    if flat.any():
        out[flat] = np.sign(mean[flat]) * np.inf
        out[flat & (mean == 0.0)] = 0.0
    return out


TIE_RTOL = 1e-12  # Sharpe ratios this close are equal (a sum's order changes the last bits)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.isclose(a, b, rtol=TIE_RTOL, atol=1e-15)


def _first_best(train: np.ndarray) -> np.ndarray:
    """Per split, the first column whose in-sample score ties the maximum."""
    return np.argmax(_same(train, train.max(axis=1, keepdims=True)), axis=1)


def _relative_rank(test: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Per split, the average rank (1 = worst) of column `best` among the test scores,
    divided by N + 1 (ties share the mean of their ranks)."""
    picked = test[np.arange(test.shape[0]), best][:, None]
    equal_mask = _same(test, picked)
    below = np.sum((test < picked) & ~equal_mask, axis=1)
    equal = np.sum(equal_mask, axis=1)
    return (below + (equal + 1) / 2.0) / (test.shape[1] + 1.0)


def probability_of_backtest_overfitting(returns: np.ndarray, n_blocks: int = 16
                                        ) -> PBOResult:
    """PBO of choosing the best of N trials by in-sample Sharpe ratio, by CSCV
    (Bailey, Borwein, Lopez de Prado and Zhu 2015).

    `returns` is T x N (per-period returns, one column per trial); `n_blocks` (S, even)
    contiguous blocks of T // S rows each (the T mod S earliest rows are dropped so the
    blocks are equal, as the paper requires). For every choice J of S/2 blocks: the
    in-sample set is J's rows, the out-of-sample set the other blocks' rows; ``n*`` is
    the trial with the best in-sample Sharpe ratio (the first of ties: scores equal to
    1e-12 relative tie), ``w`` its relative out-of-sample rank ``rank / (N + 1)`` (rank
    1 = worst; ties share their mean rank) and ``logit = ln(w / (1 - w))``.
    ``PBO = share of splits with logit <= 0``. Block statistics are summed once, so a
    split costs O(S N) whatever T is.
    """
    m = _finite(returns, "returns")
    if m.ndim != 2:
        raise ValueError(f"returns must be a T x N matrix, got shape {m.shape}")
    t_rows, n_trials = m.shape
    if int(n_blocks) != n_blocks or n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"the number of blocks must be an even integer >= 2, got {n_blocks}")
    if n_trials < 2:
        raise ValueError(f"the PBO needs at least 2 trials, got {n_trials}")
    rows = t_rows // n_blocks
    if rows < 1 or rows * n_blocks // 2 < 2:
        raise ValueError(f"{t_rows} rows are too few for {n_blocks} blocks")
    used = m[t_rows - rows * n_blocks:]
    centred = used - used.mean(axis=0)  # variance is shift-invariant: better rounding
    blocks = centred.reshape(n_blocks, rows, n_trials)
    sums, sq = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)
    shift = used.mean(axis=0)
    chosen = np.array(list(combinations(range(n_blocks), n_blocks // 2)), dtype=np.int64)
    member = np.zeros((chosen.shape[0], n_blocks))
    np.put_along_axis(member, chosen, 1.0, axis=1)
    half = rows * n_blocks // 2

    def score(mask: np.ndarray) -> np.ndarray:
        mean_c = (mask @ sums) / half  # statistics of the centred returns
        var = ((mask @ sq) - half * mean_c * mean_c) / (half - 1)
        return _sharpe_scores(mean_c + shift, var)

    train, test = score(member), score(1.0 - member)
    best = _first_best(train)
    w = _relative_rank(test, best)
    logits = np.log(w / (1.0 - w))
    pbo = float(np.mean(logits <= 0.0))
    return PBOResult(pbo, logits, int(n_blocks), int(chosen.shape[0]), int(n_trials),
                     int(used.shape[0]))
