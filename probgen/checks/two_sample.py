"""Two-sample tests: "are the generated data distributed like the real ones?" MMD, KS, chi-square
and Welch's t, with Holm's adjustment across columns.
"""

from __future__ import annotations

import dataclasses

import numpy as np

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
    p_values = [float(r.pvalue) if np.isfinite(r.pvalue) else 1.0 for r in results]  # one value in both: no evidence
    adjusted = holm(p_values)
    worst = int(np.argmin(adjusted))
    detail = {name: {"statistic": float(r.statistic), "p_value": p, "p_adjusted": float(a)}
              for name, r, p, a in zip(names, results, p_values, adjusted)}
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


def welch_t_test(x, y, alpha: float = 0.05, names=None) -> TestResult:
    """Welch's t-test on the mean of each column, Holm-adjusted across columns (as `ks_test`):
    columns in different units (minutes and millimetres) are never averaged together.

    The statistic is the t of the column with the smallest adjusted p-value, which is the
    p-value returned.
    """
    from scipy import stats

    x, y = _two_samples(x, y)
    names = list(names) if names is not None else [f"dimension {j}" for j in range(x.shape[1])]
    results = [stats.ttest_ind(x[:, j], y[:, j], equal_var=False) for j in range(x.shape[1])]
    p_values = [float(r.pvalue) if np.isfinite(r.pvalue) else 1.0 for r in results]  # constant columns: no evidence
    adjusted = holm(p_values)
    worst = int(np.argmin(adjusted))
    detail = {name: {"mean_first": float(x[:, j].mean()), "mean_second": float(y[:, j].mean()),
                     "statistic": float(r.statistic), "p_value": p, "p_adjusted": float(a)}
              for j, (name, r, p, a) in enumerate(zip(names, results, p_values, adjusted))}
    return TestResult("Welch t", float(results[worst].statistic), float(adjusted[worst]),
                      _reading("Welch's t-test per column (Holm)", float(adjusted[worst]), alpha,
                               f"mean of {names[worst]}: {x[:, worst].mean():.4g} against {y[:, worst].mean():.4g}"),
                      detail)


def two_sample_tests(generated, real, seed: int = 0, num_permutations: int = 500, names=None) -> list[TestResult]:
    """MMD, and KS and Welch's t per column (Holm-adjusted): generated against real data."""
    return [mmd_test(generated, real, num_permutations, seed), ks_test(generated, real, names=names),
            welch_t_test(generated, real, names=names)]
