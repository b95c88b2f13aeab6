"""The HMM family against brute-force enumeration and hmmlearn, decoding, padding, bad input
and recovery of simulated parameters."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from probgen.errors import ModelError
from probgen.models import hmm
from _seeds import seeded

hmmlearn = pytest.importorskip("hmmlearn.hmm")


def random_parameters(rng, K):
    return rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K) * 2, size=K)


def emission_setup(kind, rng, K, T):
    """(hmmlearn model, our emission name, our params, sampled X (T, D))."""
    pi, A = random_parameters(rng, K)
    if kind in ("diag", "full"):
        D = 2
        means = rng.normal(0, 3, size=(K, D))
        if kind == "diag":
            scales = rng.uniform(0.5, 2.0, size=(K, D))
            covars = scales**2
            tril = np.eye(D) * scales[:, :, None]
            model = hmmlearn.GaussianHMM(K, covariance_type="diag")
        else:
            raw = rng.normal(size=(K, D, D))
            covars = raw @ raw.transpose(0, 2, 1) + np.eye(D)
            tril = np.linalg.cholesky(covars)
            model = hmmlearn.GaussianHMM(K, covariance_type="full")
        model.means_, model.covars_ = means, covars
        params = {"means": means, "scale_tril": tril}
        name = "gaussian"
    elif kind == "poisson":
        rates = rng.uniform(0.5, 20, size=(K, 1))
        model = hmmlearn.PoissonHMM(K)
        model.lambdas_ = rates
        params = {"rates": rates}
        name = "poisson"
    else:
        probs = rng.dirichlet(np.ones(4), size=K)
        model = hmmlearn.CategoricalHMM(K)
        model.emissionprob_ = probs
        params = {"emission_probs": probs}
        name = "categorical"
    model.startprob_, model.transmat_ = pi, A
    # simulated by our (compiled) simulator: hmmlearn's sampler is a Python loop, minutes at T = 10^6
    _, X = jax.jit(hmm.simulate_sequence, static_argnums=(3, 5))(
        jax.random.PRNGKey(int(rng.integers(1 << 30))), jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32), name,
        {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}, T)
    return model, name, params, np.asarray(X, np.float64), pi, A


def our_loglik(name, params, X, pi, A, parallel=False, dtype=jnp.float32):
    x = jnp.asarray(X, dtype)
    p = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    log_emission = hmm.emission_log_probs(x, name, p)
    mask = jnp.ones(len(X), bool)
    steps = jax.jit(hmm.forward, static_argnames="parallel")(jnp.log(jnp.asarray(pi, dtype)),
                                                              jnp.log(jnp.asarray(A, dtype)), log_emission, mask,
                                                              parallel=parallel)
    return steps


KINDS = ["diag", "full", "poisson", "categorical"]


@pytest.mark.parametrize("kind", KINDS)
def test_log_likelihood_equals_brute_force_enumeration(kind):
    rng = np.random.default_rng(seeded(1))
    for K, T in ((2, 6), (3, 5)):
        _, name, params, X, pi, A = emission_setup(kind, rng, K, T)
        with jax.enable_x64(True):
            log_emission = np.asarray(hmm.emission_log_probs(jnp.asarray(X), name,
                                                             {k: jnp.asarray(v) for k, v in params.items()}))
            total = np.logaddexp.reduce([
                np.log(pi[z[0]]) + log_emission[0, z[0]]
                + sum(np.log(A[z[t - 1], z[t]]) + log_emission[t, z[t]] for t in range(1, T))
                for z in itertools.product(range(K), repeat=T)
            ])
            for parallel in (False, True):
                ours = float(our_loglik(name, params, X, pi, A, parallel, jnp.float64).sum())
                assert ours == pytest.approx(total, rel=1e-12), (parallel, ours, total)


# T = 1,000 of one kind by default; every kind at T = 100,000 in test-slow (a long sequence's
# sum is where a forward pass without rescaling would underflow)
@pytest.mark.parametrize("kind, T", [("diag", 1000)] + [pytest.param(k, 100_000, marks=pytest.mark.slow) for k in KINDS])
def test_log_likelihood_equals_hmmlearn(kind, T):
    # float32 throughout: each step's term has relative error ~1e-7 and the sum is pairwise,
    # so 1e-6 relative holds with room (measured 3e-8 at T = 100,000)
    rng = np.random.default_rng(seeded(2))
    model, name, params, X, pi, A = emission_setup(kind, rng, 3, T)
    reference = model.score(X.astype(int) if name != "gaussian" else X)
    for parallel in (False, True):
        ours = np.asarray(our_loglik(name, params, X, pi, A, parallel), np.float64).sum()
        assert ours == pytest.approx(reference, rel=1e-6), (kind, T, parallel)


@pytest.mark.slow  # 23 s on 2 cores
def test_no_underflow_at_a_million_steps_and_the_two_algorithms_agree():
    rng = np.random.default_rng(seeded(3))
    model, name, params, X, pi, A = emission_setup("diag", rng, 4, 1_000_000)
    scan = our_loglik(name, params, X, pi, A, False)
    parallel = our_loglik(name, params, X, pi, A, True)
    assert bool(jnp.all(jnp.isfinite(scan))) and bool(jnp.all(jnp.isfinite(parallel)))
    total = np.asarray(scan, np.float64).sum()
    assert total == pytest.approx(np.asarray(parallel, np.float64).sum(), rel=1e-6)
    assert total == pytest.approx(model.score(X), rel=1e-6)


def test_viterbi_and_smoothed_marginals_equal_hmmlearn():
    rng = np.random.default_rng(seeded(4))
    model, name, params, X, pi, A = emission_setup("diag", rng, 3, 3000)
    log_emission = hmm.emission_log_probs(jnp.asarray(X, jnp.float32), name,
                                          {k: jnp.asarray(v, jnp.float32) for k, v in params.items()})
    mask = jnp.ones(len(X), bool)
    args = (jnp.log(jnp.asarray(pi, jnp.float32)), jnp.log(jnp.asarray(A, jnp.float32)), log_emission, mask)
    _, reference_path = model.decode(X)
    path = np.asarray(jax.jit(hmm.viterbi)(*args))
    assert (path == reference_path).mean() > 0.999  # float32 may flip an exact near-tie; none here
    marginals = np.asarray(jax.jit(hmm.smooth)(*args))
    np.testing.assert_allclose(marginals, model.predict_proba(X), atol=1e-4)
    # forward-filtering backward-sampling: path frequencies estimate the smoothed marginals;
    # each frequency over 2000 paths has sd <= 0.0112, so 0.06 is more than 5 sd
    keys = jax.random.split(jax.random.PRNGKey(seeded(0)), 2000)
    paths = np.asarray(jax.jit(jax.vmap(hmm.sample_path, in_axes=(0, None, None, None, None)))(keys, *args))
    frequencies = np.stack([(paths == k).mean(0) for k in range(3)], axis=-1)
    assert np.abs(frequencies - marginals).max() < 0.06


def test_padded_sequences_score_like_separate_ones():
    rng = np.random.default_rng(seeded(5))
    model, name, params, X, pi, A = emission_setup("diag", rng, 2, 300)
    lengths = [120, 50, 130]
    starts = np.cumsum([0] + lengths[:-1])
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1],
                          "id": np.repeat([7, 3, 9], lengths)})
    inputs = hmm.prepare(frame, hmm.SPEC.resolve_options({"sequence_column": "id"}))
    assert inputs.observed["x"].shape == (3, 130, 2) and inputs.kwargs["mask"].sum() == 300
    distribution = hmm.HiddenMarkov(jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32), "gaussian",
                                    {k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
                                    inputs.kwargs["mask"], num_dims=2)
    steps = np.asarray(distribution.log_prob(jnp.asarray(inputs.observed["x"])))
    assert np.all(steps[~inputs.kwargs["mask"]] == 0)
    for s, (start, length) in enumerate(zip(starts, lengths)):
        assert steps[s].sum() == pytest.approx(model.score(X[start:start + length]), rel=1e-5)
    assert steps.sum() == pytest.approx(model.score(X, lengths), rel=1e-5)


@pytest.mark.parametrize("frame, options, message", [
    (pd.DataFrame({"v": [1.0, 2.0, 3.0]}), {"num_states": 0}, "--num-states must be an integer >= 1"),
    (pd.DataFrame({"v": [1.0, -2.0, 3.0]}), {"emission": "poisson"}, r"non-negative integer counts.*-2\.0.*rows 2"),
    (pd.DataFrame({"v": [1.0, 2.5, 3.0]}), {"emission": "poisson"}, r"non-negative integer counts.*2\.5"),
    (pd.DataFrame({"v": [0.0, 1.0, 5.0]}), {"emission": "categorical", "num_categories": 3},
     r"unknown category label\(s\) \[5\].*rows 3.*0\.\.2"),
    (pd.DataFrame({"v": [1.0, 2.0, 3.0], "id": [1, 1, 2]}), {"sequence_column": "id"}, r"sequence 2 \(1 row\) too short"),
    (pd.DataFrame({"v": [1.0]}), {}, r"too short"),
    (pd.DataFrame({"v": [1.0, 2.0, 3.0]}), {"sequence_column": "id"}, "--sequence-column 'id' is not among"),
    (pd.DataFrame({"v": [1.0, 2.0], "w": [1.0, 2.0]}), {"emission": "poisson"}, "takes one column, got 2"),
])
def test_bad_input_is_named(frame, options, message):
    with pytest.raises(ModelError, match=message):
        hmm.prepare(frame, hmm.SPEC.resolve_options(options))


@pytest.mark.slow  # 45 s on 2 cores: keeps the default suite within CI's 20 minutes
def test_nuts_recovers_simulated_parameters_and_decodes_the_states():
    from probgen.infer import fit

    rng = np.random.default_rng(seeded(6))
    A = np.array([[0.95, 0.05], [0.10, 0.90]])
    model = hmmlearn.GaussianHMM(2, covariance_type="diag")
    model.startprob_, model.transmat_ = np.array([0.5, 0.5]), A
    model.means_, model.covars_ = np.array([[-1.0], [2.0]]), np.array([[0.5], [1.0]]) ** 2
    X, Z = model.sample(600, random_state=6)
    result = fit("hmm", pd.DataFrame({"y": X[:, 0]}), "nuts", seed=seeded(1), progress=False, chains=2, warmup=400,
                 draws=400)
    posterior = result.idata.posterior
    # The truth lies within 3 posterior sd (a 0.3% miss each if the posterior is right;
    # SBC covers calibration, this checks recovery)
    for site, truth in (("transition", A), ("means", np.array([[-1.0], [2.0]])), ("scales", np.array([[0.5], [1.0]]))):
        mean = posterior[site].mean(("chain", "draw")).values
        sd = posterior[site].std(("chain", "draw")).values
        assert np.all(np.abs(mean - truth) < 3 * sd + 1e-9), (site, mean, truth, sd)
    decoding = result.idata.decoding
    assert (decoding["viterbi_path"].values[0] == Z).mean() > 0.95
    assert decoding["state_probability"].shape == (1, 600, 2)
    assert decoding["sampled_paths"].shape[1:] == (1, 600)
    assert result.idata.log_likelihood["x"].shape == (2, 400, 1, 600)
    # the summed one-step terms are the exact log-likelihood (hmmlearn at the posterior mean is
    # not the same number; so compare at one draw)
    draw = {k: posterior[k].values[0, 0] for k in ("init_probs", "transition", "means", "scales")}
    reference = hmmlearn.GaussianHMM(2, covariance_type="diag")
    reference.startprob_, reference.transmat_ = draw["init_probs"], draw["transition"]
    reference.means_, reference.covars_ = draw["means"], draw["scales"] ** 2
    assert float(result.idata.log_likelihood["x"].values[0, 0].sum()) == pytest.approx(reference.score(X), rel=1e-5)


def test_forecast_split_scores_each_held_out_step_given_its_past():
    """The pieces `fit(..., holdout=F)` strings together, at given parameters: the split keeps
    out the last F of each sequence, and `held_out` inputs score those steps one step ahead
    with the training rows as history: per sequence score(whole) - score(start) by hmmlearn."""
    from probgen.data import Dataset

    rng = np.random.default_rng(seeded(9))
    model, name, params, X, pi, A = emission_setup("diag", rng, 2, 200)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "id": np.repeat([4, 2], [120, 80])})
    train, held = Dataset(frame, "test", "0").split(0.25, seed=seeded(0), sequence_column="id")
    assert held.frame["id"].tolist() == [4] * 30 + [2] * 20 and held.holdout["kind"].startswith("last rows")
    np.testing.assert_array_equal(held.frame[["a", "b"]].to_numpy(), np.concatenate([X[90:120], X[180:200]]))
    options = hmm.SPEC.resolve_options({"sequence_column": "id"})
    inputs = hmm.held_out(train.frame, held.frame, options)
    scored = inputs.masks["x"]
    assert scored.sum(1).tolist() == [30, 20] and scored[0, 90:120].all() and scored[1, 60:80].all()
    distribution = hmm.HiddenMarkov(jnp.asarray(pi, jnp.float32), jnp.asarray(A, jnp.float32), "gaussian",
                                    {k: jnp.asarray(v, jnp.float32) for k, v in params.items()},
                                    inputs.kwargs["mask"], num_dims=2)
    steps = np.asarray(distribution.log_prob(jnp.asarray(inputs.observed["x"])))
    for s, (start, length) in enumerate([(0, 120), (120, 80)]):
        expected = model.score(X[start:start + length]) - model.score(X[start:start + int(0.75 * length)])
        assert steps[s][scored[s]].sum() == pytest.approx(expected, rel=1e-4)


@pytest.mark.slow  # 45 s: MAP's eager NumPyro initialisation compiles the HMM op by op
def test_holdout_keeps_out_the_end_of_each_sequence_and_scores_it_given_the_past():
    """`--holdout` on a time series is a forecast split: the last rows of each sequence are held
    out and each held-out step is scored one step ahead, its history including the training
    rows; summed per sequence this is log p(end | start) = score(whole) - score(start), which
    hmmlearn gives independently."""
    from probgen.checks import held_out_scores
    from probgen.infer import fit

    rng = np.random.default_rng(seeded(8))
    model, name, params, X, pi, A = emission_setup("diag", rng, 2, 200)
    lengths = [120, 80]
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "id": np.repeat([4, 2], lengths)})
    result = fit("hmm", frame, "map", options={"sequence_column": "id"}, seed=seeded(3), progress=False, holdout=0.25,
                 steps=100, restarts=1)
    idata = result.idata
    assert result.inputs.kwargs["mask"].sum(1).tolist() == [90, 60]  # the first 75% of each sequence is fitted
    held_mask = idata.held_out_data["x_mask"].values
    assert held_mask.sum(1).tolist() == [30, 20] and held_mask[0, 90:120].all() and held_mask[1, 60:80].all()
    assert idata.observed_data["x_mask"].values.sum() == 150
    steps = idata.held_out_log_likelihood["x"].values[0, 0]  # the one draw of MAP
    posterior = idata.posterior
    reference = hmmlearn.GaussianHMM(2, covariance_type="diag")
    reference.startprob_ = posterior["init_probs"].values[0, 0].astype(np.float64)
    reference.transmat_ = posterior["transition"].values[0, 0].astype(np.float64)
    reference.means_ = posterior["means"].values[0, 0].astype(np.float64)
    reference.covars_ = posterior["scales"].values[0, 0].astype(np.float64) ** 2
    for s, (start, length) in enumerate(zip([0, 120], lengths)):
        whole, begin = X[start:start + length], X[start:start + int(0.75 * length)]
        expected = reference.score(whole) - reference.score(begin)
        assert steps[s][held_mask[s]].sum() == pytest.approx(expected, rel=1e-4, abs=1e-3)
    scores = held_out_scores(idata)
    assert scores["num_points"] == 50
    assert scores["log_predictive_density"] == pytest.approx(steps[held_mask].sum(), rel=1e-5)


@pytest.mark.slow  # about 2 min on 2 cores
def test_sbc_passes_on_a_small_hmm():
    """Simulation-based calibration of NUTS on the forward-algorithm likelihood: K = 2 Gaussian
    states, T = 60 steps, 200 simulations, ranks among 49 thinned draws. With correct inference
    every parameter's Holm-adjusted chi-square p-value is uniform, so a false alarm at
    alpha = 0.01 has probability at most 0.01 (the seed is fixed)."""
    from probgen.checks.sbc import run_sbc

    design = pd.DataFrame({"y": np.linspace(-3.0, 3.0, 60)})  # the prior's location and scale; values unfitted
    result = run_sbc("hmm", design, "nuts", options={"num_states": 2}, simulations=200, seed=seeded(0), num_draws=49,
                     progress=False, chains=1, warmup=300, draws=500)
    assert result.passed, result.summary()
    assert not result.failures
    ranked = set(result.ranks.columns)
    assert {"transition[0, 0]", "transition[1, 1]", "ordered_means[0]", "ordered_means[1]", "scales[0, 0]"} <= ranked


def test_simulator_behind_probgen_sample_follows_the_chain():
    """`SPEC.simulate` (what `probgen sample RUN_DIR` calls): with emissions so narrow that the
    state can be read off each value, the simulated sequence's transition frequencies match
    the transition matrix within 4 binomial standard errors."""
    A = np.array([[0.9, 0.1], [0.3, 0.7]])
    params = {"init_probs": np.array([[0.5, 0.5]]), "transition": A[None],
              "means": np.array([[[-10.0], [10.0]]]), "scales": np.array([[[0.01], [0.01]]]),
              "scale_tril": np.array([[[[0.01]], [[0.01]]]])}
    values = hmm.SPEC.simulate(jax.random.PRNGKey(seeded(0)), params, 20_000)
    assert values.shape == (20_000, 1)
    states = (values[:, 0] > 0).astype(int)
    for i in range(2):
        leaving = states[:-1] == i
        n = leaving.sum()
        frequency = np.mean(states[1:][leaving] == 1)
        assert abs(frequency - A[i, 1]) < 4 * np.sqrt(A[i, 1] * (1 - A[i, 1]) / n), (i, frequency)


@pytest.mark.parametrize("parallel", [False, pytest.param(True, marks=pytest.mark.slow)])  # (T, K, K) = 400 MB
def test_many_states_stay_stable_and_equal_hmmlearn(parallel):
    """K = 100 states over T = 10,000 steps (dynamax's stability case), float32, Poisson
    emissions with close rates so that many states share the probability at every step:
    both algorithms finite and within 1e-5 relative of hmmlearn's float64 score."""
    rng = np.random.default_rng(seeded(10))
    K, T = 100, 10_000
    pi, A = rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K)
    rates = np.linspace(1.0, 30.0, K)[:, None]
    model = hmmlearn.PoissonHMM(K)
    model.startprob_, model.transmat_, model.lambdas_ = pi, A, rates
    X = rng.poisson(rng.choice(rates[:, 0], size=T))[:, None].astype(np.float64)
    reference = model.score(X.astype(int))
    ours = np.asarray(our_loglik("poisson", {"rates": rates}, X, pi, A, parallel), np.float64)
    assert np.all(np.isfinite(ours))
    assert ours.sum() == pytest.approx(reference, rel=1e-5)


def test_states_are_named_by_what_they_emit():
    """Issue 30: the report names states by their emissions ("low, calm (mean 0.02, sd 0.74)"),
    not "state 0/1"."""
    import arviz as az
    import xarray as xr

    from probgen.models.hmm.evaluation import state_names

    shape = np.ones((1, 4, 2, 1))
    posterior = xr.Dataset({"means": (("chain", "draw", "state", "feature"), np.array([0.02, 0.05])[None, None, :, None] * shape),
                            "scales": (("chain", "draw", "state", "feature"), np.array([0.74, 1.67])[None, None, :, None] * shape)})
    assert state_names(az.InferenceData(posterior=posterior)) == ["low, calm (mean 0.02, sd 0.74)",
                                                                  "high, volatile (mean 0.05, sd 1.67)"]
    rates = xr.Dataset({"rates": (("chain", "draw", "state", "feature"), np.array([3.2, 0.9])[None, None, :, None] * shape)})
    assert state_names(az.InferenceData(posterior=rates)) == ["high (rate 3.2)", "low (rate 0.9)"]
