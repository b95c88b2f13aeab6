"""Stochastic variational inference: autoguides or the spec's guide, Adam, and a stopping
rule on the smoothed ELBO. The fitted guide's draws become the posterior, so reports treat VI
like MCMC; the loss per step is kept in the `optimization` group."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import optim
from numpyro.infer import SVI, Predictive, Trace_ELBO, autoguide, init_to_value
from numpyro.infer.util import log_density
from tqdm.auto import tqdm

from probgen.checks import diagnostics
from probgen.errors import InferenceError
from probgen.infer import durable
from probgen.infer.durable import CHAINS
from probgen.infer.methods import Method, Result, Setting, register
from probgen.infer.results import ModelStructure
from probgen.spec import ModelInputs, ModelSpec
from probgen.tracing import full_plates

SETTINGS = (
    # (make_guide names an unknown guide with the ones there are)
    Setting("guide", str, "normal", "SVI guide: normal (mean-field), mvn, lowrank, delta, or spec (the model's own)"),
    # an upper bound: training stops earlier once the ELBO has converged
    Setting("steps", int, 20000, "maximum optimisation steps (stops early on convergence)", minimum=1),
    Setting("learning_rate", float, 0.01, "Adam learning rate"),
    Setting("draws", int, 4000, "draws kept per chain (MCMC) or from the fitted approximation (SVI, Pathfinder)"),
    Setting("particles", int, 1),
    Setting("check_every", int, 250),  # steps per compiled chunk and convergence check
    Setting("checkpoint_overhead", float, 0.02),  # as MCMC's: the most of the run's time that saves may take
    Setting("window", int, 1000),  # steps in each half of the convergence comparison
    Setting("rtol", float, 1e-4),
)
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}

GUIDES = {
    "normal": autoguide.AutoNormal,
    "mvn": autoguide.AutoMultivariateNormal,
    "lowrank": autoguide.AutoLowRankMultivariateNormal,
    "delta": autoguide.AutoDelta,
}


def start_at(values: dict):
    """NumPyro's `init_to_value` at `values` ({site: constrained value}), held as JAX arrays:
    the guide sets itself up inside a compiled program (`optimize`), where NumPyro's transforms
    index with traced indices, which a NumPy array refuses."""
    return init_to_value(values={name: jnp.asarray(value) for name, value in values.items()})


def prior_median_init(model, observed: dict, rng_key, structure: ModelStructure, num_samples: int = 15):
    """An init strategy at the prior median of each latent site, computed in one compiled
    program (NumPyro's `init_to_median` draws eagerly, which costs seconds of compilation).

    Autoguides otherwise start every site at a uniform draw in (-2, 2) of its unconstrained
    space, which for parameters in data units (a mean of 70) leaves SVI far away and, for
    mixtures, in a poor local optimum. Where an element-wise median falls outside a site's
    support (a correlation Cholesky factor, say), the first prior draw is used instead.
    """
    @jax.jit
    def draws(key):
        samples = Predictive(model, num_samples=num_samples, return_sites=list(structure.latent))(
            key, **{name: None for name in observed}
        )
        return {k: jnp.median(v, axis=0) for k, v in samples.items()}, {k: v[0] for k, v in samples.items()}

    medians, first = draws(rng_key)
    values = {}
    for name in structure.latent:
        inside = bool(jnp.all(structure.supports[name].check(medians[name])))
        values[name] = medians[name] if inside else first[name]
    return start_at(values)


def converged(losses: np.ndarray, window: int, rtol: float) -> bool:
    """True when the mean loss of the last `window` steps no longer improves on the window before.

    "No longer improves" means the improvement is within two standard errors of the
    difference of the two window means (the noise of a stochastic ELBO), or below `rtol`
    relative to the loss (for deterministic objectives such as MAP).
    """
    if len(losses) < 2 * window:
        return False
    before, last = losses[-2 * window : -window], losses[-window:]
    improvement = before.mean() - last.mean()
    # Successive SVI losses are correlated; batch means of 10 blocks give an honest error.
    def batch_var(x):
        blocks = x[: len(x) // 10 * 10].reshape(10, -1).mean(axis=1)
        return blocks.var(ddof=1) / 10

    noise = 2.0 * np.sqrt(batch_var(before) + batch_var(last))
    return bool(improvement <= max(noise, rtol * abs(last.mean())))


def make_guide(spec: ModelSpec, model, name: str, init_loc_fn=None):
    if name == "spec":
        if spec.guide is None:
            raise InferenceError(f"model '{spec.name}' has no guide of its own; use --guide normal|mvn|lowrank")
        return spec.guide
    if name not in GUIDES:
        raise InferenceError(f"unknown guide '{name}' (choose from {', '.join([*GUIDES, 'spec'])})")
    return GUIDES[name](model) if init_loc_fn is None else GUIDES[name](model, init_loc_fn=init_loc_fn)


@functools.lru_cache(maxsize=16)
def _chunk_runner(svi: SVI, chunk: int):
    """`chunk` SVI steps as one compiled program, compiled once per SVI object (so restarts
    that share it, as MAP's do, compile it once)."""

    @jax.jit
    def run_chunk(state, observed):
        def body(state, _):
            state, loss = svi.update(state, **observed)
            return state, loss

        return jax.lax.scan(body, state, None, length=chunk)

    return run_chunk


@functools.lru_cache(maxsize=16)
def _averaging_chunk_runner(svi: SVI, chunk: int):
    """As `_chunk_runner`, also returning the mean over the chunk's steps of the optimiser's
    (unconstrained) parameters after each step."""

    @jax.jit
    def run_chunk(state, observed):
        def body(carry, _):
            state, total = carry
            state, loss = svi.update(state, **observed)
            params = svi.optim.get_params(state.optim_state)
            return (state, jax.tree.map(jnp.add, total, params)), loss

        zeros = jax.tree.map(jnp.zeros_like, svi.optim.get_params(state.optim_state))
        (state, total), losses = jax.lax.scan(body, (state, zeros), None, length=chunk)
        return state, losses, jax.tree.map(lambda value: value / chunk, total)

    return run_chunk


# Minibatch SVI stops when the whole data's ELBO at the window's averaged parameters has not
# improved by more than this many nats over a window: q's KL to the posterior then changes by less
SETTLED_NATS = 0.05
WHOLE_DATA_PARTICLES = 16


def whole_data_score(svi: SVI, model, guide, observed: dict, rng_key, particles: int = WHOLE_DATA_PARTICLES):
    """score(unconstrained guide parameters) -> the ELBO of the whole data (every plate over all
    its entries, `tracing.full_plates`), from `particles` draws of q with the same random key
    every time: common random numbers, so successive scores compare the parameters, not the
    Monte Carlo noise. A minibatch's loss cannot tell convergence: its noise (the minibatch's
    log density scaled to the whole data) hides the last nats that q's scales gain."""
    elbo = Trace_ELBO(num_particles=particles)
    whole_guide = full_plates(guide)

    @jax.jit
    def score(unconstrained, observed):
        return -elbo.loss(rng_key, svi.constrain_fn(unconstrained), model, whole_guide, **observed)

    return lambda unconstrained: float(score(unconstrained, observed))


def settled(scores: list, count: int, nats: float = SETTLED_NATS) -> bool:
    """True when the best of the last `count` whole-data scores improves on the best before
    them by at most `nats` (and there are 2 x count scores)."""
    if len(scores) < 2 * count:
        return False
    return max(scores[-count:]) - max(scores[:-count]) <= nats


class WholeDataStop:
    """How minibatch SVI (a subsampling plate) stops and what it keeps: each chunk's mean
    parameters are collected (`add`), the whole data's ELBO (`whole_data_score`) is scored at
    the mean over the last `window` steps, and training stops once those scores have `settled`.
    The fit keeps that window's mean (Polyak-Ruppert iterate averaging, `params`): a minibatch's
    gradient noise makes the last iterate jitter about the optimum by about the learning rate, a
    posterior sd or more on large data (a 5,000-row regression in minibatches of 200: the
    intercept 2 sds away, and the importance-sampling check fails). On --resume the window holds
    the chunks run since."""

    def __init__(self, score, settings: dict):
        self.score = score
        self.count = max(1, int(settings["window"]) // int(settings["check_every"]))
        self.chunk_means: list = []
        self.scores: list[float] = []

    def window_mean(self):
        last = self.chunk_means[-self.count:]
        return jax.tree.map(lambda *values: sum(values) / len(values), *last)

    def add(self, chunk_mean) -> bool:
        """Record a chunk's mean parameters; True when training should stop."""
        self.chunk_means.append(chunk_mean)
        self.scores.append(self.score(self.window_mean()))
        return settled(self.scores, self.count)

    def params(self, svi: SVI):
        """The window's mean parameters, constrained as `svi.get_params` does."""
        return jax.jit(svi.constrain_fn)(self.window_mean())


@functools.lru_cache(maxsize=16)
def _init_program(svi: SVI):
    """`svi.init` as one compiled program, compiled once per SVI object (MAP's restarts share it)."""
    return jax.jit(lambda key, start, data: svi.init(key, init_params=start, **data))


def optimize(svi: SVI, rng_key, observed: dict, settings: dict, progress: bool, label: str, init_params=None,
             checkpoint=None, part: str = "", stop: WholeDataStop | None = None):
    """Run `svi` in compiled chunks until the loss converges or `steps` run out.
    init_params: starting values of the guide's parameters (NumPyro's `SVI.init`), if any.
    checkpoint: a `probgen.infer.durable.Checkpoint`: the optimiser state (parameters, Adam's
    moments and step, the random key) and the losses are saved to its chunk store (`part`: a
    folder of their own, for MAP's restarts) every 5% of `steps` or 60 s, and a resumed run
    carries on from the last save exactly as if it had not stopped.
    stop: minibatch SVI's `WholeDataStop`: training stops when it says so instead of when the
    loss has `converged`, and it keeps the window's mean parameters.

    Returns (final SVI state, losses per step, whether it converged).
    """
    chunk = int(settings["check_every"])
    max_steps = int(settings["steps"])
    if max_steps < 1 or chunk < 1:
        raise InferenceError(f"steps and check_every must be >= 1 (got {max_steps}, {chunk})")
    losses: list[np.ndarray] = []
    step, saver = 0, None
    if checkpoint is not None:
        store = durable.ChainStore(checkpoint.folder, part)
        saver = durable.Saver(store, max(chunk, max_steps // 20), settings.get("checkpoint_seconds", 60.0),
                              settings.get("checkpoint_overhead", 0.02))
    # initialised as a fresh run is even when resuming: an autoguide sets itself up on this call.
    # One compiled program (as the amortized trainer and SBC's refits do): run eagerly, NumPyro's
    # search for a valid start compiles each operation of the model and its gradient on its own,
    # about 30 ms apiece on CPU (465 of them, 14 s, for the mixture's MAP)
    state = _init_program(svi)(rng_key, init_params, observed)
    if saver is not None and checkpoint.resume:
        stored = store.read()
        if stored.leaves is not None:
            try:
                state = durable.state_from(stored.leaves, state)
            except ValueError as exc:
                raise InferenceError(f"cannot resume '{checkpoint.folder}': {exc}") from None
            step = stored.done
            losses.append(stored.stats["loss"][0])
    run_chunk = _chunk_runner(svi, chunk) if stop is None else _averaging_chunk_runner(svi, chunk)

    done = bool(losses) and converged(np.concatenate(losses), int(settings["window"]), float(settings["rtol"]))
    with tqdm(total=max_steps, initial=min(step, max_steps), desc=label, disable=not progress, unit="step",
              leave=True) as bar:
        while step < max_steps and not done:
            if stop is None:
                state, chunk_losses = run_chunk(state, observed)
            else:
                state, chunk_losses, chunk_mean = run_chunk(state, observed)
            chunk_losses = np.asarray(chunk_losses)[: max_steps - step]
            losses.append(chunk_losses)
            step += len(chunk_losses)
            if not np.all(np.isfinite(chunk_losses)):
                bad = step - len(chunk_losses) + int(np.flatnonzero(~np.isfinite(chunk_losses))[0])
                raise InferenceError(
                    f"{label}: the loss became {chunk_losses[~np.isfinite(chunk_losses)][0]} at step {bad}; "
                    "try a smaller --learning-rate or check the model's priors"
                )
            bar.update(len(chunk_losses))
            bar.set_postfix(loss=f"{chunk_losses[-min(50, len(chunk_losses)):].mean():.4g}")
            if stop is not None:
                done = stop.add(chunk_mean)
            else:
                done = converged(np.concatenate(losses), int(settings["window"]), float(settings["rtol"]))
            if saver is not None:
                saver.add(step, len(chunk_losses), {}, {"loss": chunk_losses[None]}, durable.leaves_of(state),
                          final=done or step >= max_steps)
    return state, np.concatenate(losses), done


def fit_svi(spec: ModelSpec, inputs: ModelInputs, settings: dict, rng_key, progress: bool, structure: ModelStructure,
            checkpoint=None):
    """SVI; returns (latent draws with (1, draws) leading axes, optimization record,
    log importance weights log p(x, theta) - log q(theta) of the draws or None, facts: steps
    run, converged, final loss)."""
    # the loss runs the model as written, minibatches included (NumPyro's scaled ELBO); the
    # draws, their weights and everything after them use the whole data (`tracing.full_plates`)
    model = inputs.bound_model(spec.model, subsample=True)
    observed = dict(inputs.observed)
    init_key, train_key, draw_key = jax.random.split(rng_key, 3)
    if settings["guide"] == "spec":
        init = None
    elif spec.init is not None:
        init = start_at({k: v[0] for k, v in spec.init(inputs, init_key, 1).items()})
    else:
        init = prior_median_init(model, observed, init_key, structure)  # minibatch-sized local sites, as the guide expects
    guide = make_guide(spec, model, settings["guide"], init)
    if settings["learning_rate"] <= 0:
        raise InferenceError(f"learning_rate must be > 0, got {settings['learning_rate']}")
    svi = SVI(model, guide, optim.Adam(settings["learning_rate"]), Trace_ELBO(num_particles=settings["particles"]))
    # minibatches (a subsampling plate): stop on the whole data's ELBO, keep the window's mean
    whole = inputs.bound_model(spec.model)
    stop = (WholeDataStop(whole_data_score(svi, whole, guide, observed, jax.random.fold_in(train_key, 1)), settings)
            if structure.subsampled else None)
    state, losses, done = optimize(svi, train_key, observed, settings, progress, "SVI", checkpoint=checkpoint,
                                   stop=stop)
    if stop is not None and stop.chunk_means:
        params = stop.params(svi)
    else:
        params = jax.jit(svi.get_params)(state)  # one program: eagerly each transform op compiles alone
    samples, log_weights = posterior_draws(whole, guide, params, observed, draw_key, int(settings["draws"]),
                                           with_weights=settings["guide"] == "normal")
    facts = {"steps_run": int(len(losses)), "converged": bool(done),
             "final_loss": float(losses[-min(len(losses), int(settings["window"])):].mean())}
    if stop is not None and stop.scores:  # minibatches: what stopped training, and the plates that drew them
        facts.update(whole_data_elbo=float(stop.scores[-1]), settled_nats=SETTLED_NATS,
                     subsampled={name: list(sizes) for name, sizes in structure.subsampled.items()})
    return {k: v[None] for k, v in samples.items()}, {"loss": losses}, log_weights, facts


def posterior_draws(model, guide, params, observed: dict, rng_key, num_draws: int, with_weights: bool):
    """Draws from the fitted guide and, if asked, their log importance weights
    log p(x, theta) - log q(theta) (for the PSIS k-hat check of Yao et al. 2018), computed in
    one compiled program.

    The weights need the guide's density at its own draws in the model's (constrained)
    parameterisation, which `AutoNormal` gives site by site; for the joint guides (mvn,
    lowrank) they are not computed.

    `model` runs its plates over the whole data (`ModelInputs.bound_model`), and so does the
    guide here: a guide's subsampling plate draws every entry's local latents.
    """
    guide_whole = full_plates(guide)

    @jax.jit
    def run(key, params, observed):
        if hasattr(guide, "sample_posterior"):
            samples = guide.sample_posterior(key, params, sample_shape=(num_draws,), **observed)
        else:
            samples = Predictive(guide_whole, params=params, num_samples=num_draws)(key, **observed)
        if not with_weights:
            return samples, None

        def one(draw):
            model_log_density, _ = log_density(model, (), observed, draw)
            guide_log_density, _ = log_density(guide_whole, (), observed, {**params, **draw})
            return model_log_density - guide_log_density

        return samples, jax.vmap(one)(samples)

    samples, log_weights = run(rng_key, params, observed)
    return {k: np.asarray(v) for k, v in samples.items()}, None if log_weights is None else np.asarray(log_weights)


def compiled_refit(spec: ModelSpec, inputs: ModelInputs, settings: dict, structure: ModelStructure):
    """One compiled SVI program for many refits to new data of the same shapes (SBC).

    `fit_svi` builds new compiled chunks on every call (about 2 s); this builds the SVI objects
    once and jits initialisation, all `steps` updates and the guide's draws together. Unlike
    `fit_svi` it runs the full `steps` (no convergence stop: a compiled loop has a fixed
    length); the losses come back so the caller can see whether they settled.

    Starting point: the prior median (as `fit_svi` without a spec `init`); with a spec `init`
    and the `normal` or `delta` guide, the spec's start for the data of each refit instead.

    Returns refit(rng_key, observed, start) -> (draws with a leading chain axis of 1, losses),
    where start is {site: constrained value} from `spec.init` (first chain) or None.
    """
    model = inputs.bound_model(spec.model, subsample=True)
    name = settings["guide"]
    init = None if name == "spec" else prior_median_init(model, dict(inputs.observed), jax.random.PRNGKey(0), structure)
    guide = make_guide(spec, model, name, init)
    if settings["learning_rate"] <= 0:
        raise InferenceError(f"learning_rate must be > 0, got {settings['learning_rate']}")
    steps, num_draws = int(settings["steps"]), int(settings["draws"])
    if steps < 1:
        raise InferenceError(f"steps must be >= 1, got {steps}")
    svi = SVI(model, guide, optim.Adam(settings["learning_rate"]), Trace_ELBO(num_particles=settings["particles"]))

    @jax.jit
    def program(key, observed, init_params):
        key_init, key_draws = jax.random.split(key)
        state = svi.init(key_init, init_params=init_params, **observed)
        state, losses = jax.lax.scan(lambda s, _: svi.update(s, **observed), state, None, length=steps)
        params = svi.get_params(state)
        if hasattr(guide, "sample_posterior"):
            samples = guide.sample_posterior(key_draws, params, sample_shape=(num_draws,), **observed)
        else:
            samples = Predictive(full_plates(guide), params=params, num_samples=num_draws)(key_draws, **observed)
        return {k: v[None] for k, v in samples.items() if k in structure.latent}, losses

    def refit(rng_key, observed, start=None):
        init_params = None
        if start is not None and name in ("normal", "delta"):
            from numpyro.distributions.transforms import biject_to

            init_params = {
                f"{site}_auto_loc": (biject_to(structure.supports[site]).inv(jnp.asarray(value))
                                     if name == "normal" else jnp.asarray(value))
                for site, value in start.items()
            }
        return program(rng_key, {k: jnp.asarray(v) for k, v in observed.items()}, init_params)

    return refit


class SVIMethod(Method):
    """Stochastic variational inference with an autoguide or the spec's own guide."""

    name = "svi"
    settings = SETTINGS
    subsamples = True  # the loss is NumPyro's ELBO on the model's minibatches, scaled to the whole data
    loss_label = "negative ELBO"
    sbc_defaults = {"steps": 5000}
    durable = True  # the optimiser state is saved as it goes (`optimize`); --resume, and --steps extends
    keeps = (CHAINS,)  # the optimiser's chunks: --resume --steps N carries on from the last
    extendable = ("steps",)

    def run(self, problem, settings) -> Result:
        samples, optimization, log_weights, facts = fit_svi(problem.spec, problem.inputs, settings,
                                                            problem.keys.inference, problem.progress,
                                                            problem.structure, checkpoint=problem.checkpoint)
        stats = None if log_weights is None else {"log_importance_weight": log_weights[None]}
        return Result(samples, stats, optimization, facts)

    def sbc_refit(self, spec, inputs, settings, structure):
        refit = compiled_refit(spec, inputs, settings, structure)

        def once(fit_key, init_key, observed, current):
            start = None if spec.init is None else {k: v[0] for k, v in spec.init(current, init_key, 1).items()}
            samples, losses = jax.device_get(refit(fit_key, observed, start))
            if not np.isfinite(losses).all():
                raise FloatingPointError(f"the SVI loss became non-finite at step {int(np.argmin(np.isfinite(losses)))}")
            return samples, 0

        return once

    def verdicts(self, idata, settings, facts, quantities=None) -> list:
        return [diagnostics.check_optimization(idata, facts, "the ELBO"), diagnostics.check_pareto_k(idata)]

    def trusted_summary(self, verdicts, settings) -> str:
        checked = any(v.check == "pareto_k" and v.status == "pass" for v in verdicts)
        return "The ELBO converged" + (
            " and the approximation passed its importance-sampling check (Pareto k)."
            if checked else "; the approximation was not checked against the exact posterior."
        )


register(SVIMethod())
