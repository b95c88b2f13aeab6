"""Bayesian linear regression with X a matrix (posteriordb sblri-blr)."""
import numpyro
import numpyro.distributions as dist


def model(N, D, X, y):
    beta = numpyro.sample("beta", dist.Normal(0, 10).expand([D]).to_event(1))
    sigma = numpyro.sample("sigma", dist.HalfNormal(10))
    with numpyro.plate("rows", N):
        numpyro.sample("y", dist.Normal(X @ beta, sigma), obs=y)
