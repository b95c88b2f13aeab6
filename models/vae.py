"""Variational autoencoder: a decoder network as a NumPyro model, an encoder network as its guide.

    z_n ~ Normal(0, I_L)                                       (L = latent_dim)
    x_n | z_n ~ likelihood(decoder(z_n))                       (D = number of pixels or values)
      bernoulli             x in {0, 1}:   Bernoulli(logits = decoder(z))
      continuous_bernoulli  x in [0, 1]:   ContinuousBernoulli(logits = decoder(z))
      beta                  x in (0, 1):   Beta(softplus(a(z)), softplus(b(z)))
      gaussian              x real:        Normal(decoder(z), exp(log_scale)), log_scale (D,) learned
    q(z_n | x_n) = Normal(encoder_loc(x_n), exp(encoder_log_scale(x_n)))   (amortised guide)

The networks are multilayer perceptrons written with Flax (linen) and registered in the model
and guide by `numpyro.contrib.module.flax_module`, so their weights are NumPyro params that SVI
optimises. With `hidden=()` both networks are affine: the linear-Gaussian VAE, whose marginal
likelihood and ELBO have closed forms (the tests check ours against them).

Both model and guide take the same arguments; `batch_size` makes the data plate subsample
(`numpyro.plate(..., subsample_size=...)`), which scales each minibatch's log-density by
N / batch_size, so the ELBO estimate stays unbiased for the whole data set. `kl_weight` scales
the latent site in model and guide alike, i.e. multiplies the KL term of the ELBO (annealing
from 0 to 1 over the first steps; 1 is the true ELBO).

Flax is the network library (NumPyro supports it first-class, it is maintained by Google and
used across the JAX ecosystem); the linen API is used because `flax_module` wraps it directly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.contrib.module import flax_module

LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "beta", "gaussian")


class MLP(nn.Module):
    """Dense layers of `hidden` sizes with `activation` between them, then a linear layer of
    `outputs` units (no hidden sizes: a single affine map)."""

    hidden: Sequence[int]
    outputs: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, inputs):
        h = inputs
        for size in self.hidden:
            h = getattr(nn, self.activation)(nn.Dense(size)(h))
        return nn.Dense(self.outputs)(h)


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


def check_values(x: np.ndarray, likelihood: str, label: str = "the data", columns=None) -> None:
    """Raise ModelError naming the first value outside the likelihood's support (its row, and
    its column by name when `columns` are given)."""
    from probgen.errors import ModelError

    x = np.asarray(x)
    if likelihood == "bernoulli":
        bad = np.flatnonzero(~np.isin(x.ravel(), (0.0, 1.0)))
        need = "0 or 1 (binarise the images first)"
    elif likelihood == "continuous_bernoulli":
        bad = np.flatnonzero((x.ravel() < 0) | (x.ravel() > 1))
        need = "in [0, 1] (scale the images first)"
    elif likelihood == "beta":
        bad = np.flatnonzero((x.ravel() <= 0) | (x.ravel() >= 1))
        need = "strictly inside (0, 1) (squeeze them, e.g. (x + 0.5 / 256) * 255 / 256)"
    else:
        bad = np.array([], int)
        need = ""
    if len(bad):
        row, column = np.unravel_index(bad[0], x.shape)
        where = f"column '{columns[column]}'" if columns is not None else f"column {column + 1}"
        raise ModelError(f"--likelihood {likelihood} needs values {need}; {label} have {float(x.ravel()[bad[0]]):.6g} in "
                         f"{where}, row {row + 1}, and {len(bad)} such value(s) in all")


# --------------------------------------------------------------------------------------------
# The SPEC: `probgen fit vae --data ... --method svi`
# --------------------------------------------------------------------------------------------
TRANSFORMS = ("none", "dequantize", "binarize", "scale")
ACTIVE_UNIT_NATS = 0.01  # mean KL of a latent dimension below which it counts as inactive


def parse_hidden(text: str) -> tuple:
    """"128,64" -> (128, 64); "" -> () (affine encoder and decoder)."""
    from probgen.errors import ModelError

    try:
        sizes = tuple(int(part) for part in str(text).replace(" ", "").split(",") if part)
    except ValueError:
        raise ModelError(f"--hidden must be comma-separated layer sizes such as 128,64, got '{text}'") from None
    if any(size < 1 for size in sizes):
        raise ModelError(f"--hidden layer sizes must be >= 1, got '{text}'")
    return sizes


def parse_image_shape(text: str, num_dims: int, columns=None) -> tuple | None:
    """"8x8" -> (8, 8), checked against the number of values per row; "" -> a square shape
    when num_dims is a perfect square, else None (the data are not shown as images)."""
    from probgen.errors import ModelError

    if not text:
        side = int(round(math.sqrt(num_dims)))
        return (side, side) if side * side == num_dims and num_dims >= 4 else None
    try:
        shape = tuple(int(part) for part in str(text).lower().split("x"))
    except ValueError:
        raise ModelError(f"--image-shape must look like 8x8 (height x width), got '{text}'") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ModelError(f"--image-shape must be height x width with both >= 1, got '{text}'")
    if shape[0] * shape[1] != num_dims:
        raise ModelError(f"--image-shape {text} needs {shape[0] * shape[1]} values per row, but the data have "
                         f"{num_dims} value columns" + (f" ({columns[0]} .. {columns[-1]})" if columns else ""))
    return shape


def _value_columns(frame, options) -> list:
    return [c for c in frame.columns if c != options["label_column"]]


def preprocess(frame, options, seed: int):
    """The whole table, transformed once, and the rows of `--anomaly-label` set apart.

    transform: dequantize (integers 0..L-1 become (v + u) / L, u ~ Uniform(0, 1) drawn with
    the seed, Theis et al. 2016: a density on [0, 1] whose log-likelihood plus D log L bounds
    the discrete one), binarize (v >= L / 2 becomes 1, else 0), scale (v / (L - 1)), or none.
    """
    from probgen.errors import ModelError

    label_column = options["label_column"]
    if label_column and label_column not in frame.columns:
        raise ModelError(f"--label-column '{label_column}' is not a column of the data "
                         f"(columns: {', '.join(map(str, frame.columns[:8]))}{' ...' if len(frame.columns) > 8 else ''})")
    if options["anomaly_label"] >= 0 and not label_column:
        raise ModelError("--anomaly-label needs --label-column (the column holding each row's label)")
    columns = _value_columns(frame, options)
    if not columns:
        raise ModelError("the data have no value columns besides the label")
    values = frame[columns].to_numpy(dtype=np.float64)
    transform, levels = options["transform"], int(options["pixel_levels"])
    if transform != "none":
        if levels < 2:
            raise ModelError(f"--transform {transform} needs --pixel-levels L >= 2 (values are integers 0..L-1)")
        bad = np.flatnonzero(~((values == np.round(values)) & (values >= 0) & (values <= levels - 1)).ravel())
        if len(bad):
            row, column = np.unravel_index(bad[0], values.shape)
            raise ModelError(f"--transform {transform} with --pixel-levels {levels} needs integers 0..{levels - 1}; "
                             f"column '{columns[column]}' row {row + 1} is {values[row, column]:g} ({len(bad)} such "
                             "value(s) in all)")
        if transform == "dequantize":
            values = (values + np.random.default_rng(seed).random(values.shape)) / levels
        elif transform == "binarize":
            values = (values >= levels / 2).astype(np.float64)
        else:
            values = values / (levels - 1)
    out = frame.copy()
    out[columns] = values
    if options["anomaly_label"] < 0:
        return out, None
    is_anomaly = frame[label_column].to_numpy() == options["anomaly_label"]
    if not is_anomaly.any() or is_anomaly.all():
        raise ModelError(f"--anomaly-label {options['anomaly_label']}: {int(is_anomaly.sum())} of {len(frame)} rows "
                         f"have that label in column '{label_column}'; it must pick some rows but not all")
    return out[~is_anomaly], out[is_anomaly]


def architecture_from(options, num_dims: int) -> Architecture:
    return Architecture(num_dims=num_dims, latent_dim=int(options["latent_dim"]), hidden=parse_hidden(options["hidden"]),
                        likelihood=options["likelihood"])


def prepare(frame, options):
    """Rows as x (N, D) float32 (every column but --label-column), checked against the
    likelihood's support and --image-shape; labels (N,) when there is a label column."""
    from probgen.errors import ModelError
    from probgen.spec import ModelInputs

    if options["latent_dim"] < 1:
        raise ModelError(f"--latent-dim must be >= 1, got {options['latent_dim']}")
    if options["iwae_samples"] < 1:
        raise ModelError(f"--iwae-samples must be >= 1, got {options['iwae_samples']}")
    columns = _value_columns(frame, options)
    if len(frame) == 0:
        raise ModelError("the data have no rows")
    x = frame[columns].to_numpy(dtype=np.float32)
    parse_image_shape(options["image_shape"], x.shape[1], columns)
    check_values(x, options["likelihood"], columns=[str(c) for c in columns])
    architecture = architecture_from(options, x.shape[1])
    labels = {"label": frame[options["label_column"]].to_numpy()} if options["label_column"] else {}
    return ModelInputs(
        kwargs={k: v for k, v in architecture.kwargs(x.shape[0]).items() if k not in ("batch_size", "kl_weight")},
        observed={"x": x},
        coords={"obs_id": np.arange(x.shape[0]), "feature": list(map(str, columns)),
                "latent": np.arange(architecture.latent_dim)},
        dims={"x": ["obs_id", "feature"], "z": ["obs_id", "latent"]},
        labels=labels,
    )


