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
    return pd.DataFrame({"x": np.random.default_rng(0).normal(2.0, 1.0, size=50)})


def exact_posterior(frame):
    x = frame["x"].to_numpy()
    precision = len(x) + 1 / PRIOR_SD**2
    return x.sum() / precision, 1 / np.sqrt(precision)


@pytest.mark.parametrize("method", ["nuts", "hmc"])
def test_mcmc_matches_the_conjugate_posterior(frame, method):
    result = fit(SPEC, frame, method, seed=1, progress=False, chains=4, warmup=500, draws=1000)
    mean, sd = exact_posterior(frame)
    draws = result.idata.posterior["mu"]
    mcse = float(az.mcse(result.idata, var_names=["mu"])["mu"])
    ess = float(az.ess(result.idata, var_names=["mu"])["mu"])
    # The posterior mean estimate is off by N(0, MCSE); 4 MCSE bounds a false alarm at 6e-5.
    assert abs(float(draws.mean()) - mean) < 4 * mcse
    # The sd estimate's relative error is about 1 / sqrt(2 ESS).
    assert abs(float(draws.std()) / sd - 1) < 4 / np.sqrt(2 * ess)
    assert diagnostics.assess(result.idata, method, result.settings).overall == "trusted"
    assert set(result.idata.groups()) >= {"posterior", "sample_stats", "observed_data", "log_likelihood", "posterior_predictive"}
    assert result.idata.log_likelihood["x"].shape == (4, 1000, 50)


def test_svi_matches_the_conjugate_posterior(frame):
    result = fit(SPEC, frame, "svi", seed=1, progress=False)
    mean, sd = exact_posterior(frame)
    draws = result.idata.posterior["mu"].values.ravel()
    assert result.settings["converged"]
    # The Normal guide family holds the exact posterior; what is left is optimisation noise of
    # Adam around the optimum (a few hundredths of a sd at lr 0.01) and the sampling error of
    # 4000 draws (0.016 sd); 0.15 sd bounds both.
    assert abs(draws.mean() - mean) < 0.15 * sd
    assert abs(draws.std() / sd - 1) < 0.15
    assessment = diagnostics.assess(result.idata, "svi", result.settings)
    assert {v.check: v.status for v in assessment.verdicts}["pareto_k"] == "pass"


def test_map_finds_the_posterior_mode(frame):
    result = fit(SPEC, frame, "map", seed=1, progress=False)
    mean, sd = exact_posterior(frame)
    assert result.idata.posterior["mu"].shape == (1, 1)
    assert abs(float(result.idata.posterior["mu"].values.item()) - mean) < 0.01 * sd
    assert result.settings["converged"]


def test_posterior_predictive_has_the_predictive_spread(frame):
    result = fit(SPEC, frame, "nuts", seed=2, progress=False, chains=2, warmup=300, draws=500)
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
