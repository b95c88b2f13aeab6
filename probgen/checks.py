"""Predictive checks, two-sample tests and model comparison (LOO and WAIC through ArviZ).

Functions take InferenceData and return numbers, tables and plain-words readings; they never
write files.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd

PARETO_K_BAD = 0.7


def _single_log_likelihood(idata) -> str | None:
    names = list(idata.log_likelihood.data_vars) if "log_likelihood" in idata.groups() else []
    return names[0] if len(names) == 1 else None


def without_padding(idata: az.InferenceData) -> az.InferenceData:
    """`idata` with the padded steps of (sequence, time) observations dropped from its
    log_likelihood (by `<name>_mask` in observed_data): their log-likelihood is 0 under every
    draw, which is not a data point, and PSIS reads such a constant as Pareto k = inf. Each
    such variable's real steps become one `<name>_point` dim. Unmasked data pass through."""
    if "log_likelihood" not in idata.groups() or "observed_data" not in idata.groups():
        return idata
    masked = [name for name in idata.log_likelihood.data_vars if f"{name}_mask" in idata.observed_data]
    if not masked:
        return idata
    import xarray as xr

    variables = {}
    for name, variable in idata.log_likelihood.data_vars.items():
        if name in masked:
            keep = np.asarray(idata.observed_data[f"{name}_mask"].values, bool).ravel()
            values = variable.values.reshape(variable.shape[:2] + (-1,))[:, :, keep]
            variable = xr.DataArray(values, dims=("chain", "draw", f"{name}_point"),
                                    coords={"chain": variable["chain"], "draw": variable["draw"]})
        variables[name] = variable
    groups = {"log_likelihood": xr.Dataset(variables), "observed_data": idata.observed_data}
    if "posterior" in idata.groups():  # ArviZ's LOO reads the chains' relative ESS from it
        groups["posterior"] = idata.posterior
    return az.InferenceData(**groups)


def predictive_metrics(idata: az.InferenceData) -> dict:
    """Predictive fit of the model to its own data.

    lppd: log pointwise predictive density (in sample, nats). elpd_loo, se, p_loo: PSIS-LOO
    estimate of the out-of-sample elpd (nats), its standard error and the effective number of
    parameters; pareto_k_bad lists the points whose PSIS k exceeds 0.7 (LOO unreliable there).
    elpd_waic likewise. Point estimates (one draw) get the log-likelihood only.
    """
    if "log_likelihood" not in idata.groups():
        return {"available": False, "reason": "no log_likelihood group"}
    idata = without_padding(idata)
    var_name = _single_log_likelihood(idata)
    log_lik = idata.log_likelihood[var_name] if var_name else sum(idata.log_likelihood.data_vars.values())
    values = log_lik.values.reshape(log_lik.shape[0] * log_lik.shape[1], -1)
    num_draws, num_points = values.shape
    lppd = float(np.sum(np.logaddexp.reduce(values, axis=0) - np.log(num_draws)))
    metrics = {
        "num_points": int(num_points),
        "lppd": lppd,
        "lppd_per_point": lppd / num_points,
    }
    if num_draws < 100:
        metrics["loo"] = {"available": False, "reason": f"{num_draws} draw(s): LOO needs a posterior sample"}
        return metrics
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = az.loo(idata, var_name=var_name, pointwise=True)
        waic = az.waic(idata, var_name=var_name)
    pareto_k = np.asarray(loo.pareto_k).reshape(-1)
    bad = np.flatnonzero(pareto_k > PARETO_K_BAD)
    metrics["loo"] = {
        "elpd_loo": float(loo.elpd_loo),
        "se": float(loo.se),
        "p_loo": float(loo.p_loo),
        "elpd_loo_per_point": float(loo.elpd_loo) / num_points,
        "pareto_k_max": float(pareto_k.max()),
        "pareto_k_bad": [{"point": int(i), "k": float(pareto_k[i])} for i in bad],
    }
    metrics["waic"] = {"elpd_waic": float(waic.elpd_waic), "se": float(waic.se), "p_waic": float(waic.p_waic)}
    return metrics


