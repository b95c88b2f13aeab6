"""Mesquite bush weight on log canopy measures (posteriordb mesquite-logmesquite_logvash); flat priors."""
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(N, weight, diam1, diam2, canopy_height, total_height, group):
    predictors = jnp.stack([jnp.log(diam1 * diam2 * canopy_height), jnp.log(diam1 * diam2), jnp.log(diam1 / diam2),
                            jnp.log(total_height), group], axis=1)
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (6,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("bushes", N):
        numpyro.sample("log_weight", dist.Normal(beta[0] + predictors @ beta[1:], sigma), obs=jnp.log(weight))
