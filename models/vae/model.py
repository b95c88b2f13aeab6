"""The VAE's networks and NumPyro model and guide: an MLP decoder p(x | z) and an amortised
encoder q(z | x), and pure functions of their parameters (ELBO and IWAE bounds per row,
encoding, decoding, KL per latent dimension)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import flax_module

from probgen.models._common.networks import MLP  # noqa: F401  (re-exported, as before)


LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "beta", "gaussian")


def decoder_outputs(likelihood: str, num_dims: int) -> int:
    """Units of the decoder's last layer: one per value, two for the Beta's concentrations."""
    return 2 * num_dims if likelihood == "beta" else num_dims


def observation_distribution(likelihood: str, outputs, log_scale=None):
    """p(x | z) from the decoder's outputs (..., decoder_outputs) as a distribution with event
    shape (D,)."""
    if likelihood == "bernoulli":
        return dist.Bernoulli(logits=outputs).to_event(1)
    if likelihood == "continuous_bernoulli":
        return dist.ContinuousBernoulli(logits=outputs).to_event(1)
    if likelihood == "beta":
        a, b = jnp.split(outputs, 2, axis=-1)
        return dist.Beta(jax.nn.softplus(a) + 1e-4, jax.nn.softplus(b) + 1e-4).to_event(1)
    return dist.Normal(outputs, jnp.exp(log_scale)).to_event(1)


def vae_model(x=None, *, num_points: int, num_dims: int, latent_dim: int, hidden: tuple, likelihood: str,
              batch_size: int | None = None, kl_weight: float = 1.0):
    """The decoder. x: (num_points, num_dims) or None (to generate). Sites: z (per row, event
    (latent_dim,)), x (per row, event (num_dims,)); params: decoder/*, and log_scale (D,) for
    the Gaussian likelihood."""
    decoder = flax_module("decoder", MLP(tuple(reversed(hidden)), decoder_outputs(likelihood, num_dims)),
                          input_shape=(1, latent_dim))
    log_scale = numpyro.param("log_scale", jnp.zeros(num_dims)) if likelihood == "gaussian" else None
    with numpyro.plate("data", num_points, subsample_size=batch_size) as rows:
        batch = None if x is None else x[rows]
        with handlers.scale(scale=kl_weight):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        numpyro.sample("x", observation_distribution(likelihood, decoder(z), log_scale), obs=batch)


def vae_guide(x=None, *, num_points: int, num_dims: int, latent_dim: int, hidden: tuple, likelihood: str,
              batch_size: int | None = None, kl_weight: float = 1.0):
    """The encoder q(z | x) = Normal(loc(x), exp(log_scale(x))), one network with 2 L outputs."""
    encoder = flax_module("encoder", MLP(tuple(hidden), 2 * latent_dim), input_shape=(1, num_dims))
    with numpyro.plate("data", num_points, subsample_size=batch_size) as rows:
        loc, log_scale = jnp.split(encoder(x[rows]), 2, axis=-1)
        with handlers.scale(scale=kl_weight):
            numpyro.sample("z", dist.Normal(loc, jnp.exp(jnp.clip(log_scale, -10.0, 5.0))).to_event(1))


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The arguments that fix a VAE, apart from the data and the minibatch."""

    num_dims: int
    latent_dim: int
    hidden: tuple
    likelihood: str

    def kwargs(self, num_points: int, batch_size: int | None = None, kl_weight: float = 1.0) -> dict:
        return {"num_points": num_points, "num_dims": self.num_dims, "latent_dim": self.latent_dim,
                "hidden": tuple(self.hidden), "likelihood": self.likelihood, "batch_size": batch_size,
                "kl_weight": kl_weight}


# --------------------------------------------------------------------------------------------
# Evaluation: per-example ELBO and importance-weighted bound, from the trained params
# (each function one compiled program per architecture: run eagerly, every operation would be
# compiled on its own, seconds on a cold start)
# --------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("architecture", "num_samples"))
def _per_example_log_weights(params: dict, x, architecture: Architecture, rng_key, num_samples: int):
    """log p(x_n, z_nk) - log q(z_nk | x_n) for k < num_samples: (num_samples, N). The model and
    guide are the training ones, run on the whole of x without subsampling."""
    kwargs = architecture.kwargs(x.shape[0])

    def one(key):
        guide = handlers.trace(handlers.seed(handlers.substitute(vae_guide, data=params), key)).get_trace(x, **kwargs)
        z = guide["z"]["value"]
        log_q = guide["z"]["fn"].log_prob(z)
        model = handlers.trace(handlers.substitute(vae_model, data={**params, "z": z})).get_trace(x, **kwargs)
        log_p = model["z"]["fn"].log_prob(z) + model["x"]["fn"].log_prob(x)
        return log_p - log_q

    return jax.lax.map(one, jax.random.split(rng_key, num_samples))


@functools.partial(jax.jit, static_argnames=("architecture", "num_samples"))
def elbo_per_example(params: dict, x, architecture: Architecture, rng_key, num_samples: int = 1):
    """Monte Carlo ELBO of each row of x (N,), averaging `num_samples` draws from q."""
    return _per_example_log_weights(params, x, architecture, rng_key, num_samples).mean(0)


@functools.partial(jax.jit, static_argnames=("architecture", "num_samples"))
def iwae_per_example(params: dict, x, architecture: Architecture, rng_key, num_samples: int = 1000):
    """Importance-weighted lower bound log (1/K) sum_k p(x, z_k) / q(z_k | x) per row (N,), the
    held-out log-likelihood estimate; it rises towards log p(x) as K grows."""
    log_weights = _per_example_log_weights(params, x, architecture, rng_key, num_samples)
    return jax.nn.logsumexp(log_weights, axis=0) - jnp.log(num_samples)


@functools.partial(jax.jit, static_argnames=("architecture",))
def encode(params: dict, x, architecture: Architecture):
    """(loc, scale) of q(z | x) for each row: (N, L) each."""
    encoder = MLP(tuple(architecture.hidden), 2 * architecture.latent_dim)
    loc, log_scale = jnp.split(encoder.apply({"params": params["encoder$params"]}, x), 2, axis=-1)
    return loc, jnp.exp(jnp.clip(log_scale, -10.0, 5.0))


@functools.partial(jax.jit, static_argnames=("architecture",))
def decode_mean(params: dict, z, architecture: Architecture):
    """E[x | z] for each row of z: (N, D), in the data's units."""
    decoder = MLP(tuple(reversed(architecture.hidden)), decoder_outputs(architecture.likelihood, architecture.num_dims))
    outputs = decoder.apply({"params": params["decoder$params"]}, z)
    log_scale = params.get("log_scale")
    return observation_distribution(architecture.likelihood, outputs, log_scale).mean


@functools.partial(jax.jit, static_argnames=("architecture", "num", "mean"))
def sample_images(params: dict, architecture: Architecture, rng_key, num: int, mean: bool = True):
    """`num` new rows from the prior: z ~ N(0, I), then E[x | z] (mean=True) or a draw of x."""
    z_key, x_key = jax.random.split(rng_key)
    z = jax.random.normal(z_key, (num, architecture.latent_dim))
    if mean:
        return decode_mean(params, z, architecture)
    decoder = MLP(tuple(reversed(architecture.hidden)), decoder_outputs(architecture.likelihood, architecture.num_dims))
    outputs = decoder.apply({"params": params["decoder$params"]}, z)
    return observation_distribution(architecture.likelihood, outputs, params.get("log_scale")).sample(x_key)


@functools.partial(jax.jit, static_argnames=("architecture",))
def kl_per_dimension(params: dict, x, architecture: Architecture):
    """KL(q(z_l | x_n) || N(0, 1)) in closed form, averaged over rows: (L,) nats; a latent
    dimension whose average KL is near 0 carries no information about x (an inactive unit)."""
    loc, scale = encode(params, x, architecture)
    return jnp.mean(0.5 * (scale**2 + loc**2 - 1.0) - jnp.log(scale), axis=0)
