"""Inference checked against a conjugate posterior: Normal mean, known noise sd.

    mu ~ Normal(0, 10),  x_i | mu ~ Normal(mu, 1),  i = 1..n
    posterior: Normal(sum(x) / (n + 1/100), 1 / sqrt(n + 1/100))
"""

import arviz as az
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

from probgen import ModelInputs, ModelSpec, diagnostics
from probgen.errors import InferenceError
from probgen.infer import default_settings, fit
from _seeds import seeded

PRIOR_SD = 10.0


def normal_mean(x=None, *, num_points):
    mu = numpyro.sample("mu", dist.Normal(0.0, PRIOR_SD))
    with numpyro.plate("obs", num_points):
        numpyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def prepare(frame, options):
    x = frame["x"].to_numpy(np.float32)
    return ModelInputs(kwargs={"num_points": len(x)}, observed={"x": x},
                       coords={"obs_id": np.arange(len(x))}, dims={"x": ["obs_id"]})


SPEC = ModelSpec(name="normal_mean", model=normal_mean, prepare=prepare)


@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame({"x": np.random.default_rng(seeded(0)).normal(2.0, 1.0, size=50)})


def exact_posterior(frame):
    x = frame["x"].to_numpy()
    precision = len(x) + 1 / PRIOR_SD**2
    return x.sum() / precision, 1 / np.sqrt(precision)


@pytest.mark.parametrize("method", ["nuts", "hmc"])
def test_mcmc_matches_the_conjugate_posterior(frame, method):
    result = fit(SPEC, frame, method, seed=seeded(1), progress=False, chains=4, warmup=500, draws=1000)
    mean, sd = exact_posterior(frame)
    draws = result.idata.posterior["mu"]
    mcse = float(az.mcse(result.idata, var_names=["mu"])["mu"])
    ess = float(az.ess(result.idata, var_names=["mu"])["mu"])
    # The posterior mean estimate is off by N(0, MCSE); 4 MCSE bounds a false alarm at 6e-5.
    assert abs(float(draws.mean()) - mean) < 4 * mcse
    # The sd estimate's relative error is about 1 / sqrt(2 ESS).
    assert abs(float(draws.std()) / sd - 1) < 4 / np.sqrt(2 * ess)
    # R-hat <= 1.01 and ESS >= 100 per chain sit near the Monte Carlo noise of a short run, so a
    # correct sampler is "suspect" under some seeds (seen under base seed 1); a wrong one fails
    # the 4-MCSE checks above. NUTS must never be "failed" here. Plain HMC may: its trajectory
    # length is fixed (2 pi), and on a Gaussian a trajectory near a multiple of the period brings
    # a chain back near its start, so one chain can mix slowly (R-hat 1.06 under base seed 2) —
    # which the verdict is right to flag, and the MCSE-scaled checks above allow for.
    if method == "nuts":
        assert diagnostics.assess(result.idata, method, result.settings).overall != "failed"
    assert set(result.idata.groups()) >= {"posterior", "sample_stats", "observed_data", "log_likelihood", "posterior_predictive"}
    assert result.idata.log_likelihood["x"].shape == (4, 1000, 50)


def test_svi_matches_the_conjugate_posterior(frame):
    result = fit(SPEC, frame, "svi", seed=seeded(1), progress=False)
    mean, sd = exact_posterior(frame)
    draws = result.idata.posterior["mu"].values.ravel()
    assert result.settings["converged"]
    # The Normal guide family holds the exact posterior; what is left is the optimisation noise
    # of the last Adam iterate and the sampling error of 4000 draws (0.016 sd). Adam moves the
    # location by about the learning rate per step whatever the gradient's scale: 0.01 here,
    # 0.07 posterior sd, and its stationary wander around the optimum spans a few steps (0.27
    # sd seen under base seed 2). A wrong likelihood or prior moves the mean by over 1 sd.
    assert abs(draws.mean() - mean) < 0.5 * sd
    assert abs(draws.std() / sd - 1) < 0.25
    assessment = diagnostics.assess(result.idata, "svi", result.settings)
    assert {v.check: v.status for v in assessment.verdicts}["pareto_k"] == "pass"


def test_map_finds_the_posterior_mode(frame):
    result = fit(SPEC, frame, "map", seed=seeded(1), progress=False)
    mean, sd = exact_posterior(frame)
    assert result.idata.posterior["mu"].shape == (1, 1)
    assert abs(float(result.idata.posterior["mu"].values.item()) - mean) < 0.01 * sd
    assert result.settings["converged"]


def test_posterior_predictive_has_the_predictive_spread(frame):
    result = fit(SPEC, frame, "nuts", seed=seeded(2), progress=False, chains=2, warmup=300, draws=500)
    predictive = result.idata.posterior_predictive["x"].values
    _, sd = exact_posterior(frame)
    expected_sd = np.sqrt(1 + sd**2)
    # 1000 draws x 50 points of a Normal: the sd estimate is within 2% at far below 1e-4 risk.
    assert abs(predictive.std() / expected_sd - 1) < 0.02


def test_unknown_method_and_settings_are_named(frame):
    with pytest.raises(InferenceError, match="unknown method 'gibbs'"):
        fit(SPEC, frame, "gibbs")
    with pytest.raises(InferenceError, match="method 'nuts' has no setting 'steps'"):
        fit(SPEC, frame, "nuts", steps=10)
    with pytest.raises(InferenceError, match="chains and draws must be >= 1"):
        fit(SPEC, frame, "nuts", chains=0)
    with pytest.raises(InferenceError, match="unknown guide 'flow'"):
        fit(SPEC, frame, "svi", guide="flow")
    assert default_settings("nuts")["chains"] == 4


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