def _elbo(params, x, kwargs, rng_key):
    architecture = Architecture(kwargs["num_dims"], kwargs["latent_dim"], tuple(kwargs["hidden"]), kwargs["likelihood"])
    return elbo_per_example(params, x, architecture, rng_key)


def evaluate(params, inputs: dict, options: dict, rng_key) -> dict:
    """Per-row scores of every part: ELBO (10 draws from q) for all; for the held-out and
    anomaly rows also the IWAE bound (K = iwae_samples) and the encoder's mean and sd."""
    import xarray as xr

    kwargs = inputs["training"].kwargs
    architecture = Architecture(kwargs["num_dims"], kwargs["latent_dim"], tuple(kwargs["hidden"]), kwargs["likelihood"])
    samples = int(options["iwae_samples"])
    groups = {}
    for index, (part, part_inputs) in enumerate(sorted(inputs.items())):
        x = jnp.asarray(part_inputs.observed["x"])
        key = jax.random.fold_in(rng_key, index)
        scores = {"elbo": ("obs_id", np.asarray(elbo_per_example(params, x, architecture, key, 10)))}
        if part in ("held_out", "anomaly"):
            scores["iwae"] = ("obs_id", np.asarray(iwae_per_example(params, x, architecture, jax.random.fold_in(key, 1),
                                                                    samples)))
            loc, scale = encode(params, x, architecture)
            scores["z_loc"] = (("obs_id", "latent"), np.asarray(loc))
            scores["z_scale"] = (("obs_id", "latent"), np.asarray(scale))
        groups[f"{part}_scores"] = xr.Dataset(scores)
    return groups


