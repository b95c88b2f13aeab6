"""log earnings on standardised height, sex and their interaction (posteriordb
earnings-logearn_interaction_z); flat priors, as the Stan model has none."""
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(N, earn, height, male):
    z_height = (height - height.mean()) / jnp.std(height, ddof=1)
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (4,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    mean = beta[0] + beta[1] * z_height + beta[2] * male + beta[3] * z_height * male
    with numpyro.plate("people", N):
        numpyro.sample("log_earn", dist.Normal(mean, sigma), obs=jnp.log(earn))
