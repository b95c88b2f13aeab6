"""The one split of a fit's rows into parts: training rows (what the method fits), held-out rows
(scored after the fit: `--holdout F`) and, for a method that asks for one (its `validation`
setting: early stopping, choosing among models), validation rows; drawn once with the run's
seed. Every method goes through it (`probgen.infer.driver.fit`), so one data set, fraction and
seed give one split.

- `--holdout F` keeps the same F of the rows out and scores them, whatever the method: NUTS and
  the minibatch trainer hold out the same rows for the same data and seed.
- `--validation V` (the methods that stop early or choose on validation rows; default 0.1) then
  keeps V of all the rows out of what is left, drawn with the seed + 1, to stop training early.
  The default `--holdout` of those methods is 0.1, so that by default 80% of the rows train.
- A spec whose rows are time-ordered (`HeldOut.sequence`) keeps out the last rows of each
  sequence instead of rows drawn at random: the held-out rows last, the validation rows just
  before them.
"""

from __future__ import annotations

import dataclasses

from probgen.errors import InferenceError
from probgen.infer.methods import Setting

DEFAULT_HOLDOUT = 0.1  # `Method.default_holdout` of the methods judged on held-out rows
DEFAULT_VALIDATION = 0.1

VALIDATION = Setting("validation", float, DEFAULT_VALIDATION,
                     "fraction of all rows kept out of training to stop it early, drawn from the rows --holdout leaves")


def split_parts(spec, dataset, options: dict, holdout: float, seed: int, *, validation: float = 0.0,
                set_apart=None) -> dict:
    """{part: Dataset}: "training"; "held_out" when `holdout` > 0 (that fraction of the rows,
    the same rows with or without validation); "validation" when `validation` > 0 (that
    fraction of all the rows, drawn from the rest); and "anomaly" rows (never trained on) when
    `set_apart` (a method's `set_apart(spec)`) sets some apart. Each part's `holdout` record
    gives the whole split."""
    parts = {}
    if set_apart is not None:
        normal, anomalies = set_apart(dataset.frame, options, seed)
        if anomalies is not None:
            parts["anomaly"] = dataclasses.replace(dataset, frame=anomalies.reset_index(drop=True))
        dataset = dataclasses.replace(dataset, frame=normal.reset_index(drop=True))
    if not holdout and not validation:
        return {**parts, "training": dataset}
    if validation and not 0 < validation < 1:
        raise InferenceError(f"--validation must be in (0, 1), got {validation:g}")
    if validation and holdout + validation >= 1:
        raise InferenceError(f"--holdout {holdout:g} and --validation {validation:g} keep all the rows out of training "
                             "(together they must stay below 1)")
    spec.prepare(dataset.frame, options)  # bad values are named by their row in the whole table, before any split
    sequence = spec.held_out.sequence(options) if spec.held_out is not None and spec.held_out.sequence else None
    rows, training = len(dataset.frame), dataset
    record = {"seed": int(seed),
              "kind": "random rows" if sequence is None else "last rows of each sequence (forecast)"}
    if holdout:
        training, parts["held_out"] = dataset.split(holdout, seed, sequence_column=sequence)
        record["fraction"] = float(holdout)
    if validation:
        wanted = max(1, int(round(validation * rows)))
        if len(training.frame) - wanted < 2:
            raise InferenceError(f"--validation {validation:g} of {rows} rows keeps {wanted} to stop training early and "
                                 f"leaves {len(training.frame) - wanted} to train; model '{spec.name}' needs at least 2")
        training, parts["validation"] = training.split(wanted / len(training.frame), seed + 1, sequence_column=sequence)
        if "held_out" in parts:  # scored in the units of the rows that train
            parts["held_out"] = parts["held_out"].standardized_as(training)
        record["validation_fraction"] = float(validation)
    record.update({f"{name}_rows": len(parts[name].frame) for name in ("held_out", "validation") if name in parts})
    record["training_rows"] = len(training.frame)
    parts["training"] = training
    return {name: (dataclasses.replace(part, holdout={**record, "part": name}) if name != "anomaly" else part)
            for name, part in parts.items()}


def part_inputs(spec, parts: dict, options: dict) -> dict:
    """{part: ModelInputs}: the training part prepared alone, every other part prepared in its
    light (`HeldOut.inputs`, e.g. a text model's vocabulary, or a time series' held-out steps
    after the training steps) when the spec says how."""
    training = parts["training"].frame
    inputs = {"training": spec.prepare(training, options)}
    for part, data in parts.items():
        if part != "training":
            inputs[part] = (spec.held_out.inputs(training, data.frame, options)
                            if spec.held_out is not None and spec.held_out.inputs is not None
                            else spec.prepare(data.frame, options))
    return inputs
