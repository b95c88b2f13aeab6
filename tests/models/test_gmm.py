"""The Gaussian mixture: its density, identification, recovery of known answers."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture as SklearnMixture

from probgen import data
from probgen.checks import diagnostics
from probgen.errors import ModelError
from probgen.infer import fit
from probgen.models import gmm
from _seeds import seeded


def random_parameters(rng, K, D):
    weights = rng.dirichlet(np.ones(K))
    means = rng.normal(size=(K, D)) * 3
    A = rng.normal(size=(K, D, D))
    covariances = A @ np.swapaxes(A, 1, 2) + np.eye(D)
    return weights, means, np.linalg.cholesky(covariances), covariances


@pytest.mark.parametrize("K, D", [(1, 1), (3, 2), (5, 10)])
def test_mixture_density_matches_scipy(K, D):
    rng = np.random.default_rng(K * 10 + D)
    weights, means, scale_tril, covariances = random_parameters(rng, K, D)
    x = rng.normal(size=(50, D)) * 3
    reference = np.log(sum(w * stats.multivariate_normal(m, c).pdf(x) for w, m, c in zip(weights, means, covariances)))
    with jax.enable_x64(True):
        ours = gmm.mixture_log_likelihood(jnp.asarray(x), jnp.asarray(weights), jnp.asarray(means), jnp.asarray(scale_tril))
        np.testing.assert_allclose(np.asarray(ours), reference, rtol=1e-10)


def test_mixture_density_matches_numpyro_mixture_in_float32():
    import numpyro.distributions as dist

    rng = np.random.default_rng(seeded(0))
    weights, means, scale_tril, _ = (np.asarray(a, np.float32) for a in random_parameters(rng, 4, 3))
    x = rng.normal(size=(100, 3)).astype(np.float32)
    reference = dist.MixtureSameFamily(dist.Categorical(weights), dist.MultivariateNormal(means, scale_tril=scale_tril)).log_prob(x)
    np.testing.assert_allclose(gmm.GaussianMixture(weights, means, scale_tril).log_prob(x), reference, rtol=1e-5, atol=1e-4)


def test_mixture_samples_have_the_mixture_moments():
    rng = np.random.default_rng(seeded(1))
    weights, means, scale_tril, covariances = random_parameters(rng, 3, 2)
    n = 200_000
    x = np.asarray(gmm.GaussianMixture(jnp.asarray(weights), jnp.asarray(means), jnp.asarray(scale_tril)).sample(jax.random.PRNGKey(seeded(0)), (n,)))
    mean = weights @ means
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(weights, means, covariances))
    covariance = second - np.outer(mean, mean)
    # The sample mean's standard error is sqrt(diag(cov) / n); 5 SE bounds a false alarm below 1e-6.
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * np.sqrt(np.diag(covariance) / n))
    # SE of a sample covariance is about sqrt((c_ii c_jj + c_ij^2) / n) for Gaussian data; the
    # mixture's heavier tails make it larger, so allow 6 of those.
    standard_error = np.sqrt((np.outer(np.diag(covariance), np.diag(covariance)) + covariance**2) / n)
    np.testing.assert_array_less(np.abs(np.cov(x.T) - covariance), 6 * standard_error)


def test_ordered_normal_is_the_order_statistic_of_iid_normals():
    distribution = gmm.OrderedNormal(jnp.array(0.0), jnp.array(1.0), 2)
    draws = np.asarray(distribution.sample(jax.random.PRNGKey(seeded(0)), (100_000,)))
    assert np.all(np.diff(draws, axis=1) >= 0)  # sorted; float32 ties occur about once in 1e5
    # E[max of two standard normals] = 1/sqrt(pi); its sd is about 0.83, so SE = 0.83/sqrt(1e5).
    assert abs(draws[:, 1].mean() - 1 / np.sqrt(np.pi)) < 5 * 0.83 / np.sqrt(100_000)
    value = jnp.array([-0.3, 0.8])
    expected = stats.norm.logpdf(value).sum() + np.log(2)
    np.testing.assert_allclose(distribution.log_prob(value), expected, rtol=1e-6)


def test_relabelling_recovers_known_permutations():
    rng = np.random.default_rng(seeded(2))
    truth = np.array([[0.0, 0.0], [5.0, 1.0], [10.0, -1.0]])
    draws = truth + 0.3 * rng.normal(size=(500, 3, 2))
    permutations = np.stack([rng.permutation(3) for _ in range(500)])
    scrambled = np.take_along_axis(draws, permutations[:, :, None], axis=1)
    found = gmm.relabel_permutations(scrambled)
    restored = np.take_along_axis(scrambled, found[:, :, None], axis=1)
    # Every draw is mapped back to one common labelling (the reference's, up to a global permutation).
    order = np.argsort(restored.mean(axis=0)[:, 0])
    np.testing.assert_allclose(restored[:, order], draws, atol=1e-12)


def test_options_are_validated_against_the_data():
    frame = data.load("faithful").frame
    spec = gmm.SPEC
    with pytest.raises(ModelError, match="--num-components must be an integer >= 1, got 0"):
        spec.prepare(frame, spec.resolve_options({"num_components": 0}))
    with pytest.raises(ModelError, match="--num-components 300 is more than the number of data points \\(272\\)"):
        spec.prepare(frame, spec.resolve_options({"num_components": 300}))
    with pytest.raises(ModelError, match="--covariance must be one of"):
        spec.prepare(frame, spec.resolve_options({"covariance": "spherical"}))


# ---------------------------------------------------------------------------------------------
# Inference on Old Faithful: the claims of analyses/faithful_gmm.py
# ---------------------------------------------------------------------------------------------
def sklearn_reference():
    x = data.load("faithful").frame.to_numpy()
    return x, SklearnMixture(2, covariance_type="full", n_init=10, tol=1e-8, max_iter=2000, random_state=0).fit(x)


def test_faithful_converges_and_matches_maximum_likelihood(faithful_fit):
    idata = faithful_fit.idata
    assessment = diagnostics.assess(idata, "nuts", faithful_fit.settings, facts=faithful_fit.facts)
    checks = {v.check: v for v in assessment.verdicts}
    assert checks["r_hat"].value <= 1.01
    assert checks["divergences"].value == 0
    assert assessment.overall == "trusted", assessment.summary
    _, reference = sklearn_reference()
    order = np.argsort(reference.means_[:, 0])  # ours are ordered by the first column
    posterior = idata.posterior
    for name, expected in (("means", reference.means_[order]), ("weights", reference.weights_[order])):
        mean = posterior[name].mean(("chain", "draw")).values
        sd = posterior[name].std(("chain", "draw")).values
        # With 272 points and weak priors the posterior mean is within a fraction of a posterior
        # sd of the MLE; 2 sd is the analysis' stated claim.
        assert np.all(np.abs(mean - expected) <= 2 * sd), (name, mean, expected, sd)


def test_assignment_probabilities_agree_with_sklearn(faithful_fit):
    x, reference = sklearn_reference()
    ours = gmm.assignment_probabilities(faithful_fit.idata)
    np.testing.assert_allclose(ours.sum(axis=1), 1, rtol=1e-5)
    order = np.argsort(reference.means_[:, 0])
    theirs = reference.predict_proba(x)[:, order]
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) > 0.99
    assert np.max(np.abs(ours - theirs)) < 0.1


def _seed_starting_chains_in_both_labellings(faithful, first_seed: int) -> int:
    """The first seed from `first_seed` on whose k-means starts (drawn as `fit` draws them: the
    third of three keys split from the seed) put the long-eruption cluster first in some of the
    4 chains and second in others. Under a random seed all 4 chains share a labelling with
    probability 1/8, and the naive fit then shows nothing; choosing the seed makes the test
    hold under any base seed."""
    from probgen.spec import load_spec

    spec = load_spec("gmm")
    inputs = spec.prepare(faithful.frame, spec.resolve_options({"identify": "none"}))
    for seed in range(first_seed, first_seed + 100):
        init_key = jax.random.split(jax.random.PRNGKey(seed), 3)[2]
        means = spec.init(inputs, init_key, 4)["means"][:, :, 0]
        if len(set(np.argmax(means, axis=1).tolist())) == 2:
            return seed
    raise AssertionError("no seed in 100 starts the chains in both labellings")


@pytest.mark.slow  # 25-55 s: three 4-chain fits; test_relabelling_recovers_known_permutations stays in the default suite
def test_naive_mixture_has_label_switching_ours_does_not():
    faithful = data.load("faithful")
    seed = _seed_starting_chains_in_both_labellings(faithful, seeded(1))
    settings = dict(chains=4, warmup=300, draws=300, seed=seed, progress=False)
    naive = fit("gmm", faithful, "nuts", options={"identify": "none"}, **settings)
    # The chains start in both labellings and the two modes are far apart (eruption means ~2.0
    # and ~4.3 min), so the pooled chains straddle two modes: R-hat far above 1.
    assert float(az.rhat(naive.idata, var_names=["means"])["means"].max()) > 1.2
    for identify in ("ordered", "relabel"):
        ours = fit("gmm", faithful, "nuts", options={"identify": identify}, **settings)
        r_hat = az.rhat(ours.idata, var_names=["means", "weights"])
        # Converged chains: split R-hat - 1 is about chi2(7)/7 / (2 ESS per split chain); with
        # ~40-80 effective draws per split chain its largest value over 14 quantities reaches
        # ~0.02-0.03 by chance (1.014 was seen on another CPU), so 1.01 sits inside Monte Carlo
        # noise. A switching chain gives R-hat > 1.2, so 1.05 separates the two cases.
        assert max(float(r_hat[v].max()) for v in r_hat.data_vars) <= 1.05, identify


def test_map_matches_sklearn_em_log_likelihood():
    x, reference = sklearn_reference()
    result = fit("gmm", "faithful", "map", seed=seeded(0), progress=False)
    log_likelihood_map = float(result.idata.log_likelihood["x"].sum())
    log_likelihood_em = reference.score(x) * len(x)
    # MAP maximises likelihood x weak prior, so it can only lose a little likelihood against
    # the MLE: measured 0.003 nats; float32 sums over 272 points carry ~1e-3 nats of error.
    assert -0.01 < log_likelihood_em - log_likelihood_map < 0.1
    assert result.facts["converged"]


# ---------------------------------------------------------------------------------------------
# Simulated truth
# ---------------------------------------------------------------------------------------------
TRUTH = {
    "weights": np.array([0.3, 0.5, 0.2]),
    "means": np.array([[-4.0, 0.0], [0.0, 3.0], [5.0, -1.0]]),
    "scale_tril": np.array([np.linalg.cholesky(c) for c in (
        np.array([[1.0, 0.5], [0.5, 1.0]]), np.array([[0.7, -0.2], [-0.2, 0.5]]), np.eye(2) * 0.8)]),
}


def simulated_frame(n=600, seed=0):
    # the data set is the test's fixed design (a known truth); the base seed varies the inference
    # run on it, not the problem
    import pandas as pd

    params = {k: v[None] for k, v in TRUTH.items()}
    x = gmm.simulate(jax.random.PRNGKey(seed), params, n)
    return pd.DataFrame(np.asarray(x, dtype=np.float64), columns=["a", "b"])


def test_simulator_reproduces_given_parameters():
    x = simulated_frame(n=50_000).to_numpy()
    mean = TRUTH["weights"] @ TRUTH["means"]
    # SE of each coordinate's mean is below 4 / sqrt(50000) = 0.018 (overall sd < 4).
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 0.07)


@pytest.mark.slow  # 30 s; the default suite checks NUTS against scikit-learn's maximum likelihood (faithful_fit)
def test_nuts_recovers_simulated_truth():
    result = fit("gmm", simulated_frame(), "nuts", options={"num_components": 3}, seed=seeded(3), progress=False,
                 chains=4, warmup=500, draws=500)
    posterior = result.idata.posterior
    assert diagnostics.assess(result.idata, "nuts", result.settings, facts=result.facts).overall in ("trusted", "suspect")
    for name in ("means", "weights"):
        mean = posterior[name].mean(("chain", "draw")).values
        sd = posterior[name].std(("chain", "draw")).values
        # A calibrated posterior puts each truth within 3.5 sd with probability 0.9995; across
        # the 9 quantities here a false alarm has probability below 0.5%.
        assert np.all(np.abs(mean - TRUTH[name]) < 3.5 * sd), (name, mean, TRUTH[name], sd)


@pytest.mark.slow  # 55-75 s; test_svi_with_a_full_rank_guide_agrees_with_the_mean_field_one stays
def test_nuts_and_svi_agree():
    frame = simulated_frame(seed=4)
    nuts = fit("gmm", frame, "nuts", options={"num_components": 3}, seed=seeded(0), progress=False, warmup=500, draws=500)
    svi = fit("gmm", frame, "svi", options={"num_components": 3}, seed=seeded(0), progress=False)
    assert svi.facts["converged"]
    for name in ("means", "weights"):
        nuts_mean = nuts.idata.posterior[name].mean(("chain", "draw")).values
        nuts_sd = nuts.idata.posterior[name].std(("chain", "draw")).values
        svi_mean = svi.idata.posterior[name].mean(("chain", "draw")).values
        # Mean-field VI locates well-identified means to a fraction of a posterior sd; 2 sd
        # catches a wrong component or likelihood, not the approximation's small bias.
        assert np.all(np.abs(svi_mean - nuts_mean) < 2 * nuts_sd), (name, svi_mean, nuts_mean, nuts_sd)


def test_same_seed_same_draws_different_seed_different_draws():
    settings = dict(chains=2, warmup=100, draws=100, progress=False)
    first = fit("gmm", "faithful", "nuts", seed=seeded(7), **settings).idata.posterior["means"].values
    again = fit("gmm", "faithful", "nuts", seed=seeded(7), **settings).idata.posterior["means"].values
    other = fit("gmm", "faithful", "nuts", seed=seeded(8), **settings).idata.posterior["means"].values
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_standardised_fit_reports_original_units(faithful_fit):
    from probgen.report import summary_table

    standardised = fit("gmm", "faithful", "nuts", standardize=True, seed=seeded(0), progress=False, warmup=500, draws=500)
    table, units = summary_table(standardised.idata, gmm.SPEC, standardised.config())
    assert units.startswith("original data units")
    raw = faithful_fit.idata.posterior["means"]
    for k, component in enumerate(("c0", "c1")):
        for d, feature in enumerate(("eruptions", "waiting")):
            sd = float(raw.sel(component=component, feature=feature).std())
            ours = table.loc[f"means[{component}, {feature}]", "mean"]
            expected = float(raw.sel(component=component, feature=feature).mean())
            assert abs(ours - expected) < 0.5 * sd  # priors differ slightly between the two scalings


@pytest.mark.slow  # 30 s; the contract test fits every family's default (full covariance) by default
def test_diagonal_and_one_dimensional_mixtures_recover_their_means():
    import pandas as pd

    rng = np.random.default_rng(seeded(5))
    two_d = np.concatenate([rng.normal([-3, 1], [0.5, 1.5], size=(200, 2)), rng.normal([3, -1], [1.0, 0.4], size=(300, 2))])
    one_d = two_d[:, :1]
    for frame, covariance, truth in (
        (pd.DataFrame(two_d, columns=["a", "b"]), "diagonal", np.array([[-3, 1], [3, -1]])),
        (pd.DataFrame(one_d, columns=["a"]), "full", np.array([[-3], [3]])),
    ):
        result = fit("gmm", frame, "nuts", options={"covariance": covariance}, seed=seeded(0), progress=False,
                     chains=2, warmup=300, draws=300)
        posterior = result.idata.posterior
        mean = posterior["means"].mean(("chain", "draw")).values
        sd = posterior["means"].std(("chain", "draw")).values
        # Same calibration argument as above: 3.5 sd per quantity.
        assert np.all(np.abs(mean - truth) < 3.5 * sd), (covariance, mean, sd)
        assert "corr_cholesky" not in posterior
        assert posterior["scale_tril"].shape[-2:] == (truth.shape[1], truth.shape[1])


def test_svi_with_a_full_rank_guide_agrees_with_the_mean_field_one(faithful_fit):
    mvn = fit("gmm", "faithful", "svi", seed=seeded(0), progress=False, guide="mvn", draws=2000)
    nuts = faithful_fit.idata.posterior
    ours = mvn.idata.posterior
    assert mvn.facts["converged"]
    for name in ("means", "weights"):
        difference = np.abs(ours[name].mean(("chain", "draw")).values - nuts[name].mean(("chain", "draw")).values)
        assert np.all(difference < 2 * nuts[name].std(("chain", "draw")).values), name
    # Importance weights are only computed for the mean-field guide; the verdict says so.
    from probgen.checks import diagnostics

    assessment = diagnostics.assess(mvn.idata, "svi", mvn.settings, facts=mvn.facts)
    assert {v.check: v.status for v in assessment.verdicts}["pareto_k"] == "skip"
    assert "not checked against the exact posterior" in assessment.summary


def test_scales_prior_closes_the_neck_at_zero_scale():
    """Richardson & Green's inverse-gamma variances: the log prior of a component's scale falls
    without bound as the scale goes to 0 (a half-normal's stays finite there, which left the
    mixture's collapse onto a few points open to NUTS, where it diverged)."""
    from numpyro.handlers import seed, substitute, trace

    kwargs = {"num_points": 3, "num_components": 2, "prior_loc": np.array([0.0]), "prior_scale": np.array([10.0])}

    def log_prior(scale):
        values = {"scales": jnp.array([[scale], [1.0]]), "scale_rate": jnp.array([2.0])}
        site = trace(substitute(seed(gmm.gmm, 0), values)).get_trace(**kwargs)["scales"]
        return float(site["fn"].log_prob(site["value"]))

    values = [log_prior(s) for s in (1.0, 0.3, 0.1, 0.03)]
    assert np.all(np.diff(values) < 0) and values[-1] < values[0] - 1000, values


@pytest.mark.slow  # 20-30 s: one 4-chain fit of 82 points
def test_galaxies_small_outer_clusters_fit_without_divergences():
    """Issue 31: the 3-component mixture of the galaxies data (82 points; 7 and 3 in the outer
    clusters) met 40-80 divergences at the small clusters' scales under a half-normal prior.
    The known answer (Richardson & Green 1997, Roeder 1990): clusters near 9,700, 21,400 and
    33,000 km/s."""
    frame = data.load("galaxies")
    result = fit("gmm", frame, "nuts", options={"num_components": 3}, seed=seeded(5), progress=False)
    assert int(result.idata.sample_stats["diverging"].sum()) == 0
    means = result.idata.posterior["means"].median(("chain", "draw")).values[:, 0]
    # the medians' posterior sds are 260-1,500 km/s; 2,000 km/s holds them all at about 1.3 sd or more
    assert np.all(np.abs(means - np.array([9_700.0, 21_400.0, 33_000.0])) < 2_000.0), means
