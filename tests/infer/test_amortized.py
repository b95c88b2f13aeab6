"""The minibatch trainer (`probgen.infer.amortized`): early stopping improves the held-out ELBO,
and a run interrupted and resumed from its checkpoint ends with the same parameters."""

import jax
import numpy as np
import pytest

from probgen.infer import amortized
from probgen.models import vae
from _seeds import seeded


def small_problem():
    rng = np.random.default_rng(seeded(3))
    prototypes = rng.random((3, 16)) < 0.5
    rows = prototypes[rng.integers(3, size=300)] ^ (rng.random((300, 16)) < 0.05)
    x = rows.astype(np.float32)
    architecture = vae.Architecture(num_dims=16, latent_dim=2, hidden=(16,), likelihood="bernoulli")

    def kwargs(num_points, batch_size=None, kl_weight=1.0):
        return architecture.kwargs(num_points, batch_size, kl_weight)

    def evaluate(params, data, key):
        return vae.elbo_per_example(params, data, architecture, key)

    settings = {"steps": 400, "batch_size": 32, "eval_every": 100, "checkpoint_every": 200, "kl_warmup": 200,
                "learning_rate": 3e-3, "patience": 100}
    return x[:240], x[240:], kwargs, evaluate, settings


def test_training_improves_the_heldout_elbo_and_resuming_gives_the_same_parameters(tmp_path):
    train_x, heldout_x, kwargs, evaluate, settings = small_problem()
    key = jax.random.PRNGKey(seeded(0))
    whole = amortized.train(vae.vae_model, vae.vae_guide, kwargs, train_x, heldout_x, settings, key, evaluate,
                            progress=False)
    assert whole.history["heldout_elbo"][-1] > whole.history["heldout_elbo"][0] + 1.0
    # interrupted after 300 steps (a stop writes a checkpoint); resuming from it runs 300..400
    first = tmp_path / "run"
    first.mkdir()
    amortized.train(vae.vae_model, vae.vae_guide, kwargs, train_x, heldout_x, settings, key, evaluate,
                    progress=False, checkpoint_dir=first, stop_after=300)
    checkpoint = amortized.load_checkpoint(first)
    assert checkpoint["step"] == 300  # a stop writes a checkpoint of its own
    resumed = amortized.train(vae.vae_model, vae.vae_guide, kwargs, train_x, heldout_x, settings, key, evaluate,
                              progress=False, checkpoint_dir=first, resume=checkpoint)
    assert resumed.resumed_from == 300 and resumed.steps_run == whole.steps_run
    for a, b in zip(jax.tree_util.tree_leaves(whole.params), jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert resumed.history["heldout_elbo"] == pytest.approx(whole.history["heldout_elbo"], rel=1e-5)


def test_a_checkpoint_that_could_run_code_is_refused_unread(tmp_path):
    """A run folder from elsewhere (or from an older probgen) with a pickled checkpoint: resuming
    names the file and stops, and the pickle, which would make a folder when loaded, never runs.
    An .npz holding a pickled object array is refused the same way (allow_pickle=False)."""
    import os
    import pickle

    from probgen.errors import InferenceError

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(tmp_path / "the_payload_ran"),)

    old = tmp_path / "old"
    old.mkdir()
    (old / "checkpoint.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(InferenceError, match="is a pickle written by an older probgen; it is not loaded"):
        amortized.load_checkpoint(old)
    forged = tmp_path / "forged"
    forged.mkdir()
    np.savez(forged / "checkpoint.npz", record=np.array([Payload()], dtype=object))
    with pytest.raises(InferenceError, match="cannot be read"):
        amortized.load_checkpoint(forged)
    assert not (tmp_path / "the_payload_ran").exists()
