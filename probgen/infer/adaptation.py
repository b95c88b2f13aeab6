"""How NUTS/HMC learn their metric (the inverse mass matrix) and step size during warm-up.

Three adaptations, each a drop-in for NumPyro's `warmup_adapter` (same arguments, same
`HMCAdaptState`), so NumPyro's kernels, trees and integrator stay as they are:

- "fisher": nutpie's adaptation (Seyboldt, Carlson & Carpenter 2025). The
  diagonal that minimises the Fisher divergence between the posterior and the Gaussian of
  that metric, sigma_i^2 = sd(draws_i) / sd(gradients_i), from the draws *and* their scores.
  It starts from the first gradient (sigma_i^2 = 1 / |g_i|) and keeps two running estimates, a
  foreground that sets the metric after every draw and a background that replaces it every 10
  draws in the first 30% of warm-up and every 80 after, so that early, far-off draws are
  forgotten. The last 15% of warm-up adapts the step size alone.
- "stan": Stan's (and NumPyro's) windowed adaptation, with the variance regularised towards
  each coordinate's own scale. Stan shrinks each window's variance as n/(n+5) var + 5/(n+5)
  1e-3: a fixed 1e-3 that swamps variances far below it (sblri's coefficients, sd ~1e-3, got
  an inverse mass ~10x too large, a smaller step and deeper trees). Here the 1e-3 is relative
  to the coordinate's previous estimate, which keeps the guard against a window that did not
  move while leaving small scales alone.
- "low-rank" (the default): nutpie's low-rank correction on top of the Fisher diagonal, for correlated
  posteriors (regressions on uncentred predictors). The early window adapts the Fisher
  diagonal alone, as "fisher" does; after it, at each switch the draws and gradients
  since the foreground began, rescaled by the diagonal, are projected onto the span of both;
  there the metric is the geometric mean of the draws' covariance and the inverse of the
  gradients' covariance (each regularised with gamma = 1e-5), and its eigenvectors with
  eigenvalues beyond [1/2, 2] correct the diagonal. The metric is a dense matrix for
  NumPyro's kernel; a model with more than LOW_RANK_MAX_DIM coordinates, or a warm-up shorter
  than LOW_RANK_MIN_WARMUP iterations, gets the Fisher diagonal instead.

Both Fisher adaptations skip a draw or gradient that is not finite.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

ADAPTATIONS = ("fisher", "stan", "low-rank")
DEFAULT = "low-rank"  # the fewest gradients per effective draw on the Speed table (README, Speed)

# nutpie's schedule (nuts-rs AdaptOptions defaults)
EARLY_WINDOW = 0.3  # share of warm-up with frequent switches
STEP_SIZE_WINDOW = 0.15  # final share of warm-up that adapts the step size alone
EARLY_SWITCH = 10  # draws in the background before it replaces the foreground, early
LATE_SWITCH = 80  # ... and after the early window
CLAMP = (1e-20, 1e20)  # bounds of a variance estimate (nutpie's)
# the low-rank correction (nuts-rs LowRankSettings defaults)
LOW_RANK_GAMMA = 1e-5
LOW_RANK_CUTOFF = 2.0  # nuts-rs raised it from 100 to 2: more directions corrected
LOW_RANK_MAX_DIM = 500  # a dense metric costs dim^2 per leapfrog step; larger models get the diagonal
LOW_RANK_MIN_WARMUP = 400  # shorter warm-ups get the Fisher diagonal
LOW_RANK_BUFFER = 256  # the most recent draws kept (a foreground holds at most ~2 x 80)
STAN_SHRINK = 1e-3  # Stan's regularisation weight, here relative to the previous estimate


def kernel_options(adapt: str) -> dict:
    """What NumPyro's `init_kernel` needs besides the adapter: a dense metric for low-rank."""
    return {"dense_mass": True} if adapt == "low-rank" else {}