def compare(
    fits: Mapping[str, az.InferenceData],
    convergence: Mapping[str, str] | None = None,
    scale: str = "log",
) -> tuple[pd.DataFrame, str]:
    """Rank models by PSIS-LOO; return ArviZ's comparison table and a plain-words reading.

    convergence: optional name -> overall verdict ("trusted", "suspect", "failed"). A model
    whose fit failed its convergence checks stays in the table (with a "convergence" column)
    but cannot be preferred: its LOO figures describe the sampler's trouble, not the model.
    The reading prefers the top usable model only when its elpd lead over the usable
    runner-up exceeds twice the standard error of the difference.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {name: without_padding(fit) for name, fit in fits.items()}
        table = az.compare(dict(fits), ic="loo", scale=scale)
    if convergence is not None:
        table["convergence"] = [convergence[name] for name in table.index]
    failed = [name for name in table.index if convergence and convergence[name] == "failed"]
    usable = [name for name in table.index if name not in failed]
    if not usable:
        return table, "Every fit failed its convergence checks: no model can be preferred."
    reading = ""
    if failed:
        reading = (f"The fits of {', '.join(failed)} failed their convergence checks, so their LOO figures are not "
                   f"usable and they are left out of the choice. Among {', '.join(usable)}: ")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ranked = az.compare({name: fits[name] for name in usable}, ic="loo", scale=scale)
    else:
        ranked = table
    names = list(ranked.index)
    best = names[0]
    if len(names) == 1:
        return table, reading + f"only {best} remains, so it is the one to use."
    runner_up = names[1]
    difference = float(ranked.loc[runner_up, "elpd_diff"])
    se = float(ranked.loc[runner_up, "dse"])
    if difference > 2 * se:
        reading += (f"LOO prefers {best}: its expected log predictive density beats {runner_up} by "
                    f"{difference:.1f} nats (SE of the difference {se:.1f}).")
    else:
        reading += (f"{best} ranks first, but its lead over {runner_up} ({difference:.1f} nats, SE {se:.1f}) "
                    "is within two standard errors: LOO cannot tell them apart; prefer the simpler one.")
    bad = [n for n in usable if bool(table.loc[n, "warning"])]
    if bad:
        reading += f" Pareto k above 0.7 for some points in {', '.join(bad)}: their LOO estimates are less reliable."
    return table, reading


def choose_simplest(fits: Mapping[str, az.InferenceData], order: Sequence[str],
                    convergence: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(name, reason): the simplest model that PSIS-LOO cannot tell from the best, the stated
    rule for choosing a number of states or components.

    order: the names of `fits` from simplest to most complex. A fit that failed its
    convergence checks is never chosen. Among the rest (ranked again without the failed ones),
    the first in `order` whose elpd_loo is within two standard errors of its difference from
    the best one's."""
    usable = [name for name in order if not convergence or convergence[name] != "failed"]
    if not usable:
        raise ValueError("every candidate failed its convergence checks: none can be chosen")
    if len(usable) == 1:
        return usable[0], f"{usable[0]} is the only candidate whose fit passed its convergence checks"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = az.compare({name: without_padding(fits[name]) for name in usable}, ic="loo")
    best = table.index[0]
    for name in usable:
        gap, se = float(table.loc[name, "elpd_diff"]), float(table.loc[name, "dse"])
        if name == best:
            return name, f"{name} has the highest elpd_loo and no simpler model comes within two SE of it"
        if gap <= 2 * se:
            return name, (f"{name} is the simplest model within two standard errors of the best, {best} "
                          f"({gap:.1f} nats behind, SE of the difference {se:.1f})")
    raise AssertionError("unreachable: the best model is in `usable`")


