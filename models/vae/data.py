"""From a table to the VAE's inputs: the shared table transforms and checks
(`probgen.models._common.tabular`) and the VAE's architecture from its options."""

from __future__ import annotations

import numpy as np

from probgen.models._common.tabular import (  # noqa: F401  (re-exported: the VAE's data API, as before)
    TRANSFORMS, _value_columns, check_values, data_options, parse_hidden, parse_image_shape, preprocess,
    to_data_units,
)
from probgen.models.vae.model import Architecture


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