@contextlib.contextmanager
def adapting(adapt: str):
    """While NumPyro's `init_kernel` runs inside this block, it builds `adapt`'s warm-up
    adapter instead of its own (the kernel keeps the adapter for every later sample_kernel)."""
    import numpyro.infer.hmc as hmc_module

    if adapt not in ADAPTATIONS:
        raise ValueError(f"adaptation must be one of {', '.join(ADAPTATIONS)}, got {adapt!r}")
    builder = {"fisher": fisher_adapter, "stan": stan_adapter, "low-rank": low_rank_adapter}[adapt]
    original = hmc_module.warmup_adapter
    hmc_module.warmup_adapter = builder
    try:
        yield
    finally:
        hmc_module.warmup_adapter = original


# -- shared pieces ----------------------------------------------------------------------------
def _factors(z, inverse_mass_matrix, dense: bool):
    """(inverse mass matrix, its square-root factors) as NumPyro's kernels take them."""
    from numpyro.infer.hmc_util import _initialize_mass_matrix

    return _initialize_mass_matrix(z, inverse_mass_matrix, dense)


def _step_size_pieces(num_adapt_steps, target_accept_prob):
    from numpyro.infer.hmc_util import dual_averaging

    ss_init, ss_update = dual_averaging()

    def update(t, accept_prob, ss_state):
        ss_state = ss_update(target_accept_prob - accept_prob, ss_state)
        log_step_size, log_step_size_avg, *_ = ss_state
        # the last warm-up iteration fixes the averaged step size, as NumPyro's adapter does
        step_size = jnp.where(t == num_adapt_steps - 1, jnp.exp(log_step_size_avg), jnp.exp(log_step_size))
        finfo = jnp.finfo(jnp.result_type(step_size))
        return jnp.clip(step_size, finfo.tiny, finfo.max), ss_state

    return ss_init, update


def _restart(ss_init, step_size):
    # jnp.log(10) + log(step_size): finite even for a huge step size (as NumPyro's adapter)
    return ss_init(jnp.log(10.0) + jnp.log(step_size))


# the stage of a Fisher adaptation's metric (HMCAdaptState.window_idx)
STAGE_INITIAL, STAGE_FROM_GRADIENT, STAGE_FROM_DRAWS = 0, 1, 2


def _restarter(ss_init, find_reasonable_step_size, adapt_step_size):
    """on_new_stage(new_stage, final_window, ...): a new kind of metric (the first from the
    gradient, the first from draws) gets a step size found for it and dual averaging afresh;
    so does the step-size-only window at its start (as Stan's term buffer does)."""

    def on_new_stage(new_stage, final_window, step_size, ss_state, inverse_mass_matrix, z_info, key):
        if not adapt_step_size:
            return step_size, ss_state
        found = find_reasonable_step_size(step_size, inverse_mass_matrix, z_info, key)
        step_size = jnp.where(new_stage, found, step_size)
        fresh = new_stage | final_window
        return step_size, jax.tree.map(lambda a, b: jnp.where(fresh, a, b), _restart(ss_init, step_size), ss_state)

    return on_new_stage


def _schedule(num_adapt_steps):
    early_end = int(EARLY_WINDOW * num_adapt_steps)
    final_start = num_adapt_steps - int(STEP_SIZE_WINDOW * num_adapt_steps)
    return early_end, final_start


def _ravel(tree):
    from jax.flatten_util import ravel_pytree

    return ravel_pytree(tree)[0]


def _gradient_variance(g):
    """nutpie's first metric, from one gradient: 1 / |g| (1 where the gradient is 0 or not
    finite), at most 1 (the identity's scale). A nearly flat direction at the start (an empty
    mixture component's location) would otherwise get a huge variance and the first
    trajectories would throw it far into the flat region, where a chain of a two-component
    mixture stayed (R-hat 1.8); the draws' own estimate takes over three draws later."""
    variance = jnp.where(jnp.isfinite(g) & (g != 0), 1.0 / jnp.abs(g), 1.0)
    return jnp.clip(variance, CLAMP[0], 1.0)


