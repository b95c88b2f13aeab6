"""Bayesian hidden Markov model: K hidden states, the state paths marginalised exactly.

    init_probs           ~ Dirichlet(1_K)
    transition[k]        ~ Dirichlet(1_K + sticky * e_k)          (row k: from state k)
    emissions, per state k:
      gaussian     x_t | z_t = k ~ Normal(means[k], diag(scales[k]) corr[k] diag(scales[k]))
                   means[k, d] ~ Normal(prior_loc[d], prior_scale[d]), scales ~ HalfNormal(prior_scale / 2),
                   corr_cholesky[k] ~ LKJCholesky(D, 2) (covariance="full", D > 1)
      poisson      x_t | z_t = k ~ Poisson(rates[k]),  log rates ~ Normal(log mean(x), 2)
      categorical  x_t | z_t = k ~ Categorical(emission_probs[k]),  emission_probs[k] ~ Dirichlet(1_C)

The hidden states are summed out by the forward algorithm (`hmm_forward`: a
`lax.scan`, or with `--algorithm parallel` a `lax.associative_scan` of O(log T) depth for
accelerators; both give the same log-likelihood), so NUTS and SVI see a smooth log density.
Several sequences of different lengths are fitted together: padded to the longest, with a
mask, and the forward algorithm vmapped over them (no Python loop).

The observed site `x` has shape (sequence, time, feature). Its pointwise log-likelihood is the
one-step-ahead term log p(x_t | x_1..x_{t-1}) (summing to the sequence's log-likelihood), so
PSIS-LOO over these terms measures how well the model predicts each step from the steps
before; it is the criterion the analyses use to choose K.

Label switching: by default the first column of the Gaussian means (or the Poisson log rates)
is ordered, as in the mixture family, so every chain samples one labelling; for categorical
emissions, which have no natural order, each draw is relabelled to a common reference by the
Hungarian algorithm on its emission probabilities (`identify="relabel"`).

Decoding after the fit (the `decoding` group of the InferenceData, `decode`): smoothed state
marginals averaged over posterior draws, the Viterbi path at the posterior mean and per draw,
and whole state paths drawn by forward-filtering backward-sampling, one per draw.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd

from probgen.errors import ModelError
from probgen.models._shared import OrderedNormal, component_log_densities, kmeans, relabel_permutations
from probgen.spec import HeldOut, ModelInputs, ModelSpec, Option, ReportPart, Section

EMISSIONS = ("gaussian", "poisson", "categorical")
COVARIANCES = ("diagonal", "full")
ALGORITHMS = ("scan", "parallel")
IDENTIFICATIONS = ("auto", "ordered", "relabel", "none")
LOG_RATE_PRIOR_SD = 2.0


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
# Data -> model inputs
# --------------------------------------------------------------------------------------------
def _rows(index, limit: int = 5) -> str:
    index = list(index)
    shown = ", ".join(str(i + 1) for i in index[:limit])
    return shown + (f" and {len(index) - limit} more" if len(index) > limit else "")


def split_sequences(frame: pd.DataFrame, sequence_column: str, time_column: str = ""
                    ) -> tuple[list[np.ndarray], list, list[str], list[np.ndarray]]:
    """(one (T_s, D) array per sequence, sequence ids, value columns, one array of time labels
    per sequence). Rows are in time order within each sequence (checked against the time
    column when there is one; its values label the steps, 0, 1, ... otherwise); sequences are
    taken in order of first appearance."""
    for flag, column in (("--sequence-column", sequence_column), ("--time-column", time_column)):
        if column and column not in frame.columns:
            raise ModelError(f"{flag} '{column}' is not among the data's columns "
                             f"({', '.join(map(str, frame.columns))}); include it in --columns")
    if sequence_column and sequence_column == time_column:
        raise ModelError(f"--sequence-column and --time-column are both '{time_column}'")
    columns = [c for c in frame.columns if c not in (sequence_column, time_column)]
    if not columns:
        raise ModelError("no value columns: the data hold only the sequence and time columns")
    if sequence_column:
        labels = frame[sequence_column].to_numpy()
        rows = [np.flatnonzero(labels == i) for i in pd.unique(labels)]
        # ids arrive as floats from the data layer: 2.0 is shown as 2
        ids = [int(v) if isinstance(v, (float, np.floating)) and float(v).is_integer() else v
               for v in (labels[r[0]] for r in rows)]
    else:
        ids, rows = [0], [np.arange(len(frame))]
    values = frame[columns].to_numpy(np.float64)  # converted once, then cut into sequences
    stamps = frame[time_column].to_numpy(np.float64) if time_column else None
    groups = [values[r] for r in rows]
    times = [stamps[r] if time_column else np.arange(len(r), dtype=np.float64) for r in rows]
    short = [(i, len(g)) for i, g in zip(ids, groups) if len(g) < 2]
    if short:
        listed = ", ".join(f"{i} ({n} row{'s' if n != 1 else ''})" for i, n in short[:5])
        raise ModelError(f"sequence{'s' if len(short) > 1 else ''} {listed} too short: an HMM needs at least 2 steps "
                         "per sequence")
    for i, r, t in zip(ids, rows, times):
        backwards = np.flatnonzero(np.diff(t) <= 0)
        if len(backwards):
            where = r[backwards[0] + 1]
            raise ModelError(f"--time-column '{time_column}' must increase within each sequence: row {where + 1} "
                             f"({t[backwards[0] + 1]:g}) does not come after row {r[backwards[0]] + 1} "
                             f"({t[backwards[0]]:g}){f' in sequence {i}' if sequence_column else ''}; sort the rows")
    return groups, ids, [str(c) for c in columns], times


def prepare(frame, options) -> ModelInputs:
    """Padded sequences, mask and hyperparameters from a table; validates options and values."""
    # the options' types, choices and bounds are checked from their Option metadata (resolve_options)
    K = options["num_states"]
    emission = options["emission"]
    groups, ids, columns, times = split_sequences(frame, options["sequence_column"], options["time_column"])
    values = np.concatenate(groups)
    num_dims = values.shape[1]
    identify = options["identify"]
    if identify == "auto":
        identify = "relabel" if emission == "categorical" else "ordered"
    if identify == "ordered" and emission == "categorical":
        raise ModelError("--identify ordered needs ordered emission parameters; categorical emissions use relabel")
    num_categories = 0
    if emission in ("poisson", "categorical"):
        if num_dims != 1:
            raise ModelError(f"--emission {emission} takes one column, got {num_dims} ({', '.join(columns)})")
        column = frame[columns[0]].to_numpy(np.float64)  # data rows, in the file's order
        bad = np.flatnonzero((column < 0) | (column != np.round(column)))
        if len(bad):
            kind = "counts" if emission == "poisson" else "category codes"
            raise ModelError(f"--emission {emission} needs non-negative integer {kind}; column '{columns[0]}' has "
                             f"{float(column[bad[0]])!r} and {len(bad)} such value(s) in all (rows {_rows(bad)})")
        if emission == "categorical":
            given = int(options["num_categories"])
            num_categories = given or int(column.max()) + 1
            unknown = np.flatnonzero(column >= num_categories)
            if len(unknown):
                raise ModelError(f"unknown category label(s) {sorted({int(v) for v in column[unknown]})[:10]} in column "
                                 f"'{columns[0]}' (rows {_rows(unknown)}): with --num-categories {num_categories} "
                                 f"the codes must be 0..{num_categories - 1}")
            if num_categories < 2:
                raise ModelError(f"categorical emissions need at least 2 categories, got {num_categories}")
    if emission == "gaussian":
        low, high = values.min(0), values.max(0)
        constant = [c for c, s in zip(columns, high - low) if not s > 0]
        if constant:
            raise ModelError(f"column{'s' if len(constant) > 1 else ''} {', '.join(constant)} has a single value; "
                             "Gaussian emissions need spread in every column")
        prior_loc, prior_scale = (low + high) / 2, high - low
    else:
        prior_loc, prior_scale = np.array([math.log(values.mean() + 0.1)]), np.array([LOG_RATE_PRIOR_SD])
    lengths = [len(g) for g in groups]
    S, T = len(groups), max(lengths)
    x = np.zeros((S, T, num_dims), np.float32)
    mask = np.zeros((S, T), bool)
    time_labels = np.full((S, T), np.nan)
    for s, (g, t) in enumerate(zip(groups, times)):
        x[s, : len(g)] = g
        mask[s, : len(g)] = True
        time_labels[s, : len(g)] = t
    kwargs = {
        "mask": mask, "num_states": int(K), "emission": emission, "num_dims": num_dims,
        "prior_loc": prior_loc.astype(np.float32), "prior_scale": prior_scale.astype(np.float32),
        "covariance": options["covariance"], "sticky": float(options["sticky"]), "algorithm": options["algorithm"],
        "identify": identify, "num_categories": num_categories,
    }
    states = [f"s{k}" for k in range(K)]
    return ModelInputs(
        kwargs=kwargs,
        observed={"x": x},
        masks={"x": mask},
        labels={"time": time_labels, "time_column": options["time_column"]},
        coords={"state": states, "state_": states, "feature": columns, "feature_": columns,
                "sequence": [str(i) for i in ids], "time": np.arange(T), "category": np.arange(max(num_categories, 1))},
        dims={
            "init_probs": ["state"], "transition": ["state", "state_"],
            "ordered_means": ["state"], "means": ["state", "feature"], "scales": ["state", "feature"],
            "corr_cholesky": ["state", "feature", "feature_"], "scale_tril": ["state", "feature", "feature_"],
            "ordered_log_rates": ["state"], "log_rates": ["state", "feature"], "rates": ["state", "feature"],
            "emission_probs": ["state", "category"],
            "x": ["sequence", "time", "feature"],
        },
    )


def time_order(options) -> str:
    """The rows are time-ordered within each sequence: `--holdout` keeps out each sequence's end."""
    return options["sequence_column"]


