"""NUTS and HMC (`probgen.infer.mcmc`) against the conjugate posterior."""

import arviz as az
import numpy as np
import pytest

from probgen.checks import diagnostics
from probgen.infer import fit
from _seeds import seeded
from infer.conjugate import SPEC, exact_posterior


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
        assert diagnostics.assess(result.idata, method, result.settings, facts=result.facts).overall != "failed"
    assert set(result.idata.groups()) >= {"posterior", "sample_stats", "observed_data", "log_likelihood", "posterior_predictive"}
    assert result.idata.log_likelihood["x"].shape == (4, 1000, 50)
