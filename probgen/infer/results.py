"""`Fit` and the one InferenceData builder that every inference method goes through.

Each method produces latent draws with leading (chain, draw) axes; `build_inference_data`
turns them into an `arviz.InferenceData` the same way for all of them: deterministic sites and
the posterior predictive from one `Predictive` pass, the pointwise log-likelihood of every
observed site, and the observed data read from a trace of the model. Downstream code
therefore treats MCMC, SVI and MAP alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import platform
import warnings
from typing import Any, Mapping

import arviz as az
import jax
import numpy as np
import xarray as xr
from numpyro import handlers
from numpyro.infer import Predictive, log_likelihood

from probgen.spec import ModelInputs, ModelSpec


@dataclasses.dataclass
class Fit:
    """The result of `probgen.fit`.

    idata:    posterior (chain, draw, ...), sample_stats, observed_data, log_likelihood,
              posterior_predictive; SVI and MAP add an `optimization` group (loss per step).
    spec, inputs, dataset: what was fitted, on what.
    method, settings, seed, options: how; `config()` gives all of it for config.json.
    timings:  seconds spent in inference and in building the results.
    """

    idata: az.InferenceData
    spec: ModelSpec
    inputs: ModelInputs
    method: str
    settings: dict
    seed: int
    options: dict
    model_reference: str
    dataset: Any = None
    timings: dict = dataclasses.field(default_factory=dict)

    def config(self) -> dict:
        """Everything needed to reproduce this fit, as JSON-ready values."""
        return {
            "model": {"name": self.spec.name, "reference": self.model_reference, "options": self.options},
            "data": self.dataset.config() if self.dataset is not None else None,
            "method": self.method,
            "settings": self.settings,
            "seed": self.seed,
            "versions": versions(),
            "device": {"platform": jax.default_backend(), "devices": [str(d) for d in jax.devices()]},
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "timings_seconds": {k: round(v, 3) for k, v in self.timings.items()},
        }


def versions() -> dict[str, str]:
    """Versions of the libraries that decide what a run computes."""
    import importlib.metadata as metadata

    found = {"python": platform.python_version()}
    for name in ("probgen", "jax", "jaxlib", "numpyro", "arviz", "numpy", "scipy", "pandas"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@dataclasses.dataclass(frozen=True)
class ModelStructure:
    """What one trace of a model shows: latent site names and supports, observed values."""

    latent: tuple[str, ...]
    supports: dict
    observed: dict[str, np.ndarray]


def model_structure(model, observed: Mapping[str, Any]) -> ModelStructure:
    """Trace `model(**observed)` once, as one compiled program.

    Compiling the trace costs one XLA compilation; running it eagerly would compile every
    primitive on its own, which takes seconds on a cold start.
    """
    found = {}

    def run(observed):
        trace = handlers.trace(handlers.seed(model, 0)).get_trace(**observed)
        samples = [site for site in trace.values() if site["type"] == "sample"]
        found["latent"] = tuple(site["name"] for site in samples if not site["is_observed"])
        found["supports"] = {site["name"]: site["fn"].support for site in samples if not site["is_observed"]}
        return {site["name"]: site["value"] for site in samples if site["is_observed"]}

    values = jax.jit(run)(dict(observed))
    return ModelStructure(found["latent"], found["supports"], {k: np.asarray(v) for k, v in values.items()})


@functools.partial(jax.jit, static_argnums=0)
def _predict_and_score(model, rng_key, flat_samples, observed):
    unobserved = {name: None for name in observed}
    predicted = Predictive(model, posterior_samples=flat_samples, parallel=True)(rng_key, **unobserved)
    pointwise = log_likelihood(model, flat_samples, parallel=True, **observed)
    return predicted, pointwise


@functools.partial(jax.jit, static_argnums=(0, 3))
def _prior_draws(model, rng_key, unobserved, num_draws):
    return Predictive(model, num_samples=num_draws)(rng_key, **unobserved)


PRIOR_DRAWS = 500


def prior_and_prior_predictive(model, observed: dict, rng_key, num_draws: int = PRIOR_DRAWS):
    """Draws of every site from the prior (latent, deterministic and data), one compiled program."""
    drawn = _prior_draws(model, rng_key, {name: None for name in observed}, num_draws)
    return {k: np.asarray(v) for k, v in drawn.items()}


def predictions_and_log_likelihood(model, flat_samples: dict, observed: dict, rng_key):
    """Posterior predictive draws (and deterministic sites) and pointwise log-likelihoods.

    One compiled program for both, compiled once per model object: an eager `Predictive`
    would compile each primitive on its own, which costs seconds on a cold start.
    """
    predicted, pointwise = _predict_and_score(model, rng_key, flat_samples, dict(observed))
    return (
        {k: np.asarray(v) for k, v in predicted.items()},
        {k: np.asarray(v) for k, v in pointwise.items()},
    )


def _leading_dims(dims: Mapping[str, list[str]], name: str, ndim: int) -> list[str] | None:
    names = dims.get(name)
    return None if names is None else list(names)[:ndim]


def _with_masks(group: xr.Dataset, inputs: ModelInputs) -> xr.Dataset:
    """`group` with `<name>_mask` beside each observed variable that `inputs.masks` covers,
    over the variable's leading (row) dims."""
    for name, mask in inputs.masks.items():
        if name in group:
            mask = np.asarray(mask, bool)
            group[f"{name}_mask"] = (group[name].dims[: mask.ndim], mask)
    return group


