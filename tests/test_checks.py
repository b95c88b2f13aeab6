"""Two-sample tests: the statistic against a direct computation, the size under the null
(uniform p-values: rejection rate at 5% within a binomial tolerance), and power under shifts."""

import numpy as np
import pytest

from probgen import checks
from probgen.checks import loo
from probgen.checks import two_sample
from _seeds import seeded


def direct_unbiased_mmd2(x, y, h):
    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h * h))

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
            - 2 * kxy.mean())


def test_mmd_statistic_matches_a_direct_computation():
    rng = np.random.default_rng(seeded(0))
    x, y = rng.normal(size=(40, 3)), rng.normal(0.3, 1, size=(55, 3))
    result = two_sample.mmd_test(x, y, num_permutations=50, bandwidth=1.7)
    assert result.statistic == pytest.approx(direct_unbiased_mmd2(x, y, 1.7), rel=1e-5, abs=1e-7)


def rejection_rate(test, replications, n, seed, **kwargs):
    rng = np.random.default_rng(seed)
    rejected = 0
    for r in range(replications):
        x, y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
        rejected += test(x, y, **kwargs).p_value < 0.05
    return rejected / replications


@pytest.mark.parametrize("test, replications, kwargs", [
    (two_sample.mmd_test, 200, {"num_permutations": 200}),
    (two_sample.ks_test, 400, {}),
    (two_sample.welch_t_test, 400, {}),
    (lambda x, y: two_sample.chi_square_test(x[:, :1], y[:, :1]), 400, {}),
])
def test_size_under_the_null_is_five_percent(test, replications, kwargs):
    rate = rejection_rate(test, replications, 60, seed=seeded(1), **kwargs)
    # Under the null each replication rejects with probability 0.05 (KS with Holm: at most
    # 0.05); 3 binomial sds around 0.05 is [0.004, 0.096] for 200 and [0.017, 0.083] for 400.
    sd = np.sqrt(0.05 * 0.95 / replications)
    assert rate <= 0.05 + 3 * sd
    if test is not two_sample.ks_test:  # Holm makes KS conservative
        assert rate >= 0.05 - 3 * sd


def test_every_test_rejects_a_shift():
    rng = np.random.default_rng(seeded(2))
    # 500 points a sample: enough for the least powerful of them (chi-square on 10 bins).
    x, y = rng.normal(size=(500, 2)), rng.normal(0.5, 1, size=(500, 2))
    for result in (two_sample.mmd_test(x, y), two_sample.ks_test(x, y), two_sample.welch_t_test(x, y),
                   two_sample.chi_square_test(x[:, :1], y[:, :1])):
        assert result.p_value < 0.01, result
        assert "differ" in result.reading


def test_mmd_sees_a_change_of_spread_that_a_t_test_cannot():
    rng = np.random.default_rng(seeded(3))
    x, y = rng.normal(size=(300, 1)), rng.normal(0, 2, size=(300, 1))
    assert two_sample.mmd_test(x, y).p_value < 0.01
    assert two_sample.welch_t_test(x, y).p_value > 0.01


def test_chi_square_on_categories():
    x = np.repeat([0, 1, 2], [50, 30, 20]).astype(float)
    y = np.repeat([0, 1, 2], [20, 30, 50]).astype(float)
    result = two_sample.chi_square_test(x, y)
    assert result.details["degrees_of_freedom"] == 2 and result.p_value < 1e-4


def test_holm_adjustment():
    np.testing.assert_allclose(two_sample.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])


def test_bad_samples_are_named():
    with pytest.raises(ValueError, match="same d"):
        two_sample.mmd_test(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="second sample has 1 NaN"):
        two_sample.ks_test(np.zeros((5, 1)), np.array([[0.0], [np.nan], [1.0]]))


def synthetic_idata(observed, replicated):
    import arviz as az

    return az.from_dict(posterior={"mu": np.zeros((1, len(replicated)))},
                        posterior_predictive={"x": replicated[None]}, observed_data={"x": observed})


def test_predictive_check_p_values_are_typical_for_the_right_model_and_extreme_for_a_wrong_one():
    rng = np.random.default_rng(seeded(4))
    observed = rng.normal(size=200)
    right = synthetic_idata(observed, rng.normal(size=(1000, 200)))
    table = checks.predictive_check(right).table.set_index("statistic")
    # The observed data come from the replicating distribution, so every p-value is uniform;
    # with a fixed seed these four are all inside [0.025, 0.975].
    assert table["p_value"].between(0.025, 0.975).all(), table
    np.testing.assert_allclose(table.loc["sd", "observed"], observed.std())
    too_narrow = synthetic_idata(observed, rng.normal(0, 0.5, size=(1000, 200)))
    table = checks.predictive_check(too_narrow).table.set_index("statistic")
    assert table.loc["sd", "p_value"] == 0.0 and "rarely reproduces the observed sd" in table.loc["sd", "reading"]


def test_user_statistics_are_checked_too():
    rng = np.random.default_rng(seeded(5))
    idata = synthetic_idata(rng.normal(size=100), rng.normal(size=(500, 100)))
    table = checks.predictive_check(idata, statistics={"fraction_positive": lambda v: (v > 0).mean(axis=-2)}).table
    assert list(table["statistic"]) == ["fraction_positive"]


