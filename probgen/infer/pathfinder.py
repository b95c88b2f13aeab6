"""Pathfinder (Zhang et al. 2022): a fast variational first look, registered as `pathfinder`.

Each path runs L-BFGS from its own start on the model's unconstrained log density (NumPyro's
potential), takes the normal approximation along the optimisation path with the highest ELBO
(the local inverse Hessian from L-BFGS's history), and draws from it; the paths' draws are
pooled and resampled by Pareto-smoothed importance weights (multi-path Pathfinder, as Stan
and PyMC run it). The Pareto k of those weights is its verdict: k <= 0.7 says the pooled
approximation is close enough to the posterior for the resampled draws to be used.

BlackJAX provides the single-path algorithm (`blackjax.vi.pathfinder.approximate`, `sample`)
and PSIS (`blackjax.diagnostics.psis_weights`); this module runs the paths in one compiled
program (`vmap`), which also serves simulation-based calibration (`sbc_refit`) and starting
points for NUTS (`--init pathfinder`, `unconstrained_draws`). BlackJAX's own multi-path
function is not used because it estimates each path's ELBO with as many draws as it keeps;
Stan's split (a few ELBO draws, many kept draws) is far cheaper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from probgen.checks import diagnostics
from probgen.infer.methods import Method, Result, Setting, register

SETTINGS = (
    Setting("paths", int, 4, "Pathfinder: independent L-BFGS paths, pooled by importance resampling", minimum=1),
    Setting("draws", int, 1000, "draws kept per chain (MCMC) or from the fitted approximation (SVI, Pathfinder)",
            minimum=1),
    Setting("path_draws", int, 1000, "Pathfinder: draws from each path's approximation (the importance-sampling pool)",
            minimum=1),
    Setting("elbo_draws", int, 25, minimum=1),  # per iterate, to pick the best approximation on the path (Stan: 25)
    Setting("max_iterations", int, 200, "Pathfinder: most L-BFGS iterations per path", minimum=1),
    Setting("history", int, 6, minimum=1),  # L-BFGS history size (Stan's default)
    # L-BFGS stops when the objective improves by less than ftol: BlackJAX's 1e-5 stopped it early on
    # ill-conditioned regressions (kidiq: intercept 1.4 instead of 25.8, measured); 1e-9 runs on
    # until float32 sees no decrease
    Setting("ftol", float, 1e-9),
    Setting("gtol", float, 1e-8),  # ... or the gradient's norm falls below this
    Setting("line_search_steps", int, 30, minimum=1),  # zoom line-search steps per iteration
    Setting("init", str, "uniform", "Pathfinder: where paths start: uniform (uniform(-2, 2) on the unconstrained "
            "scale, as Stan) or median (the prior median, each path jittered by uniform(-0.5, 0.5))",
            choices=("uniform", "median")),
)


def _program(spec, inputs, settings: dict):
    """A compiled program(key, observed, starts (paths, dim)) -> (constrained draws with a
    leading draw axis, unconstrained draws (draws, dim), Pareto k, best ELBO per path), and the
    model's `unravel` and a uniform(-2, 2) starting-point maker."""
    from blackjax.diagnostics import psis_weights
    from blackjax.vi.pathfinder import approximate, sample
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import constrain_fn, initialize_model

    from numpyro.infer import init_to_median, init_to_uniform

    model = inputs.bound_model(spec.model)
    median = settings["init"] == "median"
    template = initialize_model(jax.random.PRNGKey(0), model, model_kwargs=dict(inputs.observed), dynamic_args=True,
                                init_strategy=init_to_median(num_samples=15) if median else init_to_uniform)
    flat0, unravel = ravel_pytree(template.param_info.z)
    dim = flat0.size
    paths, per_path, draws = int(settings["paths"]), int(settings["path_draws"]), int(settings["draws"])

    def one_path(key, observed, start):
        potential = template.potential_fn(**observed)

        def log_density(flat):
            return -potential(unravel(flat))

        key_fit, key_draw = jax.random.split(key)
        state, _ = approximate(key_fit, log_density, start, num_samples=int(settings["elbo_draws"]),
                               maxiter=int(settings["max_iterations"]), maxcor=int(settings["history"]),
                               ftol=float(settings["ftol"]), gtol=float(settings["gtol"]),
                               maxls=int(settings["line_search_steps"]))
        flat, log_q = sample(key_draw, state, per_path)
        return flat, jax.vmap(log_density)(flat) - log_q, state.elbo

    @jax.jit
    def program(key, observed, starts):
        key_paths, key_resample = jax.random.split(key)
        flat, log_ratio, elbo = jax.vmap(one_path, in_axes=(0, None, 0))(
            jax.random.split(key_paths, paths), observed, starts)
        pool = flat.reshape(paths * per_path, dim)
        # a path whose every iterate had a non-finite ELBO (L-BFGS failed from its start) has
        # no approximation: its draws would carry arbitrary weights, so they get none
        usable = jnp.isfinite(elbo)[:, None] & jnp.isfinite(log_ratio)
        log_ratio = jnp.where(usable, log_ratio, -jnp.inf).ravel()
        log_weights, pareto_k = psis_weights(log_ratio)
        # When the approximation is exact up to float32 (a Gaussian posterior), the log ratios
        # are all equal, the tail has no spread and the Pareto fit returns NaN; equal weights
        # have no tail at all: k = 0 (pass), not the NaN that means no usable weights (fail)
        finite = jnp.isfinite(log_ratio)
        spread = jnp.max(jnp.where(finite, log_ratio, -jnp.inf)) - jnp.min(jnp.where(finite, log_ratio, jnp.inf))
        pareto_k = jnp.where(jnp.isnan(pareto_k) & (finite.sum() > 0) & (spread < 1e-3), 0.0, pareto_k)
        chosen = jax.random.choice(key_resample, pool.shape[0], (draws,), p=jnp.exp(log_weights))
        kept = pool[chosen]
        values = jax.vmap(lambda row: constrain_fn(model, (), observed, unravel(row), return_deterministic=False))(kept)
        return values, kept, pareto_k, elbo

    @jax.jit
    def uniform_starts(key, observed):
        # uniform(-2, 2) on the unconstrained scale, as Stan (or around the prior median); a start where the log density is
        # not finite (an ARMA's recursion overflowing for |theta| > 1) leaves L-BFGS stuck, so,
        # as NumPyro's MCMC initialisation does, such draws are replaced by finite ones from
        # 10 candidates per path (kept in their drawn order)
        potential = template.potential_fn(**observed)
        if median:  # the prior median (a stiff ODE's rates stay where its solver is fast), jittered per path
            candidates = flat0 + jax.random.uniform(key, (10 * paths, dim), minval=-0.5, maxval=0.5)
        else:
            candidates = jax.random.uniform(key, (10 * paths, dim), minval=-2.0, maxval=2.0)
        finite = jax.vmap(lambda flat: jnp.isfinite(potential(unravel(flat))))(candidates)
        return candidates[jnp.argsort(~finite, stable=True)[:paths]]

    return program, unravel, uniform_starts