# --------------------------------------------------------------------------------------------
# Two-sample tests: "are the generated data distributed like the real ones?"
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TestResult:
    """A hypothesis test's statistic, p-value and a plain-words reading at level alpha."""

    test: str
    statistic: float
    p_value: float
    reading: str
    details: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _two_samples(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"samples must be (n, d) and (m, d) with the same d; got {x.shape} and {y.shape}")
    for name, values in (("first sample", x), ("second sample", y)):
        if len(values) < 2:
            raise ValueError(f"the {name} needs at least 2 rows, got {len(values)}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"the {name} has {int((~np.isfinite(values)).sum())} NaN or infinite values")
    return x, y


def _reading(name: str, p_value: float, alpha: float, what: str) -> str:
    shown = "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"
    if p_value < alpha:
        return f"{name}: {shown} < {alpha}: the two samples differ ({what})."
    return f"{name}: {shown}: no evidence at level {alpha} that the two samples differ ({what})."


def median_heuristic_bandwidth(pooled: np.ndarray) -> float:
    """The median pairwise Euclidean distance of (up to 1,000 rows of) the pooled sample."""
    rows = pooled[:1000]
    squared = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
    distances = np.sqrt(squared[np.triu_indices(len(rows), 1)])
    bandwidth = float(np.median(distances))
    return bandwidth if bandwidth > 0 else 1.0


def mmd_test(x, y, num_permutations: int = 500, seed: int = 0, bandwidth: float | None = None,
             alpha: float = 0.05) -> TestResult:
    """Maximum mean discrepancy with a Gaussian kernel and a permutation test.

    Statistic: the unbiased estimate of MMD^2 (Gretton et al. 2012) with kernel
    exp(-|a - b|^2 / (2 h^2)), h by the median heuristic unless given. The p-value is
    (1 + #{permuted >= observed}) / (1 + num_permutations) over random relabellings of the pooled
    sample; the pooled kernel matrix is computed once and each batch of permutations scored by
    matrix products.
    """
    x, y = _two_samples(x, y)
    n, m = len(x), len(y)
    pooled = np.concatenate([x, y])
    h = bandwidth or median_heuristic_bandwidth(pooled)
    squared_norms = (pooled**2).sum(1)
    squared = np.maximum(squared_norms[:, None] + squared_norms[None, :] - 2 * pooled @ pooled.T, 0)
    kernel = np.exp(-squared / (2 * h * h)).astype(np.float32)
    np.fill_diagonal(kernel, 0.0)  # the unbiased statistic leaves out i == j

    def statistics(membership: np.ndarray) -> np.ndarray:
        # membership: (B, n + m) with 1 for the first sample; within-sample sums by quadratic forms
        a = membership.astype(np.float32)
        b = 1.0 - a
        ka, kb = a @ kernel, b @ kernel
        within_x = (ka * a).sum(1) / (n * (n - 1))
        within_y = (kb * b).sum(1) / (m * (m - 1))
        between = (ka * b).sum(1) / (n * m)
        return within_x + within_y - 2 * between

    observed = float(statistics(np.r_[np.ones(n), np.zeros(m)][None])[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    for start in range(0, num_permutations, 100):
        batch = min(100, num_permutations - start)
        membership = np.zeros((batch, n + m))
        chosen = np.argsort(rng.random((batch, n + m)), axis=1)[:, :n]
        np.put_along_axis(membership, chosen, 1.0, axis=1)
        exceed += int(np.sum(statistics(membership) >= observed))
    p_value = (1 + exceed) / (1 + num_permutations)
    return TestResult("MMD", observed, p_value, _reading("MMD permutation test", p_value, alpha, f"MMD^2 = {observed:.3g}"),
                      {"bandwidth": h, "num_permutations": num_permutations})


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def ks_test(x, y, alpha: float = 0.05, names=None) -> TestResult:
    """Two-sample Kolmogorov-Smirnov per dimension, Holm-adjusted across dimensions.

    The statistic is the largest KS distance; the p-value is the smallest adjusted one.
    """
    from scipy import stats

    x, y = _two_samples(x, y)
    names = list(names) if names is not None else [f"dimension {j}" for j in range(x.shape[1])]
    results = [stats.ks_2samp(x[:, j], y[:, j]) for j in range(x.shape[1])]
    adjusted = holm([r.pvalue for r in results])
    worst = int(np.argmin(adjusted))
    detail = {name: {"statistic": float(r.statistic), "p_value": float(r.pvalue), "p_adjusted": float(a)}
              for name, r, a in zip(names, results, adjusted)}
    return TestResult("KS", float(max(r.statistic for r in results)), float(adjusted[worst]),
                      _reading("Kolmogorov-Smirnov per dimension (Holm)", float(adjusted[worst]), alpha,
                               f"largest difference in {names[worst]}"), detail)


def chi_square_test(x, y, bins: int = 10, alpha: float = 0.05) -> TestResult:
    """Chi-square test of homogeneity on one variable: categories if it has at most `bins`
    distinct values, otherwise `bins` equal-frequency bins of the pooled sample."""
    from scipy import stats

    x, y = _two_samples(x, y)
    if x.shape[1] != 1:
        raise ValueError(f"the chi-square test takes one variable; got {x.shape[1]} (test each column)")
    x, y = x[:, 0], y[:, 0]
    pooled = np.concatenate([x, y])
    categories = np.unique(pooled)
    if len(categories) <= bins:
        table = np.array([[np.sum(x == c) for c in categories], [np.sum(y == c) for c in categories]])
        how = f"{len(categories)} categories"
    else:
        edges = np.unique(np.quantile(pooled, np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        table = np.array([np.histogram(x, edges)[0], np.histogram(y, edges)[0]])
        how = f"{len(edges) - 1} equal-frequency bins"
    table = table[:, table.sum(0) > 0]
    statistic, p_value, dof, _ = stats.chi2_contingency(table, correction=False)
    return TestResult("chi-square", float(statistic), float(p_value),
                      _reading("chi-square", float(p_value), alpha, f"{how}, {dof} degrees of freedom"),
                      {"degrees_of_freedom": int(dof), "table": table.tolist()})


def welch_t_test(x, y, summary=None, alpha: float = 0.05, label: str = "row mean") -> TestResult:
    """Welch's t-test on a summary statistic of each row (default: the row's mean)."""
    from scipy import stats

    x, y = _two_samples(x, y)
    summarise = summary or (lambda rows: rows.mean(axis=1))
    a, b = np.asarray(summarise(x), dtype=float), np.asarray(summarise(y), dtype=float)
    result = stats.ttest_ind(a, b, equal_var=False)
    return TestResult("Welch t", float(result.statistic), float(result.pvalue),
                      _reading("Welch's t-test", float(result.pvalue), alpha,
                               f"{label}: {a.mean():.4g} against {b.mean():.4g}"))


def two_sample_tests(generated, real, seed: int = 0, num_permutations: int = 500, names=None) -> list[TestResult]:
    """MMD, per-dimension KS and Welch's t on row means: generated against real data."""
    return [mmd_test(generated, real, num_permutations, seed), ks_test(generated, real, names=names),
            welch_t_test(generated, real)]


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
    if feature_last:
        values = values.reshape(shape[:leading] + (-1, shape[-1]))
        return values if mask is None else values[(slice(None),) * leading + (mask,)]
    return values.reshape(shape[: leading + 1] + (-1,))


def _layout(idata, name: str, group: str = "observed_data") -> tuple:
    """How the rows of observed variable `name` are laid out: (feature_last, mask of real rows).
    A model with padded observations puts `<name>_mask` (True = real) beside them in the group."""
    variable = idata[group][name]
    feature_last = variable.ndim > 2 and variable.dims[-1] == "feature"
    mask = None
    if feature_last and f"{name}_mask" in idata[group]:
        mask = np.asarray(idata[group][f"{name}_mask"].values, bool).ravel()
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
            observed_value = np.atleast_1d(np.asarray(function(observed), dtype=float))
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


def discrete_kl(observed, generated, seed: int = 0, replicates: int = 200):
    """Plug-in KL(observed frequencies || generated frequencies) for integer data, the
    generated frequencies smoothed by half a count per value (so a value the model never
    generated gives a large, finite KL); its standard error by bootstrapping the observed
    values (`replicates` resamples)."""
    from probgen import metrics

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
    from probgen import metrics

    name = next(iter(idata.posterior_predictive.data_vars))
    observed = _observations_by_column(idata[group][name].values, 0, _layout(idata, name, group))
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
    from probgen import metrics

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