def _mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")


def report(idata, config: dict):
    """The VAE's report (`ReportPart`): the latent-dimension summary table, sections, metrics,
    figures. Everything is read from the run's InferenceData (network parameters, per-row
    scores, data), so `probgen report RUN_DIR` rebuilds the same report."""
    import pandas as pd

    from probgen import checks, two_sample, metrics as information
    from probgen.infer.amortized import params_from_dataset
    from probgen.spec import ReportPart, Section

    options = config["model"]["options"]
    seed = int(config.get("seed", 0))
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 7)
    params = params_from_dataset(idata.parameters)
    x_train = idata.observed_data["x"].values
    architecture = architecture_from(options, x_train.shape[1])
    held = idata.held_out_scores
    x_held = idata.held_out_data["x"].values
    num_dims = architecture.num_dims
    levels = int(options.get("pixel_levels", 0))

    # ---- likelihoods ------------------------------------------------------------------------
    rows = []
    for part, label in (("training", "training rows"), ("validation", "validation rows (early stopping)"),
                        ("held_out", "held-out rows")):
        if f"{part}_scores" in idata.groups():
            mean, se = _mean_se(idata[f"{part}_scores"]["elbo"].values)
            rows.append({"bound": f"ELBO, {label}", "rows": idata[f"{part}_scores"].sizes["obs_id"],
                         "nats_per_example": mean, "se": se})
    iwae_mean, iwae_se = _mean_se(held["iwae"].values)
    samples = int(options["iwae_samples"])
    rows.append({"bound": f"IWAE (K = {samples}), held-out rows", "rows": int(held.sizes["obs_id"]),
                 "nats_per_example": iwae_mean, "se": iwae_se})
    table = pd.DataFrame(rows).set_index("bound")
    table["bits_per_dimension"] = -table["nats_per_example"] / (num_dims * math.log(2))
    likelihood = {"elbo": {r["bound"]: {"nats_per_example": r["nats_per_example"], "se": r["se"]} for r in rows[:-1]},
                  "iwae": {"samples": samples, "nats_per_example": iwae_mean, "se": iwae_se,
                           "bits_per_dimension": -iwae_mean / (num_dims * math.log(2))}}
    bits = -iwae_mean / (num_dims * math.log(2))
    text = (f"The importance-weighted bound with K = {samples} samples is the held-out log-likelihood estimate: "
            f"{iwae_mean:.2f} nats per example (SE {iwae_se:.2f}), {bits:.3f} bits per dimension over {num_dims} "
            f"dimensions{' (negative: a density on a bounded range can exceed 1)' if bits < 0 else ''}. Both bounds are lower bounds on log p(x); the IWAE one is "
            f"{iwae_mean - rows[-2]['nats_per_example']:.2f} nats tighter than the held-out ELBO.")
    if options.get("transform") == "dequantize" and levels >= 2:
        discrete = (-iwae_mean + num_dims * math.log(levels)) / (num_dims * math.log(2))
        likelihood["iwae"]["bits_per_dimension_discrete"] = discrete
        text += (f" The values were dequantised from {levels} levels, so {discrete:.3f} bits per dimension bounds the "
                 "code length of the original integer values (adding log L per value).")
    train_elbo = rows[0]["nats_per_example"]
    held_elbo = next(r["nats_per_example"] for r in rows if r["bound"].endswith("held-out rows") and "ELBO" in r["bound"])
    if train_elbo - held_elbo > 3 * math.hypot(rows[0]["se"], rows[-2]["se"]):
        text += (f" The training ELBO is {train_elbo - held_elbo:.2f} nats above the held-out one: the networks fit "
                 "their training rows better than new ones (overfitting; early stopping limits it).")
    sections = [Section("Generative performance", text, table)]

    # ---- latent space -----------------------------------------------------------------------
    loc, scale = held["z_loc"].values, held["z_scale"].values
    kl_rows = 0.5 * (scale**2 + loc**2 - 1.0) - np.log(scale)
    kl = kl_rows.mean(0)
    kl_se = kl_rows.std(0, ddof=1) / math.sqrt(len(kl_rows)) if len(kl_rows) > 1 else np.full(len(kl), np.nan)
    active = kl > ACTIVE_UNIT_NATS
    summary = pd.DataFrame({"kl_nats": kl, "kl_se": kl_se, "active": active, "loc_mean": loc.mean(0),
                            "loc_sd": loc.std(0), "encoder_sd_mean": scale.mean(0)},
                           index=pd.Index([f"z[{i}]" for i in range(len(kl))], name="latent dimension"))
    mutual = information.aggregate_posterior_mutual_information(jnp.asarray(loc), jnp.asarray(scale),
                                                                jax.random.fold_in(key, 1), 2000)
    latent = {"kl_per_dimension_nats": kl.tolist(), "kl_per_dimension_se": kl_se.tolist(),
              "active_units": int(active.sum()), "latent_dim": int(len(kl)), "active_threshold_nats": ACTIVE_UNIT_NATS,
              "mutual_information_nats": mutual.value, "mutual_information_se": mutual.standard_error,
              "mutual_information_upper_limit_log_n": math.log(len(loc))}
    sections.append(Section(
        "Latent space",
        f"{int(active.sum())} of {len(kl)} latent dimensions are active (mean KL(q(z|x) || p(z)) above "
        f"{ACTIVE_UNIT_NATS} nats on the held-out rows; the table above gives each one). Their total, "
        f"{kl.sum():.2f} nats per example, is the rate the encoder spends. The mutual information between x and z "
        f"under the aggregate posterior is {mutual.value:.2f} nats (SE {mutual.standard_error:.2f}); it cannot "
        f"exceed log N = {math.log(len(loc)):.2f} for N = {len(loc)} rows, and an estimate near that limit means the "
        "codes tell the rows apart."))

    # ---- anomaly detection ------------------------------------------------------------------
    anomaly = None
    if "anomaly_scores" in idata.groups():
        scores = np.concatenate([-held["iwae"].values, -idata.anomaly_scores["iwae"].values])
        is_anomaly = np.concatenate([np.zeros(held.sizes["obs_id"], bool),
                                     np.ones(idata.anomaly_scores.sizes["obs_id"], bool)])
        anomaly = checks.anomaly_auroc(scores, is_anomaly)
        anomaly["anomaly_label"] = options["anomaly_label"]
        anomaly["anomaly_iwae_nats_per_example"] = float(idata.anomaly_scores["iwae"].values.mean())
        sections.append(Section(
            "Anomaly detection",
            f"The rows labelled {options['anomaly_label']} were kept out of training. Scoring every held-out row by "
            f"its negative IWAE log-likelihood, {anomaly['reading']}. Their mean IWAE is "
            f"{anomaly['anomaly_iwae_nats_per_example']:.2f} nats against {iwae_mean:.2f} for the held-out normal rows."))

    # ---- generated vs held-out --------------------------------------------------------------
    generated = np.asarray(sample_images(params, architecture, jax.random.fold_in(key, 2), len(x_held), mean=False))
    tests = two_sample.two_sample_tests(generated, x_held, seed=seed, names=list(map(str, idata.held_out_data["feature"].values)))
    test_table = pd.DataFrame([t.as_dict() for t in tests]).set_index("test")[["statistic", "p_value", "reading"]]
    sections.append(Section(
        "Generated against held-out data",
        f"{len(x_held)} rows drawn from the model (z ~ N(0, I), then x ~ p(x | z)) against the {len(x_held)} held-out "
        "rows, which training did not see. "
        + (f"{sum(t.p_value < 0.05 for t in tests)} of {len(tests)} tests reject at the 5% level: the generated rows "
           "differ from real ones in the way each names; a model can score well on likelihood and still be told apart "
           "from the data." if any(t.p_value < 0.05 for t in tests) else
           f"None of the {len(tests)} tests tells the generated rows from the held-out ones at the 5% level."),
        test_table))

    history = idata.optimization
    training = {"steps_run": int(history.attrs["steps_run"]), "best_step": int(history.attrs["best_step"]),
                "stopped_early": bool(history.attrs["stopped_early"]), "resumed_from": int(history.attrs["resumed_from"])}
    metrics = {"vae": {"likelihood": likelihood, "latent": latent, "training": training,
                       "generated_vs_held_out": [t.as_dict() for t in tests],
                       **({"anomaly": anomaly} if anomaly else {})}}
    figures = _report_figures(idata, params, architecture, options, loc, kl, key)
    return ReportPart(tuple(sections), metrics, figures, summary=summary, summary_title="Latent dimensions",
                      summary_units="nats, per latent dimension, over the held-out rows")