def _flat_starts(spec, inputs, key, settings, structure, uniform_starts):
    """(paths, dim) unconstrained starts: the spec's own (`ModelSpec.init`, one per path) or
    uniform(-2, 2) on the unconstrained scale (as Stan)."""
    if spec.init is None:
        return uniform_starts(key, {k: jnp.asarray(v) for k, v in inputs.observed.items()})
    from jax.flatten_util import ravel_pytree

    from probgen.tracing import unconstrained_starts

    paths = int(settings["paths"])
    starts = unconstrained_starts(spec, inputs, key, paths, structure)
    return jax.vmap(lambda z: ravel_pytree(z)[0])({k: jnp.asarray(v) for k, v in starts.items()})


class PathfinderMethod(Method):
    """Multi-path Pathfinder (BlackJAX's single-path algorithm, paths pooled by PSIS)."""

    name = "pathfinder"
    settings = SETTINGS
    sbc_defaults = {}

    def run(self, problem, settings) -> Result:
        spec, inputs, structure = problem.spec, problem.inputs, problem.structure
        program, _, uniform_starts = _program(spec, inputs, settings)
        starts = _flat_starts(spec, inputs, problem.keys.init, settings, structure, uniform_starts)
        values, _, pareto_k, elbo = jax.device_get(
            program(problem.keys.inference, {k: jnp.asarray(v) for k, v in inputs.observed.items()}, starts))
        samples = {name: np.asarray(values[name])[None] for name in structure.latent}
        return Result(samples, facts={"pareto_k": float(pareto_k), "path_elbo": [float(e) for e in np.ravel(elbo)]})

    def sbc_refit(self, spec, inputs, settings, structure):
        program, _, uniform_starts = _program(spec, inputs, settings)

        def once(fit_key, init_key, observed, current):
            starts = _flat_starts(spec, current, init_key, settings, structure, uniform_starts)
            values, _, _, _ = program(fit_key, {k: jnp.asarray(v) for k, v in observed.items()}, starts)
            return {name: values[name][None] for name in structure.latent}, 0

        return once

    def verdicts(self, idata, settings, facts, quantities=None) -> list:
        elbo = np.asarray(facts.get("path_elbo", []), float)
        found = diagnostics.Verdict(
            "paths", "pass" if np.isfinite(elbo).any() else "fail", float(np.isfinite(elbo).sum()),
            "at least one path with a finite ELBO",
            f"{int(np.isfinite(elbo).sum())} of {elbo.size} paths found an approximation with a finite ELBO")
        return [found, diagnostics.pareto_k_verdict(facts.get("pareto_k"))]

    def trusted_summary(self, verdicts, settings) -> str:
        return ("Pathfinder's pooled approximation passed its importance-sampling check (Pareto k): the resampled "
                "draws stand in for the posterior. Confirm a final analysis with NUTS.")


def unconstrained_draws(spec, inputs, rng_key, num: int, settings: dict | None = None) -> dict:
    """`num` Pathfinder draws on the unconstrained scale, {site: (num, ...)}: starting points
    for NUTS chains (`--init pathfinder`) near the posterior's bulk."""
    settings = {**PathfinderMethod().defaults(), **(settings or {}), "draws": num}
    program, unravel, uniform_starts = _program(spec, inputs, settings)
    key_start, key_run = jax.random.split(rng_key)
    observed = {k: jnp.asarray(v) for k, v in inputs.observed.items()}
    _, kept, _, _ = program(key_run, observed, uniform_starts(key_start, observed))
    return {k: np.asarray(v) for k, v in jax.vmap(unravel)(kept).items()}


register(PathfinderMethod())
