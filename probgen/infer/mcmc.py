"""NUTS and HMC through NumPyro's `MCMC` runner, several chains, device-agnostic; both
registered as methods (`NUTSMethod`, `HMCMethod`)."""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np
from numpyro.infer import init_to_median, init_to_sample, init_to_uniform

from probgen.checks import diagnostics
from probgen.errors import InferenceError
from probgen.infer.adaptation import ADAPTATIONS, DEFAULT as DEFAULT_ADAPT
from probgen.infer.durable import STATE
from probgen.infer.reparam import CHOICES as REPARAM_CHOICES
from probgen.infer.chains import ChainProgram, Resumed
from probgen.infer.methods import Method, Result, Setting, get, register
from probgen.tracing import ModelStructure, unconstrained_starts
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
    Setting("chain_method", str, "auto", "how chains share the devices: auto (split over several devices; one "
            "after another on a single CPU; vectorised on a single accelerator), sequential, parallel or vectorized",
            choices=("auto", "sequential", "parallel", "vectorized")),
    Setting("checkpoint_iterations", int, 0, "iterations between saves of the draws and sampler state to the run "
            "folder (0: a twentieth of the run), or sooner after --checkpoint-seconds", minimum=0),
    Setting("checkpoint_seconds", float, 60.0, "seconds between saves of the draws and sampler state, at most "
            "(checked every 100 iterations)", minimum=0),
    Setting("checkpoint_overhead", float, 0.02, "the most of the run's time that saves may take; they come less "
            "often when they would take more (0: every --checkpoint-iterations regardless)", minimum=0),
    Setting("adapt", str, DEFAULT_ADAPT, "how warm-up learns the metric: fisher (nutpie's diagonal, from draws and "
            "gradients), stan (Stan's windows, regularised to each coordinate's scale) or low-rank (fisher with "
            "nutpie's low-rank correction, a dense metric: correlated posteriors)", choices=ADAPTATIONS),
    Setting("reparam", str, "none", "non-centre hierarchical location-scale sites: none, noncentred (every latent "
            "Normal/Student-t/Cauchy/Laplace/logistic/Gumbel site whose location or scale depends on another latent "
            "site) or auto (after divergences whose draws sit at a scale's small values, rerun once with the sites "
            "that depend on it non-centred, and keep the run with fewer divergences)", choices=REPARAM_CHOICES),
    Setting("init", str, "uniform", "where chains start: uniform (uniform(-2, 2) on the unconstrained scale, as "
            "Stan), median (the prior median), sample (a prior draw) or pathfinder (draws of a Pathfinder fit)",
            choices=("uniform", "median", "sample", "pathfinder")),
)
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}

def make_program(spec: ModelSpec, inputs: ModelInputs, method, settings: dict) -> ChainProgram:
    """The compiled chains of `method` (a `NUTSMethod`/`HMCMethod` or its name) for `spec` on
    data shaped like `inputs`; running it again (new data of the same shapes) reuses it."""
    method = get(method) if isinstance(method, str) else method
    if settings["chains"] < 1 or settings["draws"] < 1 or settings["warmup"] < 0:
        raise InferenceError(
            f"chains and draws must be >= 1 and warmup >= 0 (got chains={settings['chains']}, "
            f"draws={settings['draws']}, warmup={settings['warmup']})"
        )
    if not 0 < settings["target_accept"] < 1:
        raise InferenceError(f"target_accept must be in (0, 1), got {settings['target_accept']}")
    if settings["init"] not in (*INIT_STRATEGIES, "pathfinder"):
        raise InferenceError(f"--init must be one of {', '.join(INIT_STRATEGIES)}, pathfinder, got {settings['init']!r}")
    # pathfinder starts are given as unconstrained starts; the strategy then only fills what they lack
    init_strategy = INIT_STRATEGIES.get(settings["init"], init_to_uniform)
    kernel_options = {"target_accept_prob": settings["target_accept"], **method.kernel_options(settings)}
    with warnings.catch_warnings():
        # NumPyro enumerates a model's discrete sites on its own and warns that it will one day
        # ask for them to be marked; probgen's users need not mark them (DESIGN: discrete
        # latents are marginalised)
        warnings.filterwarnings("ignore", message="Some algorithms will automatically enumerate", category=FutureWarning)
        program = ChainProgram(inputs.bound_model(spec.model), inputs.observed, method.algorithm, kernel_options,
                               chains=settings["chains"], warmup=settings["warmup"], draws=settings["draws"],
                               init_strategy=init_strategy, chain_method=settings["chain_method"],
                               adapt=settings.get("adapt", DEFAULT_ADAPT))
    return program


