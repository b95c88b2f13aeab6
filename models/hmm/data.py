"""From a table to the HMM's inputs: sequences split by a sequence column, padded and masked;
held-out steps scored given their past."""

from __future__ import annotations

import dataclasses
import math
import numpy as np
import pandas as pd
from probgen.errors import ModelError
from probgen.spec import ModelInputs, Option

from probgen.models.hmm.model import LOG_RATE_PRIOR_SD


# --------------------------------------------------------------------------------------------
# Data -> model inputs
# --------------------------------------------------------------------------------------------
def _rows(index, limit: int = 5) -> str:
    index = list(index)
    shown = ", ".join(str(i + 1) for i in index[:limit])
    return shown + (f" and {len(index) - limit} more" if len(index) > limit else "")


def split_sequences(frame: pd.DataFrame, sequence_column: str, time_column: str = ""
                    ) -> tuple[list[np.ndarray], list, list[str], list[np.ndarray]]:
    """(one (T_s, D) array per sequence, sequence ids, value columns, one array of time labels
    per sequence). Rows are in time order within each sequence (checked against the time
    column when there is one; its values label the steps, 0, 1, ... otherwise); sequences are
    taken in order of first appearance."""
    for flag, column in (("--sequence-column", sequence_column), ("--time-column", time_column)):
        if column and column not in frame.columns:
            raise ModelError(f"{flag} '{column}' is not among the data's columns "
                             f"({', '.join(map(str, frame.columns))}); include it in --columns")
    if sequence_column and sequence_column == time_column:
        raise ModelError(f"--sequence-column and --time-column are both '{time_column}'")
    columns = [c for c in frame.columns if c not in (sequence_column, time_column)]
    if not columns:
        raise ModelError("no value columns: the data hold only the sequence and time columns")
    if sequence_column:
        labels = frame[sequence_column].to_numpy()
        rows = [np.flatnonzero(labels == i) for i in pd.unique(labels)]
        # ids arrive as floats from the data layer: 2.0 is shown as 2
        ids = [int(v) if isinstance(v, (float, np.floating)) and float(v).is_integer() else v
               for v in (labels[r[0]] for r in rows)]
    else:
        ids, rows = [0], [np.arange(len(frame))]
    values = frame[columns].to_numpy(np.float64)  # converted once, then cut into sequences
    stamps = frame[time_column].to_numpy(np.float64) if time_column else None
    groups = [values[r] for r in rows]
    times = [stamps[r] if time_column else np.arange(len(r), dtype=np.float64) for r in rows]
    short = [(i, len(g)) for i, g in zip(ids, groups) if len(g) < 2]
    if short:
        listed = ", ".join(f"{i} ({n} row{'s' if n != 1 else ''})" for i, n in short[:5])
        raise ModelError(f"sequence{'s' if len(short) > 1 else ''} {listed} too short: an HMM needs at least 2 steps "
                         "per sequence")
    for i, r, t in zip(ids, rows, times):
        backwards = np.flatnonzero(np.diff(t) <= 0)
        if len(backwards):
            where = r[backwards[0] + 1]
            raise ModelError(f"--time-column '{time_column}' must increase within each sequence: row {where + 1} "
                             f"({t[backwards[0] + 1]:g}) does not come after row {r[backwards[0]] + 1} "
                             f"({t[backwards[0]]:g}){f' in sequence {i}' if sequence_column else ''}; sort the rows")
    return groups, ids, [str(c) for c in columns], times