def generate(idata, config: dict, rng_key, num_rows: int) -> np.ndarray:
    """`num_rows` new rows: z ~ N(0, I), x ~ p(x | z), mapped back through --transform to the
    data's units (dequantised values to their integer level, scaled ones times L - 1)."""
    from probgen.infer.amortized import params_from_dataset

    options = config["model"]["options"]
    architecture = architecture_from(options, idata.observed_data["x"].shape[-1])
    x = np.asarray(sample_images(params_from_dataset(idata.parameters), architecture, rng_key, int(num_rows), mean=False),
                   np.float64)
    levels = int(options.get("pixel_levels", 0))
    if options.get("transform") == "dequantize":
        return np.clip(np.floor(x * levels), 0, levels - 1)
    if options.get("transform") == "scale":
        return x * (levels - 1)
    return x


def _report_figures(idata, params, architecture: Architecture, options: dict, loc, kl, key) -> dict:
    import matplotlib.pyplot as plt

    figures = {}
    history = idata.optimization
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(history["step"].values, history["train_elbo"].values, label="training (minibatch, KL weight as trained)")
    axis.plot(history["step"].values, history["heldout_elbo"].values, label="validation")
    axis.axvline(int(history.attrs["best_step"]), color="0.5", ls=":", label="kept parameters")
    axis.set_xlabel("step")
    axis.set_ylabel("ELBO per example (nats)")
    axis.legend(fontsize=8)
    figures["elbo"] = figure

    figure, axis = plt.subplots(figsize=(6, 3))
    order = np.arange(len(kl))
    axis.bar(order, kl, color=["C0" if value > ACTIVE_UNIT_NATS else "0.7" for value in kl])
    axis.set_xlabel("latent dimension")
    axis.set_ylabel("mean KL(q || p) (nats)")
    axis.set_title("information per latent dimension (grey: inactive)")
    figures["kl_per_dimension"] = figure

    x_held = idata.held_out_data["x"].values
    labels = idata.held_out_data["label"].values if "label" in idata.held_out_data else None
    shown = loc[:, np.argsort(kl)[::-1][:2]] if loc.shape[1] >= 2 else np.column_stack([loc[:, 0], np.zeros(len(loc))])
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    if labels is not None:
        points = axis.scatter(shown[:, 0], shown[:, 1], c=labels, cmap="tab10", s=10)
        figure.colorbar(points, label="label")
    else:
        axis.scatter(shown[:, 0], shown[:, 1], s=10)
    axis.set_xlabel("most active latent dimension")
    axis.set_ylabel("second most active" if loc.shape[1] >= 2 else "")
    axis.set_title("encoder means of the held-out rows")
    figures["latent_map"] = figure

    shape = parse_image_shape(options.get("image_shape", ""), architecture.num_dims)
    if shape is None:
        return figures
    count = min(10, len(x_held))
    means = np.asarray(decode_mean(params, jnp.asarray(loc[:count]), architecture))
    figure, axes = plt.subplots(2, count, figsize=(count, 2.3), squeeze=False)
    for i in range(count):
        axes[0, i].imshow(x_held[i].reshape(shape), cmap="gray_r")
        axes[1, i].imshow(means[i].reshape(shape), cmap="gray_r")
    for axis in axes.ravel():
        axis.axis("off")
    figure.suptitle("held-out rows (top) and their reconstructions E[x | z = encoder mean] (bottom)", fontsize=9)
    figures["reconstructions"] = figure

    images = np.asarray(sample_images(params, architecture, jax.random.fold_in(key, 3), 40))
    figure, axes = plt.subplots(4, 10, figsize=(10, 4.3))
    for axis, image in zip(axes.ravel(), images):
        axis.imshow(image.reshape(shape), cmap="gray_r")
        axis.axis("off")
    figure.suptitle("new rows from the prior: z ~ N(0, I), then E[x | z]", fontsize=9)
    figures["prior_samples"] = figure

    if len(loc) >= 2:
        pairs = [(0, 1)]
        if labels is not None:  # two held-out rows with different labels, when there are
            different = np.flatnonzero(labels != labels[0])
            pairs = [(0, int(different[0]))] if len(different) else pairs
        if len(loc) >= 4:
            pairs.append((2, 3))
        steps = np.linspace(0.0, 1.0, 10)
        figure, axes = plt.subplots(len(pairs), 12, figsize=(12, 1.25 * len(pairs) + 0.4), squeeze=False)
        for row, (a, b) in enumerate(pairs):
            path = (1 - steps)[:, None] * loc[a] + steps[:, None] * loc[b]
            decoded = np.asarray(decode_mean(params, jnp.asarray(path), architecture))
            panels = [x_held[a]] + list(decoded) + [x_held[b]]
            for column, image in enumerate(panels):
                axes[row, column].imshow(image.reshape(shape), cmap="gray_r")
                axes[row, column].axis("off")
        figure.suptitle("latent interpolation between two held-out rows (ends: the rows; between: E[x | z] along the "
                        "line between their encoder means)", fontsize=9)
        figures["interpolations"] = figure
    return figures


