"""Sample-size planning and the mSPRT / z-test formulas against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlrollout.rollout.abtest import sequential as sq
from mlrollout.rollout.abtest.planning import PlanError, msprt_boundary_z, plan

Z975 = 1.959963985  # z_(1 - 0.05/2)
Z80 = 0.841621234  # z_(0.8)


def test_quantiles_are_the_normal_ones() -> None:
    assert sq.z_quantile(0.975) == pytest.approx(Z975, abs=1e-8)
    assert sq.z_quantile(0.8) == pytest.approx(Z80, abs=1e-8)
    assert sq.two_sided_p(Z975) == pytest.approx(0.05, abs=1e-9)
    assert sq.two_sided_p(0.0) == 1.0


def test_two_proportion_plan_equal_split() -> None:
    # p1 = 0.10, p2 = 0.12: pbar = 0.11, v0 = 0.11*0.89*4 = 0.3916, v1 = 2*(0.09 + 0.1056) = 0.3912
    # N = (1.959964*sqrt(0.3916) + 0.841621*sqrt(0.3912))^2 / 0.02^2 = 7681.7 -> 3841 per arm
    hand = (Z975 * math.sqrt(0.3916) + Z80 * math.sqrt(0.3912)) ** 2 / 0.0004
    assert hand == pytest.approx(7681.7, abs=0.1)
    p = plan("proportion", 0.02, 0.05, 0.8, 0.5, baseline=0.10)
    assert (p.fixed_stable, p.fixed_candidate) == (3841, 3841)
    assert p.mixing_variance == pytest.approx(0.0004)
    assert p.baseline == 0.10 and p.variance == pytest.approx(0.09)


def test_two_proportion_plan_unequal_split() -> None:
    # w = 0.2: pbar = 0.8*0.10 + 0.2*0.12 = 0.104, v0 = 0.104*0.896*(1/0.8 + 1/0.2) = 0.5824,
    # v1 = 0.09/0.8 + 0.1056/0.2 = 0.6405; N = 11764.7 -> 9412 stable, 2353 candidate
    p = plan("proportion", 0.02, 0.05, 0.8, 0.2, baseline=0.10)
    assert (p.fixed_stable, p.fixed_candidate) == (9412, 2353)


def test_lower_is_better_plans_for_a_decrease() -> None:
    # p2 = 0.08: pbar = 0.09, v0 = 0.09*0.91*4 = 0.3276, v1 = 2*(0.09 + 0.0736) = 0.3272 -> N = 6425.9
    hand = (Z975 * math.sqrt(0.3276) + Z80 * math.sqrt(0.3272)) ** 2 / 0.0004
    p = plan("proportion", 0.02, 0.05, 0.8, 0.5, higher_is_better=False, baseline=0.10)
    assert p.fixed_stable == math.ceil(hand / 2) == 3213


def test_mean_plan() -> None:
    # sigma = 5, mde = 0.5: n per arm = 2 (1.959964 + 0.841621)^2 * 25 / 0.25 = 1569.8
    p = plan("mean", 0.5, 0.05, 0.8, 0.5, variance=25.0)
    assert (p.fixed_stable, p.fixed_candidate) == (1570, 1570)
    assert p.baseline is None and p.variance == 25.0


def test_sequential_maximum_is_the_first_sample_clearing_the_boundary_with_power() -> None:
    p = plan("mean", 0.5, 0.05, 0.8, 0.5, variance=25.0)
    tau2 = 0.25

    def margin(per_arm: int) -> float:
        v = 2 * 25.0 / per_arm
        return 0.5 / math.sqrt(v) - msprt_boundary_z(v, tau2, 0.05) - Z80

    assert margin(p.sequential_stable) >= 0 > margin(p.sequential_stable - 2)
    assert 1.5 < p.sequential_stable / p.fixed_stable < 2.5  # the price of looking at every analysis


def test_boundary_by_hand() -> None:
    # V = tau2: sqrt(2 (2 ln 20 + ln 2)) = 3.6564
    assert msprt_boundary_z(1.0, 1.0, 0.05) == pytest.approx(math.sqrt(2 * (2 * math.log(20) + math.log(2))))
    assert msprt_boundary_z(1.0, 1.0, 0.05) == pytest.approx(3.6564, abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "proportion", "baseline": 0.99}, "leaves \\(0, 1\\)"),
        ({"kind": "proportion", "baseline": None}, "baseline inside"),
        ({"kind": "mean", "variance": None}, "positive variance"),
        ({"kind": "mean", "variance": 0.0}, "positive variance"),
        ({"kind": "mean", "variance": 1.0, "share": 1.0}, "share"),
    ],
)
def test_plans_that_cannot_be_made_say_why(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"mde": 0.02, "alpha": 0.05, "power": 0.8, "share": 0.5} | kwargs
    with pytest.raises(PlanError, match=message):
        plan(**args)  # type: ignore[arg-type]


def test_moments() -> None:
    mean, var = sq.moments("mean", 4, 10.0, 30.0)  # values 1, 2, 3, 4
    assert float(mean) == 2.5 and float(var) == pytest.approx(5 / 3)
    rate, bvar = sq.moments("proportion", 100, 30)
    assert float(rate) == 0.3 and float(bvar) == pytest.approx(0.21)
    with pytest.raises(ValueError, match="sum of squared values"):
        sq.moments("mean", 4, 10.0, None)
    est, v = sq.difference(np.float64(0.1), np.float64(0.09), 100, np.float64(0.3), np.float64(0.21), 50)
    assert float(est) == pytest.approx(0.2) and float(v) == pytest.approx(0.0009 + 0.0042)


def test_msprt_e_value_and_interval_by_hand() -> None:
    # theta_hat = 0.02, V = 1e-4, tau2 = 4e-4: log L = 0.5 ln(0.2) + 4e-4*4e-4 / (2e-4 * 5e-4) = 0.795281
    log_e = float(sq.msprt_log_e_value(np.float64(0.02), np.float64(1e-4), 4e-4))
    assert log_e == pytest.approx(0.5 * math.log(0.2) + 1.6, abs=1e-12)
    assert log_e == pytest.approx(0.795281, abs=1e-6)
    # half width = sqrt(1e-4 * 5e-4 / 4e-4 * (2 ln 20 + ln 5)) = 0.030824
    hw = float(sq.msprt_half_width(np.float64(1e-4), 4e-4, 0.05))
    assert hw == pytest.approx(math.sqrt(1.25e-4 * (2 * math.log(20) + math.log(5))))
    assert hw == pytest.approx(0.030824, abs=1e-6)
    # no spread observed yet: no evidence
    assert float(sq.msprt_log_e_value(np.float64(0.5), np.float64(0.0), 1.0)) == 0.0


def test_always_valid_p_is_a_running_minimum() -> None:
    p = sq.always_valid_p(np.log(np.array([0.5, 4.0, 2.0, 10.0, 1.0])), previous=0.5)
    assert p.tolist() == pytest.approx([0.5, 0.25, 0.25, 0.1, 0.1])


@given(
    estimate=st.floats(-1.0, 1.0),
    variance=st.floats(1e-6, 1.0),
    tau2=st.floats(1e-4, 1.0),
    alpha=st.floats(0.001, 0.2),
)
def test_interval_is_the_inverted_test(estimate: float, variance: float, tau2: float, alpha: float) -> None:
    """0 lies outside the always-valid interval exactly when the e-value reaches 1/alpha."""
    e, v = np.float64(estimate), np.float64(variance)
    hw = float(sq.msprt_half_width(v, tau2, alpha))
    log_e = float(sq.msprt_log_e_value(e, v, tau2))
    # at the interval's ends the e-value against that end is exactly 1/alpha
    at_end = float(sq.msprt_log_e_value(np.float64(hw), v, tau2))
    assert at_end == pytest.approx(math.log(1 / alpha), rel=1e-9)
    if abs(abs(estimate) - hw) > 1e-9 * max(1.0, hw):
        assert (abs(estimate) > hw) == (log_e > math.log(1 / alpha))


def test_z_test_by_hand() -> None:
    z = sq.z_statistic(np.float64(0.02), np.float64(1e-4))
    assert float(z) == pytest.approx(2.0)
    assert bool(sq.z_significant(np.float64(0.02), np.float64(1e-4), 0.05))
    assert not bool(sq.z_significant(np.float64(0.019), np.float64(1e-4), 0.05))
    assert sq.two_sided_p(2.0) == pytest.approx(0.0455003, abs=1e-7)