def _moments_init(size, dtype):
    zeros = jnp.zeros(size, dtype)
    return (jnp.zeros((), jnp.int32), zeros, zeros, zeros, zeros)  # n, mean and m2 of draws, of grads


def _moments_add(moments, x, g, good):
    n, mean_x, m2_x, mean_g, m2_g = moments
    n_new = (n + 1).astype(jnp.int32)
    dx, dg = x - mean_x, g - mean_g
    mean_x_new, mean_g_new = mean_x + dx / n_new, mean_g + dg / n_new
    added = (n_new, mean_x_new, m2_x + dx * (x - mean_x_new), mean_g_new, m2_g + dg * (g - mean_g_new))
    return jax.tree.map(lambda new, old: jnp.where(good, new, old), added, moments)


def fisher_variance(m2_draws, m2_grads, fallback):
    """sigma^2 = sd(draws) / sd(gradients) per coordinate (the counts cancel); `fallback`
    where either spread is zero or the ratio is not finite."""
    variance = jnp.sqrt(m2_draws / m2_grads)
    usable = jnp.isfinite(variance) & (m2_draws > 0) & (m2_grads > 0)
    return jnp.where(usable, jnp.clip(variance, *CLAMP), fallback)


# -- fisher -----------------------------------------------------------------------------------
def fisher_adapter(num_adapt_steps, find_reasonable_step_size=None, adapt_step_size=True, adapt_mass_matrix=True,
                   dense_mass=False, target_accept_prob=0.8, regularize_mass_matrix=True):
    """nutpie's diagonal adaptation as a NumPyro warm-up adapter (see the module's text)."""
    from numpyro.infer.hmc_util import HMCAdaptState

    if dense_mass:
        raise ValueError("the fisher adaptation learns a diagonal metric; use low-rank for a dense one")
    find_reasonable_step_size = find_reasonable_step_size or (lambda step_size, *_: step_size)
    ss_init, ss_update = _step_size_pieces(num_adapt_steps, target_accept_prob)
    early_end, final_start = _schedule(num_adapt_steps)
    _on_new_stage = _restarter(ss_init, find_reasonable_step_size, adapt_step_size)

    def init_fn(z_info, rng_key, step_size=1.0, inverse_mass_matrix=None, mass_matrix_size=None):
        # NumPyro's init_kernel gives the start without its gradient: the first metric from
        # the gradient is set at the first update
        z = _ravel(z_info.z)
        factors = _factors(z_info.z, inverse_mass_matrix, False)
        rng_key, key_ss = jax.random.split(rng_key)
        if adapt_step_size:
            step_size = find_reasonable_step_size(step_size, factors[0], z_info, key_ss)
        empty = _moments_init(z.shape, z.dtype)
        # mm_state: (foreground, background); window_idx: the metric's stage (STAGE_*)
        return HMCAdaptState(step_size, *factors, _restart(ss_init, step_size), (empty, empty),
                             jnp.asarray(STAGE_FROM_DRAWS if inverse_mass_matrix is not None else STAGE_INITIAL,
                                         jnp.int32), rng_key)

    def update_fn(t, accept_prob, z_info, state):
        step_size, inverse_mass_matrix, mm_sqrt, mm_sqrt_inv, ss_state, (fore, back), stage, rng_key = state
        rng_key, key_ss = jax.random.split(rng_key)
        if adapt_step_size:
            step_size, ss_state = ss_update(t, accept_prob, ss_state)
        if adapt_mass_matrix:
            x, g = _ravel(z_info.z), _ravel(z_info.z_grad)
            good = jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(g)) & (t < final_start)
            fore, back = _moments_add(fore, x, g, good), _moments_add(back, x, g, good)
            switch_every = jnp.where(t < early_end, EARLY_SWITCH, LATE_SWITCH)
            switch = (back[0] >= switch_every) & (switch_every + t <= final_start)
            fore = jax.tree.map(lambda b, f: jnp.where(switch, b, f), back, fore)
            back = jax.tree.map(lambda e, b: jnp.where(switch, e, b), _moments_init(x.shape, x.dtype), back)
            from_draws = (fore[0] >= 3) & (t < final_start)
            from_gradient = ~from_draws & (stage == STAGE_INITIAL)
            new = jnp.where(from_draws, fisher_variance(fore[2], fore[4], inverse_mass_matrix),
                            jnp.where(from_gradient, _gradient_variance(g), inverse_mass_matrix))
            inverse_mass_matrix, mm_sqrt, mm_sqrt_inv = _factors(z_info.z, new, False)
            new_stage = jnp.where(from_draws, STAGE_FROM_DRAWS, jnp.where(from_gradient, STAGE_FROM_GRADIENT, stage))
            step_size, ss_state = _on_new_stage(new_stage != stage, t == final_start - 1, step_size, ss_state,
                                                inverse_mass_matrix, z_info, key_ss)
            stage = new_stage.astype(jnp.int32)
        return HMCAdaptState(step_size, inverse_mass_matrix, mm_sqrt, mm_sqrt_inv, ss_state, (fore, back), stage,
                             rng_key)

    return init_fn, update_fn


