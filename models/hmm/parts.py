"""The HMM's parts beyond the model: state decoding after the fit (the `decoding` group, a
`DerivedGroups` part): smoothed marginals, Viterbi paths and sampled state paths per
posterior draw."""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import numpy as np
from probgen.spec import ModelInputs

from probgen.models.hmm.model import emission_log_probs, emission_params, sample_path, smooth, viterbi


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
MAX_MARGINAL_DRAWS = 1000


MAX_PATH_DRAWS = 200


@functools.partial(jax.jit, static_argnames=("emission",))
def _decode(x, mask, init_probs, transition, params, mean_init, mean_transition, mean_params, path_index, key,
            *, emission):
    def log_terms(init, trans, p):
        return jnp.log(init), jnp.log(trans), emission_log_probs(x, emission, p)

    def marginals(draw):
        li, lt, le = log_terms(*draw)
        return jax.vmap(smooth, in_axes=(None, None, 0, 0))(li, lt, le, mask)

    draws = (init_probs, transition, params)
    total = jax.lax.map(marginals, draws).mean(0) if init_probs.shape[0] <= 64 else \
        jax.lax.scan(lambda acc, d: (acc + marginals(d), None), jnp.zeros(x.shape[:2] + (init_probs.shape[1],)),
                     draws)[0] / init_probs.shape[0]
    li, lt, le = log_terms(mean_init, mean_transition, mean_params)
    at_mean = jax.vmap(viterbi, in_axes=(None, None, 0, 0))(li, lt, le, mask)
    chosen = jax.tree.map(lambda v: v[path_index], draws)
    keys = jax.random.split(key, path_index.shape[0])

    def paths(inputs):
        draw, k = inputs
        li, lt, le = log_terms(*draw)
        best = jax.vmap(viterbi, in_axes=(None, None, 0, 0))(li, lt, le, mask)
        sampled = jax.vmap(sample_path, in_axes=(0, None, None, 0, 0))(
            jax.random.split(k, x.shape[0]), li, lt, le, mask)
        return best, sampled

    best, sampled = jax.lax.map(paths, (chosen, keys))
    return total, at_mean, best, sampled


def decode(samples: dict, inputs: ModelInputs, rng_key) -> dict:
    """The `decoding` group from flat posterior draws (draw, ...): smoothed state marginals
    averaged over up to 1000 draws; the Viterbi path at the posterior mean parameters; and, for
    up to 200 draws spread over the posterior (fewer for very long data, to bound memory), the
    Viterbi path of each draw and one state path drawn by forward-filtering backward-sampling.
    Padded steps are -1 in the paths and NaN in the probabilities."""
    import xarray as xr

    kw = inputs.kwargs
    emission, mask = kw["emission"], np.asarray(kw["mask"])
    x = jnp.asarray(inputs.observed["x"])
    n = samples["init_probs"].shape[0]
    marginal_index = np.linspace(0, n - 1, min(n, MAX_MARGINAL_DRAWS)).astype(int)
    path_count = int(min(len(marginal_index), MAX_PATH_DRAWS, max(10, 2_000_000 // mask.size)))
    path_positions = np.linspace(0, len(marginal_index) - 1, path_count).astype(int)  # within the marginal draws
    params = {k: np.asarray(v)[marginal_index] for k, v in emission_params(samples, emission).items()}
    mean_params = {k: v.mean(0) for k, v in emission_params(samples, emission).items()}
    if emission == "gaussian":  # average the covariances, not their Cholesky factors
        tril = np.asarray(samples["scale_tril"], np.float64)
        mean_params["scale_tril"] = np.linalg.cholesky(np.einsum("skde,skfe->kdf", tril, tril) / len(tril)).astype(np.float32)
    transition = np.asarray(samples["transition"])
    init_probs = np.asarray(samples["init_probs"])
    probabilities, at_mean, best, sampled = _decode(
        x, jnp.asarray(mask), jnp.asarray(init_probs[marginal_index]), jnp.asarray(transition[marginal_index]),
        params, jnp.asarray(init_probs.mean(0)), jnp.asarray(transition.mean(0)), mean_params,
        jnp.asarray(path_positions), rng_key, emission=emission)
    probabilities = np.where(mask[..., None], np.asarray(probabilities), np.nan)
    at_mean = np.where(mask, np.asarray(at_mean), -1)
    best = np.where(mask, np.asarray(best), -1)
    sampled = np.where(mask, np.asarray(sampled), -1)
    coords = {"sequence": inputs.coords["sequence"], "time": inputs.coords["time"], "state": inputs.coords["state"],
              "path_draw": marginal_index[path_positions]}
    return {"decoding": xr.Dataset(
        {
            "state_probability": (("sequence", "time", "state"), probabilities),
            "viterbi_path": (("sequence", "time"), at_mean.astype(np.int32)),
            "viterbi_draws": (("path_draw", "sequence", "time"), best.astype(np.int32)),
            "sampled_paths": (("path_draw", "sequence", "time"), sampled.astype(np.int32)),
            "time_label": (("sequence", "time"), np.asarray(inputs.labels.get("time", np.where(mask, np.arange(
                mask.shape[1]), np.nan)), np.float64)),
        },
        coords=coords,
        attrs={"description": "state_probability: posterior mean of the smoothed marginals p(z_t | x); viterbi_path: "
                              "most probable path at the posterior mean parameters; viterbi_draws: most probable path "
                              "per posterior draw (path_draw = flat draw index); sampled_paths: a path drawn from "
                              "p(z | x, theta) per draw (forward-filtering backward-sampling); -1 = padding; "
                              "time_label: each step's time (the --time-column, else its index)",
               "time_column": inputs.labels.get("time_column", "")},
    )}
