"""Generative adversarial network: a generator G(z) against a discriminator D(x), trained as a
min-max game (`--method adversarial`), with the game's failures diagnosed.

    z ~ Normal(0, I_L),  x = G(z)                (L = --latent-dim; G an MLP, Flax)

A GAN defines no density: there is no log-likelihood, no held-out bits per dimension, no
anomaly score, no posterior. The report says so, and reports what can be measured: how the
generated rows compare with held-out ones (MMD and per-column tests, k-NN KL), and mode
coverage (`evaluation.py`): the modes are the classes of `--label-column` (the ring's 8 Gaussians)
or k-means clusters of the training rows (`--modes`). Training records both losses, both
gradient norms and the coverage over time, and names mode collapse and oscillation when they
happen (the method's verdicts). `--penalty` adds the R1 gradient penalty, the remedy the
bench (`analyses/generators.py`) measures over 5 seeds.

Layout: `training` (networks, the game, the loop), `coverage` (modes, coverage, diagnosis),
`report` (the report and its plots); this module holds the spec and the run-folder glue.
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.contrib.module import flax_module

from probgen.errors import ModelError
from probgen.models.gan.evaluation import diagnose, modes_from
from probgen.models.gan.parts import Architecture, generate as _generate, train
from probgen.infer.adversarial import Game
from probgen.spec import Bound, Headline, ModelInputs, ModelSpec, Option


def gan_model(x=None, *, num_points: int, num_dims: int, latent_dim: int, hidden: tuple, discriminator_hidden: tuple,
              loc, scale):
    """The generator as a NumPyro model: z ~ N(0, I), x = G(z) * scale + loc (deterministic).
    Training does not use it (the game is not a likelihood); it states what the model is."""
    generator = flax_module("generator", Architecture(num_dims, latent_dim, tuple(hidden),
                                                      tuple(discriminator_hidden)).generator(),
                            input_shape=(1, latent_dim))
    with numpyro.plate("data", num_points):
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([latent_dim]).to_event(1))
        numpyro.deterministic("x", generator(z) * scale + loc)


def _value_columns(frame, options) -> list:
    return [c for c in frame.columns if c != options["label_column"]]


def architecture_from(options, num_dims: int) -> Architecture:
    from probgen.models._common.tabular import parse_hidden

    hidden = parse_hidden(options["hidden"])
    discriminator = parse_hidden(options["discriminator_hidden"]) if options["discriminator_hidden"] else hidden
    if not hidden or not discriminator:
        raise ModelError("--hidden and --discriminator-hidden need at least one layer each, e.g. 128,128")
    return Architecture(num_dims, int(options["latent_dim"]), hidden, discriminator, int(options["pack"]))


def prepare(frame, options) -> ModelInputs:
    label_column = options["label_column"]
    if label_column and label_column not in frame.columns:
        raise ModelError(f"--label-column '{label_column}' is not a column of the data")
    columns = _value_columns(frame, options)
    if not columns:
        raise ModelError("the data have no value columns besides the label")
    if len(frame) < 2:
        raise ModelError(f"a GAN needs at least 2 rows, the data have {len(frame)}")
    x = frame[columns].to_numpy(dtype=np.float32)
    architecture = architecture_from(options, x.shape[1])
    return ModelInputs(
        kwargs={"num_points": x.shape[0], "num_dims": x.shape[1], "latent_dim": architecture.latent_dim,
                "hidden": architecture.hidden, "discriminator_hidden": architecture.discriminator_hidden,
                "loc": np.zeros(x.shape[1]), "scale": np.ones(x.shape[1])},
        observed={"x": x},
        coords={"obs_id": np.arange(x.shape[0]), "feature": list(map(str, columns))},
        dims={"x": ["obs_id", "feature"]},
        labels={"label": frame[label_column].to_numpy()} if label_column else {},
    )


def fit(inputs: dict, options: dict, settings: dict, rng_key, progress: bool) -> dict:
    """Train on the training part (`Adversarial.fit`); the groups the run folder keeps."""
    import xarray as xr

    from probgen.infer.amortized import params_to_dataset

    train_inputs = inputs["training"]
    x = np.asarray(train_inputs.observed["x"], np.float64)
    labels = train_inputs.labels.get("label")
    modes = modes_from(x, labels, int(options["modes"]), seed=int(jax.random.randint(rng_key, (), 0, 2**31 - 1)))
    architecture = architecture_from(options, x.shape[1])
    result = train(x, architecture, float(options["penalty"]), settings, rng_key, modes, progress)
    evaluations = result["evaluations"]
    diagnosis = diagnose(evaluations["modes_hit"], evaluations["histogram"], modes.count)
    history = xr.Dataset(
        {**{name: ("step", value) for name, value in result["steps"].items()},
         **{name: ("evaluation", evaluations[name]) for name in ("modes_hit", "high_quality", "kl_modes", "seconds")},
         "histogram": (("evaluation", "mode"), evaluations["histogram"])},
        coords={"step": np.arange(1, len(result["steps"]["d_loss"]) + 1), "evaluation_step": ("evaluation",
                                                                                              evaluations["step"]),
                "mode": [str(name) for name in modes.names]},
        attrs={key: (int(value) if isinstance(value, bool) else value) for key, value in diagnosis.items()})
    mode_group = xr.Dataset({"centre": (("mode", "feature"), modes.centres), "spread": ("mode", modes.spreads),
                             "weight": ("mode", modes.weights)},
                            coords={"mode": [str(name) for name in modes.names],
                                    "feature": list(train_inputs.coords["feature"])})
    parameters = params_to_dataset(result["params"])
    generator = params_to_dataset({"generator": result["params"]["generator"]})
    return {"posterior": generator.expand_dims({"chain": [0], "draw": [0]}), "parameters": parameters,
            "scaling": xr.Dataset({"loc": ("feature", result["loc"]), "scale": ("feature", result["scale"])},
                                  coords={"feature": list(train_inputs.coords["feature"])}),
            "adversarial_training": history, "modes": mode_group}


def trained_generator(idata, options) -> tuple:
    """(params, architecture, loc, scale) of a run's generator."""
    from probgen.infer.amortized import params_from_dataset

    params = params_from_dataset(idata.parameters)
    architecture = architecture_from(options, idata.observed_data["x"].shape[-1])
    return params, architecture, idata.scaling["loc"].values, idata.scaling["scale"].values


