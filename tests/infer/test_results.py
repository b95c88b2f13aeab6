"""The results built the same way for every method (`probgen.infer.results`): predictive draws,
held-out scores and the prior predictive, against their exact conjugate answers."""

import numpy as np
import pytest

from probgen.infer import fit
from _seeds import seeded
from infer.conjugate import PRIOR_SD, SPEC, exact_posterior


def test_posterior_predictive_has_the_predictive_spread(frame):
    result = fit(SPEC, frame, "nuts", seed=seeded(2), progress=False, chains=2, warmup=300, draws=500)
    predictive = result.idata.posterior_predictive["x"].values
    _, sd = exact_posterior(frame)
    expected_sd = np.sqrt(1 + sd**2)
    # 1000 draws x 50 points of a Normal: the sd estimate is within 2% at far below 1e-4 risk.
    assert abs(predictive.std() / expected_sd - 1) < 0.02


def test_held_out_rows_are_scored_against_the_exact_posterior_predictive(frame):
    from scipy import stats

    from probgen import checks
    from probgen.data import from_frame

    result = fit(SPEC, frame, "nuts", seed=seeded(3), progress=False, chains=2, warmup=300, draws=1000, holdout=0.2)
    training, held_out = from_frame(frame).split(0.2, seeded(3))  # the split fit() made: same fraction, same seed
    assert len(held_out.frame) == 10 and len(training.frame) == 40
    assert result.idata.observed_data["x"].shape == (40,)
    np.testing.assert_allclose(result.idata.held_out_data["x"].values, held_out.frame["x"].to_numpy(), rtol=1e-6)
    # pointwise log-likelihood of every draw, exactly: log N(y_i; mu_s, 1)
    mu = result.idata.posterior["mu"].values
    y = held_out.frame["x"].to_numpy()
    expected = stats.norm.logpdf(y[None, None, :], mu[..., None], 1.0)
    np.testing.assert_allclose(result.idata.held_out_log_likelihood["x"].values, expected, rtol=1e-5, atol=1e-5)
    # the log predictive density estimates sum_i log N(y_i; m, sqrt(1 + s^2)) under the exact
    # posterior of the 40 training rows; the Monte Carlo error of averaging 2000 correlated
    # draws of a density is below 0.01 nats per row here, so 0.05 nats in all is a safe bound
    mean, sd = exact_posterior(training.frame)
    exact = stats.norm.logpdf(y, mean, np.sqrt(1 + sd**2)).sum()
    scores = checks.held_out_scores(result.idata)
    assert abs(scores["log_predictive_density"] - exact) < 0.05
    assert scores["num_points"] == 10
    assert scores["cross_entropy_bits"] == pytest.approx(scores["cross_entropy_nats"] / np.log(2))
    assert result.config()["data"]["holdout"] == {"fraction": 0.2, "seed": seeded(3), "held_out_rows": 10,
                                                  "training_rows": 40, "kind": "random rows", "part": "training"}


def test_prior_predictive_follows_the_prior_and_flags_a_prior_data_conflict(frame):
    from probgen import checks

    result = fit(SPEC, frame, "map", seed=seeded(4), progress=False)  # the prior groups come with any method
    prior_mu = result.idata.prior["mu"].values.ravel()
    prior_x = result.idata.prior_predictive["x"].values
    assert prior_x.shape == (1, 500, 50) and prior_mu.shape == (500,)
    # mu ~ N(0, 10): the sd of 500 draws is within 4 standard errors (10 / sqrt(2 * 500) each)
    assert abs(prior_mu.std() - PRIOR_SD) < 4 * PRIOR_SD / np.sqrt(1000)
    # each replicated data set is mu_s + N(0, 1) noise around its own draw of mu
    np.testing.assert_allclose(prior_x.mean(-1).ravel(), prior_mu, atol=4 / np.sqrt(50))
    typical = checks.predictive_check(result.idata, "prior_predictive").table.set_index("statistic")
    assert typical["p_value"].between(0.025, 0.975).all(), typical  # data near 2, prior sd 10
    far = fit(SPEC, frame.assign(x=frame["x"] + 100.0), "map", seed=seeded(4), progress=False)
    conflict = checks.predictive_check(far.idata, "prior_predictive").table.set_index("statistic")
    # a mean of 102 is 10 prior sd out: no prior draw reaches it
    assert conflict.loc["mean", "p_value"] == 0.0 and "the prior and the data disagree" in conflict.loc["mean", "reading"]