def sample_stats(fields: dict, max_tree_depth: int | None) -> dict:
    """ArviZ's sample_stats names for the sampler's per-draw fields."""
    stats = {
        "diverging": fields["diverging"].astype(bool),
        "energy": fields["energy"],
        "n_steps": fields["num_steps"],
        "acceptance_rate": fields["accept_prob"],
        "step_size": fields["step_size"],
        "lp": -fields["potential_energy"],
    }
    if max_tree_depth is not None:
        # NUTS doubles its trajectory until a U-turn; 2**depth - 1 leapfrog steps means the
        # tree reached `depth` doublings. Saturation at the maximum is a diagnostic.
        stats["tree_depth"] = np.floor(np.log2(fields["num_steps"] + 1)).astype(int)
        stats["reached_max_tree_depth"] = stats["tree_depth"] >= max_tree_depth
    return stats


def run_program(program: ChainProgram, inputs: ModelInputs, rng_key, max_tree_depth: int | None,
                starts: dict | None = None, progress: bool = False, describe: str = "") -> tuple[dict, dict]:
    """Run `program` on `inputs`' data; return draws and sample stats, both with (chain, draw)
    axes. `starts`: per-chain unconstrained starting points (leading chain axis), or None for
    the init strategy's."""
    output = program.run(rng_key, inputs.observed, starts, progress=progress, describe=describe)
    return output.samples, sample_stats(output.fields, max_tree_depth)


def run_durable(program: ChainProgram, inputs: ModelInputs, rng_key, max_tree_depth, starts, warm, checkpoint,
                progress: bool, describe: str, settings: dict) -> tuple[dict, dict]:
    """Run `program` streaming each chunk (draws, sample statistics, sampler state) to the
    checkpoint folder, carrying on from what it holds when resuming; memory holds one chunk
    while sampling. The draws returned are read back from the folder."""
    from probgen.infer.durable import STATE, Saver, mark_finished

    store, resumed = checkpoint.store, None
    if checkpoint.resume:
        stored = store.read(checkpoint.base_draws, with_draws=False)
        if stored.damaged:
            checkpoint.say(f"{checkpoint.folder}: {stored.damaged[0]} cannot be read; "
                           f"{len(stored.damaged)} chunk file(s) moved to chains/damaged/; resuming from "
                           + (f"chunk {stored.chunks - 1}" if stored.chunks else "the start")
                           + f" (iteration {stored.done})")
        if stored.leaves is not None:
            resumed = Resumed(stored.leaves, stored.done)
            if stored.done < program.warmup + program.draws:
                checkpoint.say(f"resuming {checkpoint.folder} at iteration {stored.done} of "
                               f"{program.warmup + program.draws} (warm-up {program.warmup})")
    # a save every `checkpoint_iterations` iterations or `checkpoint_seconds`, whichever comes
    # first, checked after each compiled chunk; the draws in between wait in memory
    total = program.warmup + program.draws
    saver = Saver(store, settings["checkpoint_iterations"] or math.ceil(total / 20), settings["checkpoint_seconds"],
                  settings["checkpoint_overhead"])

    def on_chunk(done, values, fields, leaves):
        saver.add(done, program.chunk, values, sample_stats(fields, max_tree_depth) if values else {}, leaves,
                  final=done >= total)

    program.run(rng_key, inputs.observed, starts, progress=progress, describe=describe, resume=resumed, warm=warm,
                on_chunk=on_chunk, keep=False)
    # the final state on its own (sampler_state.nc): what a finished run folder keeps of its chunks
    if saver.last is not None:
        store.write_state(*saver.last)
    elif resumed is not None and not (checkpoint.folder / STATE).is_file():
        store.write_state(resumed.leaves, resumed.done)
    mark_finished(checkpoint)
    stored = store.read(checkpoint.base_draws)
    return stored.samples, stored.stats


def warm_start(program: ChainProgram, inputs: ModelInputs, folder) -> tuple[dict, dict]:
    """(unconstrained starts, {"step_size", "inverse_mass_matrix"}) per chain from the final
    sampler state of the run in `folder`; an error names a parameter whose name or shape differs."""
    import jax

    from probgen.infer.chains import check_state
    from probgen.infer.durable import read_final_state

    leaves, _ = read_final_state(folder)
    observed = jax.tree.map(jnp.asarray, inputs.observed)
    if program.devices > 1:
        observed = jax.tree.map(lambda x: jnp.broadcast_to(x, (program.devices,) + x.shape), observed)
    template = program.state_template(observed)
    saved_chains = leaves[0][1].shape[0]
    # chains beyond the earlier run's take its chains in turn
    tiled = [(name, np.take(value, np.arange(program.chains) % saved_chains, axis=0)) for name, value in leaves]
    try:
        check_state(tiled, template, program.chains)
    except ValueError as exc:
        raise InferenceError(f"--init-from {folder}: {exc}; a warm start needs a run of the same model "
                             "(the same parameters and shapes)") from None
    state = jax.tree_util.tree_unflatten(program.state_treedef, [value for _, value in tiled])
    return dict(state.z), {"step_size": np.asarray(state.adapt_state.step_size),
                           "inverse_mass_matrix": state.adapt_state.inverse_mass_matrix}


