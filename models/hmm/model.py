"""The HMM as a NumPyro model: the inference algorithms for one sequence, as pure JAX
functions of (log_init, log_trans, log_emission, mask) (forward, sequential and parallel;
forward-backward smoothing; Viterbi; forward-filtering backward-sampling: independent of the
emission family, as dynamax's `hidden_markov_model/inference.py`; vmap them over sequences);
priors, emissions, the `HiddenMarkov` distribution (the state paths summed out by `forward`),
label-switching and starting points, simulation."""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from probgen.models._common.mixtures import (
    OrderedNormal, component_log_densities, kmeans, relabel_permutations, to_original_units,
)
from probgen.spec import ModelInputs





# --------------------------------------------------------------------------------------------
# Algorithms, for one sequence (vmap them over sequences)
# --------------------------------------------------------------------------------------------
# Hidden Markov model algorithms in JAX: forward (sequential and parallel), forward-backward,
# Viterbi and forward-filtering backward-sampling, for one sequence; vmap them over sequences.
#
# Conventions, for every function here:
#     log_init:     (K,) log initial state probabilities
#     log_trans:    (K, K) log transition matrix, rows = from, columns = to
#     log_emission: (T, K) log p(x_t | z_t = k)
#     mask:         (T,) bool, True for real steps; a sequence is padded at its end only, and
#                   its first step is real. Padded steps leave the state untouched and
#                   contribute nothing.
#
# The forward recursions work with probabilities normalised at every step (the scaled forward
# algorithm) rather than with log-sum-exp over K x K terms: each step is one K-vector by K x K
# matrix product, the emission probabilities are scaled by their largest value first, and the
# normalisers are kept in log space. So nothing underflows at any length (tested at T = 10^6)
# and the gradient, which NUTS needs, is a matrix product too.
#
# `forward` returns the per-step conditional log-likelihoods log p(x_t | x_1..x_{t-1}), which sum
# to the sequence's log-likelihood; computing each one locally from the filtered distribution of
# the step before avoids subtracting large cumulative sums (float32 at T = 10^6 would lose
# everything past the first decimal that way).
HIGHEST = jax.lax.Precision.HIGHEST  # full float32 products on GPUs (TF32 otherwise)


TINY = 1e-30


def _scaled(log_emission):
    """exp(log_emission - max) per step, and the max: emission probabilities scaled to <= 1."""
    top = jnp.max(log_emission, axis=-1, keepdims=True)
    return jnp.exp(log_emission - top), top[..., 0]


def _conditionals(filtered_before, trans, scaled, top, log_init, log_emission0, mask):
    """log p(x_t | x_<t) for t >= 1 from the filtered distributions of t - 1, all steps at once;
    and the first step's log p(x_0)."""
    predicted = jnp.matmul(filtered_before, trans, precision=HIGHEST)  # (T-1, K)
    step = jnp.log(jnp.maximum(jnp.sum(predicted * scaled[1:], axis=-1), TINY)) + top[1:]
    first = jax.nn.logsumexp(log_init + log_emission0)
    return jnp.concatenate([first[None], jnp.where(mask[1:], step, 0.0)])


def forward_filter(log_init, log_trans, log_emission, mask):
    """Filtered state distributions p(z_t | x_1..x_t), (T, K), by a sequential scan.
    At padded steps the last real step's distribution is carried on."""
    trans = jnp.exp(log_trans)
    scaled, _ = _scaled(log_emission)
    first = jax.nn.softmax(log_init + log_emission[0])

    def step(filtered, inputs):
        b, real = inputs
        unnormalised = jnp.matmul(filtered, trans, precision=HIGHEST) * b
        new = unnormalised / jnp.maximum(jnp.sum(unnormalised), TINY)
        new = jnp.where(real, new, filtered)
        return new, new

    _, rest = jax.lax.scan(step, first, (scaled[1:], mask[1:]))
    return jnp.concatenate([first[None], rest])


