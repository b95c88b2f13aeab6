"""MADE: the masks make output d depend only on earlier inputs, the conditionals multiply to a
normalised distribution, sampling follows the order, and training recovers a known density."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from probgen.infer import fit
from probgen.models import made
from _seeds import seeded


def _params(architecture, seed):
    network = architecture.network()
    return {"made$params": network.init(jax.random.PRNGKey(seed), jnp.zeros((1, architecture.num_dims)))["params"]}


@pytest.mark.parametrize("conditional", ["bernoulli", "gaussian", "mog"])
def test_each_output_depends_only_on_earlier_inputs(conditional):
    order = (3, 1, 5, 2, 4)
    architecture = made.Architecture(5, (12, 9), conditional, 2, order)
    params = _params(architecture, seeded(0))
    # random (non-zero) biases and kernels: a zero Jacobian entry then comes from the mask alone
    params = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(seeded(1)), p.shape), params)

    def outputs(x):
        return architecture.network().apply({"params": params["made$params"]}, x[None])[0]

    jacobian = np.asarray(jax.jacobian(outputs)(jax.random.normal(jax.random.PRNGKey(seeded(2)), (5,))))
    allowed = np.asarray(order)[None, :] < np.tile(order, architecture.outputs_per_dim)[:, None]
    assert np.all(jacobian[~allowed] == 0)
    # and the masks leave every allowed path open somewhere (no value cut off from its past)
    assert np.all(np.abs(jacobian).reshape(architecture.outputs_per_dim, 5, 5).sum(0)[allowed[:5]] > 0)


def test_probabilities_over_a_discrete_space_sum_to_one():
    """Binary values in D = 6: the 64 configurations' probabilities sum to 1 (float32 rounding)."""
    for seed in range(3):
        order = tuple(int(v) + 1 for v in np.random.default_rng(seeded(seed)).permutation(6))
        architecture = made.Architecture(6, (20, 20), "bernoulli", 1, order)
        params = jax.tree.map(lambda p: 2.0 * p, _params(architecture, seeded(seed)))
        space = jnp.asarray(list(itertools.product([0, 1], repeat=6)), jnp.float32)
        assert float(jnp.exp(made.log_likelihood(params, space, architecture)).sum()) == pytest.approx(1.0, abs=1e-5)


def test_sampling_matches_the_model_probabilities():
    """Draws value by value in a random order have the frequencies exp(log_likelihood) says:
    chi-square over the 16 cells of D = 4 binary values, 20,000 draws (p > 1e-4 for a correct
    sampler on any seed with probability 0.9999; a sampler that ignores the order fails by far)."""
    from scipy import stats

    architecture = made.Architecture(4, (16,), "bernoulli", 1, (2, 4, 1, 3))
    params = jax.tree.map(lambda p: 3.0 * p, _params(architecture, seeded(3)))
    space = jnp.asarray(list(itertools.product([0, 1], repeat=4)), jnp.float32)
    expected = np.asarray(jnp.exp(made.log_likelihood(params, space, architecture)), float)
    draws = np.asarray(made.sample_rows(params, architecture, jax.random.PRNGKey(seeded(4)), 20000)).astype(int)
    counts = np.bincount(draws @ (2 ** np.arange(3, -1, -1)), minlength=16)
    assert stats.chisquare(counts, expected / expected.sum() * counts.sum()).pvalue > 1e-4


def test_training_learns_a_correlated_gaussian():
    """Gaussian conditionals can represent a 3-D correlated Gaussian exactly; after training the
    held-out log-likelihood is within MC error of the true density's on the same rows (SE of a
    mean of per-row differences; 4 SE plus 0.05 nats for the finite training)."""
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(seeded(5))
    covariance = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, 0.5], [0.3, 0.5, 1.0]])
    x = rng.multivariate_normal(np.zeros(3), covariance, size=3000)
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    result = fit("made", frame, "svi", options={"conditional": "gaussian", "hidden": "32"}, seed=seeded(6),
                 progress=False, holdout=0.2, steps=3000, eval_every=250, batch_size=128, learning_rate=3e-3)
    held = result.idata.held_out_data["x"].values
    difference = (multivariate_normal(np.zeros(3), covariance).logpdf(held)
                  - result.idata.held_out_scores["log_likelihood"].values)
    assert abs(difference.mean()) < 4 * difference.std(ddof=1) / np.sqrt(len(difference)) + 0.05


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    """Values outside the conditional's support and a network without hidden layers, from the CLI."""
    from probgen.cli import main

    frame = pd.DataFrame({"a": [0.0, 1.0, 0.5, 1.0] * 5, "b": [1.0, 0.0, 1.0, 0.0] * 5})
    frame.to_csv(tmp_path / "data.csv", index=False)
    assert main(["fit", "made", "--data", str(tmp_path / "data.csv"), "--conditional", "bernoulli", "--out",
                 str(tmp_path / "bad"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "column 'a'" in error[0] and "row 3" in error[0]
    assert main(["fit", "made", "--data", str(tmp_path / "data.csv"), "--hidden", "", "--out",
                 str(tmp_path / "bad"), "--quiet"]) == 2
    assert "--hidden" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
