"""Children's test scores on the mother's high-school completion and IQ (posteriordb
kidiq-kidscore_momhsiq); flat priors on the coefficients, as the Stan model has none."""
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(N, kid_score, mom_hs, mom_iq):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (3,)))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    with numpyro.plate("kids", N):
        numpyro.sample("kid_score", dist.Normal(beta[0] + beta[1] * mom_hs + beta[2] * mom_iq, sigma), obs=kid_score)
