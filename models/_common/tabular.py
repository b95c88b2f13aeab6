"""From a table to a generative model's rows (the VAE's and MADE's): value columns, transforms
(dequantise, binarise, scale), the image shape, anomaly rows kept out, and checks that the
values suit the likelihood."""

from __future__ import annotations

import math
import numpy as np



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


def data_options(label_help: str) -> tuple:
    """The options of how a table of values becomes rows to model (transform, levels, label
    column, anomaly label, image shape), shared by the families that take images (vae, made)."""
    from probgen.spec import Option

    return (
        Option("transform", str, "none", "applied to the values first: dequantize integers 0..L-1 to (0, 1), "
                                         "binarize at L/2, scale to [0, 1], or none", TRANSFORMS),
        Option("pixel_levels", int, 0, "L, the number of integer levels of the values (for --transform)"),
        Option("label_column", str, "", label_help),
        Option("anomaly_label", int, -1, "rows with this label are kept out of training and scored as anomalies "
                                         "(AUROC); -1: none"),
        Option("image_shape", str, "", "height x width of each row as an image, e.g. 8x8 (default: square "
                                       "when the number of values is a square)"),
    )


def to_data_units(x, options) -> np.ndarray:
    """Generated values back through --transform: dequantised values to their integer level,
    scaled ones times L - 1, others as they are."""
    x = np.asarray(x, np.float64)
    levels = int(options.get("pixel_levels", 0))
    if options.get("transform") == "dequantize":
        return np.clip(np.floor(x * levels), 0, levels - 1)
    if options.get("transform") == "scale":
        return x * (levels - 1)
    return x
