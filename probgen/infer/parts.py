"""The parts of the data a held-out-scored fit needs: training rows, validation rows (early
stopping, hyperparameters) and held-out rows (the score), split once with the run's seed, and
their groups in the InferenceData. Shared by the minibatch trainer (`amortized`) and the exact
conjugate method (`exact`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from probgen.errors import InferenceError

DEFAULT_HOLDOUT = 0.2


def split_parts(spec, dataset, options: dict, holdout: float, seed: int, preprocess=None) -> dict:
    """{part: Dataset}: training, validation and held_out rows (documents, for text), and
    anomaly rows (never trained on) when `preprocess` sets some apart. `holdout` of the rows
    are kept out, half for validation and half for scoring."""
    parts = {}
    if preprocess is not None:
        normal, anomalies = preprocess(dataset.frame, options, seed)
        if anomalies is not None:
            parts["anomaly"] = dataclasses.replace(dataset, frame=anomalies.reset_index(drop=True))
        dataset = dataclasses.replace(dataset, frame=normal.reset_index(drop=True))
    spec.prepare(dataset.frame, options)  # bad values are named by their row in the whole table, before any split
    sequence = spec.held_out.sequence(options) if spec.held_out is not None and spec.held_out.sequence else None
    training, kept_out = dataset.split(holdout, seed, sequence_column=sequence)
    if len(kept_out.frame) < 2:
        raise InferenceError(f"--holdout {holdout:g} keeps {len(kept_out.frame)} row(s) out; model '{spec.name}' needs "
                             "at least 2 (half to stop training early, half to score)")
    validation, held_out = kept_out.split(0.5, seed + 1) if len(kept_out.frame) >= 3 else (kept_out, kept_out)
    parts.update(training=training, validation=validation, held_out=held_out)
    return parts


def part_inputs(spec, parts: dict, options: dict) -> dict:
    """{part: ModelInputs}: the training part prepared alone, every other part prepared in its
    light (`HeldOut.inputs`, e.g. a text model's vocabulary) when the spec says how."""
    training = parts["training"].frame
    inputs = {"training": spec.prepare(training, options)}
    for part, data in parts.items():
        if part != "training":
            inputs[part] = (spec.held_out.inputs(training, data.frame, options)
                            if spec.held_out is not None and spec.held_out.inputs is not None
                            else spec.prepare(data.frame, options))
    return inputs


def _dims(inputs, name: str, value) -> list[str]:
    return list(inputs.dims.get(name, ["obs_id", "feature"][:np.ndim(value)] +
                                [f"{name}_dim_{i}" for i in range(2, np.ndim(value))]))


def data_groups(inputs: dict) -> dict:
    """validation_data, held_out_data (and anomaly_data) groups: each part's observed values
    and labels."""
    import xarray as xr

    groups = {}
    for part, group in (("validation", "validation_data"), ("held_out", "held_out_data"), ("anomaly", "anomaly_data")):
        if part in inputs:
            part_inputs = inputs[part]
            groups[group] = xr.Dataset({name: (_dims(part_inputs, name, value), np.asarray(value))
                                        for name, value in part_inputs.observed.items()},
                                       coords={k: v for k, v in part_inputs.coords.items() if k != "obs_id"})
            for name, value in part_inputs.labels.items():
                groups[group][name] = (_dims(part_inputs, name, value), np.asarray(value))
    return groups


def parts_inference_data(posterior, inputs: dict, groups: dict):
    """The InferenceData of a fit on the parts: `posterior` (an xarray Dataset), the training
    rows as observed_data (with their labels), every other part's data (`data_groups`) and the
    method's `groups`. Shared by the exact and the adversarial methods."""
    import warnings

    import arviz as az

    train = inputs["training"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = az.InferenceData(posterior=posterior)
        observed = az.from_dict(observed_data=dict(train.observed), coords=dict(train.coords), dims=dict(train.dims))
    idata.add_groups({"observed_data": observed.observed_data, **data_groups(inputs), **groups})
    for name, value in train.labels.items():
        idata.observed_data[name] = (_dims(train, name, value), np.asarray(value))
    return idata
