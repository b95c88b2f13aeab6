"""Eight schools, non-centred (Rubin 1981; posteriordb's eight_schools_noncentered): the small
hierarchical model that benchmarks/samplers.py times every sampler on first. Data: the eight
schools' estimated coaching effects y and their standard errors sigma (data.json)."""

import numpyro
import numpyro.distributions as dist

def model(J, y, sigma):
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0, 1))
        numpyro.sample("y", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)