def forward_filter_parallel(log_init, log_trans, log_emission, mask):
    """The same filtered distributions by `jax.lax.associative_scan`: O(log T) depth.

    Each step is the matrix M_t = A diag(b_t) (M_0's rows all equal pi * b_0), and the filtered
    distribution at t is the (normalised) first row of M_0 M_1 ... M_t. A partial product is
    kept as a row-normalised matrix with relative row log-scales (largest 0), so products of
    any length neither underflow nor lose precision; the overall scale is never needed. Padded
    steps are identity matrices.
    """
    K = log_init.shape[0]
    trans = jnp.exp(log_trans)
    scaled, _ = _scaled(log_emission)
    first = jax.nn.softmax(log_init + log_emission[0])
    matrices = trans[None] * scaled[1:, None, :]  # (T-1, K, K)
    matrices = jnp.where(mask[1:, None, None], matrices, jnp.eye(K, dtype=matrices.dtype))
    matrices = jnp.concatenate([jnp.broadcast_to(first, (1, K, K)), matrices])
    row_sums = jnp.maximum(matrices.sum(-1), TINY)
    log_rows = jnp.log(row_sums)
    elements = (matrices / row_sums[..., None], log_rows - log_rows.max(-1, keepdims=True))

    def combine(left, right):
        m1, v1 = left
        m2, v2 = right
        product = jnp.matmul(m1, jnp.exp(v2)[..., :, None] * m2, precision=HIGHEST)
        sums = jnp.maximum(product.sum(-1), TINY)
        v = v1 + jnp.log(sums)
        return product / sums[..., None], v - v.max(-1, keepdims=True)

    prefixes, _ = jax.lax.associative_scan(combine, elements)
    return prefixes[:, 0, :]


def forward(log_init, log_trans, log_emission, mask, parallel: bool = False):
    """Per-step conditional log-likelihoods log p(x_t | x_<t), (T,), zero at padded steps;
    their sum is log p(x_1..x_T). parallel=True filters by associative scan (same values)."""
    filtered = (forward_filter_parallel if parallel else forward_filter)(log_init, log_trans, log_emission, mask)
    scaled, top = _scaled(log_emission)
    return _conditionals(filtered[:-1], jnp.exp(log_trans), scaled, top, log_init, log_emission[0], mask)


def smooth(log_init, log_trans, log_emission, mask):
    """Smoothed state marginals p(z_t | x_1..x_T), (T, K), by forward-backward (padded steps
    get the last real step's marginal)."""
    trans = jnp.exp(log_trans)
    scaled, _ = _scaled(log_emission)
    filtered = forward_filter(log_init, log_trans, log_emission, mask)
    K = log_init.shape[0]

    def step(beta_next, inputs):
        b_next, real_next = inputs
        beta = jnp.matmul(trans, b_next * beta_next, precision=HIGHEST)
        beta = beta / jnp.maximum(beta.sum(), TINY)
        beta = jnp.where(real_next, beta, beta_next)  # the step after is padding: nothing to add
        return beta, beta

    last = jnp.ones(K, log_init.dtype) / K
    _, betas = jax.lax.scan(step, last, (scaled[1:], mask[1:]), reverse=True)
    betas = jnp.concatenate([betas, last[None]])
    marginals = filtered * betas
    return marginals / jnp.maximum(marginals.sum(-1, keepdims=True), TINY)


def viterbi(log_init, log_trans, log_emission, mask):
    """The most probable state path, (T,) int32; padded steps repeat the last real state."""
    first = log_init + log_emission[0]

    def step(delta, inputs):
        le, real = inputs
        scores = delta[:, None] + log_trans  # from i to j
        best_from = jnp.argmax(scores, axis=0)
        new = jnp.max(scores, axis=0) + le
        new = new - jnp.max(new)  # only differences matter; keeps values small
        K = delta.shape[0]
        best_from = jnp.where(real, best_from, jnp.arange(K))
        return jnp.where(real, new, delta), best_from

    last, pointers = jax.lax.scan(step, first, (log_emission[1:], mask[1:]))
    end = jnp.argmax(last)

    def back(state, pointer_row):
        previous = pointer_row[state]
        return previous, state

    start, path = jax.lax.scan(back, end, pointers, reverse=True)
    return jnp.concatenate([start[None], path]).astype(jnp.int32)


def sample_path(rng_key, log_init, log_trans, log_emission, mask):
    """One draw of the whole state path from p(z_1..z_T | x_1..x_T), by forward filtering and
    backward sampling; padded steps repeat the last real state."""
    filtered = forward_filter(log_init, log_trans, log_emission, mask)
    trans = jnp.exp(log_trans)
    keys = jax.random.split(rng_key, filtered.shape[0])
    last = jax.random.categorical(keys[-1], jnp.log(jnp.maximum(filtered[-1], TINY)))

    def back(state_next, inputs):
        key, filtered_t, real_next = inputs
        weights = filtered_t * trans[:, state_next]
        drawn = jax.random.categorical(key, jnp.log(jnp.maximum(weights, TINY)))
        state = jnp.where(real_next, drawn, state_next)
        return state, state

    _, path = jax.lax.scan(back, last, (keys[:-1], filtered[:-1], mask[1:]), reverse=True)
    return jnp.concatenate([path, last[None]]).astype(jnp.int32)


