"""Maximum a posteriori estimation: an `AutoDelta` guide optimised with Adam.

The loss is deterministic (a delta guide has no sampling noise), so the stopping rule reduces
to a relative change of the negative log posterior. The result is one "draw" (chain 1, draw 1)
so the same reports apply; intervals and R-hat do not exist for a point estimate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import optim
from numpyro.infer import SVI, Trace_ELBO, autoguide, init_to_sample

from probgen.checks import diagnostics
from probgen.errors import InferenceError
from probgen.infer.durable import CHAINS
from probgen.infer.methods import Method, Result, Setting, register
from probgen.infer.svi import optimize, start_at
from probgen.spec import ModelInputs, ModelSpec

SETTINGS = (
    Setting("steps", int, 20000, "maximum optimisation steps (stops early on convergence)", minimum=1),
    Setting("learning_rate", float, 0.01, "Adam learning rate"),
    Setting("check_every", int, 250),
    Setting("checkpoint_overhead", float, 0.02),  # as MCMC's: the most of the run's time that saves may take
    Setting("window", int, 500),
    Setting("rtol", float, 1e-7),
    Setting("restarts", int, 4),  # independent starts; the best log posterior wins (mixtures are multimodal)
)
DEFAULTS = {setting.name: setting.default for setting in SETTINGS}


def fit_map(spec: ModelSpec, inputs: ModelInputs, settings: dict, rng_key, progress: bool, checkpoint=None):
    """MAP; returns (latent point estimate with (1, 1) leading axes, optimization record,
    facts: steps run, converged, final loss, the best restart)."""
    model = inputs.bound_model(spec.model)
    if settings["learning_rate"] <= 0:
        raise InferenceError(f"learning_rate must be > 0, got {settings['learning_rate']}")
    if settings["restarts"] < 1:
        raise InferenceError(f"restarts must be >= 1, got {settings['restarts']}")
    restarts = int(settings["restarts"])
    init_key, run_key = jax.random.split(rng_key)
    # Each restart starts at the spec's own starting point for it (a k-means++ clustering for
    # mixtures) where the spec has one, otherwise at a draw from the prior.
    starts = spec.init(inputs, init_key, restarts) if spec.init is not None else None
    best = None
    # With the spec's starts, one guide and one SVI serve every restart (compiled once), each
    # restart's start going in as the guide's initial parameters. Without them, each restart
    # needs its own guide: AutoDelta draws its starting point from the prior once, when built.
    if starts is not None:
        guide = autoguide.AutoDelta(model, init_loc_fn=start_at({k: v[0] for k, v in starts.items()}))
        svi = SVI(model, guide, optim.Adam(settings["learning_rate"]), Trace_ELBO())
    for restart, key in enumerate(jax.random.split(run_key, restarts)):
        init_params = None
        if starts is None:
            guide = autoguide.AutoDelta(model, init_loc_fn=init_to_sample)
            svi = SVI(model, guide, optim.Adam(settings["learning_rate"]), Trace_ELBO())
        else:
            init_params = {f"{k}_auto_loc": jnp.asarray(v[restart]) for k, v in starts.items()}
        label = f"MAP {restart + 1}/{settings['restarts']}"
        state, losses, done = optimize(svi, key, dict(inputs.observed), settings, progress, label, init_params,
                                       checkpoint=checkpoint, part=f"restart-{restart + 1}")
        final = float(losses[-1])
        if best is None or final < best[0]:
            best = (final, guide, svi, state, losses, done, restart)
    final, guide, svi, state, losses, done, restart = best
    # one compiled program: eagerly, each operation of the constraining transforms compiles alone
    point = jax.jit(lambda state: guide.median(svi.get_params(state)))(state)
    samples = {k: np.asarray(v)[None, None] for k, v in point.items()}
    facts = {"steps_run": int(len(losses)), "converged": bool(done), "final_loss": final, "best_restart": restart}
    return samples, {"loss": losses}, facts


class MAPMethod(Method):
    """Maximum a posteriori: a point estimate, the best of several restarts."""

    name = "map"
    settings = SETTINGS
    loss_label = "negative log posterior"
    gives_posterior_sample = False

    durable = True  # each restart's optimiser state is saved as it goes (`svi.optimize`)
    keeps = (CHAINS,)  # the optimiser's chunks: --resume --steps N carries on from the last
    extendable = ("steps",)

    def run(self, problem, settings) -> Result:
        samples, optimization, facts = fit_map(problem.spec, problem.inputs, settings, problem.keys.inference,
                                               problem.progress, checkpoint=problem.checkpoint)
        return Result(samples, None, optimization, facts)

    def verdicts(self, idata, settings, facts, quantities=None) -> list:
        return [diagnostics.check_optimization(idata, facts, "the log posterior")]

    def trusted_summary(self, verdicts, settings) -> str:
        return "The optimisation converged. This is a point estimate: it says nothing about uncertainty."


register(MAPMethod())
