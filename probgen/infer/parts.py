"""The one split of a fit's rows into parts: training rows (what the method fits), held-out rows
(scored after the fit: `--holdout F`) and, for a method that asks for one (`wants_validation`:
early stopping), validation rows; drawn once with the run's seed. Every method goes through it
(`probgen.infer.driver.fit`), so one data set, fraction and seed give one split.

- Without validation, `--holdout F` keeps F of the rows out and scores them.
- With validation, `--holdout F` (default `Method.default_holdout`) keeps F of the rows out of
  training, half to stop training early (validation) and half to score (held out).
- A spec whose rows are time-ordered (`HeldOut.sequence`) keeps out the last rows of each
  sequence instead of rows drawn at random.
"""

from __future__ import annotations

import dataclasses

from probgen.errors import InferenceError

DEFAULT_HOLDOUT = 0.2  # `Method.default_holdout` of the methods judged on held-out rows


def split_parts(spec, dataset, options: dict, holdout: float, seed: int, *, validation: bool = False,
                set_apart=None) -> dict:
    """{part: Dataset}: "training", and "held_out" when `holdout` > 0; "validation" too when
    asked (`holdout` of the rows are then kept out, half for validation and half for scoring);
    and "anomaly" rows (never trained on) when `set_apart` (a method's `set_apart(spec)`) sets
    some apart."""
    parts = {}
    if set_apart is not None:
        normal, anomalies = set_apart(dataset.frame, options, seed)
        if anomalies is not None:
            parts["anomaly"] = dataclasses.replace(dataset, frame=anomalies.reset_index(drop=True))
        dataset = dataclasses.replace(dataset, frame=normal.reset_index(drop=True))
    if not holdout:
        return {**parts, "training": dataset}
    spec.prepare(dataset.frame, options)  # bad values are named by their row in the whole table, before any split
    sequence = spec.held_out.sequence(options) if spec.held_out is not None and spec.held_out.sequence else None
    training, kept_out = dataset.split(holdout, seed, sequence_column=sequence)
    if not validation:
        return {**parts, "training": training, "held_out": kept_out}
    if len(kept_out.frame) < 2:
        raise InferenceError(f"--holdout {holdout:g} keeps {len(kept_out.frame)} row(s) out; model '{spec.name}' needs "
                             "at least 2 (half to stop training early, half to score)")
    validation_part, held_out = kept_out.split(0.5, seed + 1) if len(kept_out.frame) >= 3 else (kept_out, kept_out)
    return {**parts, "training": training, "validation": validation_part, "held_out": held_out}


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