def _spec():
    from probgen.spec import Amortized, ModelSpec, Option

    return ModelSpec(
        name="vae",
        model=vae_model,
        guide=vae_guide,
        prepare=prepare,
        options=(
            Option("latent_dim", int, 8, "size of the latent z"),
            Option("hidden", str, "128,64", "hidden layer sizes of the encoder MLP, reversed for the decoder "
                                            "(empty: affine networks, the linear-Gaussian VAE)"),
            Option("likelihood", str, "gaussian", "p(x | z): bernoulli (0/1 values), continuous_bernoulli ([0, 1]), "
                                                  "beta ((0, 1)) or gaussian (real, learned scale)", LIKELIHOODS),
            Option("transform", str, "none", "applied to the values first: dequantize integers 0..L-1 to (0, 1), "
                                             "binarize at L/2, scale to [0, 1], or none", TRANSFORMS),
            Option("pixel_levels", int, 0, "L, the number of integer levels of the values (for --transform)"),
            Option("label_column", str, "", "column holding each row's label (not modelled; colours the latent map)"),
            Option("anomaly_label", int, -1, "rows with this label are kept out of training and scored as anomalies "
                                             "(AUROC); -1: none"),
            Option("image_shape", str, "", "height x width of each row as an image, e.g. 8x8 (default: square "
                                           "when the number of values is a square)"),
            Option("iwae_samples", int, 1000, "importance samples K of the held-out log-likelihood bound"),
        ),
        report=report,
        amortized=Amortized(elbo=_elbo, evaluate=evaluate, preprocess=preprocess, generate=generate),
        description="variational autoencoder: MLP decoder p(x | z), amortised encoder q(z | x), minibatch SVI "
                    "(--method svi) with early stopping, checkpoints and --resume",
    )


SPEC = _spec()
