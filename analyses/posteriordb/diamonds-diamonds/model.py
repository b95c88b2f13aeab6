"""Diamond prices on 24 correlated predictors (posteriordb diamonds-diamonds, from brms):
centred predictors, a temporary intercept, normal(0, 1) slopes."""
import numpyro
import numpyro.distributions as dist


def model(N, K, X, Y):
    Xc = X[:, 1:] - X[:, 1:].mean(axis=0)
    b = numpyro.sample("b", dist.Normal(0, 1).expand([K - 1]).to_event(1))
    intercept = numpyro.sample("Intercept", dist.StudentT(3, 8, 10))
    sigma = numpyro.sample("sigma", dist.TruncatedDistribution(dist.StudentT(3, 0, 10), low=0.0))
    with numpyro.plate("rows", N):
        numpyro.sample("Y", dist.Normal(intercept + Xc @ b, sigma), obs=Y)