def prepare(frame, options) -> ModelInputs:
    """Padded sequences, mask and hyperparameters from a table; validates options and values."""
    # the options' types, choices and bounds are checked from their Option metadata (resolve_options)
    K = options["num_states"]
    emission = options["emission"]
    groups, ids, columns, times = split_sequences(frame, options["sequence_column"], options["time_column"])
    values = np.concatenate(groups)
    num_dims = values.shape[1]
    identify = options["identify"]
    if identify == "auto":
        identify = "relabel" if emission == "categorical" else "ordered"
    if identify == "ordered" and emission == "categorical":
        raise ModelError("--identify ordered needs ordered emission parameters; categorical emissions use relabel")
    num_categories = 0
    if emission in ("poisson", "categorical"):
        if num_dims != 1:
            raise ModelError(f"--emission {emission} takes one column, got {num_dims} ({', '.join(columns)})")
        column = frame[columns[0]].to_numpy(np.float64)  # data rows, in the file's order
        bad = np.flatnonzero((column < 0) | (column != np.round(column)))
        if len(bad):
            kind = "counts" if emission == "poisson" else "category codes"
            raise ModelError(f"--emission {emission} needs non-negative integer {kind}; column '{columns[0]}' has "
                             f"{float(column[bad[0]])!r} and {len(bad)} such value(s) in all (rows {_rows(bad)})")
        if emission == "categorical":
            given = int(options["num_categories"])
            num_categories = given or int(column.max()) + 1
            unknown = np.flatnonzero(column >= num_categories)
            if len(unknown):
                raise ModelError(f"unknown category label(s) {sorted({int(v) for v in column[unknown]})[:10]} in column "
                                 f"'{columns[0]}' (rows {_rows(unknown)}): with --num-categories {num_categories} "
                                 f"the codes must be 0..{num_categories - 1}")
            if num_categories < 2:
                raise ModelError(f"categorical emissions need at least 2 categories, got {num_categories}")
    if emission == "gaussian":
        low, high = values.min(0), values.max(0)
        constant = [c for c, s in zip(columns, high - low) if not s > 0]
        if constant:
            raise ModelError(f"column{'s' if len(constant) > 1 else ''} {', '.join(constant)} has a single value; "
                             "Gaussian emissions need spread in every column")
        prior_loc, prior_scale = (low + high) / 2, high - low
    else:
        prior_loc, prior_scale = np.array([math.log(values.mean() + 0.1)]), np.array([LOG_RATE_PRIOR_SD])
    lengths = [len(g) for g in groups]
    S, T = len(groups), max(lengths)
    x = np.zeros((S, T, num_dims), np.float32)
    mask = np.zeros((S, T), bool)
    time_labels = np.full((S, T), np.nan)
    for s, (g, t) in enumerate(zip(groups, times)):
        x[s, : len(g)] = g
        mask[s, : len(g)] = True
        time_labels[s, : len(g)] = t
    kwargs = {
        "mask": mask, "num_states": int(K), "emission": emission, "num_dims": num_dims,
        "prior_loc": prior_loc.astype(np.float32), "prior_scale": prior_scale.astype(np.float32),
        "covariance": options["covariance"], "sticky": float(options["sticky"]), "algorithm": options["algorithm"],
        "identify": identify, "num_categories": num_categories,
    }
    states = [f"s{k}" for k in range(K)]
    return ModelInputs(
        kwargs=kwargs,
        observed={"x": x},
        masks={"x": mask},
        labels={"time": time_labels, "time_column": options["time_column"]},
        coords={"state": states, "state_": states, "feature": columns, "feature_": columns,
                "sequence": [str(i) for i in ids], "time": np.arange(T), "category": np.arange(max(num_categories, 1))},
        dims={
            "init_probs": ["state"], "transition": ["state", "state_"],
            "ordered_means": ["state"], "means": ["state", "feature"], "scales": ["state", "feature"],
            "corr_cholesky": ["state", "feature", "feature_"], "scale_tril": ["state", "feature", "feature_"],
            "ordered_log_rates": ["state"], "log_rates": ["state", "feature"], "rates": ["state", "feature"],
            "emission_probs": ["state", "category"],
            "x": ["sequence", "time", "feature"],
        },
    )


def time_order(options) -> str:
    """The rows are time-ordered within each sequence: `--holdout` keeps out each sequence's end."""
    return options["sequence_column"]


def held_out(train_frame: pd.DataFrame, held_frame: pd.DataFrame, options) -> ModelInputs:
    """Inputs that score the held-out end of each sequence given its training start: the whole
    sequences, with the model's hyperparameters from the training rows and `masks` marking
    only the held-out steps. Each held-out step's pointwise log-likelihood is then the
    one-step-ahead log p(x_t | x_<t) with the training steps in the history, and their sum
    per sequence is log p(held-out end | training start)."""
    train = prepare(train_frame, options)
    whole_options = dict(options)
    if train.kwargs["emission"] == "categorical":  # the fitted emission_probs fix the category count
        whole_options["num_categories"] = train.kwargs["num_categories"]
    whole = prepare(pd.concat([train_frame, held_frame], ignore_index=True), whole_options)
    train_lengths = {sequence: int(row.sum()) for sequence, row in zip(train.coords["sequence"], train.kwargs["mask"])}
    mask = np.asarray(whole.kwargs["mask"])
    scored = np.zeros_like(mask)
    for s, sequence in enumerate(whole.coords["sequence"]):
        scored[s, train_lengths.get(sequence, 0): mask[s].sum()] = True
    kwargs = {**train.kwargs, "mask": mask}
    return dataclasses.replace(whole, kwargs=kwargs, masks={"x": scored})
