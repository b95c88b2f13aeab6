"""The compiled, chunked chains (`probgen.infer.chains`) behind NUTS and HMC: the chunk
bookkeeping, the chain layouts, starting points, progress."""

import jax
import numpy as np
import pytest
from numpyro.infer import init_to_uniform

from probgen.infer.chains import ChainProgram
from _seeds import seeded
from infer.conjugate import SPEC


@pytest.fixture(scope="module")
def inputs(frame):
    return SPEC.prepare(frame, {})


def program(inputs, **layout):
    settings = {"chains": 2, "warmup": 37, "draws": 23, **layout}
    return ChainProgram(inputs.bound_model(SPEC.model), inputs.observed, "NUTS", {"target_accept_prob": 0.8},
                        init_strategy=init_to_uniform, chain_method=settings.pop("chain_method", "vectorized"),
                        **settings)


def test_chunks_keep_exactly_the_draws_after_warmup(inputs):
    # 37 + 23 = 60 iterations in chunks of 3: warm-up ends inside a chunk and the run's end
    # falls on a chunk boundary; a kept warm-up iteration would show as a step size that still
    # changes (adaptation stops after warm-up, so every kept draw has the final step size)
    chains = program(inputs)
    out = chains.run(jax.random.PRNGKey(seeded(0)), inputs.observed)
    assert out.samples["mu"].shape == (2, 23)
    assert all(v.shape[:2] == (2, 23) for v in out.fields.values())
    step = out.fields["step_size"]
    assert np.all(step == step[:, :1])
    # and with warm-up still going in the previous chunk, the step size before the last
    # warm-up iteration differs: the run with one more warm-up iteration keeps no draw of it
    longer = program(inputs, warmup=38, draws=22).run(jax.random.PRNGKey(seeded(0)), inputs.observed)
    assert longer.samples["mu"].shape == (2, 22) and np.all(longer.fields["step_size"] == longer.fields["step_size"][:, :1])


def test_sequential_chains_give_the_vectorised_chains_draws(inputs):
    # the same per-chain keys and starts: one chain at a time or all in lockstep, the same chain
    key = jax.random.PRNGKey(seeded(1))
    together = program(inputs).run(key, inputs.observed)
    apart = program(inputs, chain_method="sequential").run(key, inputs.observed)
    np.testing.assert_allclose(apart.samples["mu"], together.samples["mu"], rtol=1e-5)


@pytest.mark.skipif(jax.local_device_count() < 2, reason="needs several (CPU) devices")
def test_parallel_chains_give_the_vectorised_chains_draws(inputs):
    key = jax.random.PRNGKey(seeded(2))
    together = program(inputs).run(key, inputs.observed)
    spread = program(inputs, chain_method="parallel").run(key, inputs.observed)
    np.testing.assert_allclose(spread.samples["mu"], together.samples["mu"], rtol=1e-5)


def test_a_start_where_the_density_is_not_finite_is_named(inputs):
    with pytest.raises(RuntimeError, match="1 of 2 chains start where the log density is not finite"):
        program(inputs).run(jax.random.PRNGKey(0), inputs.observed, starts={"mu": np.array([0.0, np.inf], np.float32)})


def test_progress_shows_warmup_and_sampling(inputs, capsys):
    program(inputs).run(jax.random.PRNGKey(0), inputs.observed, progress=True, describe="NUTS")
    shown = capsys.readouterr().err
    assert "2 chains, vectorized, NUTS" in shown and "sample" in shown and "60/60" in shown