def held_out(train_frame: pd.DataFrame, held_frame: pd.DataFrame, options) -> ModelInputs:
    """Inputs that score the held-out end of each sequence given its training start: the whole
    sequences, with the model's hyperparameters from the training rows and `masks` marking
    only the held-out steps. Each held-out step's pointwise log-likelihood is then the
    one-step-ahead log p(x_t | x_<t) with the training steps in the history, and their sum
    per sequence is log p(held-out end | training start)."""
    train = prepare(train_frame, options)
    whole_options = dict(options)
    if train.kwargs["emission"] == "categorical":  # the fitted emission_probs fix the category count
        whole_options["num_categories"] = train.kwargs["num_categories"]
    whole = prepare(pd.concat([train_frame, held_frame], ignore_index=True), whole_options)
    train_lengths = {sequence: int(row.sum()) for sequence, row in zip(train.coords["sequence"], train.kwargs["mask"])}
    mask = np.asarray(whole.kwargs["mask"])
    scored = np.zeros_like(mask)
    for s, sequence in enumerate(whole.coords["sequence"]):
        scored[s, train_lengths.get(sequence, 0): mask[s].sum()] = True
    kwargs = {**train.kwargs, "mask": mask}
    return dataclasses.replace(whole, kwargs=kwargs, masks={"x": scored})


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