# -- stan, regularised to each coordinate's scale ---------------------------------------------
def stan_adapter(num_adapt_steps, find_reasonable_step_size=None, adapt_step_size=True, adapt_mass_matrix=True,
                 dense_mass=False, target_accept_prob=0.8, regularize_mass_matrix=True):
    """NumPyro's windowed adapter without its fixed regulariser; each window's variance is
    shrunk as n/(n+5) var + 5/(n+5) 1e-3 previous variance instead (see the module's text)."""
    from numpyro.infer.hmc_util import build_adaptation_schedule, warmup_adapter

    if dense_mass:
        raise ValueError("the stan adaptation here learns a diagonal metric; use low-rank for a dense one")
    init_fn, numpyro_update = warmup_adapter(num_adapt_steps, find_reasonable_step_size=find_reasonable_step_size,
                                             adapt_step_size=adapt_step_size, adapt_mass_matrix=adapt_mass_matrix,
                                             dense_mass=False, target_accept_prob=target_accept_prob,
                                             regularize_mass_matrix=False)
    num_windows = len(build_adaptation_schedule(num_adapt_steps))

    def update_fn(t, accept_prob, z_info, state):
        new = numpyro_update(t, accept_prob, z_info, state)
        if not adapt_mass_matrix:
            return new
        # a middle window ended at t: NumPyro replaced the metric by the window's variance
        ended = (new.window_idx > state.window_idx) & (state.window_idx > 0) & (state.window_idx < num_windows - 1)
        n = (state.mm_state[2] + 1).astype(new.inverse_mass_matrix.dtype)  # the window's draws, this one included
        shrunk = n / (n + 5) * new.inverse_mass_matrix + 5 / (n + 5) * STAN_SHRINK * state.inverse_mass_matrix
        factors = _factors(z_info.z, jnp.where(ended, shrunk, new.inverse_mass_matrix), False)
        return new._replace(inverse_mass_matrix=factors[0], mass_matrix_sqrt=factors[1],
                            mass_matrix_sqrt_inv=factors[2])

    return init_fn, update_fn


# -- low-rank ---------------------------------------------------------------------------------
def _spd_mean(a, b):
    """The geometric mean of a and b^-1 (both symmetric positive definite): the SPD matrix S
    with S b S = a."""
    values, vectors = np.linalg.eigh(b)
    b_half = (vectors * np.sqrt(values)) @ vectors.T
    b_half_inv = (vectors / np.sqrt(values)) @ vectors.T
    m_values, m_vectors = np.linalg.eigh(b_half @ a @ b_half)
    m_half = (m_vectors * np.sqrt(np.clip(m_values, 0, None))) @ m_vectors.T
    return b_half_inv @ m_half @ b_half_inv


