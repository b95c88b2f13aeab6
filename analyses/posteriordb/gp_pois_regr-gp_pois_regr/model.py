"""A latent Gaussian process with Poisson counts (posteriordb gp_pois_regr-gp_pois_regr),
non-centred: f = L f_tilde with L the Cholesky factor of the squared-exponential covariance.

Double precision: with length scales near 6 on points 2 apart the covariance is nearly singular,
and float32's Cholesky breaks down there (chains stuck: 0 of 13 parameters matched the
reference in float32, 13 of 13 in float64). A model file that needs it says so, as here."""
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

jax.config.update("jax_enable_x64", True)
JITTER = 1e-10  # as Stan


def model(N, x, k):
    rho = numpyro.sample("rho", dist.Gamma(25, 4))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2))
    f_tilde = numpyro.sample("f_tilde", dist.Normal(0, 1).expand([N]).to_event(1))
    distance = x[:, None] - x[None, :]
    cov = alpha**2 * jnp.exp(-0.5 * distance**2 / rho**2) + JITTER * jnp.eye(N)
    f = numpyro.deterministic("f", jnp.linalg.cholesky(cov) @ f_tilde)
    with numpyro.plate("points", N):
        numpyro.sample("k", dist.Poisson(jnp.exp(f)), obs=k)