def describe_regimes(idata, sequence: int = 0, units: str = "", digits: int = 0) -> dict:
    """What the decoded states say about one sequence, in numbers and in words.

    segments: the runs of the Viterbi path at the posterior mean (start and end time, state,
    the state's posterior mean emission level in the data's units);
    switches: for each change of regime on that path, the posterior probability that the
    sampled state paths (FFBS, one per draw) change state between the two time steps, and
    within +-2 steps;
    reading: the segments and switches as sentences."""
    decoding = idata.decoding
    path = decoding["viterbi_path"].values[sequence]
    real = path >= 0
    path, time = path[real], decoding["time_label"].values[sequence][real]
    sampled = decoding["sampled_paths"].values[:, sequence][:, real]
    posterior = idata.posterior
    level_name = "means" if "means" in posterior else "rates" if "rates" in posterior else None
    levels = (posterior[level_name].mean(("chain", "draw")).values[:, 0] if level_name else None)
    segments, switches = [], []
    starts = np.concatenate([[0], np.flatnonzero(np.diff(path)) + 1])
    ends = np.concatenate([starts[1:] - 1, [len(path) - 1]])
    for a, b in zip(starts, ends):
        state = int(path[a])
        segments.append({"start": float(time[a]), "end": float(time[b]), "steps": int(b - a + 1), "state": state,
                         "level": None if levels is None else float(levels[state])})
    changes = np.diff(sampled, axis=1) != 0  # (draws, T-1): the path changes between t and t+1
    for a in starts[1:]:
        near = changes[:, max(a - 3, 0): min(a + 2, changes.shape[1])].any(axis=1)
        switches.append({"from": float(time[a - 1]), "to": float(time[a]),
                         "probability": float(changes[:, a - 1].mean()), "probability_within_2": float(near.mean())})

    def show(t):
        return f"{t:.{digits}f}"

    level_word = {"means": "mean level", "rates": "rate"}.get(level_name, "")
    parts = []
    for segment in segments:
        level = (f" ({level_word} {segment['level']:.{max(digits, 1) if level_name == 'rates' else digits}f}"
                 f"{' ' + units if units else ''})" if segment["level"] is not None else "")
        parts.append(f"{show(segment['start'])}-{show(segment['end'])}: state {segment['state']}{level}")
    reading = "Most probable path (Viterbi at the posterior mean): " + "; ".join(parts) + "."
    for switch in switches:
        reading += (f" The change between {show(switch['from'])} and {show(switch['to'])} has posterior probability "
                    f"{switch['probability']:.2f} at exactly that step and {switch['probability_within_2']:.2f} "
                    f"within two steps (from {sampled.shape[0]} sampled state paths).")
    if not switches:
        reading += " The path never changes state."
    return {"segments": segments, "switches": switches, "reading": reading}


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


