"""The VAE family against closed forms: the linear-Gaussian VAE's ELBO and marginal likelihood,
the importance-weighted bound, minibatch scaling, bad input (the trainer itself:
tests/infer/test_amortized.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import Trace_ELBO
from scipy import stats

from probgen.errors import ModelError
from probgen.models import vae
from _seeds import seeded

L, D = 2, 3
LINEAR = vae.Architecture(num_dims=D, latent_dim=L, hidden=(), likelihood="gaussian")


def linear_params(rng):
    """A linear-Gaussian VAE's parameters in Flax's layout: decoder mean z K + b, noise sd
    sigma; encoder loc = x A + c, log-scale = x E + e (deliberately not the exact posterior)."""
    K, b = rng.normal(size=(L, D)), rng.normal(size=D)
    sigma = rng.uniform(0.5, 1.2, size=D)
    A, c = rng.normal(scale=0.3, size=(D, L)), rng.normal(scale=0.3, size=L)
    E, e = rng.normal(scale=0.1, size=(D, L)), rng.normal(scale=0.3, size=L) - 0.5
    params = {
        "decoder$params": {"Dense_0": {"kernel": jnp.asarray(K, jnp.float32), "bias": jnp.asarray(b, jnp.float32)}},
        "encoder$params": {"Dense_0": {"kernel": jnp.asarray(np.concatenate([A, E], 1), jnp.float32),
                                       "bias": jnp.asarray(np.concatenate([c, e]), jnp.float32)}},
        "log_scale": jnp.asarray(np.log(sigma), jnp.float32),
    }
    return params, (K, b, sigma, A, c, E, e)


def closed_form_elbo(x, K, b, sigma, A, c, E, e):
    """ELBO per row = E_q log p(x | z) - KL(q || N(0, I)), both in closed form."""
    m, s = x @ A + c, np.exp(x @ E + e)
    mean = m @ K + b
    expected = (-0.5 * np.log(2 * np.pi * sigma**2) - ((x - mean) ** 2 + (s**2) @ (K**2)) / (2 * sigma**2)).sum(1)
    kl = (0.5 * (s**2 + m**2 - 1) - np.log(s)).sum(1)
    return expected - kl


def test_elbo_matches_the_closed_form_of_the_linear_gaussian_vae():
    rng = np.random.default_rng(seeded(0))
    params, truth = linear_params(rng)
    x = rng.normal(size=(40, D)).astype(np.float32)
    weights = np.asarray(vae._per_example_log_weights(params, jnp.asarray(x), LINEAR, jax.random.PRNGKey(seeded(1)), 4000))
    estimate = weights.mean(0)
    standard_error = weights.std(0, ddof=1) / np.sqrt(len(weights))
    exact = closed_form_elbo(x.astype(np.float64), *truth)
    # each row's Monte Carlo estimate is within 4.5 SE (40 rows: a false alarm has probability ~3e-4)
    assert np.all(np.abs(estimate - exact) < 4.5 * standard_error + 1e-4), np.max(np.abs(estimate - exact) / standard_error)


def test_iwae_rises_with_k_and_stays_below_the_exact_log_likelihood():
    # the encoder and data are the test's fixed design (a deliberately poor encoder: how poor
    # decides how fast the gap closes); the base seed varies the importance samples
    rng = np.random.default_rng(1)
    params, (K, b, sigma, *_) = linear_params(rng)
    x = rng.normal(size=(200, D)).astype(np.float32) + b.astype(np.float32)
    exact = stats.multivariate_normal(b, K.T @ K + np.diag(sigma**2)).logpdf(x).mean()
    bounds = {k: float(vae.iwae_per_example(params, jnp.asarray(x), LINEAR, jax.random.PRNGKey(seeded(k)), k).mean())
              for k in (1, 10, 100, 1000)}
    assert bounds[1] < bounds[10] < bounds[100] < bounds[1000]
    # the bound's average over 200 rows sits below log p(x); its Monte Carlo error at K = 1000 is
    # far below the 0.01 nats allowed
    assert bounds[1000] < exact + 0.01
    # the gap closes: by K = 1000 it is under a tenth of the ELBO's (measured 0.13 against 2.58
    # nats for this deliberately poor encoder)
    assert exact - bounds[1000] < 0.1 * (exact - bounds[1]), (exact, bounds)


def test_minibatch_elbo_is_scaled_to_the_whole_data_set():
    """Trace_ELBO on a subsampled plate: the mean of many minibatch estimates equals the
    full-data estimate (unbiased), which is what subsample_size's N / B scaling guarantees."""
    rng = np.random.default_rng(seeded(2))
    params, _ = linear_params(rng)
    x = jnp.asarray(rng.normal(size=(60, D)), jnp.float32)
    elbo = Trace_ELBO(num_particles=1)

    def loss(key, batch_size):
        from numpyro import handlers

        model = handlers.substitute(vae.vae_model, data=params)
        guide = handlers.substitute(vae.vae_guide, data=params)
        return elbo.loss(key, {}, model, guide, x, **LINEAR.kwargs(60, batch_size))

    minibatch = np.asarray(jax.vmap(lambda k: loss(k, 10))(jax.random.split(jax.random.PRNGKey(seeded(0)), 1500)))
    full = np.asarray(jax.vmap(lambda k: loss(k, None))(jax.random.split(jax.random.PRNGKey(seeded(1)), 1500)))
    se = np.sqrt(minibatch.var() / len(minibatch) + full.var() / len(full))
    assert abs(minibatch.mean() - full.mean()) < 4 * se, (minibatch.mean(), full.mean(), se)
    assert minibatch.std() > full.std()  # the subsampling noise is there, and only adds variance


@pytest.mark.parametrize("likelihood, values, message", [
    ("bernoulli", [[0.0, 1.0], [0.5, 1.0]], r"values 0 or 1 .*0\.5 in column 1, row 2"),
    ("continuous_bernoulli", [[0.0, 1.2]], r"in \[0, 1\].*1\.2 in column 2, row 1"),
    ("beta", [[0.5, 0.0]], r"strictly inside \(0, 1\).*0 in column 2, row 1"),
])
def test_values_outside_the_likelihood_support_are_named(likelihood, values, message):
    with pytest.raises(ModelError, match=message):
        vae.check_values(np.array(values), likelihood)
