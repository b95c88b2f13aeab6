"""Predictive checks (posterior and prior), generated against observed data, held-out scores
and anomaly AUROC.

Functions take InferenceData and return numbers, tables and plain-words readings; they never
write files. LOO/WAIC are in `probgen.checks.loo`, the two-sample tests in `probgen.checks.two_sample`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Mapping

import arviz as az
import numpy as np
import pandas as pd

from probgen.checks.two_sample import two_sample_tests

NOTES_ATTRIBUTE = "probgen_notes"  # posterior attribute: JSON {check: why it does not apply}


def run_notes(idata) -> dict[str, str]:
    """The checks that do not apply to a run, each with the reason, as inference stored them
    with the draws (an improper prior: no prior predictive; factor terms: no LOO)."""
    if "posterior" not in idata.groups():
        return {}
    import json

    return json.loads(idata.posterior.attrs.get(NOTES_ATTRIBUTE, "{}"))


# --------------------------------------------------------------------------------------------
# Posterior (and prior) predictive checks
# --------------------------------------------------------------------------------------------
DEFAULT_STATISTICS = {
    "mean": lambda values: values.mean(axis=-2),
    "sd": lambda values: values.std(axis=-2),
    "min": lambda values: values.min(axis=-2),
    "max": lambda values: values.max(axis=-2),
}


@dataclasses.dataclass
class PredictiveCheck:
    """Test statistics of the observed data against their predictive distribution.

    table: one row per (variable, statistic, column) with the observed value, the predictive
    mean and 94% interval, the posterior predictive p-value P(T(y_rep) >= T(y)) and a reading.
    replicated: (variable, statistic, column) -> the statistic of each replicated data set.
    """

    table: pd.DataFrame
    replicated: dict


def _observations_by_column(values: np.ndarray, leading: int, layout: tuple = (False, None)) -> np.ndarray:
    """(leading..., N, rest...) -> (leading..., N, D) with D = prod(rest) (1 for scalars).

    layout (from `_layout`): for a variable whose last dimension is "feature" and that has more
    (sequence, time, feature), every position before the features is a row; and with a mask,
    only the real rows are kept (padding of sequences of unequal length is not data)."""
    feature_last, mask = layout
    shape = values.shape
    if values.ndim == leading:  # a scalar observation: one row of one column
        return values.reshape(shape + (1, 1))
    if feature_last:
        values = values.reshape(shape[:leading] + (-1, shape[-1]))
    else:
        values = values.reshape(shape[: leading + 1] + (-1,))
    return values if mask is None else values[(slice(None),) * leading + (mask,)]


def _layout(idata, name: str, group: str = "observed_data") -> tuple:
    """How the rows of observed variable `name` are laid out: (feature_last, mask of real rows).
    A model with padded observations puts `<name>_mask` (True = real) beside them in the group."""
    variable = idata[group][name]
    feature_last = variable.ndim > 2 and variable.dims[-1] == "feature"
    mask = None
    if f"{name}_mask" in idata[group]:
        mask = np.asarray(idata[group][f"{name}_mask"].values, bool).ravel()
        rows = int(np.prod(variable.shape[:-1])) if feature_last else (variable.shape[0] if variable.ndim else 0)
        if mask.size != rows:  # a mask over other dims than the rows: leave the rows whole
            mask = None
    return feature_last, mask


def predictive_check(idata, group: str = "posterior_predictive", statistics: Mapping | None = None,
                     max_draws: int = 1000, seed: int = 0) -> PredictiveCheck:
    """Posterior (group="posterior_predictive") or prior ("prior_predictive") predictive check.

    statistics: name -> function of an (..., N, D) array returning (..., D) (one value per
    column) or (...,); defaults to mean, sd, min and max per column. At most `max_draws`
    replicated data sets are used (chosen at random with `seed`).
    The p-value is P(T(replicate) > T(observed)) + P(equal) / 2 (the mid-p, for discrete data);
    below 0.025 or above 0.975 it flags a statistic the model does not reproduce.
    """
    statistics = dict(statistics or DEFAULT_STATISTICS)
    predictive = getattr(idata, group)
    rows, replicated = [], {}
    rng = np.random.default_rng(seed)
    for name in predictive.data_vars:
        draws = predictive[name].values
        draws = draws.reshape((-1,) + draws.shape[2:])
        if len(draws) > max_draws:
            draws = draws[rng.choice(len(draws), max_draws, replace=False)]
        layout = _layout(idata, name)
        observed = _observations_by_column(idata.observed_data[name].values, 0, layout)
        draws = _observations_by_column(draws, 1, layout)
        dims = idata.observed_data[name].dims
        if layout[0]:
            columns = list(idata.observed_data[name][dims[-1]].values)
        else:
            columns = (list(idata.observed_data[name][dims[1]].values) if len(dims) == 2 else [name]) if observed.shape[1] > 1 or len(dims) == 2 else [name]
        for statistic, function in statistics.items():
            if statistic == "sd" and observed.shape[0] < 2:  # one row has no spread to check
                continue
            observed_value = np.atleast_1d(np.asarray(function(observed), dtype=float))
            with np.errstate(invalid="ignore", over="ignore"):  # a heavy-tailed prior's inf draws: nan, counted as not above
                replicated_values = np.asarray(function(draws), dtype=float).reshape(len(draws), -1)
            labels = columns if replicated_values.shape[1] == len(columns) else [f"{name}"]
            for j, column in enumerate(labels):
                series = replicated_values[:, j]
                # mid-p: ties count half, so a discrete statistic that the replicates match
                # exactly (the min of counts, 0 in every replicate) reads 0.5, not a misfit
                p_value = float(np.mean(series > observed_value[j]) + 0.5 * np.mean(series == observed_value[j]))
                extreme = p_value < 0.025 or p_value > 0.975
                if group == "prior_predictive":
                    reading = (f"the prior rarely predicts data with the observed {statistic} of {column} "
                               f"(p = {p_value:.3f}): the prior and the data disagree" if extreme else
                               f"the observed {statistic} of {column} is within what the prior predicts (p = {p_value:.2f})")
                else:
                    reading = (f"the model rarely reproduces the observed {statistic} of {column} (p = {p_value:.3f})"
                               if extreme else f"the observed {statistic} of {column} is typical of the model (p = {p_value:.2f})")
                rows.append({"variable": name, "statistic": statistic, "column": str(column),
                             "observed": float(observed_value[j]), "predictive_mean": float(series.mean()),
                             "predictive_3%": float(np.quantile(series, 0.03)), "predictive_97%": float(np.quantile(series, 0.97)),
                             "p_value": p_value, "reading": reading})
                replicated[(name, statistic, str(column))] = series
    return PredictiveCheck(pd.DataFrame(rows), replicated)


def rows_view(idata, group: str = "posterior_predictive") -> az.InferenceData:
    """observed_data and `group` with every observed variable laid out as (row, feature): for
    (sequence, time, feature) data the real steps become rows and padding is dropped (by the
    `<name>_mask` beside it). What ArviZ's plots expect; variables already in rows pass through."""
    observed, predicted = {}, {}
    names = [name for name in getattr(idata, group).data_vars if name in idata.observed_data]
    for name in names:
        layout = _layout(idata, name)
        if not layout[0]:
            observed[name], predicted[name] = idata.observed_data[name].values, getattr(idata, group)[name].values
            continue
        observed[name] = _observations_by_column(idata.observed_data[name].values, 0, layout)
        predicted[name] = _observations_by_column(getattr(idata, group)[name].values, 2, layout)
    dims = {name: ["row", "feature"] for name in names if _layout(idata, name)[0]}
    features = {name: idata.observed_data[name]["feature"].values for name in dims}
    coords = {"feature": next(iter(features.values()))} if len(features) == 1 else {}
    with warnings.catch_warnings():
        # ArviZ warns about the dims it names itself (row); they are only the check's layout
        warnings.simplefilter("ignore", UserWarning)
        return az.from_dict(observed_data=observed, **{group: predicted}, dims=dims, coords=coords)