def to_original_units(posterior, loc, scale):
    """Gaussian emission parameters back in the data's units (from standardised ones)."""
    out = posterior.copy()
    loc, scale = np.asarray(loc), np.asarray(scale)
    if "means" in posterior:
        out["means"] = posterior["means"] * scale + loc
        out["scales"] = posterior["scales"] * scale
        out["scale_tril"] = posterior["scale_tril"] * scale[:, None]
    if "ordered_means" in posterior:
        out["ordered_means"] = posterior["ordered_means"] * scale[0] + loc[0]
    if "other_means" in posterior:
        out["other_means"] = posterior["other_means"] * scale[1:] + loc[1:]
    return out


def plots(idata) -> dict:
    """Per sequence (up to 3): the data over time coloured by the Viterbi state at the posterior
    mean, and the posterior state probabilities over time."""
    import matplotlib.pyplot as plt

    if "decoding" not in idata.groups():
        return {}
    decoding = idata.decoding
    x = idata.observed_data["x"]
    figures = {}
    colours = plt.get_cmap("tab10")
    sequences = list(decoding["sequence"].values)[:3]
    for s, sequence in enumerate(sequences):
        path = decoding["viterbi_path"].values[s]
        real = path >= 0
        values = x.values[s][real]
        probabilities = decoding["state_probability"].values[s][real]
        time = decoding["time_label"].values[s][real] if "time_label" in decoding else np.arange(real.sum())
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        top.plot(time, values[:, 0], color="0.75", lw=0.8, zorder=1)
        for k in range(probabilities.shape[1]):
            chosen = path[real] == k
            top.scatter(time[chosen], values[chosen, 0], s=10, color=colours(k % 10), label=f"state {k}", zorder=2)
        top.set_ylabel(str(x["feature"].values[0]))
        top.legend(fontsize=8, ncol=min(4, probabilities.shape[1]))
        top.set_title(f"sequence {sequence}: data by most probable state (Viterbi at the posterior mean)")
        bottom.stackplot(time, probabilities.T, colors=[colours(k % 10) for k in range(probabilities.shape[1])],
                         alpha=0.8)
        bottom.set_ylim(0, 1)
        bottom.set_ylabel("P(state | data)")
        bottom.set_xlabel(decoding.attrs.get("time_column") or "time step")
        figure.tight_layout()
        figures["states" if len(sequences) == 1 else f"states_{sequence}"] = figure
    return figures


SPEC = ModelSpec(
    name="hmm",
    model=hmm,
    prepare=prepare,
    options=(
        Option("num_states", int, 2, "number of hidden states K (>= 1)", minimum=1),
        Option("emission", str, "gaussian", "emission distribution", EMISSIONS),
        Option("covariance", str, "diagonal", "Gaussian emissions in several columns: diagonal or full covariance",
               COVARIANCES),
        Option("sticky", float, 0.0, "extra Dirichlet mass on staying in the same state (>= 0)", minimum=0),
        Option("algorithm", str, "scan", "forward algorithm: sequential scan, or parallel (associative scan, "
                                         "O(log T) depth, for accelerators)", ALGORITHMS),
        Option("sequence_column", str, "", "column holding a sequence id (rows of one id are one sequence, in "
                                           "order); default: all rows are one sequence"),
        Option("time_column", str, "", "column holding each row's time (e.g. the year): labels the decoded "
                                       "regimes and plots, must increase within a sequence; not modelled"),
        Option("num_categories", int, 0, "categorical emissions: number of categories (default: largest code + 1)"),
        Option("identify", str, "auto", "label switching: auto (ordered for gaussian/poisson, relabel for "
                                         "categorical), ordered, relabel or none", IDENTIFICATIONS),
    ),
    postprocess=postprocess,
    simulate=simulate,
    to_original_units=to_original_units,
    plots=plots,
    summary_vars=("init_probs", "transition", "means", "scales", "rates", "emission_probs"),
    init=init,
    derived=decode,
    held_out=HeldOut(inputs=held_out, sequence=time_order),
    description="Bayesian hidden Markov model, K states (forward algorithm), Gaussian/Poisson/categorical emissions, "
                "several sequences, decoding",
)