@pytest.mark.slow  # 30 s (two mixture fits); the default suite checks the tests themselves against known
# answers (size under the null, power against a shift) and every fit runs them in its report
def test_generated_data_from_a_one_component_fit_of_old_faithful_are_told_apart(faithful_fit):
    from probgen.infer import fit

    one = fit("gmm", "faithful", "nuts", options={"num_components": 1}, seed=seeded(0), progress=False,
              chains=2, warmup=300, draws=300)
    wrong = {t["test"]: t["p_value"] for t in checks.generated_vs_observed(one.idata)["tests"]}
    right = {t["test"]: t["p_value"] for t in checks.generated_vs_observed(faithful_fit.idata)["tests"]}
    # A single Gaussian cannot make the two clusters of Old Faithful; two components can.
    assert wrong["MMD"] < 0.01 and wrong["KS"] < 0.01
    assert right["MMD"] > 0.05 and right["KS"] > 0.05


def test_discrete_kl_of_counts_matches_the_exact_value():
    """Integer data get the plug-in KL on frequencies (k-NN distances vanish at ties). Against
    the exact KL(Poisson(3) || Poisson(4)) = 3 log(3/4) + 1: the estimate is within 4 bootstrap
    SE plus the plug-in's first-order bias (support size - 1) / (2 n); the same law gives ~0."""
    from probgen.checks import discrete_kl

    rng = np.random.default_rng(seeded(4))
    observed = rng.poisson(3.0, size=2000)
    exact = 3 * np.log(3 / 4) + 1
    shifted = discrete_kl(observed, rng.poisson(4.0, size=200_000), seed=seeded(1))
    bias = (len(np.unique(observed)) - 1) / (2 * len(observed))
    assert abs(shifted.value - exact) < 4 * shifted.standard_error + bias, (shifted, exact)
    same = discrete_kl(observed, rng.poisson(3.0, size=200_000), seed=seeded(1))
    assert 0 <= same.value < 4 * same.standard_error + bias, same


def test_predictive_p_value_counts_ties_half():
    """Counts: every replicate's min is 0 like the data's, which is agreement (mid-p 0.5), not
    the 'p = 1' misfit a one-sided P(T_rep >= T_obs) reports."""
    import arviz as az

    rng = np.random.default_rng(seeded(2))
    observed = rng.poisson(2.0, size=(200, 1)).astype(float)
    replicated = rng.poisson(2.0, size=(1, 300, 200, 1)).astype(float)
    idata = az.from_dict(observed_data={"x": observed}, posterior_predictive={"x": replicated},
                         posterior={"mu": rng.normal(size=(1, 300))})
    table = checks.predictive_check(idata).table
    row = table[table["statistic"] == "min"].iloc[0]
    assert observed.min() == 0 and row["p_value"] == pytest.approx(0.5, abs=0.01)


def test_padded_steps_are_not_loo_points():
    """Sequences of unequal length: the padded steps' log-likelihood is 0 under every draw, which
    PSIS reads as Pareto k = inf; LOO must count only the real steps."""
    import arviz as az

    rng = np.random.default_rng(seeded(0))
    ll = rng.normal(-1, 0.3, size=(2, 200, 3, 10))
    mask = np.ones((3, 10), bool)
    mask[1, 6:] = False
    ll[:, :, ~mask] = 0.0
    idata = az.from_dict(posterior={"a": rng.normal(size=(2, 200))}, log_likelihood={"x": ll},
                         observed_data={"x": np.zeros((3, 10, 1)), "x_mask": mask},
                         dims={"x": ["sequence", "time", "feature"], "x_mask": ["sequence", "time"]})
    metrics = loo.predictive_metrics(idata)
    assert metrics["num_points"] == 26 and not metrics["loo"]["pareto_k_bad"]
    assert np.isfinite(metrics["loo"]["pareto_k_max"])
    # the same numbers as LOO on the real steps alone
    alone = az.loo(az.from_dict(posterior={"a": idata.posterior["a"].values}, log_likelihood={"x": ll[:, :, mask]}))
    assert metrics["loo"]["elpd_loo"] == pytest.approx(float(alone.elpd_loo))
    table, _ = loo.compare({"a": idata, "b": idata})
    assert table.loc["a", "elpd_loo"] == pytest.approx(float(alone.elpd_loo))


def test_anomaly_auroc_matches_the_binormal_value():
    """Scores N(0, 1) for normal examples and N(1, 1) for anomalies: AUROC = Phi(1 / sqrt 2);
    the estimate is within 4 of its Hanley-McNeil standard errors."""
    from scipy import stats

    rng = np.random.default_rng(seeded(1))
    scores = np.concatenate([rng.normal(0, 1, 800), rng.normal(1, 1, 200)])
    labels = np.r_[np.zeros(800, bool), np.ones(200, bool)]
    result = checks.anomaly_auroc(scores, labels)
    assert abs(result["auroc"] - stats.norm.cdf(1 / np.sqrt(2))) < 4 * result["se"]
    with pytest.raises(ValueError, match="both anomalies and normal"):
        checks.anomaly_auroc(scores[:10], np.zeros(10, bool))
