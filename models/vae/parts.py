"""What the minibatch trainer (`probgen.infer.amortized`) asks of the VAE: the per-row
validation ELBO, per-row scores of every part of the data, and new rows from the decoder."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from probgen.models.vae.data import architecture_from, to_data_units
from probgen.models.vae.model import Architecture, elbo_per_example, encode, iwae_per_example, sample_images


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


def generate(idata, config: dict, rng_key, num_rows: int) -> np.ndarray:
    """`num_rows` new rows: z ~ N(0, I), x ~ p(x | z), mapped back through --transform to the
    data's units (dequantised values to their integer level, scaled ones times L - 1)."""
    from probgen.infer.amortized import params_from_dataset

    options = config["model"]["options"]
    architecture = architecture_from(options, idata.observed_data["x"].shape[-1])
    x = np.asarray(sample_images(params_from_dataset(idata.parameters), architecture, rng_key, int(num_rows), mean=False),
                   np.float64)
    return to_data_units(x, options)