def low_rank_metric(draws, grads, fallback):
    """The inverse mass matrix (dim x dim) from the draws and gradients (rows, NumPy): the
    Fisher diagonal corrected along the directions where the geometric mean of the draws'
    covariance and the gradients' inverse covariance departs from it by more than
    LOW_RANK_CUTOFF; `fallback` where there are too few draws, a spread is zero or the result
    is not positive definite. In float64: the regularised covariances span some eight orders
    of magnitude, beyond float32's eigendecompositions (they came out singular on sblri)."""
    draws, grads = np.asarray(draws, np.float64), np.asarray(grads, np.float64)
    n = draws.shape[0]
    if n < 3:
        return fallback
    cx, cg = draws - draws.mean(0), grads - grads.mean(0)
    sd_x, sd_g = np.sqrt((cx ** 2).sum(0)), np.sqrt((cg ** 2).sum(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.sqrt(sd_x / sd_g)  # sqrt of the Fisher diagonal
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
        return fallback
    xs, gs = cx / (scale * n), cg * scale / n  # rows rescaled by the diagonal
    basis = np.linalg.qr(np.concatenate([np.linalg.svd(xs.T, full_matrices=False)[0],
                                         np.linalg.svd(gs.T, full_matrices=False)[0]], axis=1))[0]
    px, pg = xs @ basis, gs @ basis
    eye = np.eye(basis.shape[1])
    values, vectors = np.linalg.eigh(_spd_mean(px.T @ px / LOW_RANK_GAMMA + eye, pg.T @ pg / LOW_RANK_GAMMA + eye))
    keep = (values > LOW_RANK_CUTOFF) | (values < 1 / LOW_RANK_CUTOFF)
    directions = basis @ vectors[:, keep]
    inner = np.eye(draws.shape[1]) + (directions * (values[keep] - 1)) @ directions.T
    metric = scale[:, None] * inner * scale[None, :]
    metric = (metric + metric.T) / 2
    if not np.all(np.isfinite(metric)) or np.linalg.eigvalsh(metric).min() <= 0:
        return fallback
    return metric


def dense_factors(metric):
    """(metric, mass_matrix_sqrt, mass_matrix_sqrt_inv) as NumPyro's dense kernels take them
    (its `_initialize_mass_matrix`), in float64 NumPy; None where a factor is not finite."""
    from scipy.linalg import solve_triangular

    try:
        tril_inv = np.swapaxes(np.linalg.cholesky(metric[::-1, ::-1])[::-1, ::-1], -2, -1)
    except np.linalg.LinAlgError:
        return None
    sqrt = solve_triangular(tril_inv, np.eye(metric.shape[0]), lower=True)
    if not (np.all(np.isfinite(tril_inv)) and np.all(np.isfinite(sqrt))):
        return None
    return metric, sqrt, tril_inv


def _low_rank_host(run, draws, grads, weights, *current):
    """The host side of `_low_rank_on_host`, on NumPy arrays with any leading (chain) axes."""
    from threadpoolctl import threadpool_limits

    run, draws, grads, weights = (np.asarray(a) for a in (run, draws, grads, weights))
    current = tuple(np.asarray(c) for c in current)
    if run.ndim:  # chains vectorised: one metric per chain
        outs = [_low_rank_host(run[i], draws[i], grads[i], weights[i], *(c[i] for c in current))
                for i in range(run.shape[0])]
        return tuple(np.stack(parts) for parts in zip(*outs))
    if not run:  # a branch that vmap runs for every chain, chosen for none of them here
        return current
    chosen = weights > 0
    # one BLAS thread: OpenBLAS's own thread pool, entered from XLA's callback threads (one per
    # chain or device), hung inside LAPACK's QR with every thread waiting; these matrices are small
    with threadpool_limits(limits=1):
        metric = low_rank_metric(draws[chosen], grads[chosen], None)
        factors = None if metric is None else dense_factors(metric)
    return tuple(np.asarray(f, c.dtype) for f, c in zip(current if factors is None else factors, current))


def _low_rank_on_host(run, draws, grads, weights, current):
    """`low_rank_metric` of the rows with weight 1 and its factors where `run`, computed on the
    host (NumPy, float64: a dense metric whose scales differ by 1e6 or more has a Cholesky factor
    beyond float32); `current` (the metric and its factors) where either fails or `run` is false.
    Through `host_call.host_call`, not `jax.pure_callback`: the latter's device_put onto CPU
    device 0 deadlocked chains on several CPU devices (see host_call)."""
    from probgen.infer.host_call import host_call

    return host_call(_low_rank_host, (run, draws, grads, weights, *current), current)


def low_rank_adapter(num_adapt_steps, find_reasonable_step_size=None, adapt_step_size=True, adapt_mass_matrix=True,
                     dense_mass=True, target_accept_prob=0.8, regularize_mass_matrix=True):
    """nutpie's low-rank adaptation as a NumPyro warm-up adapter (a dense metric); a model with
    more than LOW_RANK_MAX_DIM coordinates gets the fisher adapter instead (a diagonal)."""
    from numpyro.infer.hmc_util import HMCAdaptState

    diagonal_init, diagonal_update = fisher_adapter(num_adapt_steps, find_reasonable_step_size, adapt_step_size,
                                                    adapt_mass_matrix, False, target_accept_prob)
    if num_adapt_steps < LOW_RANK_MIN_WARMUP:
        # too few draws after the early window for a low-rank estimate, and too few iterations
        # after it for a step size that suits it: a Gaussian mixture's test fit with 150 warm-up
        # iterations ended with R-hat 1.05 on a correlation (the diagonal: 1.02)
        return diagonal_init, diagonal_update

    find_reasonable_step_size = find_reasonable_step_size or (lambda step_size, *_: step_size)
    ss_init, ss_update = _step_size_pieces(num_adapt_steps, target_accept_prob)
    early_end, final_start = _schedule(num_adapt_steps)
    _on_new_stage = _restarter(ss_init, find_reasonable_step_size, adapt_step_size)
    size = LOW_RANK_BUFFER  # fixed, so that a warm start with another warm-up length has the same state

    def init_fn(z_info, rng_key, step_size=1.0, inverse_mass_matrix=None, mass_matrix_size=None):
        z = _ravel(z_info.z)
        if z.shape[0] > LOW_RANK_MAX_DIM:  # a dense metric would cost more per step than it saves
            return diagonal_init(z_info, rng_key, step_size, inverse_mass_matrix, mass_matrix_size)
        if inverse_mass_matrix is not None and jnp.ndim(inverse_mass_matrix) == 1:
            inverse_mass_matrix = jnp.diag(inverse_mass_matrix)
        factors = _factors(z_info.z, inverse_mass_matrix, True)
        rng_key, key_ss = jax.random.split(rng_key)
        if adapt_step_size:
            step_size = find_reasonable_step_size(step_size, factors[0], z_info, key_ss)
        # mm_state: buffers of recent draws and gradients, the iteration each slot holds (-1:
        # none), whether it was finite, and where the foreground and background began
        buffer = (jnp.zeros((size, z.shape[0]), z.dtype), jnp.zeros((size, z.shape[0]), z.dtype),
                  jnp.full((size,), -1, jnp.int32), jnp.zeros((size,), bool),
                  jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
        return HMCAdaptState(step_size, *factors, _restart(ss_init, step_size), buffer,
                             jnp.asarray(STAGE_FROM_DRAWS if inverse_mass_matrix is not None else STAGE_INITIAL,
                                         jnp.int32), rng_key)

    def update_fn(t, accept_prob, z_info, state):
        if jnp.ndim(state.inverse_mass_matrix) == 1:  # the model was too large for a dense metric
            return diagonal_update(t, accept_prob, z_info, state)
        step_size, inverse_mass_matrix, mm_sqrt, mm_sqrt_inv, ss_state, buffer, stage, rng_key = state
        rng_key, key_ss = jax.random.split(rng_key)
        if adapt_step_size:
            step_size, ss_state = ss_update(t, accept_prob, ss_state)
        if adapt_mass_matrix:
            draws, grads, iteration, finite, fore_start, back_start = buffer
            x, g = _ravel(z_info.z), _ravel(z_info.z_grad)
            slot = t % size
            draws, grads = draws.at[slot].set(x), grads.at[slot].set(g)
            iteration = iteration.at[slot].set(jnp.asarray(t).astype(jnp.int32))
            finite = finite.at[slot].set(jnp.all(jnp.isfinite(x)) & jnp.all(jnp.isfinite(g)))
            switch_every = jnp.where(t < early_end, EARLY_SWITCH, LATE_SWITCH)
            switch = (t + 1 - back_start >= switch_every) & (switch_every + t <= final_start)
            fore_start = jnp.where(switch, back_start, fore_start).astype(jnp.int32)
            back_start = jnp.where(switch, t + 1, back_start).astype(jnp.int32)
            weights = ((iteration >= fore_start) & (iteration >= 0) & finite).astype(draws.dtype)
            safe_x = jnp.where(finite[:, None], draws, 0.0)
            safe_g = jnp.where(finite[:, None], grads, 0.0)
            # early: the Fisher diagonal after every draw (a low-rank estimate from 10-20 early,
            # far-off draws corrects noise: on bball's HMM it made warm-up's trees ten times
            # deeper); later: the low-rank metric at each switch and when the step-size window starts
            early = t < early_end
            low_rank_now = (switch | (t == final_start - 1)) & ~early
            diagonal_now = early & (jnp.sum(weights) >= 3)
            from_draws = low_rank_now | diagonal_now
            from_gradient = ~from_draws & (stage == STAGE_INITIAL)
            current = (inverse_mass_matrix, mm_sqrt, mm_sqrt_inv)

            def like_current(factors):  # the same dtypes (and no weak types) from every branch
                return tuple(jnp.asarray(f).astype(c.dtype) for f, c in zip(factors, current))

            def diagonal(_):
                n = jnp.sum(weights)
                cx = (safe_x - jnp.sum(weights[:, None] * safe_x, 0) / n) * weights[:, None]
                cg = (safe_g - jnp.sum(weights[:, None] * safe_g, 0) / n) * weights[:, None]
                variance = fisher_variance(jnp.sum(cx ** 2, 0), jnp.sum(cg ** 2, 0), jnp.diag(inverse_mass_matrix))
                return like_current(_factors(z_info.z, jnp.diag(variance), True))

            branches = (lambda _: like_current(current),
                        lambda _: like_current(_factors(z_info.z, jnp.diag(_gradient_variance(g)), True)),
                        diagonal,
                        lambda _: like_current(_low_rank_on_host(low_rank_now, safe_x, safe_g, weights, current)))
            which = jnp.where(low_rank_now, 3, jnp.where(diagonal_now, 2, jnp.where(from_gradient, 1, 0)))
            inverse_mass_matrix, mm_sqrt, mm_sqrt_inv = jax.lax.switch(which, branches, None)
            new_stage = jnp.where(from_draws, STAGE_FROM_DRAWS, jnp.where(from_gradient, STAGE_FROM_GRADIENT, stage))
            step_size, ss_state = _on_new_stage(new_stage != stage, t == final_start - 1, step_size, ss_state,
                                                inverse_mass_matrix, z_info, key_ss)
            stage = new_stage.astype(jnp.int32)
            buffer = (draws, grads, iteration, finite, fore_start, back_start)
        return HMCAdaptState(step_size, inverse_mass_matrix, mm_sqrt, mm_sqrt_inv, ss_state, buffer, stage, rng_key)

    return init_fn, update_fn
