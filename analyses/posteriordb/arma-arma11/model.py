"""ARMA(1, 1) (posteriordb arma-arma11): the one-step errors by a scan over time."""
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(T, y):
    mu = numpyro.sample("mu", dist.Normal(0, 10))
    phi = numpyro.sample("phi", dist.Normal(0, 2))
    theta = numpyro.sample("theta", dist.Normal(0, 2))
    sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
    first = y[0] - (mu + phi * mu)  # err[0] == 0 before the series

    def step(previous, t):
        error = y[t] - (mu + phi * y[t - 1] + theta * previous)
        return error, error

    _, rest = jax.lax.scan(step, first, jnp.arange(1, T))
    # y -> err is triangular with unit diagonal, so the density of y is that of err
    numpyro.sample("err", dist.Normal(0, sigma), obs=jnp.concatenate([first[None], rest]))