def simulate_states(rng_key, init, trans, length: int):
    """A state path of `length` steps from the Markov chain (init (K,), trans (K, K))."""
    first_key, rest_key = jax.random.split(rng_key)
    first = jax.random.categorical(first_key, jnp.log(init))

    def step(state, key):
        new = jax.random.categorical(key, jnp.log(trans[state]))
        return new, new

    _, rest = jax.lax.scan(step, first, jax.random.split(rest_key, length - 1))
    return jnp.concatenate([first[None], rest])


EMISSIONS = ("gaussian", "poisson", "categorical")
COVARIANCES = ("diagonal", "full")
ALGORITHMS = ("scan", "parallel")
IDENTIFICATIONS = ("auto", "ordered", "relabel", "none")
LOG_RATE_PRIOR_SD = 2.0


# --------------------------------------------------------------------------------------------
# The observation distribution: an HMM with its states summed out
# --------------------------------------------------------------------------------------------
def emission_log_probs(x, emission: str, params: dict):
    """log p(x[s, t] | z = k): x (..., T, D) -> (..., T, K)."""
    if emission == "gaussian":
        K = params["means"].shape[0]
        return component_log_densities(x, jnp.ones(K), params["means"], params["scale_tril"])
    if emission == "poisson":
        rates = params["rates"]  # (K, D)
        return jnp.sum(dist.Poisson(rates).log_prob(x[..., None, :]), axis=-1)
    probs = params["emission_probs"]  # (K, C)
    codes = x[..., 0].astype(jnp.int32)
    return jnp.log(probs).T[codes]


class HiddenMarkov(dist.Distribution):
    """Sequences (S, T, D) from an HMM, with a mask (S, T) of real steps.

    batch_shape (S, T), event_shape (D,): `log_prob` gives log p(x_t | x_<t) per step (0 at
    padded steps), which sum to the log-likelihood of each sequence; `sample` simulates whole
    sequences (padded steps are simulated too and should be ignored)."""

    arg_constraints = {}

    def __init__(self, init_probs, transition, emission: str, params: dict, mask, parallel: bool = False,
                 num_dims: int = 1, *, validate_args=None):
        self.init_probs, self.transition, self.params = init_probs, transition, params
        self.emission, self.step_mask, self.parallel = emission, jnp.asarray(mask), parallel
        super().__init__(batch_shape=self.step_mask.shape, event_shape=(num_dims,), validate_args=validate_args)

    def log_prob(self, value):
        log_emission = emission_log_probs(value, self.emission, self.params)
        one = functools.partial(forward, parallel=self.parallel)
        return jax.vmap(one, in_axes=(None, None, 0, 0))(
            jnp.log(self.init_probs), jnp.log(self.transition), log_emission, self.step_mask)

    def sample(self, key, sample_shape=()):
        S, T = self.step_mask.shape
        count = int(np.prod(sample_shape)) if sample_shape else 1
        keys = jax.random.split(key, count * S).reshape(count, S, -1)
        one = jax.vmap(jax.vmap(lambda k: simulate_sequence(k, self.init_probs, self.transition, self.emission,
                                                             self.params, T)[1]))
        return one(keys).reshape(sample_shape + (S, T) + self.event_shape)


