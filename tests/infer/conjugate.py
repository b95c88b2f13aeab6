"""The conjugate problem every inference module is checked against: a Normal mean with known
noise sd.

    mu ~ Normal(0, 10),  x_i | mu ~ Normal(mu, 1),  i = 1..n
    posterior: Normal(sum(x) / (n + 1/100), 1 / sqrt(n + 1/100))
"""

import numpy as np
import numpyro
import numpyro.distributions as dist

from probgen import ModelInputs, ModelSpec

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


def exact_posterior(frame):
    x = frame["x"].to_numpy()
    precision = len(x) + 1 / PRIOR_SD**2
    return x.sum() / precision, 1 / np.sqrt(precision)