def generated_rows(idata, num_rows: int, seed: int = 0, variable: str | None = None) -> np.ndarray:
    """`num_rows` rows of the posterior predictive, each row from a random draw and position:
    a sample of new data from the fitted model, shaped (num_rows, D)."""
    predictive = idata.posterior_predictive
    name = variable or next(iter(predictive.data_vars))
    draws = predictive[name].values
    draws = draws.reshape((-1,) + draws.shape[2:])
    draws = _observations_by_column(draws, 1, _layout(idata, name))
    rng = np.random.default_rng(seed)
    which_draw = rng.integers(draws.shape[0], size=num_rows)
    which_row = rng.integers(draws.shape[1], size=num_rows)
    return draws[which_draw, which_row]


MAX_TWO_SAMPLE_ROWS = 2000
# Below this many rows, generated-against-observed comparisons are skipped. With n = m = 20 the
# KS test at level 0.05 misses a shift of one standard deviation about half the time (its
# critical distance is 0.43), and the plug-in KL on frequencies has a bias of about
# (distinct values - 1) / 2n nats, as large as the divergences it is meant to show: on the 8
# rows of eight schools it read 5.7 nats. From 20 rows on the figures carry their SEs.
MIN_TWO_SAMPLE_ROWS = 20


def discrete_kl(observed, generated, seed: int = 0, replicates: int = 200):
    """Plug-in KL(observed frequencies || generated frequencies) for integer data, the
    generated frequencies smoothed by half a count per value (so a value the model never
    generated gives a large, finite KL); its standard error by bootstrapping the observed
    values (`replicates` resamples)."""
    from probgen.checks import metrics

    observed, generated = np.asarray(observed), np.asarray(generated)
    support = np.union1d(observed, generated)
    q = np.searchsorted(support, generated)
    q = np.bincount(q, minlength=len(support)) + 0.5
    positions = np.searchsorted(support, observed)
    value = metrics.kl_discrete(np.bincount(positions, minlength=len(support)), q).value
    rng = np.random.default_rng(seed)
    boot = [metrics.kl_discrete(np.bincount(rng.choice(positions, len(positions)), minlength=len(support)), q).value
            for _ in range(replicates)]
    return metrics.Estimate(float(value), float(np.std(boot, ddof=1)), "plug-in (frequencies)")