def simulate_sequence(rng_key, init_probs, transition, emission: str, params: dict, length: int):
    """(states (T,), values (T, D)) of one sequence from given parameters."""
    state_key, value_key = jax.random.split(rng_key)
    states = simulate_states(state_key, init_probs, transition, length)
    keys = jax.random.split(value_key, length)
    if emission == "gaussian":
        means, scale_tril = params["means"][states], params["scale_tril"][states]
        noise = jax.vmap(lambda k, shape_like: jax.random.normal(k, shape_like.shape))(keys, means)
        values = means + jnp.einsum("tde,te->td", scale_tril, noise, precision=HIGHEST)
    elif emission == "poisson":
        values = jax.vmap(lambda k, rate: jax.random.poisson(k, rate))(keys, params["rates"][states]).astype(jnp.float32)
    else:
        values = jax.vmap(lambda k, p: jax.random.categorical(k, jnp.log(p)))(keys, params["emission_probs"][states])
        values = values[:, None].astype(jnp.float32)
    return states, values


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def hmm(
    x=None,
    *,
    mask,
    num_states: int,
    emission: str = "gaussian",
    num_dims: int = 1,
    prior_loc=None,
    prior_scale=None,
    covariance: str = "diagonal",
    sticky: float = 0.0,
    algorithm: str = "scan",
    identify: str = "ordered",
    num_categories: int = 0,
):
    """Hidden Markov model. x: (S, T, D) padded sequences (or None to simulate); mask (S, T).

    Sites: init_probs (K,), transition (K, K); gaussian: ordered_means (K,) and other_means
    (K, D-1) [identify="ordered"] or means (K, D), scales (K, D), corr_cholesky (K, D, D) for
    full covariance, deterministic means and scale_tril; poisson: ordered_log_rates (K,) or
    log_rates (K, 1), deterministic rates (K, 1); categorical: emission_probs (K, C);
    observed x.
    """
    K = num_states
    init_probs = numpyro.sample("init_probs", dist.Dirichlet(jnp.ones(K)))
    concentration = jnp.ones((K, K)) + sticky * jnp.eye(K)
    transition = numpyro.sample("transition", dist.Dirichlet(concentration).to_event(1))
    ordered = identify == "ordered"
    if emission == "gaussian":
        prior_loc, prior_scale = jnp.asarray(prior_loc), jnp.asarray(prior_scale)
        if ordered:
            columns = [numpyro.sample("ordered_means", OrderedNormal(prior_loc[0], prior_scale[0], K))[:, None]]
            if num_dims > 1:
                columns.append(numpyro.sample(
                    "other_means", dist.Normal(prior_loc[1:], prior_scale[1:]).expand([K, num_dims - 1]).to_event(2)))
            means = numpyro.deterministic("means", jnp.concatenate(columns, axis=1))
        else:
            means = numpyro.sample("means", dist.Normal(prior_loc, prior_scale).expand([K, num_dims]).to_event(2))
        scales = numpyro.sample("scales", dist.HalfNormal(prior_scale / 2).expand([K, num_dims]).to_event(2))
        if covariance == "full" and num_dims > 1:
            corr = numpyro.sample("corr_cholesky", dist.LKJCholesky(num_dims, 2.0).expand([K]).to_event(1))
            scale_tril = scales[..., :, None] * corr
        else:
            scale_tril = jnp.eye(num_dims) * scales[..., :, None]
        params = {"means": means, "scale_tril": numpyro.deterministic("scale_tril", scale_tril)}
    elif emission == "poisson":
        loc = jnp.asarray(prior_loc)[0]
        if ordered:
            log_rates = numpyro.sample("ordered_log_rates", OrderedNormal(loc, LOG_RATE_PRIOR_SD, K))[:, None]
        else:
            log_rates = numpyro.sample("log_rates", dist.Normal(loc, LOG_RATE_PRIOR_SD).expand([K, 1]).to_event(2))
        params = {"rates": numpyro.deterministic("rates", jnp.exp(log_rates))}
    else:
        probs = numpyro.sample("emission_probs", dist.Dirichlet(jnp.ones(num_categories)).expand([K]).to_event(1))
        params = {"emission_probs": probs}
    numpyro.sample("x", HiddenMarkov(init_probs, transition, emission, params, mask, algorithm == "parallel",
                                     num_dims), obs=x)


def emission_params(samples: dict, emission: str) -> dict:
    """The emission parameters of `hmm` from posterior (or prior) draws of its sites."""
    if emission == "gaussian":
        return {"means": samples["means"], "scale_tril": samples["scale_tril"]}
    if emission == "poisson":
        return {"rates": samples["rates"]}
    return {"emission_probs": samples["emission_probs"]}


# --------------------------------------------------------------------------------------------
# Label switching, starting points
# --------------------------------------------------------------------------------------------
STATE_SITES = ("init_probs", "means", "ordered_means", "other_means", "scales", "corr_cholesky", "scale_tril",
               "ordered_log_rates", "log_rates", "rates", "emission_probs")


