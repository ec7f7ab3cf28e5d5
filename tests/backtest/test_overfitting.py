"""Deflated Sharpe Ratio and PBO (backtest.overfitting) against worked numbers.

The DSR numbers are the numerical example of Bailey and Lopez de Prado (2014), "The
Deflated Sharpe Ratio", section "A numerical example"; the PBO cases are small matrices
whose splits are worked out by hand in the comments, plus matrices whose answer is
known by construction (pure noise: 0.5 in expectation; a dominant trial: 0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    moments,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_per_period,
)


def _phi(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def test_dsr_paper_numerical_example():
    # Annualised SR 2.5 over 1250 daily returns (5 years of 250 days), N = 100 trials
    # whose annualised Sharpe ratios have variance 1/2, skewness -3, kurtosis 10:
    # the paper finds SR_0 = 0.1132 (per day) and DSR = 0.9004.
    sr = 2.5 / math.sqrt(250.0)
    sr0 = expected_max_sharpe(100, 0.5 / 250.0)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert probabilistic_sharpe_ratio(sr, sr0, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=1e-4)


@pytest.mark.parametrize(("n", "exact"), [(100, 2.50759), (1000, 3.24144)])
def test_expected_max_approximates_the_max_of_normals(n, exact):
    # E[max of n standard normals] (tabulated): the paper's closed form is an
    # approximation of it, within about 1 %; the variance scales it by sqrt(V).
    assert expected_max_sharpe(n, 1.0) == pytest.approx(exact, rel=0.012)
    assert expected_max_sharpe(n, 4.0) == pytest.approx(2.0 * expected_max_sharpe(n, 1.0))


def test_expected_max_hand_numbers():
    # N = 2: Z^-1(1/2) = 0, so SR_0 = sqrt(V) * g * Z^-1(1 - 1/(2e)).
    from statistics import NormalDist
    z = NormalDist().inv_cdf(1.0 - 1.0 / (2.0 * math.e))
    assert expected_max_sharpe(2, 0.09) == pytest.approx(0.3 * 0.5772156649 * z, rel=1e-9)
    assert expected_max_sharpe(1, 0.5) == 0.0
    assert expected_max_sharpe(50, 0.0) == 0.0


def test_psr_hand_numbers():
    # Normal returns (skew 0, kurtosis 3): z = 0.1 * sqrt(100) / sqrt(1 + 0.5 * 0.01).
    z = 1.0 / math.sqrt(1.005)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 101) == pytest.approx(_phi(z), abs=1e-12)
    # Negative skew and fat tails widen the estimate: z = 0.05 * sqrt(399) / sqrt(v).
    v = 1.0 + 1.0 * 0.1 + (9.0 - 1.0) / 4.0 * 0.01
    expect = _phi(0.05 * math.sqrt(399.0) / math.sqrt(v))
    assert probabilistic_sharpe_ratio(0.1, 0.05, 400, -1.0, 9.0) == pytest.approx(expect, abs=1e-12)
    assert probabilistic_sharpe_ratio(0.2, 0.2, 50) == pytest.approx(0.5)
    assert math.isnan(probabilistic_sharpe_ratio(math.nan, 0.0, 50))


def test_moments_and_sharpe_hand_numbers():
    # [1, 2, 3, 10]: mean 4, deviations -3 -2 -1 6: m2 = 12.5, m3 = 45, m4 = 348.5.
    skew, kurt = moments(np.array([1.0, 2.0, 3.0, 10.0]))
    assert skew == pytest.approx(45.0 / 12.5 ** 1.5, rel=1e-12)
    assert kurt == pytest.approx(348.5 / 12.5 ** 2, rel=1e-12)
    # sample std (ddof=1) of 1, 2, 3, 10 is sqrt(50 / 3)
    assert sharpe_per_period(np.array([1.0, 2.0, 3.0, 10.0])) == pytest.approx(
        4.0 / math.sqrt(50.0 / 3.0), rel=1e-12)
    assert math.isnan(sharpe_per_period(np.array([0.01, 0.01, 0.01])))


def test_deflated_sharpe_composes_the_pieces():
    rng = np.random.default_rng(3)
    r = rng.standard_t(5, 2000) * 0.01 + 0.002
    trials = np.array([0.02, -0.01, 0.05, 0.0, np.nan, sharpe_per_period(r)])
    out = deflated_sharpe_ratio(r, trials)
    finite = trials[np.isfinite(trials)]
    var = float(np.sum((finite - finite.mean()) ** 2) / (finite.shape[0] - 1))
    sr0 = expected_max_sharpe(6, var)
    skew, kurt = moments(r)
    assert out.n_trials == 6 and out.n_obs == 2000
    assert out.var_trial_sharpe == pytest.approx(var, rel=1e-12)
    assert out.expected_max_sharpe == pytest.approx(sr0, rel=1e-12)
    assert out.dsr == pytest.approx(
        probabilistic_sharpe_ratio(out.sharpe, sr0, 2000, skew, kurt), rel=1e-12)
    assert 0.0 < out.dsr < 1.0


def test_pbo_two_blocks_by_hand():
    # S = 2: block 0 = rows 0-1, block 1 = rows 2-3; two splits.
    # per-block Sharpe (mean / sample sd):  A: 2.121, 0    B: 0.707, 1.414    C: -0.707, 0.707
    # train on block 0 -> A is best; on block 1 A is the worst of 3 -> w = 1/4, logit ln(1/3)
    # train on block 1 -> B is best; on block 0 B is 2nd of 3 -> w = 2/4, logit 0 (counts)
    m = np.array([[0.02, 0.00, -0.02],
                  [0.04, 0.02, 0.00],
                  [-0.01, 0.01, 0.00],
                  [0.01, 0.03, 0.04]])
    out = probability_of_backtest_overfitting(m, n_blocks=2)
    assert out.n_splits == 2 and out.n_trials == 3 and out.rows_used == 4
    np.testing.assert_allclose(out.logits, [math.log(1.0 / 3.0), 0.0], atol=1e-12)
    assert out.pbo == 1.0


def test_pbo_four_blocks_by_hand():
    # S = 4, one row per block would be too few rows: two rows per block (8 rows) and
    # a leading extra row that is dropped (T mod S = 1). Trial X earns in blocks 0, 1,
    # trial Y in blocks 2, 3 (noise-free up and down moves of equal spread).
    up, down = [0.03, 0.01], [-0.01, -0.03]
    x = [9.0] + up + up + down + down
    y = [9.0] + down + down + up + up
    out = probability_of_backtest_overfitting(np.column_stack([x, y]), n_blocks=4)
    # 6 splits: {0,1} trains X, tests {2,3} where Y wins -> w = 1/3 (overfit);
    # {2,3} symmetric (overfit); the 4 mixed splits tie in sample (first = X wins) and
    # tie out of sample -> average rank 1.5, w = 1/2, logit 0 (counted as overfit).
    assert out.rows_used == 8 and out.n_splits == 6
    expect = sorted([math.log(0.5), math.log(0.5), 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(sorted(out.logits), expect, atol=1e-12)
    assert out.pbo == 1.0


def test_pbo_dominant_trial_is_zero():
    rng = np.random.default_rng(11)
    m = rng.normal(0.0, 0.01, (800, 25))
    m[:, 7] += 0.02  # far better in every block
    out = probability_of_backtest_overfitting(m, n_blocks=16)
    assert out.n_splits == 12870
    assert out.pbo == 0.0
    assert np.allclose(out.logits, math.log(25.0))  # rank N of N: w = N / (N + 1)


def test_pbo_anti_persistent_is_one():
    # each trial shines in its own half of the time and is the worst in the other
    rng = np.random.default_rng(5)
    m = rng.normal(0.0, 0.01, (400, 2))
    m[:200, 0] += 0.02
    m[200:, 1] += 0.02
    assert probability_of_backtest_overfitting(m, n_blocks=2).pbo == 1.0


def test_pbo_pure_noise_is_one_half_on_average():
    # Under pure noise the in-sample best's out-of-sample rank is uniform: E[PBO] = 1/2
    # (one matrix's PBO varies a lot, so average over 40 seeded matrices).
    pbos = [probability_of_backtest_overfitting(np.random.default_rng(s).normal(
        0.0, 0.01, (240, 9)), n_blocks=8).pbo for s in range(40)]
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.1)


def test_pbo_bad_input():
    m = np.zeros((40, 3))
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(m, n_blocks=3)
    with pytest.raises(ValueError, match="at least 2 trials"):
        probability_of_backtest_overfitting(m[:, :1])
    with pytest.raises(ValueError, match="too few"):
        probability_of_backtest_overfitting(m[:10], n_blocks=16)
    bad = m.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        probability_of_backtest_overfitting(bad, n_blocks=4)
    with pytest.raises(ValueError, match="positive integer"):
        expected_max_sharpe(0, 1.0)
