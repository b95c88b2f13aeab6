"""Autoregressive density: MADE, a masked autoencoder for distribution estimation (Germain et
al. 2015), the idea behind PixelCNN and WaveNet: p(x) = prod_d p(x_d | x_<d) in a fixed order.

One network computes every conditional at once. Each unit gets a degree: input d has its
position in the order (1..D), hidden units 1..D-1, and a weight is kept only where it lets a
unit see inputs of lower or equal degree (hidden) or strictly lower degree (outputs), so output
d depends only on the inputs before d (`tests/models/test_made.py` checks the Jacobian). The
log-likelihood is exact, a sum of D conditional log densities:

    bernoulli  x_d in {0, 1}:  Bernoulli(logits)
    gaussian   x_d real:       Normal(mean, exp(log_scale))
    mog        x_d real:       a mixture of --components normals (MADE-MoG, Papamakarios et al. 2017)

Training is the VAE's minibatch trainer (`probgen.infer.amortized`, `--method svi`): the model
has no latent variables, so the guide is empty and the ELBO is the log-likelihood itself; early
stopping watches it on the validation rows. New rows are drawn one value at a time in the
order (D passes through the network). Data handling (transforms, anomaly rows, image shape) is
shared with the VAE (`probgen.models._common.tabular`).
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import flax_module

from probgen.errors import ModelError
from probgen.models._common.tabular import (
    _value_columns, check_values, data_options, parse_hidden, parse_image_shape, preprocess, to_data_units,
)
from probgen.infer.amortized import Objective
from probgen.spec import Bound, Headline, ModelInputs, ModelSpec, Option

CONDITIONALS = ("bernoulli", "gaussian", "mog")
ORDERS = ("natural", "random")


# --------------------------------------------------------------------------------------------
# Masks and the network
# --------------------------------------------------------------------------------------------
def degrees(order: tuple, hidden: tuple) -> list[np.ndarray]:
    """Degrees of the input units (order[d] = position of value d, 1..D) and of each hidden
    layer (1..D-1, cycling, so that every degree is represented when a layer is wide enough)."""
    num_dims = len(order)
    result = [np.asarray(order)]
    for size in hidden:
        result.append(np.arange(size) % max(1, num_dims - 1) + 1)
    return result


class MaskedDense(nn.Module):
    """A dense layer whose kernel is multiplied by a fixed 0/1 mask: unit i of the input may feed
    unit j of the output where out_degrees[j] >= in_degrees[i] (hidden layers), or > when
    `strict` (the outputs, value d's having degree order[d], and the direct input -> output
    connection: strictly earlier values only).

    The mask is built from the degrees inside the layer, not given as a module attribute: Flax
    copies and freezes every attribute on every module construction, and a (64 x 16) mask as a
    tuple of tuples made that most of a small MADE fit's time (1.1 million elements visited)."""

    features: int
    in_degrees: tuple
    out_degrees: tuple
    strict: bool = False

    @nn.compact
    def __call__(self, inputs):
        into, out = np.asarray(self.in_degrees)[:, None], np.asarray(self.out_degrees)[None, :]
        mask = jnp.asarray(out > into if self.strict else out >= into, dtype=inputs.dtype)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (inputs.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return inputs @ (kernel * mask) + bias


def _as_tuple(array: np.ndarray) -> tuple:
    return tuple(np.asarray(array).tolist())


class MADE(nn.Module):
    """Masked MLP: outputs (..., outputs_per_dim * D), value d's outputs at p * D + d."""

    order: tuple
    hidden: tuple
    outputs_per_dim: int

    @nn.compact
    def __call__(self, x):
        layers = degrees(self.order, self.hidden)
        outputs = _as_tuple(np.tile(np.asarray(self.order), self.outputs_per_dim))  # value d's outputs: order[d]
        h = x
        for k, size in enumerate(self.hidden):
            h = nn.relu(MaskedDense(size, _as_tuple(layers[k]), _as_tuple(layers[k + 1]))(h))
        out = MaskedDense(len(outputs), _as_tuple(layers[-1]), outputs, strict=True)(h)
        return out + MaskedDense(len(outputs), _as_tuple(self.order), outputs, strict=True, name="direct")(x)


@dataclasses.dataclass(frozen=True)
class Architecture:
    num_dims: int
    hidden: tuple
    conditional: str
    components: int
    order: tuple

    @property
    def outputs_per_dim(self) -> int:
        return {"bernoulli": 1, "gaussian": 2, "mog": 3 * self.components}[self.conditional]

    def network(self) -> MADE:
        return MADE(self.order, self.hidden, self.outputs_per_dim)

    def kwargs(self, num_points: int, batch_size: int | None = None, kl_weight: float = 1.0) -> dict:
        return {"num_points": num_points, "num_dims": self.num_dims, "hidden": self.hidden,
                "conditional": self.conditional, "components": self.components, "order": self.order,
                "batch_size": batch_size, "kl_weight": kl_weight}


def conditionals(outputs, architecture: Architecture):
    """The D conditionals as one distribution with event shape (D,), from outputs (N, P * D)."""
    outputs = outputs.reshape(outputs.shape[:-1] + (architecture.outputs_per_dim, architecture.num_dims))
    if architecture.conditional == "bernoulli":
        return dist.Bernoulli(logits=outputs[..., 0, :]).to_event(1)
    if architecture.conditional == "gaussian":
        return dist.Normal(outputs[..., 0, :], jnp.exp(jnp.clip(outputs[..., 1, :], -7.0, 7.0))).to_event(1)
    k = architecture.components
    logits, means, log_scales = (jnp.moveaxis(outputs[..., i * k:(i + 1) * k, :], -2, -1) for i in range(3))
    mixture = dist.MixtureSameFamily(dist.Categorical(logits=logits),
                                     dist.Normal(means, jnp.exp(jnp.clip(log_scales, -7.0, 7.0))))
    return mixture.to_event(1)


def made_model(x=None, *, num_points: int, num_dims: int, hidden: tuple, conditional: str, components: int,
               order: tuple, batch_size: int | None = None, kl_weight: float = 1.0):
    """p(x) = prod_d p(x_d | x_<d). x: (num_points, num_dims). Generating (x=None) goes through
    `sample_rows`, one value at a time; the model itself only scores."""
    architecture = Architecture(num_dims, tuple(hidden), conditional, components, tuple(order))
    network = flax_module("made", architecture.network(), input_shape=(1, num_dims))
    with numpyro.plate("data", num_points, subsample_size=batch_size) as rows:
        if x is None:
            raise ModelError("MADE draws new rows with sample_rows (one value at a time), not by running the model")
        batch = x[rows]
        numpyro.sample("x", conditionals(network(batch), architecture), obs=batch)


def made_guide(x=None, **kwargs):
    """No latent variables: the ELBO is the log-likelihood."""


# --------------------------------------------------------------------------------------------
# Pure functions of the trained parameters
# --------------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("architecture",))
def log_likelihood(params: dict, x, architecture: Architecture):
    """Exact log p(x_n) per row (N,)."""
    outputs = architecture.network().apply({"params": params["made$params"]}, x)
    return conditionals(outputs, architecture).log_prob(x)


@functools.partial(jax.jit, static_argnames=("architecture", "num"))
def sample_rows(params: dict, architecture: Architecture, rng_key, num: int):
    """`num` new rows, drawn value by value in the autoregressive order."""
    network = architecture.network()
    sequence = jnp.argsort(jnp.asarray(architecture.order))  # value drawn at each step

    def step(i, carry):
        x, key = carry
        key, draw_key = jax.random.split(key)
        outputs = network.apply({"params": params["made$params"]}, x)
        draws = conditionals(outputs, architecture).sample(draw_key)
        d = sequence[i]
        return x.at[:, d].set(draws[:, d].astype(x.dtype)), key

    x, _ = jax.lax.fori_loop(0, architecture.num_dims, step, (jnp.zeros((num, architecture.num_dims)), rng_key))
    return x


def architecture_from(options, num_dims: int) -> Architecture:
    if options["order"] == "random":
        order = tuple(int(v) + 1 for v in np.random.default_rng(int(options["order_seed"])).permutation(num_dims))
    else:
        order = tuple(range(1, num_dims + 1))
    return Architecture(num_dims, parse_hidden(options["hidden"]), options["conditional"], int(options["components"]),
                        order)


# --------------------------------------------------------------------------------------------
# The spec's parts: prepare, the trainer's hooks, new rows
# --------------------------------------------------------------------------------------------
def prepare(frame, options) -> ModelInputs:
    columns = _value_columns(frame, options)
    if len(frame) == 0:
        raise ModelError("the data have no rows")
    x = frame[columns].to_numpy(dtype=np.float32)
    if x.shape[1] < 2:
        raise ModelError(f"MADE needs at least 2 value columns, the data have {x.shape[1]}")
    if not parse_hidden(options["hidden"]):
        raise ModelError("--hidden must give at least one hidden layer, e.g. 256,256")
    parse_image_shape(options["image_shape"], x.shape[1], columns)
    check_values(x, "bernoulli" if options["conditional"] == "bernoulli" else "gaussian",
                 columns=[str(c) for c in columns])
    architecture = architecture_from(options, x.shape[1])
    labels = {"label": frame[options["label_column"]].to_numpy()} if options["label_column"] else {}
    return ModelInputs(
        kwargs={k: v for k, v in architecture.kwargs(x.shape[0]).items() if k not in ("batch_size", "kl_weight")},
        observed={"x": x},
        coords={"obs_id": np.arange(x.shape[0]), "feature": list(map(str, columns))},
        dims={"x": ["obs_id", "feature"]},
        labels=labels,
    )


def _architecture(kwargs) -> Architecture:
    return Architecture(kwargs["num_dims"], tuple(kwargs["hidden"]), kwargs["conditional"], kwargs["components"],
                        tuple(kwargs["order"]))


def _elbo(params, x, kwargs, rng_key):
    return log_likelihood(params, x, _architecture(kwargs))


def evaluate(params, inputs: dict, options: dict, rng_key) -> dict:
    """Exact log-likelihood of every row of every part: `{part}_scores` groups."""
    import xarray as xr

    architecture = _architecture(inputs["training"].kwargs)
    return {f"{part}_scores": xr.Dataset({"log_likelihood": ("obs_id", np.asarray(
        log_likelihood(params, jnp.asarray(part_inputs.observed["x"]), architecture)))})
        for part, part_inputs in inputs.items()}


def generate(idata, config: dict, rng_key, num_rows: int) -> np.ndarray:
    """`num_rows` new rows in the data's units (`probgen sample`)."""
    from probgen.infer.amortized import params_from_dataset

    options = config["model"]["options"]
    architecture = architecture_from(options, idata.observed_data["x"].shape[-1])
    x = np.asarray(sample_rows(params_from_dataset(idata.parameters), architecture, rng_key, int(num_rows)), np.float64)
    return to_data_units(x, options)


def report(idata, config: dict):
    from probgen.infer.amortized import params_from_dataset
    from probgen.models._common.generative import likelihood_model_report

    options = config["model"]["options"]
    architecture = architecture_from(options, idata.observed_data["x"].shape[-1])
    params = params_from_dataset(idata.parameters)

    def draw(key, num):
        return np.asarray(sample_rows(params, architecture, key, num))

    return likelihood_model_report(
        idata, config, "made", draw,
        f"MADE ({architecture.conditional} conditionals, hidden {','.join(map(str, architecture.hidden))}, "
        f"{options['order']} order): exact log-likelihood, a sum of {architecture.num_dims} conditionals")


SPEC = ModelSpec(
    name="made",
    model=made_model,
    guide=made_guide,
    prepare=prepare,
    options=(
        Option("hidden", str, "256,256", "hidden layer sizes of the masked network"),
        Option("conditional", str, "mog", "each p(x_d | x_<d): bernoulli (0/1 values), gaussian, or mog (a mixture "
                                          "of --components normals)", CONDITIONALS),
        Option("components", int, 5, "normals per conditional for --conditional mog", minimum=1),
        Option("order", str, "natural", "autoregressive order of the columns: natural (as given) or random "
                                        "(--order-seed)", ORDERS),
        Option("order_seed", int, 0, "seed of the random order"),
        *data_options("column holding each row's label (not modelled)"),
    ),
    report=report,
    parts=(Objective(elbo=_elbo, evaluate=evaluate, preprocess=preprocess, generate=generate),
           Headline(Bound("made/generated_vs_held_out/tests/*/p_value", 0, 1))),
    description="autoregressive density (MADE): masked network, exact log-likelihood, minibatch training "
                "(--method svi), samples drawn value by value",
)
