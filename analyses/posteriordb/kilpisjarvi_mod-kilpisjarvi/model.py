"""Summer temperature at Kilpisjärvi against the year (posteriordb kilpisjarvi_mod-kilpisjarvi),
with the priors' means and sds passed as data; the year is not centred, as in the original."""
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(N, x, y, pmualpha, psalpha, pmubeta, psbeta):
    alpha = numpyro.sample("alpha", dist.Normal(pmualpha, psalpha))
    beta = numpyro.sample("beta", dist.Normal(pmubeta, psbeta))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("years", N):
        numpyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)