def build_inference_data(
    spec: ModelSpec,
    inputs: ModelInputs,
    samples: Mapping[str, Any],
    rng_key,
    *,
    sample_stats: Mapping[str, Any] | None = None,
    optimization: Mapping[str, Any] | None = None,
    structure: ModelStructure | None = None,
    held_out: ModelInputs | None = None,
    prior_draws: int = PRIOR_DRAWS,
) -> az.InferenceData:
    """InferenceData from latent draws `samples` (name -> (chain, draw, ...) array).

    prior_draws: draws from the prior for the `prior` and `prior_predictive` groups (the prior
    predictive check of the report); 0 for none.
    held_out: inputs prepared from rows kept out of the fit; their values become the
    `held_out_data` group and their pointwise log-likelihood under each draw the
    `held_out_log_likelihood` group.

    Runs the spec's `postprocess` (e.g. relabelling) first, so that every group, the
    posterior predictive included, sees the same, identified draws.
    """
    model = inputs.bound_model(spec.model)
    # Deterministic sites are recomputed below from the (post-processed) latent draws.
    structure = structure or model_structure(model, inputs.observed)
    observed = structure.observed
    samples = {k: np.asarray(v) for k, v in samples.items() if k in structure.latent}
    if spec.postprocess is not None:
        samples = {k: np.asarray(v) for k, v in spec.postprocess(samples, inputs).items()}
    chains, draws = next(iter(samples.values())).shape[:2]
    flat = {k: v.reshape((chains * draws,) + v.shape[2:]) for k, v in samples.items()}

    predicted, pointwise = predictions_and_log_likelihood(model, flat, inputs.observed, rng_key)

    def by_chain(array):
        return array.reshape((chains, draws) + array.shape[1:])

    posterior = dict(samples)
    posterior_predictive = {}
    for name, value in predicted.items():
        if name in observed:
            posterior_predictive[name] = by_chain(value)
        elif name not in posterior:  # deterministic sites
            posterior[name] = by_chain(value)

    log_lik = {name: by_chain(value) for name, value in pointwise.items()}

    with warnings.catch_warnings():
        # ArviZ warns about dims it has to invent; those are fine for our purposes
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=dict(sample_stats) if sample_stats else None,
            posterior_predictive=posterior_predictive or None,
            observed_data=observed,
            coords=dict(inputs.coords),
            dims=dict(inputs.dims),
        )
        ll_dims = {name: _leading_dims(inputs.dims, name, value.ndim - 2) for name, value in log_lik.items()}
        ll_idata = az.from_dict(
            log_likelihood=log_lik,
            coords=dict(inputs.coords),
            dims={k: v for k, v in ll_dims.items() if v is not None},
        )
        idata.extend(ll_idata)
        if prior_draws:
            drawn = prior_and_prior_predictive(model, inputs.observed, jax.random.fold_in(rng_key, 2), prior_draws)
            prior_idata = az.from_dict(
                prior={k: v[None] for k, v in drawn.items() if k not in observed},
                prior_predictive={k: v[None] for k, v in drawn.items() if k in observed},
                coords=dict(inputs.coords),
                dims=dict(inputs.dims),
            )
            idata.extend(prior_idata)
        if held_out is not None:
            key = jax.random.fold_in(rng_key, 1)
            held_model = held_out.bound_model(spec.model)
            held_predicted, held_pointwise = predictions_and_log_likelihood(held_model, flat, held_out.observed, key)
            held_dims = {name: _leading_dims(held_out.dims, name, value.ndim - 1)
                         for name, value in held_pointwise.items()}
            held_ll = az.from_dict(log_likelihood={name: by_chain(value) for name, value in held_pointwise.items()},
                                   coords=dict(held_out.coords), dims={k: v for k, v in held_dims.items() if v is not None})
            held_data = az.from_dict(observed_data={name: np.asarray(held_out.observed[name]) for name in held_pointwise},
                                     coords=dict(held_out.coords), dims=dict(held_out.dims))
            # draws of the held-out rows (and deterministic sites there) from the posterior predictive
            held_predictive = az.from_dict(posterior_predictive={name: by_chain(value) for name, value in held_predicted.items()},
                                           coords=dict(held_out.coords), dims=dict(held_out.dims))
            idata.add_groups(held_out_log_likelihood=held_ll.log_likelihood,
                             held_out_data=_with_masks(held_data.observed_data, held_out),
                             held_out_predictive=held_predictive.posterior_predictive)
        if inputs.masks:
            idata.observed_data = _with_masks(idata.observed_data, inputs)
        if spec.derived is not None:
            every_site = {k: np.asarray(v).reshape((chains * draws,) + np.shape(v)[2:]) for k, v in posterior.items()}
            for group, dataset in spec.derived(every_site, inputs, jax.random.fold_in(rng_key, 3)).items():
                if group in idata.groups():  # e.g. a mask of real rows beside padded observations
                    setattr(idata, group, xr.merge([getattr(idata, group), dataset]))
                else:
                    idata.add_groups({group: dataset})
        if optimization:
            idata.add_groups(
                optimization=xr.Dataset({k: ("step", np.asarray(v)) for k, v in optimization.items()})
            )
    return idata
