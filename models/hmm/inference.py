"""Hidden Markov model inference for one sequence, as pure JAX functions of
(log_init, log_trans, log_emission, mask): forward (sequential and parallel), forward-backward
smoothing, Viterbi and forward-filtering backward-sampling; independent of the emission family
(dynamax's `hidden_markov_model/inference.py` split). vmap them over sequences."""

from __future__ import annotations

import jax
import jax.numpy as jnp


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
