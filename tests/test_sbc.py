"""Simulation-based calibration catches a wrong posterior and passes a right one.

The calibration runs are slow (each NUTS refit still compiles inside NumPyro's MCMC.run,
about 2 s a simulation on 2 cores), so they run in `make test-slow`."""

import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import pytest

from probgen import ModelInputs, ModelSpec, Option
from probgen.sbc import run_sbc


def normal_mean(x=None, *, num_points, noise_sd=1.0):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("obs", num_points):
        numpyro.sample("x", dist.Normal(mu, noise_sd), obs=x)


def prepare(frame, options):
    x = frame["x"].to_numpy(np.float32)
    return ModelInputs(kwargs={"num_points": len(x), "noise_sd": float(options["noise_sd"])}, observed={"x": x})


SPEC = ModelSpec(name="normal_mean", model=normal_mean, prepare=prepare,
                 options=(Option("noise_sd", float, 1.0, "likelihood sd"),))
DESIGN = pd.DataFrame({"x": np.zeros(20)})  # 20 points; the values themselves are never fitted
SETTINGS = dict(chains=1, warmup=200, draws=400, progress=False, num_draws=49)


@pytest.fixture(scope="module")
def calibrated():
    return run_sbc(SPEC, DESIGN, "nuts", simulations=100, seed=0, **SETTINGS)


@pytest.mark.slow
def test_correct_inference_passes(calibrated):
    # With correct inference the ranks are uniform and the chi-square p-value is uniform:
    # at alpha = 0.01 a false alarm has probability 0.01 (and this seed is fixed).
    assert calibrated.passed, calibrated.summary()
    assert calibrated.ranks.shape == (100, 1) and not calibrated.failures
    assert calibrated.ranks["mu"].between(0, 49).all()


@pytest.mark.slow
def test_wrong_likelihood_variance_fails():
    # Data simulated with noise sd 1, fitted as if it were 3: the posterior is too wide, the
    # ranks pile up in the middle; 100 simulations detect it (measured adjusted p = 0.006).
    broken = run_sbc(SPEC, DESIGN, "nuts", simulations=100, seed=0, options={"noise_sd": 3.0},
                     simulation_options={"noise_sd": 1.0}, **SETTINGS)
    assert not broken.passed
    assert broken.uniformity.loc["mu", "p_adjusted"] < 0.01
    assert "NOT uniform" in broken.summary()


def test_failed_fits_are_counted_not_dropped(monkeypatch):
    from probgen.infer import mcmc

    real = mcmc.run_sampler
    calls = {"n": 0}

    def sometimes_fails(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise FloatingPointError("planted failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(mcmc, "run_sampler", sometimes_fails)
    result = run_sbc(SPEC, DESIGN, "nuts", simulations=9, seed=1, **SETTINGS)
    assert len(result.failures) == 3 and "planted failure" in result.failures[0]["error"]
    assert result.ranks["mu"].isna().sum() == 3 and len(result.ranks) == 9
    assert "3 failed" in result.summary()