def compiled_refit(spec: ModelSpec, inputs: ModelInputs, method, settings: dict, structure: ModelStructure):
    """The fit's compiled chains, reused to fit new data of the same shapes (simulation-based
    calibration): compiled once, each refit then costs only its sampling.

    Returns refit(rng_key, observed, starts) -> (latent draws with (chain, draw) axes, number of
    divergent transitions). `starts` are per-chain unconstrained starting points
    (`unconstrained_starts`) or None for the init strategy's.
    """
    program = make_program(spec, inputs, method, dict(settings))
    latent = tuple(structure.latent)

    def refit(rng_key, observed, starts=None):
        output = program.run(rng_key, observed, starts)
        return {k: output.samples[k] for k in latent}, int(output.fields["diverging"].sum())

    return refit


def starting_points(spec: ModelSpec, inputs: ModelInputs, rng_key, settings: dict, structure: ModelStructure):
    """Per-chain unconstrained starts: the spec's own (`ModelSpec.init`), or with `--init
    pathfinder` one Pathfinder draw per chain, or None for the init strategy's."""
    if settings["init"] == "pathfinder" and spec.init is None:
        from probgen.infer.pathfinder import unconstrained_draws

        return unconstrained_draws(spec, inputs, rng_key, settings["chains"])
    return unconstrained_starts(spec, inputs, rng_key, settings["chains"], structure)


class NUTSMethod(Method):
    """The No-U-Turn sampler (NumPyro), several chains."""

    name = "nuts"
    algorithm = "NUTS"  # numpyro.infer.hmc.hmc's name for it (the compiled SBC refit)
    settings = SETTINGS
    sums_discrete_sites = True
    markov_chains = True
    sbc_defaults = {"chains": 2, "warmup": 500, "draws": 500}
    uses_tree_depth = True

    def kernel_options(self, settings: dict) -> dict:
        return {"max_tree_depth": settings["max_tree_depth"]}

    durable = True
    extendable = ("draws",)
    stores_draws = True
    keeps = (STATE,)  # the final sampler state (its draws are in posterior.nc): --draws N, --init-from
    warm_starts = True

    def run(self, problem, settings) -> Result:
        spec, inputs, keys = problem.spec, problem.inputs, problem.keys
        program = make_program(spec, inputs, self, settings)
        depth = settings["max_tree_depth"] if self.uses_tree_depth else None
        warm = None
        if problem.init_from is not None:
            starts, warm = warm_start(program, inputs, problem.init_from)
        else:
            starts = starting_points(spec, inputs, keys.init, settings, problem.structure)
        if problem.checkpoint is None:
            output = program.run(keys.inference, inputs.observed, starts, progress=problem.progress,
                                 describe=self.name.upper(), warm=warm)
            samples, stats = output.samples, sample_stats(output.fields, depth)
        else:
            samples, stats = run_durable(program, inputs, keys.inference, depth, starts, warm, problem.checkpoint,
                                         problem.progress, self.name.upper(), settings)
        return Result(samples, stats, facts={"chain_method_used": program.chain_method})

    def sbc_refit(self, spec, inputs, settings, structure):
        refit = compiled_refit(spec, inputs, self, settings, structure)

        def once(fit_key, init_key, observed, current):
            starts = unconstrained_starts(spec, current, init_key, settings["chains"], structure)
            return refit(fit_key, observed, starts)

        return once

    def verdicts(self, idata, settings, facts, quantities=None) -> list:
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
    algorithm = "HMC"
    uses_tree_depth = False
    settings = tuple(Setting(s.name, s.type, s.default, None, s.choices) if s.name == "max_tree_depth" else s
                     for s in SETTINGS)  # the tree depth is NUTS's; HMC keeps it in its settings record only

    def kernel_options(self, settings: dict) -> dict:
        return {"trajectory_length": settings["trajectory_length"]}


register(NUTSMethod())
register(HMCMethod())
