"""From a table to the BNN's inputs: target and feature columns, scaling fitted on the training
rows and applied to held-out rows, checks of the target's values."""

from __future__ import annotations

import numpy as np
from probgen.errors import ModelError
from probgen.spec import ModelInputs

from probgen.models.bnn.model import REGRESSION


# --------------------------------------------------------------------------------------------
# Data: features and target, standardised with the training rows' figures
# --------------------------------------------------------------------------------------------
def parse_hidden(text: str) -> tuple:
    """"20,20" -> (20, 20); "" or "0" -> () (no hidden layer: linear or logistic regression)."""
    try:
        sizes = tuple(int(part) for part in str(text).replace(" ", "").split(",") if part and part != "0")
    except ValueError:
        raise ModelError(f"--hidden must be comma-separated layer sizes such as 20,20, got '{text}'") from None
    if any(size < 1 for size in sizes):
        raise ModelError(f"--hidden layer sizes must be >= 1, got '{text}'")
    return sizes


def _target_column(frame, options) -> str:
    target = options["target"] or str(frame.columns[-1])
    if target not in frame.columns:
        raise ModelError(f"--target '{target}' is not a column of the data (columns: {', '.join(map(str, frame.columns))})")
    return target


def _check_target(y: np.ndarray, target: str, options) -> int:
    """The number of classes (1 for regression); names the first bad label."""
    likelihood = options["likelihood"]
    if likelihood in REGRESSION:
        return 1
    whole = (y == np.round(y)) & (y >= 0)
    if likelihood == "bernoulli":
        bad = np.flatnonzero(~np.isin(y, (0.0, 1.0)))
        if len(bad):
            raise ModelError(f"--likelihood bernoulli needs labels 0 or 1; column '{target}' has {y[bad[0]]:g} at row "
                             f"{bad[0] + 1} ({len(bad)} such row(s)); use categorical for more classes")
        return 2
    bad = np.flatnonzero(~whole)
    if len(bad):
        raise ModelError(f"--likelihood categorical needs class codes 0, 1, ..; column '{target}' has {y[bad[0]]:g} at "
                         f"row {bad[0] + 1}")
    classes = options["num_classes"] or int(y.max()) + 1
    if y.max() >= classes:
        row = int(np.argmax(y >= classes))
        raise ModelError(f"column '{target}' has class {y[row]:g} at row {row + 1}, but --num-classes is {classes}")
    return max(classes, 2)


def scaling(frame, options) -> dict:
    """Mean and sd of each feature (and of a regression target) in `frame`: the training rows."""
    target = _target_column(frame, options)
    features = [c for c in frame.columns if c != target]
    values = frame[features].to_numpy(np.float64)
    if options["scaling"] == "none":  # the data are used as they are (e.g. simulated from the prior)
        return {"target": target, "features": features, "feature_mean": [0.0] * len(features),
                "feature_sd": [1.0] * len(features), "target_mean": 0.0, "target_sd": 1.0}
    sd = values.std(0)
    constant = [features[j] for j in np.flatnonzero(~(sd > 0))]
    if constant:
        raise ModelError(f"feature column(s) {', '.join(constant)} are constant in the training rows; drop them")
    record = {"target": target, "features": features, "feature_mean": values.mean(0).tolist(), "feature_sd": sd.tolist(),
              "target_mean": 0.0, "target_sd": 1.0}
    if options["likelihood"] in REGRESSION:
        y = frame[target].to_numpy(np.float64)
        if not y.std() > 0:
            raise ModelError(f"target column '{target}' is constant in the training rows")
        record.update(target_mean=float(y.mean()), target_sd=float(y.std()))
    return record


def _model_kwargs(options, num_points: int, num_features: int, num_classes: int) -> dict:
    return {"num_points": num_points, "num_features": num_features, "hidden": parse_hidden(options["hidden"]),
            "activation": options["activation"], "prior": options["prior"], "prior_scale": float(options["prior_scale"]),
            "likelihood": options["likelihood"], "num_classes": num_classes, "noise_prior": float(options["noise_prior"]),
            "noise_sd": float(options["noise_sd"]), "student_df": float(options["student_df"])}


def _inputs(frame, options, scale: dict) -> ModelInputs:
    target, features = scale["target"], scale["features"]
    missing = [c for c in features + [target] if c not in frame.columns]
    if missing:
        raise ModelError(f"the data lack column(s) {', '.join(missing)} that the model was fitted with")
    if len(frame) == 0:
        raise ModelError("the data have no rows")
    x = (frame[features].to_numpy(np.float64) - scale["feature_mean"]) / scale["feature_sd"]
    y = frame[target].to_numpy(np.float64)
    classes = _check_target(y, target, options)
    if options["likelihood"] in REGRESSION:
        y = (y - scale["target_mean"]) / scale["target_sd"]
    y = y.astype(np.float32) if options["likelihood"] in REGRESSION else y.astype(np.int32)
    return ModelInputs(
        kwargs=_model_kwargs(options, len(frame), len(features), classes),
        observed={"y": y},
        coords={"obs_id": np.arange(len(frame)), "feature": features},
        dims={"y": ["obs_id"], "prediction": ["obs_id"] if options["likelihood"] != "categorical" else ["obs_id", "class"]},
        labels={"x": x.astype(np.float32), "scaling": scale},
    )


def prepare(frame, options) -> ModelInputs:
    """Inputs for the training rows: standardised features x (passed as a keyword argument)
    and target y (standardised for regression)."""
    inputs = _inputs(frame, options, scaling(frame, options))
    return ModelInputs({**inputs.kwargs, "x": inputs.labels["x"]}, inputs.observed, inputs.coords, inputs.dims,
                       labels=inputs.labels)


def held_out(train_frame, held_frame, options) -> ModelInputs:
    """Inputs for held-out rows, standardised with the training rows' figures."""
    inputs = _inputs(held_frame, options, scaling(train_frame, options))
    return ModelInputs({**inputs.kwargs, "x": inputs.labels["x"]}, inputs.observed, inputs.coords, inputs.dims,
                       labels=inputs.labels)
