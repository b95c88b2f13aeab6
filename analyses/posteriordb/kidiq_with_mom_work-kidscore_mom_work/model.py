"""Children's test scores on the mother's work history, a categorical predictor with four
levels as three indicators (posteriordb kidiq_with_mom_work-kidscore_mom_work); flat priors."""
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(N, kid_score, mom_work):
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (4,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    mean = beta[0] + beta[1] * (mom_work == 2) + beta[2] * (mom_work == 3) + beta[3] * (mom_work == 4)
    with numpyro.plate("kids", N):
        numpyro.sample("kid_score", dist.Normal(mean, sigma), obs=kid_score)