def generated_vs_observed(idata, seed: int = 0, num_permutations: int = 500, group: str = "observed_data") -> dict:
    """Two-sample tests and a k-NN KL estimate between data generated by the fitted model and
    real data (the same number of rows): the rows of `group`, the data the model was fitted
    to ("observed_data") or rows kept out of the fit ("held_out_data").

    On the fitted rows, a test that rejects says the model cannot reproduce them; one that does
    not reject is weaker evidence than on held-out rows, which the fit has not seen.
    Above 2,000 rows, a random 2,000 rows are compared (recorded as "subsampled").
    """
    from probgen.checks import metrics

    # the observed variable with the most rows (several observed sites: the one with most to compare)
    candidates = [name for name in idata.posterior_predictive.data_vars if name in idata[group]]
    name = max(candidates, key=lambda n: len(_observations_by_column(idata[group][n].values, 0, _layout(idata, n, group))))
    values = idata[group][name].values
    if values.ndim == 0:
        return {"variable": name, "skipped": f"'{name}' is one value, not rows: two-sample tests and KL need rows"}
    observed = _observations_by_column(values, 0, _layout(idata, name, group))
    if len(observed) < MIN_TWO_SAMPLE_ROWS:
        return {"variable": name, "rows": int(len(observed)),
                "skipped": f"'{name}' has {len(observed)} row(s); below {MIN_TWO_SAMPLE_ROWS} rows the two-sample tests "
                           "have almost no power and the KL estimates are dominated by their bias, so none is reported"}
    rng = np.random.default_rng(seed)
    subsampled = len(observed) > MAX_TWO_SAMPLE_ROWS
    if subsampled:  # the MMD kernel matrix grows as rows squared
        observed = observed[rng.choice(len(observed), MAX_TWO_SAMPLE_ROWS, replace=False)]
    generated = generated_rows(idata, len(observed), seed, name)
    columns = None
    dims = idata[group][name].dims
    if len(dims) == 2 or _layout(idata, name, group)[0]:
        columns = [str(c) for c in idata[group][name][dims[-1]].values]
    tests = two_sample_tests(generated, observed, seed=seed, num_permutations=num_permutations, names=columns)
    out = {"variable": name, "rows": int(len(observed)), "subsampled": subsampled, "compared_with": group,
           "tests": [t.as_dict() for t in tests]}
    tied = [columns[j] if columns else str(j) for j in range(observed.shape[1])
            if len(np.unique(observed[:, j])) < 0.5 * len(observed)]
    which = "held-out" if group == "held_out_data" else "observed"
    if observed.shape[1] == 1 and np.all(observed == np.round(observed)):
        # counts or category codes: k-NN distances are zero at ties, so the plug-in estimate on
        # the values' frequencies is the one that applies
        kl = discrete_kl(observed[:, 0], generated_rows(idata, 100 * len(observed), seed + 1, name)[:, 0], seed)
        out["kl_observed_to_generated"] = {
            **kl.as_dict(),
            "reading": f"KL({which} || generated) = {kl.value:.3f} nats (SE {kl.standard_error:.3f}, plug-in on the "
                       f"values' frequencies: the data are integers)"}
        return out
    try:
        kl = metrics.kl_knn(observed, generated)
        caveat = "; biased upwards in more than 2 dimensions" if observed.shape[1] > 2 else ""
        if tied:
            caveat += (f"; {', '.join(tied)} take{'s' if len(tied) == 1 else ''} few distinct values, and their ties "
                       "bias k-NN estimates upwards")
        if not np.isfinite(kl.value):
            raise ValueError("repeated rows give zero neighbour distances")
        out["kl_observed_to_generated"] = {
            **kl.as_dict(),
            "reading": f"KL({which} || generated) = {kl.value:.3f} nats (SE {kl.standard_error:.3f}, k-NN{caveat})",
        }
    except ValueError as exc:  # ties in discrete data
        out["kl_observed_to_generated"] = {"value": None, "reading": f"k-NN KL not computed: {exc}"}
    return out


