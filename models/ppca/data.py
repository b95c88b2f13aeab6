"""A numeric table as the model's inputs: the value columns, the label column kept aside, the
most dimensions the model identifies (D - 1, or the Ledermann bound for factor analysis)."""

from __future__ import annotations

import math

import numpy as np

from probgen.errors import ModelError
from probgen.spec import ModelInputs

def ledermann_bound(num_dims: int) -> int:
    """The most factors a factor analysis of D variables identifies: the largest q with
    (D - q)^2 >= D + q (Ledermann 1937), i.e. fewer parameters than the covariance has."""
    return int(math.floor((2 * num_dims + 1 - math.sqrt(8 * num_dims + 1)) / 2))


def unexplained_variance(x, spread) -> np.ndarray:
    """1 / (S^-1)_dd per column: the variance of column d that a linear regression on the other
    columns leaves, an upper bound on its unique variance in a factor analysis. Computed on the
    standardised columns (a ridge of 1e-6 keeps it finite for collinear columns) and returned in
    the data's units, at most the column's own variance."""
    standardised = (x - x.mean(0)) / spread
    correlation = np.atleast_2d(np.cov(standardised, rowvar=False, ddof=0)) + 1e-6 * np.eye(x.shape[1])
    left = 1.0 / np.diag(np.linalg.inv(correlation))
    return np.clip(left, 1e-6, 1.0) * spread**2


def _value_columns(frame, options) -> list:
    return [c for c in frame.columns if c != options["label_column"]]


def prepare(frame, options) -> ModelInputs:
    label_column = options["label_column"]
    if label_column and label_column not in frame.columns:
        raise ModelError(f"--label-column '{label_column}' is not a column of the data")
    columns = _value_columns(frame, options)
    x = frame[columns].to_numpy(dtype=np.float32)
    num_points, num_dims = x.shape
    if num_dims < 2:
        raise ModelError(f"PPCA needs at least 2 value columns, the data have {num_dims}")
    bound = ledermann_bound(num_dims) if options["noise"] == "diagonal" else num_dims - 1
    latent_dim = int(options["latent_dim"]) or max(1, min(bound, 10))
    if latent_dim >= num_dims:
        raise ModelError(f"--latent-dim {latent_dim} must be below the number of value columns ({num_dims})")
    if latent_dim > bound:
        raise ModelError(f"--latent-dim {latent_dim} is above the Ledermann bound {bound} for {num_dims} columns: factor "
                         "analysis with that many factors has as many parameters as the covariance itself and is not "
                         "identified")
    spread = x.std(axis=0).astype(np.float64)
    constant = [str(c) for c, s in zip(columns, spread) if not s > 0]
    if constant and options["noise"] == "diagonal":
        raise ModelError(f"column {constant[0]} has a single value; factor analysis needs spread in every column")
    spread = np.where(spread > 0, spread, max(float(spread.max()), 1e-6))
    kwargs = {"num_points": num_points, "latent_dim": latent_dim, "centre": x.mean(axis=0).astype(np.float64),
              "spread": spread, "noise": options["noise"], "ard": options["column_prior"] == "ard"}
    if options["noise"] == "diagonal":
        kwargs["unique_variance"] = unexplained_variance(x.astype(np.float64), spread)
    features = [str(c) for c in columns]
    labels = {"label": frame[label_column].to_numpy()} if label_column else {}
    return ModelInputs(
        kwargs=kwargs,
        observed={"x": x},
        coords={"obs_id": np.arange(num_points), "feature": features, "factor": np.arange(latent_dim)},
        dims={"x": ["obs_id", "feature"], "mu": ["feature"], "psi": ["feature"], "W": ["feature", "factor"],
              "W_diagonal": ["factor"], "column_scale": ["factor"], "factor_variance": ["factor"]},
        labels=labels,
    )
