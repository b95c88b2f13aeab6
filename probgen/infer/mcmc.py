"""NUTS and HMC through NumPyro's `MCMC` runner, several chains, device-agnostic."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import biject_to
from numpyro.infer import HMC, MCMC, NUTS

from probgen.errors import InferenceError
from probgen.infer.results import ModelStructure
from probgen.spec import ModelInputs, ModelSpec

DEFAULTS = {
    "chains": 4,
    "warmup": 1000,
    "draws": 1000,
    "target_accept": 0.8,
    "max_tree_depth": 10,  # NUTS only
    "trajectory_length": 2 * np.pi,  # HMC only
    "chain_method": "auto",
}

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


def make_sampler(spec: ModelSpec, inputs: ModelInputs, method: str, settings: dict, progress: bool) -> MCMC:
    """A ready-to-run `MCMC` object; running it twice reuses its compiled kernel."""
    model = inputs.bound_model(spec.model)
    if settings["chains"] < 1 or settings["draws"] < 1 or settings["warmup"] < 0:
        raise InferenceError(
            f"chains and draws must be >= 1 and warmup >= 0 (got chains={settings['chains']}, "
            f"draws={settings['draws']}, warmup={settings['warmup']})"
        )
    if not 0 < settings["target_accept"] < 1:
        raise InferenceError(f"target_accept must be in (0, 1), got {settings['target_accept']}")
    if method == "nuts":
        kernel = NUTS(model, target_accept_prob=settings["target_accept"], max_tree_depth=settings["max_tree_depth"])
    else:
        kernel = HMC(model, target_accept_prob=settings["target_accept"], trajectory_length=settings["trajectory_length"])
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