def anomaly_auroc(scores, is_anomaly) -> dict:
    """How well per-example anomaly scores (higher = more anomalous, e.g. -log p(x)) separate
    the anomalies: the area under the ROC curve (0.5 = chance, 1 = perfect), its standard error
    (Hanley and McNeil, 1982) and a reading."""
    from sklearn.metrics import roc_auc_score

    scores, is_anomaly = np.asarray(scores, float), np.asarray(is_anomaly, bool)
    if is_anomaly.all() or not is_anomaly.any():
        raise ValueError("AUROC needs both anomalies and normal examples")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} anomaly score(s) are not finite")
    auc = float(roc_auc_score(is_anomaly, scores))
    positives, negatives = int(is_anomaly.sum()), int((~is_anomaly).sum())
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    se = float(np.sqrt((auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2))
                       / (positives * negatives)))
    reading = (f"AUROC {auc:.3f} (SE {se:.3f}) over {positives} anomalies and {negatives} normal examples: "
               + ("the scores separate them well" if auc >= 0.9 else "the scores separate them partly" if auc >= 0.7
                  else "the scores barely separate them"))
    return {"auroc": auc, "se": se, "anomalies": positives, "normal": negatives, "reading": reading}


def held_out_scores(idata) -> dict | None:
    """Predictive scores on the rows kept out of the fit (`metrics.predictive_scores`): log
    predictive density, cross-entropy in nats and bits per row, perplexity, bits per
    dimension, with a reading; None when the run has no held-out rows."""
    from probgen.checks import metrics

    if "held_out_log_likelihood" not in idata.groups():
        return None
    name = next(iter(idata.held_out_log_likelihood.data_vars))
    values = idata.held_out_log_likelihood[name].values
    draws = values.reshape(values.shape[0] * values.shape[1], -1)
    data = idata.held_out_data[name].values
    feature_last, mask = _layout(idata, name, "held_out_data")
    if feature_last:  # (sequence, time, feature) data: one log-likelihood per step, the real ones
        dims_per_row = data.shape[-1]
        pointwise = draws if mask is None else draws[:, mask]
    else:
        dims_per_row = int(np.prod(data.shape[1:])) if data.ndim > 1 else 1
        rows = values.shape[2] if values.ndim > 2 else 1
        pointwise = draws.reshape(draws.shape[0], rows, -1).sum(-1)  # one log-likelihood per held-out row
    scores = metrics.predictive_scores(pointwise, num_dims=dims_per_row)
    scores["reading"] = (
        f"on {scores['num_points']} held-out rows: log predictive density {scores['log_predictive_density']:.2f} "
        f"(SE {scores['log_predictive_density_se']:.2f}); cross-entropy {scores['cross_entropy_nats']:.3f} nats = "
        f"{scores['cross_entropy_bits']:.3f} bits per row (SE {scores['cross_entropy_se_nats']:.3f} nats), "
        f"{scores['bits_per_dimension']:.3f} bits per dimension, perplexity {scores['perplexity']:.4g}"
    )
    return scores


