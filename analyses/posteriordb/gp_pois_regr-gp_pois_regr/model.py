"""A latent Gaussian process with Poisson counts (posteriordb gp_pois_regr-gp_pois_regr),
non-centred: f = L f_tilde with L the Cholesky factor of the squared-exponential covariance."""
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

JITTER = 1e-6  # Stan adds 1e-10; float32's Cholesky needs more, which changes f by far less than its sd


def model(N, x, k):
    rho = numpyro.sample("rho", dist.Gamma(25, 4))
    alpha = numpyro.sample("alpha", dist.HalfNormal(2))
    f_tilde = numpyro.sample("f_tilde", dist.Normal(0, 1).expand([N]).to_event(1))
    distance = x[:, None] - x[None, :]
    cov = alpha**2 * jnp.exp(-0.5 * distance**2 / rho**2) + JITTER * jnp.eye(N)
    f = numpyro.deterministic("f", jnp.linalg.cholesky(cov) @ f_tilde)
    with numpyro.plate("points", N):
        numpyro.sample("k", dist.Poisson(jnp.exp(f)), obs=k)