def postprocess(samples: dict, inputs: ModelInputs) -> dict:
    """identify="relabel": permute each draw's states to a common reference (Hungarian algorithm
    on the emission parameters); the transition matrix is permuted in rows and columns."""
    if inputs.kwargs["identify"] != "relabel" or inputs.kwargs["num_states"] == 1:
        return samples
    chains, draws = samples["init_probs"].shape[:2]
    flat = {k: np.asarray(v).reshape((chains * draws,) + np.shape(v)[2:]) for k, v in samples.items()}
    feature = next(flat[name] for name in ("emission_probs", "means", "log_rates") if name in flat)
    permutations = relabel_permutations(feature.reshape(feature.shape[0], feature.shape[1], -1))
    out = {}
    for name, value in flat.items():
        if name in STATE_SITES or name == "transition":
            index = permutations.reshape(permutations.shape + (1,) * (value.ndim - 2))
            value = np.take_along_axis(value, index, axis=1)
        if name == "transition":
            value = np.take_along_axis(value, permutations[:, None, :], axis=2)
        out[name] = value.reshape((chains, draws) + value.shape[1:])
    return out


def init(inputs: ModelInputs, rng_key, num_chains: int) -> dict:
    """Per chain: states from a k-means++ clustering of the values (its own seeding per chain),
    emission parameters from the clusters, a transition matrix with 0.8 on the diagonal."""
    kw = inputs.kwargs
    K, emission = kw["num_states"], kw["emission"]
    values = inputs.observed["x"][kw["mask"]].astype(np.float64)
    rng = np.random.default_rng(np.asarray(jax.random.key_data(rng_key) if hasattr(jax.random, "key_data")
                                           else rng_key).ravel().tolist())
    off = 0.2 / (K - 1) if K > 1 else 0.0
    transition = np.full((K, K), off) + np.eye(K) * (0.8 - off if K > 1 else 1.0)
    out: dict[str, list] = {}
    for _ in range(num_chains):
        start = {"init_probs": np.full(K, 1.0 / K), "transition": transition}
        if emission == "categorical":
            counts = np.bincount(values[:, 0].astype(int), minlength=kw["num_categories"]) + 1.0
            start["emission_probs"] = rng.dirichlet(counts / counts.sum() * 20 + 1, size=K)
        else:
            labels = kmeans(values, K, rng) if K > 1 else np.zeros(len(values), int)
            centres = np.array([values[labels == k].mean(0) if np.any(labels == k) else values[rng.integers(len(values))]
                                for k in range(K)])
            order = np.argsort(centres[:, 0], kind="stable")
            centres = centres[order]
            labels = np.argsort(order)[labels]
            if emission == "gaussian":
                floor = 0.05 * np.asarray(kw["prior_scale"])
                spread = np.array([values[labels == k].std(0) if np.sum(labels == k) > 1 else floor * 4
                                   for k in range(K)])
                centres = centres + 1e-4 * np.asarray(kw["prior_scale"]) * np.arange(K)[:, None]  # strictly ordered
                start["scales"] = np.maximum(spread, floor)
                if kw["identify"] == "ordered":
                    start["ordered_means"] = centres[:, 0]
                    if kw["num_dims"] > 1:
                        start["other_means"] = centres[:, 1:]
                else:
                    start["means"] = centres
                if kw["covariance"] == "full" and kw["num_dims"] > 1:
                    start["corr_cholesky"] = np.broadcast_to(np.eye(kw["num_dims"]), (K, kw["num_dims"], kw["num_dims"]))
            else:
                log_rates = np.log(centres[:, :1] + 0.1) + 1e-3 * np.arange(K)[:, None]
                if kw["identify"] == "ordered":
                    start["ordered_log_rates"] = log_rates[:, 0]
                else:
                    start["log_rates"] = log_rates
        for name, value in start.items():
            out.setdefault(name, []).append(np.asarray(value, np.float32))
    return {name: np.stack(value) for name, value in out.items()}


# --------------------------------------------------------------------------------------------
# Simulation, units, plots
# --------------------------------------------------------------------------------------------
def simulate(rng_key, params: dict, num_points: int) -> np.ndarray:
    """One new sequence of `num_points` steps, (num_points, D), from one parameter draw chosen at
    random among the leading axis of `params` (posterior draws, or a single given set)."""
    init_probs = jnp.asarray(params["init_probs"])
    which_key, sequence_key = jax.random.split(rng_key)
    which = int(jax.random.randint(which_key, (), 0, init_probs.shape[0]))
    emission = ("gaussian" if "means" in params else "poisson" if "rates" in params else "categorical")
    chosen = {k: jnp.asarray(v)[which] for k, v in emission_params(params, emission).items()}
    _, values = simulate_sequence(sequence_key, init_probs[which], jnp.asarray(params["transition"])[which],
                                  emission, chosen, num_points)
    return np.asarray(values)


