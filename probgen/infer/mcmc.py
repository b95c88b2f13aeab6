"""NUTS and HMC through NumPyro's `MCMC` runner, several chains, device-agnostic; both
registered as methods (`NUTSMethod`, `HMCMethod`)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import biject_to
from numpyro.infer import HMC, MCMC, NUTS, init_to_median, init_to_sample, init_to_uniform

from probgen import diagnostics
from probgen.errors import InferenceError
from probgen.infer.methods import Draws, Method, Setting, get, register
from probgen.infer.results import ModelStructure
from probgen.spec import ModelInputs, ModelSpec

# Starting points (NumPyro's init strategies): "uniform" draws each unconstrained coordinate
# from uniform(-2, 2), as Stan does; "median" starts at the prior median (15 prior draws),
# which keeps an ODE's rate constants in the range where its solver stays fast. "median" needs
# a proper prior to draw from.
INIT_STRATEGIES = {"uniform": init_to_uniform, "median": init_to_median, "sample": init_to_sample}

SETTINGS = (
    Setting("chains", int, 4, "number of MCMC chains"),
    Setting("warmup", int, 1000, "warm-up (adaptation) iterations per chain"),
    Setting("draws", int, 1000, "draws kept per chain (MCMC) or from the fitted approximation (SVI, Pathfinder)"),
    Setting("target_accept", float, 0.8, "target acceptance probability of step-size adaptation"),
    Setting("max_tree_depth", int, 10, "NUTS maximum tree depth"),
    Setting("trajectory_length", float, 2 * np.pi),  # HMC's fixed trajectory
    Setting("chain_method", str, "auto", "auto, sequential, parallel or vectorized"),
    Setting("init", str, "uniform", "where chains start: uniform (uniform(-2, 2) on the unconstrained scale, as "
            "Stan), median (the prior median), sample (a prior draw) or pathfinder (draws of a Pathfinder fit)",
            choices=("uniform", "median", "sample", "pathfinder")),
)
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}

EXTRA_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size", "potential_energy")


def choose_chain_method(num_chains: int) -> str:
    """How to run several chains on the devices present.

    One device per chain runs them in parallel (several GPUs, or CPU cores exposed as devices
    by `numpyro.set_host_device_count`); on a single accelerator, vectorising the chains keeps
    it busy; on a single CPU device, running them one after another is as fast as vectorising
    and keeps one progress bar per chain.
    """
    if num_chains <= 1:
        return "sequential"
    if jax.local_device_count() >= num_chains:
        return "parallel"
    if jax.default_backend() != "cpu":
        return "vectorized"
    return "sequential"


def make_sampler(spec: ModelSpec, inputs: ModelInputs, method, settings: dict, progress: bool) -> MCMC:
    """A ready-to-run `MCMC` object for `method` (a `NUTSMethod`/`HMCMethod` or its name);
    running it twice reuses its compiled kernel."""
    method = get(method) if isinstance(method, str) else method
    model = inputs.bound_model(spec.model)
    if settings["chains"] < 1 or settings["draws"] < 1 or settings["warmup"] < 0:
        raise InferenceError(
            f"chains and draws must be >= 1 and warmup >= 0 (got chains={settings['chains']}, "
            f"draws={settings['draws']}, warmup={settings['warmup']})"
        )
    if not 0 < settings["target_accept"] < 1:
        raise InferenceError(f"target_accept must be in (0, 1), got {settings['target_accept']}")
    if settings["init"] not in (*INIT_STRATEGIES, "pathfinder"):
        raise InferenceError(f"--init must be one of {', '.join(INIT_STRATEGIES)}, pathfinder, got {settings['init']!r}")
    # pathfinder starts are given as init_params; the strategy then only fills what they lack
    init_strategy = INIT_STRATEGIES.get(settings["init"], init_to_uniform)
    kernel = method.kernel(model, target_accept_prob=settings["target_accept"], init_strategy=init_strategy,
                           **method.kernel_options(settings))
    chain_method = settings["chain_method"]
    if chain_method == "auto":
        chain_method = choose_chain_method(settings["chains"])
    settings["chain_method_used"] = chain_method
    return MCMC(
        kernel,
        num_warmup=settings["warmup"],
        num_samples=settings["draws"],
        num_chains=settings["chains"],
        chain_method=chain_method,
        progress_bar=progress,
    )


def unconstrained_starts(spec: ModelSpec, inputs: ModelInputs, rng_key, num_chains: int,
                         structure: ModelStructure) -> dict | None:
    """The spec's per-chain starting points in the sampler's unconstrained space, or None."""
    if spec.init is None:
        return None
    starts = spec.init(inputs, rng_key, num_chains)
    unconstrained = {
        name: np.asarray(biject_to(structure.supports[name]).inv(jnp.asarray(value)))
        for name, value in starts.items()
    }
    return {k: v[0] for k, v in unconstrained.items()} if num_chains == 1 else unconstrained


def run_sampler(sampler: MCMC, inputs: ModelInputs, rng_key, max_tree_depth: int | None,
                init_params: dict | None = None) -> tuple[dict, dict]:
    """Run `sampler`; return latent draws and sample stats, both with (chain, draw) axes."""
    with warnings.catch_warnings():
        # NumPyro enumerates a model's discrete sites on its own and warns that it will one day
        # ask for them to be marked; probgen's users need not mark them (DESIGN: discrete
        # latents are marginalised)
        warnings.filterwarnings("ignore", message="Some algorithms will automatically enumerate", category=FutureWarning)
        sampler.run(rng_key, extra_fields=EXTRA_FIELDS, init_params=init_params, **inputs.observed)
    samples = {k: np.asarray(v) for k, v in sampler.get_samples(group_by_chain=True).items()}
    extra = {k: np.asarray(v) for k, v in sampler.get_extra_fields(group_by_chain=True).items()}
    stats = {
        "diverging": extra["diverging"].astype(bool),
        "energy": extra["energy"],
        "n_steps": extra["num_steps"],
        "acceptance_rate": extra["accept_prob"],
        "step_size": extra["adapt_state.step_size"],
        "lp": -extra["potential_energy"],
    }
    if max_tree_depth is not None:
        # NUTS doubles its trajectory until a U-turn; 2**depth - 1 leapfrog steps means the
        # tree reached `depth` doublings. Saturation at the maximum is a diagnostic.
        stats["tree_depth"] = np.floor(np.log2(extra["num_steps"] + 1)).astype(int)
        stats["reached_max_tree_depth"] = stats["tree_depth"] >= max_tree_depth
    return samples, stats


def compiled_refit(spec: ModelSpec, inputs: ModelInputs, method, settings: dict, structure: ModelStructure):
    """One compiled program that fits the model to new data of the same shapes, for many refits.

    `MCMC.run` builds and compiles its sampling loop afresh on every call (about 1.5 s on a CPU
    core even for a one-parameter model), which is most of a simulation-based calibration's
    time. This builds NumPyro's own NUTS/HMC kernels (`numpyro.infer.hmc.hmc`, the functional
    form of the same sampler, with the same warmup adaptation) over a potential that takes the
    observed data as an argument, and jits warmup, sampling and the map back to constrained
    space together, chains vectorised. Compiled once; each refit then costs only its sampling.

    Returns refit(rng_key, observed, starts) -> (latent draws with (chain, draw) axes, number of
    divergent transitions). `starts` are per-chain unconstrained starting points
    (`unconstrained_starts`) or None for NumPyro's uniform(-2, 2) start on the unconstrained
    scale.
    """
    from numpyro.infer.hmc import hmc
    from numpyro.infer.util import constrain_fn, initialize_model

    method = get(method) if isinstance(method, str) else method
    model = inputs.bound_model(spec.model)
    chains, warmup, draws = settings["chains"], settings["warmup"], settings["draws"]
    template = initialize_model(jax.random.PRNGKey(0), model, model_kwargs=inputs.observed, dynamic_args=True)
    init_kernel, sample_kernel = hmc(potential_fn_gen=template.potential_fn, algo=method.algorithm)
    shapes = {k: jnp.shape(v) for k, v in template.param_info.z.items()}
    latent = tuple(structure.latent)
    kernel_options = {"target_accept_prob": settings["target_accept"], **method.kernel_options(settings)}

    def one_chain(key, observed, start):
        key_init, key_run = jax.random.split(key)
        state = init_kernel(start, warmup, rng_key=key_init, model_kwargs=observed, **kernel_options)

        def step(state, _):
            state = sample_kernel(state, model_kwargs=observed)
            return state, (state.z, state.diverging)

        state, _ = jax.lax.scan(step, state, None, length=warmup)
        _, (z, diverging) = jax.lax.scan(step, state, None, length=draws)
        values = jax.vmap(lambda draw: constrain_fn(model, (), observed, draw, return_deterministic=False))(z)
        return {k: values[k] for k in latent}, diverging.sum()

    @jax.jit
    def program(key, observed, starts):
        keys = jax.random.split(key, chains)
        samples, divergences = jax.vmap(one_chain, in_axes=(0, None, 0))(keys, observed, starts)
        return samples, divergences.sum()

    def refit(rng_key, observed, starts=None):
        key_start, key_run = jax.random.split(rng_key)
        if starts is None:
            keys = jax.random.split(key_start, len(shapes))
            starts = {name: jax.random.uniform(k, (chains,) + shape, minval=-2.0, maxval=2.0)
                      for k, (name, shape) in zip(keys, shapes.items())}
        elif chains == 1:
            starts = {k: np.asarray(v)[None] for k, v in starts.items()}
        return program(key_run, {k: jnp.asarray(v) for k, v in observed.items()}, starts)

    return refit


def starting_points(spec: ModelSpec, inputs: ModelInputs, rng_key, settings: dict, structure: ModelStructure):
    """Per-chain unconstrained starts: the spec's own (`ModelSpec.init`), or with `--init
    pathfinder` one Pathfinder draw per chain, or None for the init strategy's."""
    if settings["init"] == "pathfinder" and spec.init is None:
        from probgen.infer.pathfinder import unconstrained_draws

        starts = unconstrained_draws(spec, inputs, rng_key, settings["chains"])
        return {k: v[0] for k, v in starts.items()} if settings["chains"] == 1 else starts
    return unconstrained_starts(spec, inputs, rng_key, settings["chains"], structure)


class NUTSMethod(Method):
    """The No-U-Turn sampler (NumPyro), several chains."""

    name = "nuts"
    kernel = NUTS
    algorithm = "NUTS"  # numpyro.infer.hmc.hmc's name for it (the compiled SBC refit)
    settings = SETTINGS
    sums_discrete_sites = True
    markov_chains = True
    sbc_defaults = {"chains": 2, "warmup": 500, "draws": 500}
    uses_tree_depth = True

    def kernel_options(self, settings: dict) -> dict:
        return {"max_tree_depth": settings["max_tree_depth"]}

    def run(self, spec, inputs, settings, rng_key, *, init_key, structure, progress) -> Draws:
        sampler = make_sampler(spec, inputs, self, settings, progress)
        starts = starting_points(spec, inputs, init_key, settings, structure)
        samples, stats = run_sampler(sampler, inputs, rng_key,
                                     settings["max_tree_depth"] if self.uses_tree_depth else None, starts)
        return Draws(samples, stats)

    def sbc_refit(self, spec, inputs, settings, structure):
        refit = compiled_refit(spec, inputs, self, settings, structure)

        def once(fit_key, init_key, observed, current):
            starts = unconstrained_starts(spec, current, init_key, settings["chains"], structure)
            return refit(fit_key, observed, starts)

        return once

    def verdicts(self, idata, settings, quantities=None) -> list:
        import arviz as az

        judged = idata if quantities is None else az.InferenceData(posterior=quantities)
        verdicts = [diagnostics.check_r_hat(judged), *diagnostics.check_ess(judged),
                    diagnostics.check_divergences(idata), diagnostics.check_bfmi(idata)]
        if self.uses_tree_depth:
            verdicts.append(diagnostics.check_tree_depth(idata, settings.get("max_tree_depth")))
        return verdicts

    def trusted_summary(self, verdicts, settings) -> str:
        return "Every convergence check passed: the chains agree, mix well and saw no divergences."


class HMCMethod(NUTSMethod):
    """Hamiltonian Monte Carlo with a fixed trajectory length (NumPyro), several chains."""

    name = "hmc"
    kernel = HMC
    algorithm = "HMC"
    uses_tree_depth = False
    settings = tuple(Setting(s.name, s.type, s.default, None, s.choices) if s.name == "max_tree_depth" else s
                     for s in SETTINGS)  # the tree depth is NUTS's; HMC keeps it in its settings record only

    def kernel_options(self, settings: dict) -> dict:
        return {"trajectory_length": settings["trajectory_length"]}


register(NUTSMethod())
register(HMCMethod())
