"""The neural language models' networks (Flax linen) and their NumPyro model and guide.

Both networks read rows of `context + block` symbols (`text.rows`) and return features for the
last `block` positions, each from the `context` symbols before it within its own document
(a PAD starts a document: `segments`):

- `BengioMLP` (Bengio et al. 2003): embeddings of the last `context` symbols, concatenated,
  a tanh hidden layer;
- `CausalTransformer`: token and position embeddings, pre-norm blocks of multi-head causal
  self-attention (each position sees at most `context` symbols back, never an earlier
  document) and an MLP; the attention weights are sown as intermediates for the report.

The softmax layer (`head`) is apart: a point estimate (`flax_module`, MAP) or Bayesian
(`random_flax_module` with a Normal prior, and a mean-field Normal guide) when `bayesian_head`.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import flax_module, random_flax_module

from probgen.models._common.lm.text import PAD


def segments(x):
    """Document number of each position of each row (a PAD opens a document)."""
    return jnp.cumsum(x == PAD, axis=-1)


class BengioMLP(nn.Module):
    size: int
    context: int
    embedding: int = 32
    hidden: int = 256

    @nn.compact
    def __call__(self, x):
        block = x.shape[-1] - self.context
        positions = self.context + jnp.arange(block)
        window = positions[:, None] - self.context + jnp.arange(self.context)[None, :]  # (block, context)
        symbols = x[..., window]  # (..., block, context)
        segment = segments(x)
        same = segment[..., window] == segment[..., positions - 1][..., None]
        symbols = jnp.where(same, symbols, PAD)
        embedded = nn.Embed(self.size, self.embedding)(symbols)
        flat = embedded.reshape(embedded.shape[:-2] + (self.context * self.embedding,))
        return jnp.tanh(nn.Dense(self.hidden)(flat))


class Attention(nn.Module):
    heads: int
    width: int

    @nn.compact
    def __call__(self, h, mask):
        size = self.width // self.heads
        q, k, v = (nn.Dense(self.width)(h).reshape(h.shape[:-1] + (self.heads, size)) for _ in range(3))
        scores = jnp.einsum("...qhd,...khd->...hqk", q, k) / jnp.sqrt(size)
        scores = jnp.where(mask[..., None, :, :], scores, -1e9)
        weights = jax.nn.softmax(scores, axis=-1)
        self.sow("intermediates", "attention", weights)
        out = jnp.einsum("...hqk,...khd->...qhd", weights, v).reshape(h.shape)
        return nn.Dense(self.width)(out)


class CausalTransformer(nn.Module):
    size: int
    context: int
    longest: int  # the longest row it reads (context + block - 1 inputs): its position table
    width: int = 128
    heads: int = 4
    layers: int = 3

    @nn.compact
    def __call__(self, x):
        inputs = x[..., :-1]  # position i predicts symbol i + 1
        length = inputs.shape[-1]
        h = nn.Embed(self.size, self.width)(inputs) + nn.Embed(self.longest, self.width)(jnp.arange(length))
        segment = segments(inputs)
        query, key = jnp.arange(length)[:, None], jnp.arange(length)[None, :]
        mask = (key <= query) & (query - key < self.context) & (segment[..., :, None] == segment[..., None, :])
        for _ in range(self.layers):
            h = h + Attention(self.heads, self.width)(nn.LayerNorm()(h), mask)
            h = h + nn.Dense(self.width)(nn.gelu(nn.Dense(4 * self.width)(nn.LayerNorm()(h))))
        return nn.LayerNorm()(h)[..., self.context - 1:, :]


@dataclasses.dataclass(frozen=True)
class Architecture:
    kind: str  # "bengio" | "attention"
    size: int
    context: int
    block: int
    embedding: int
    hidden: int
    heads: int
    layers: int

    def network(self) -> nn.Module:
        if self.kind == "bengio":
            return BengioMLP(self.size, self.context, self.embedding, self.hidden)
        return CausalTransformer(self.size, self.context, self.width - 1, self.hidden, self.heads, self.layers)

    @property
    def width(self) -> int:
        return self.context + self.block


def _head_sites(architecture: Architecture):
    """(sample site that random_flax_module names, guide parameter prefix, shape) of the head."""
    return (("head/kernel", "head_kernel", (architecture.hidden, architecture.size)),
            ("head/bias", "head_bias", (architecture.size,)))


def lm_model(x=None, *, num_points: int, architecture: Architecture, bayesian_head: bool = False,
             prior_scale: float = 1.0, batch_size: int | None = None, kl_weight: float = 1.0, **labels):
    """x: (num_points, context + block) rows of symbols; each row's last `block` symbols that
    are not PAD are observed, each given the `context` before it."""
    network = flax_module("network", architecture.network(), jnp.zeros((1, architecture.width), jnp.int32))
    if bayesian_head:
        with handlers.scale(scale=kl_weight):
            head = random_flax_module("head", nn.Dense(architecture.size), dist.Normal(0.0, prior_scale),
                                      input_shape=(1, architecture.hidden))
    else:
        head = flax_module("head", nn.Dense(architecture.size), input_shape=(1, architecture.hidden))
    with numpyro.plate("data", num_points, subsample_size=batch_size) as rows:
        batch = x[rows]
        logits = head(network(batch)).at[..., PAD].set(-1e9)
        targets = batch[:, architecture.context:]
        numpyro.sample("x", dist.Categorical(logits=logits).mask(targets != PAD).to_event(1), obs=targets)


def lm_guide(x=None, *, num_points: int, architecture: Architecture, bayesian_head: bool = False,
             prior_scale: float = 1.0, batch_size: int | None = None, kl_weight: float = 1.0, **labels):
    """Mean-field Normal over the Bayesian head's weights (nothing to infer without one: the
    networks are point estimates)."""
    if not bayesian_head:
        return
    with handlers.scale(scale=kl_weight):
        for name, prefix, shape in _head_sites(architecture):
            loc = numpyro.param(f"{prefix}_loc", jnp.zeros(shape))
            scale = numpyro.param(f"{prefix}_scale", jnp.full(shape, 0.01 * prior_scale),
                                  constraint=dist.constraints.softplus_positive)
            numpyro.sample(name, dist.Normal(loc, scale).to_event(len(shape)))


def network_params(params: dict) -> dict:
    """The Flax variables of the network from the SVI params (`network$params`)."""
    return {"params": params["network$params"]}


def head_mean(params: dict, bayesian_head: bool) -> dict:
    """The head's weights: the point estimate, or the guide's mean."""
    if bayesian_head:
        return {"kernel": params["head_kernel_loc"], "bias": params["head_bias_loc"]}
    return params["head$params"]


def head_draws(params: dict, key, num_draws: int) -> dict:
    """num_draws draws of the head's weights from the guide: {kernel (S, H, V), bias (S, V)}."""
    out = {}
    for short in ("kernel", "bias"):
        key, subkey = jax.random.split(key)
        loc, scale = params[f"head_{short}_loc"], params[f"head_{short}_scale"]
        out[short] = loc + scale * jax.random.normal(subkey, (num_draws,) + loc.shape)
    return out


def attention_weights(architecture: Architecture, params: dict, row):
    """(layers, heads, length, length) attention weights of one row."""
    module = architecture.network()
    _, state = module.apply(network_params(params), row[None], mutable=["intermediates"])
    found = state["intermediates"]
    layers = sorted(found, key=lambda name: int(name.split("_")[-1]))
    return jnp.stack([found[name]["attention"][0][0] for name in layers])
