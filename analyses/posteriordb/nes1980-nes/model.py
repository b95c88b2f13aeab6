"""Party identification in the 1980 National Election Study (posteriordb nes1980-nes): ideology,
race, age group (a factor), education, gender and income; flat priors."""
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(N, partyid7, real_ideo, race_adj, educ1, gender, income, age_discrete):
    predictors = jnp.stack([real_ideo, race_adj, age_discrete == 2, age_discrete == 3, age_discrete == 4, educ1,
                            gender, income], axis=1).astype(jnp.float32)
    beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), (9,)))
    sigma = numpyro.sample("sigma", dist.ImproperUniform(constraints.positive, (), ()))
    with numpyro.plate("respondents", N):
        numpyro.sample("partyid7", dist.Normal(beta[0] + predictors @ beta[1:], sigma), obs=partyid7)