SET_LEVEL = 0.9  # the highest-probability set of a discrete site's values holds this much posterior
SMALL_DISCRETE_SITE = 6  # elements: up to this many, each element's distribution is shown (bars); more are
# local assignments, shown together (a heat-map)


def discrete_probabilities(variable) -> tuple[np.ndarray, np.ndarray]:
    """(values, probabilities): the integer values a discrete site's draws take, from its
    smallest to its largest, and each element's posterior probability of each (elements x
    values), the share of the draws at that value."""
    draws = np.asarray(variable).reshape(variable.shape[0] * variable.shape[1], -1).astype(int)
    low, high = int(draws.min()), int(draws.max())
    counts = np.stack([np.bincount(column - low, minlength=high - low + 1) for column in draws.T])
    return np.arange(low, high + 1), counts / draws.shape[0]


def highest_probability_set(values: np.ndarray, probabilities: np.ndarray, level: float = SET_LEVEL):
    """(the fewest values whose probabilities sum to at least `level`, in increasing order, and
    their total probability): most probable first, ties by value."""
    order = np.lexsort((values, -probabilities))
    total = np.cumsum(probabilities[order])
    count = int(np.searchsorted(total, level - 1e-12) + 1)
    chosen = order[:min(count, len(order))]
    return sorted(int(v) for v in values[chosen]), float(probabilities[chosen].sum())


def value_ranges(values: list[int]) -> str:
    """[3, 4, 5, 9] -> "3-5, 9"."""
    runs: list[list[int]] = []
    for value in values:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def discrete_summary(idata, max_rows: int = 20) -> tuple[pd.DataFrame, dict] | None:
    """The recovered discrete sites (`discrete_posterior` group): per element, the posterior
    mode and its probability, and the 90% highest-probability set of its values. Returns
    (table of the first `max_rows` elements of each site, {site: {"elements",
    "mode_probability_mean", "confident": elements whose mode has probability >= 0.9, "shown":
    "distribution" (at most `SMALL_DISCRETE_SITE` elements, each shown as bars) or
    "assignments" (a heat-map), and for a small site "distribution": per element its mode,
    probability, set and set_probability}}), or None without such sites."""
    if "discrete_posterior" not in idata.groups():
        return None
    rows, summary = [], {}
    for name, variable in idata.discrete_posterior.data_vars.items():
        values, probabilities = discrete_probabilities(variable.values)
        modes = values[probabilities.argmax(axis=1)]
        mode_probability = probabilities.max(axis=1)
        sets = [highest_probability_set(values, row) for row in probabilities]
        small = len(probabilities) <= SMALL_DISCRETE_SITE
        summary[name] = {"elements": int(len(probabilities)), "mode_probability_mean": float(mode_probability.mean()),
                         "confident": int(np.sum(mode_probability >= 0.9)),
                         "shown": "distribution" if small else "assignments"}
        if small:
            summary[name]["distribution"] = [
                {"mode": int(modes[i]), "probability": float(mode_probability[i]), "set": sets[i][0],
                 "set_probability": sets[i][1]} for i in range(len(probabilities))]
        for index in range(min(max_rows, len(probabilities))):
            element = name if variable.ndim == 2 else f"{name}[{index}]"
            rows.append({"element": element, "posterior_mode": int(modes[index]),
                         "probability": float(mode_probability[index]),
                         f"{SET_LEVEL:.0%} set": value_ranges(sets[index][0]),
                         "set_probability": sets[index][1]})
    return pd.DataFrame(rows).set_index("element"), summary
