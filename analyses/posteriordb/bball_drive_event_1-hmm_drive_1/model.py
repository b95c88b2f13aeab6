"""A 2-state HMM of basketball drives (posteriordb bball_drive_event_1-hmm_drive_1): Gaussian
emissions of 1/speed (u) and hoop distance (v), ordered emission means, and the likelihood by a
hand-written forward algorithm in a factor term (so no LOO: it has no observed sample site)."""
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints


def model(K, N, u, v, alpha, tau, rho):
    theta1 = numpyro.sample("theta1", dist.Dirichlet(alpha[0]))
    theta2 = numpyro.sample("theta2", dist.Dirichlet(alpha[1]))
    # ordered[K] with a normal prior on each element: flat on the ordered set, times the normals
    phi = numpyro.sample("phi", dist.ImproperUniform(constraints.ordered_vector, (), (K,)))
    lam = numpyro.sample("lambda", dist.ImproperUniform(constraints.ordered_vector, (), (K,)))
    prior_means = jnp.array([0.0, 3.0])
    numpyro.factor("emission_prior", dist.Normal(prior_means, 1).log_prob(phi).sum()
                   + dist.Normal(prior_means, 1).log_prob(lam).sum())
    log_transition = jnp.log(jnp.stack([theta1, theta2]))  # [from, to]
    log_emission = dist.Normal(phi, tau).log_prob(u[:, None]) + dist.Normal(lam, rho).log_prob(v[:, None])

    def forward(gamma, emission):
        gamma = jax.nn.logsumexp(gamma[:, None] + log_transition, axis=0) + emission
        return gamma, None

    gamma, _ = jax.lax.scan(forward, log_emission[0], log_emission[1:])
    numpyro.factor("forward", jax.nn.logsumexp(gamma))