def generate(idata, config: dict, rng_key, num_rows: int) -> np.ndarray:
    params, architecture, loc, scale = trained_generator(idata, config["model"]["options"])
    return _generate(params, architecture, rng_key, int(num_rows), loc, scale)


def report(idata, config):
    from probgen.models.gan.report import report as gan_report

    return gan_report(idata, config)


SPEC = ModelSpec(
    name="gan",
    model=gan_model,
    prepare=prepare,
    options=(
        Option("latent_dim", int, 2, "size of the generator's input z", minimum=1),
        Option("hidden", str, "128,128", "hidden layer sizes of the generator"),
        Option("discriminator_hidden", str, "", "hidden layer sizes of the discriminator (default: --hidden)"),
        Option("penalty", float, 0.0, "R1 gradient penalty gamma on the discriminator at the data (0: none)",
               minimum=0.0),
        Option("pack", int, 1, "rows the discriminator judges together (PacGAN; 1: one at a time)", minimum=1),
        Option("label_column", str, "", "column holding each row's class: the modes of the coverage metrics "
                                        "(not modelled)"),
        Option("modes", int, 10, "without --label-column: k-means clusters of the training rows used as modes",
               minimum=1),
        Option("image_shape", str, "", "height x width of each row as an image, e.g. 8x8 (default: square "
                                       "when the number of values is a square)"),
    ),
    report=report,
    parts=(Game(fit=fit, generate=generate),
           Headline(Bound("gan/coverage/modes_hit", 0, "gan/training/num_modes", stated=True),
                    Bound("gan/coverage/high_quality", 0, 1))),
    description="generative adversarial network (Flax, optax): no likelihood; sample quality, mode coverage, "
                "collapse and oscillation diagnosed (--method adversarial)",
)
