"""What one trace of a model shows (`model_structure`: its latent, observed, discrete, factor
and deterministic sites, their supports and plates), the handler that draws observed sites
instead of conditioning on them (`uncondition`), and a spec's starting points moved to the
sampler's unconstrained space (`unconstrained_starts`). It imports nothing of probgen's, so the
data layer (binding a user's model to data), the methods and the results all read one trace
the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer import init_to_uniform
from numpyro.primitives import Messenger


@dataclasses.dataclass(frozen=True)
class ModelStructure:
    """What one trace of a model shows.

    latent:    continuous latent sample sites (what inference draws), with their supports.
    observed:  observed sample sites (sites with `obs`, not `factor` terms) -> observed value.
    factors:   `numpyro.factor` sites: terms of the log density, not observations.
    deterministic: `numpyro.deterministic` sites.
    discrete:  discrete latent sites (enumerated by NUTS, not drawn).
    improper:  latent sites whose prior cannot be drawn from (`ImproperUniform`).
    not_enumerable: discrete latent sites whose distribution has no finite support to sum
               over (a Poisson latent count), as "name (Distribution)".
    """

    latent: tuple[str, ...]
    supports: dict
    observed: dict[str, np.ndarray]
    factors: tuple[str, ...] = ()
    deterministic: tuple[str, ...] = ()
    discrete: tuple[str, ...] = ()
    improper: tuple[str, ...] = ()
    not_enumerable: tuple[str, ...] = ()
    plates: dict = dataclasses.field(default_factory=dict)  # sample site -> names of its plates
    # observed sites whose value the model computes from its parameters (obs=f(y, theta), as an
    # ARMA model's one-step errors): no fixed data, so no predictive check compares with them
    computed: tuple[str, ...] = ()
    # plates that draw a minibatch of their entries (`plate(name, size, subsample_size=...)`):
    # name -> (size, subsample_size). The trace, as every trace of probgen's but the SVI loss's,
    # ran them over all their entries (`full_plates`)
    subsampled: dict = dataclasses.field(default_factory=dict)
    # observed sites some of whose entries (not all) the model takes from its parameters: missing
    # data it imputes itself (x.at[missing].set(x_impute), NumPyro's imputation example): site ->
    # bool mask of those entries; imputed_by: site -> the latent sites whose values fill them
    imputed: dict = dataclasses.field(default_factory=dict)
    imputed_by: dict = dataclasses.field(default_factory=dict)


def _is_factor(site) -> bool:
    return bool(site["infer"].get("is_auxiliary")) or isinstance(site["fn"], dist.Unit)


def _is_improper(fn) -> bool:
    while fn is not None:
        if isinstance(fn, dist.ImproperUniform):
            return True
        fn = getattr(fn, "base_dist", None)
    return False


def model_structure(model, observed: Mapping[str, Any]) -> ModelStructure:
    """Trace `model(**observed)` once, as one compiled program.

    Latent sites take NumPyro's uniform(-2, 2) initial values on the unconstrained scale (as
    MCMC's initialisation does) rather than prior draws, so that improper priors, which cannot
    be drawn from, trace too. Compiling the trace costs one XLA compilation; running it eagerly
    would compile every primitive on its own, which takes seconds on a cold start.
    """
    found = {}

    def run(observed, key):
        traced = handlers.substitute(handlers.seed(model, key), substitute_fn=init_to_uniform)
        trace = handlers.trace(traced).get_trace(**observed)
        samples = [site for site in trace.values() if site["type"] == "sample"]
        latent = [site for site in samples if not site["is_observed"]]
        found["latent"] = tuple(site["name"] for site in latent if not site["fn"].support.is_discrete)
        found["discrete"] = tuple(site["name"] for site in latent if site["fn"].support.is_discrete)
        found["supports"] = {site["name"]: site["fn"].support for site in latent}
        found["improper"] = tuple(site["name"] for site in latent if _is_improper(site["fn"]))
        found["not_enumerable"] = tuple(f"{site['name']} ({type(site['fn']).__name__})" for site in latent
                                        if site["fn"].support.is_discrete and not site["fn"].has_enumerate_support)
        found["factors"] = tuple(site["name"] for site in samples if site["is_observed"] and _is_factor(site))
        found["deterministic"] = tuple(name for name, site in trace.items() if site["type"] == "deterministic")
        found["plates"] = {site["name"]: tuple(frame.name for frame in site["cond_indep_stack"]) for site in samples}
        found["subsampled"] = {name: (int(site["args"][0]), int(site[SUBSAMPLED]))
                               for name, site in trace.items() if site["type"] == "plate" and SUBSAMPLED in site}
        return ({site["name"]: site["value"] for site in samples if site["is_observed"] and not _is_factor(site)},
                {site["name"]: site["value"] for site in latent if not site["fn"].support.is_discrete})

    traced = jax.jit(run)
    values, latent_values = traced(dict(observed), jax.random.PRNGKey(0))
    # a second trace at other initial values of the latent sites (the same compiled program):
    # an observation that changes with them is computed from the parameters, not data
    other = traced(dict(observed), jax.random.PRNGKey(1))[0] if found["latent"] else values
    computed, imputed, imputed_by = [], {}, {}
    for name in values:
        first, second = np.asarray(values[name]), np.asarray(other[name])
        changed = ~((first == second) | (np.isnan(first) & np.isnan(second)))
        if changed.all() or (changed.any() and first.ndim == 0):
            computed.append(name)
        elif changed.any():  # some entries from the parameters, the rest data: imputed entries
            imputed[name] = changed
            filled = first[changed]  # a latent site whose values these entries are (equal floats)
            imputed_by[name] = tuple(site for site, value in latent_values.items()
                                     if np.isin(filled, np.asarray(value)).any())
    return ModelStructure(found["latent"], found["supports"], {k: np.asarray(v) for k, v in values.items()},
                          found["factors"], found["deterministic"], found["discrete"], found["improper"],
                          found["not_enumerable"], found["plates"], tuple(computed), found["subsampled"],
                          imputed, imputed_by)


class uncondition(Messenger):
    """Draw the observed sample sites `sites` instead of conditioning on their values: the
    posterior (or prior) predictive of a model that computes its observations itself
    (`obs=y[K:]`), with no `y=None` needed."""

    def __init__(self, fn=None, sites=()):
        self.sites = frozenset(sites)
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and msg["name"] in self.sites:
            fn, shape = msg["fn"], jnp.shape(msg["value"])
            batch = shape[: len(shape) - len(fn.event_shape)]
            if batch != tuple(fn.batch_shape):
                # `obs=y` with a distribution broadcast over y (no plate): draw y-shaped data
                msg["fn"] = fn.expand(batch)
            msg["is_observed"] = False
            msg["value"] = None


def unconstrained_starts(spec, inputs, rng_key, num_chains: int, structure: ModelStructure) -> dict | None:
    """The spec's per-chain starting points in the sampler's unconstrained space (leading chain
    axis), or None."""
    if spec.init is None:
        return None
    starts = spec.init(inputs, rng_key, num_chains)
    return {name: np.asarray(biject_to(structure.supports[name]).inv(jnp.asarray(value)))
            for name, value in starts.items()}


class _unmask_imputed(Messenger):
    def process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"] and msg["name"].endswith("_unobserved"):
            # NumPyro's mask handler wraps the distribution (MaskedDistribution) before this
            # outer handler sees the site
            while isinstance(msg["fn"], dist.MaskedDistribution):
                msg["fn"] = msg["fn"].base_dist
            msg["mask"] = None


def is_imputation(name: str, observed) -> bool:
    """Whether latent site `name` is NumPyro's obs_mask imputation (`<x>_unobserved`) of an
    observed site `<x>_observed` among `observed`: it belongs to the rows it was fitted on."""
    return name.endswith("_unobserved") and f"{name[:-len('_unobserved')]}_observed" in observed


def unmask_imputed(model):
    """`model` with each `<x>_unobserved` site of NumPyro's `obs_mask` unmasked.

    NumPyro draws the imputations as one site over every entry of x, its density masked to the
    missing ones; the other entries then have a flat, improper density: NUTS lets them drift and
    every tree runs to the maximum depth (a 40-row regression with 4 missing: 100% of draws). With
    the mask removed, each of those entries is drawn from p(x_i | parameters) instead: a proper
    auxiliary variable whose density integrates to 1, so the posterior of everything else is
    unchanged. The posterior keeps only the missing entries (`results.missing_entries`)."""
    import functools

    @functools.wraps(model)
    def unmasked(*args, **kwargs):
        with _unmask_imputed():
            return model(*args, **kwargs)

    return unmasked



SUBSAMPLED = "probgen_subsample_size"  # the subsample size a plate asked for, kept in its trace site


class _full_plates(Messenger):
    def process_message(self, msg):
        if msg["type"] == "plate" and msg["value"] is None:  # a plate asking for a random subsample
            size, subsample_size = msg["args"]
            msg["value"] = jnp.arange(size)
            msg["args"] = (size, None)  # no "subsample_size does not match" warning
            msg[SUBSAMPLED] = subsample_size


def full_plates(model):
    """`model` with every subsampling plate (`plate(name, size, subsample_size=m)`) run over all
    its `size` entries, at scale 1: the model's exact log density on the whole data.

    NumPyro draws a subsample's indices with a random key that only SVI's seeded trace has; every
    other evaluation (NUTS refusing it, the importance weights of an SVI fit, the predictive
    draws, the pointwise log-likelihood, the model's structure) raised "Missing random key to
    generate subsample indices", and would otherwise see a random minibatch. The SVI loss alone
    runs the model as written (`ModelInputs.bound_model(model, subsample=True)`). The site of each
    such plate in a trace records the subsample size asked for (`SUBSAMPLED`)."""
    import functools

    @functools.wraps(model)
    def whole(*args, **kwargs):
        with _full_plates():
            return model(*args, **kwargs)

    return whole


def log_prior_terms(model, flat_samples: Mapping[str, Any], observed: Mapping[str, Any], sites) -> dict:
    """log p(theta_site | its parents) for each latent site in `sites`, summed over the site's
    elements, under each draw (leading axis of `flat_samples`), in one compiled program: the
    prior's part of the log density, site by site (the `log_prior` group that power-scaling
    sensitivity scales). An improper prior (`ImproperUniform`) contributes 0."""
    sites = tuple(sites)

    def one(sample):
        trace = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=sample)).get_trace(**observed)
        return {name: jnp.sum(trace[name]["fn"].log_prob(trace[name]["value"])) for name in sites}

    return {name: np.asarray(value) for name, value in jax.jit(jax.vmap(one))(dict(flat_samples)).items()}
