"""Inference: `fit(spec, data, method=...)` -> `Fit` holding an `arviz.InferenceData`.

Methods: "nuts" and "hmc" (NumPyro MCMC, several chains), "svi" (autoguide or the spec's own
guide), "map" (AutoDelta). Each method module runs NumPyro; this module validates settings,
prepares the model inputs from the data, and builds the results the same way for all.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import jax
import pandas as pd

from probgen import data as data_module
from probgen.errors import InferenceError
from probgen.infer import map as map_method
from probgen.infer import mcmc, svi
from probgen.infer.results import Fit, build_inference_data, model_structure, versions
from probgen.spec import ModelSpec, load_spec

__all__ = ["fit", "Fit", "METHODS", "default_settings", "versions"]

METHODS = ("nuts", "hmc", "svi", "map")


def default_settings(method: str) -> dict[str, Any]:
    """The settings `fit` uses for `method` unless told otherwise."""
    if method in ("nuts", "hmc"):
        return dict(mcmc.DEFAULTS)
    if method == "svi":
        return dict(svi.DEFAULTS)
    if method == "map":
        return dict(map_method.DEFAULTS)
    raise InferenceError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")


def resolve_settings(method: str, given: Mapping[str, Any]) -> dict[str, Any]:
    settings = default_settings(method)
    unknown = [k for k in given if k not in settings]
    if unknown:
        raise InferenceError(
            f"method '{method}' has no setting {', '.join(repr(k) for k in unknown)} "
            f"(settings: {', '.join(settings)})"
        )
    settings.update({k: v for k, v in given.items() if v is not None})
    return settings


def _as_dataset(data, columns, standardize):
    if isinstance(data, data_module.Dataset):
        return data
    if isinstance(data, pd.DataFrame):
        return data_module.from_frame(data if columns is None else data[list(columns)], standardize=standardize)
    return data_module.load(str(data), columns=columns, standardize=standardize)


def fit(
    spec: ModelSpec | str,
    data,
    method: str = "nuts",
    *,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
    columns=None,
    standardize: bool = False,
    **settings,
) -> Fit:
    """Fit a model to data.

    spec:     a `ModelSpec`, a built-in model name ("gmm") or a path to a model file.
    data:     a `probgen.data.Dataset`, a DataFrame, a bundled set name or a file path.
    method:   "nuts", "hmc", "svi" or "map".
    options:  model options (e.g. {"num_components": 2}); see `probgen models`.
    seed:     the only source of randomness; the same seed gives the same draws.
    settings: method settings, e.g. chains=4, warmup=1000, draws=1000 for MCMC, or
              steps, learning_rate, guide for SVI (`default_settings(method)` lists them).
    """
    reference = spec if isinstance(spec, str) else spec.name
    if isinstance(spec, str):
        spec = load_spec(spec)
    settings = resolve_settings(method, settings)
    dataset = _as_dataset(data, columns, standardize)
    resolved_options = spec.resolve_options(options)
    inputs = spec.prepare(dataset.frame, resolved_options)
    inference_key, results_key, init_key = jax.random.split(jax.random.PRNGKey(seed), 3)

    start = time.perf_counter()
    structure = model_structure(inputs.bound_model(spec.model), inputs.observed)
    sample_stats = optimization = None
    if method in ("nuts", "hmc"):
        sampler = mcmc.make_sampler(spec, inputs, method, settings, progress)
        starts = mcmc.unconstrained_starts(spec, inputs, init_key, settings["chains"], structure)
        samples, sample_stats = mcmc.run_sampler(
            sampler, inputs, inference_key, settings["max_tree_depth"] if method == "nuts" else None, starts
        )
    elif method == "svi":
        samples, optimization, log_weights = svi.fit_svi(spec, inputs, settings, inference_key, progress, structure)
        if log_weights is not None:
            sample_stats = {"log_importance_weight": log_weights[None]}
    else:
        samples, optimization = map_method.fit_map(spec, inputs, settings, inference_key, progress)
    inference_seconds = time.perf_counter() - start

    start = time.perf_counter()
    idata = build_inference_data(
        spec, inputs, samples, results_key, sample_stats=sample_stats, optimization=optimization, structure=structure
    )
    return Fit(
        idata=idata,
        spec=spec,
        inputs=inputs,
        method=method,
        settings=settings,
        seed=int(seed),
        options=resolved_options,
        model_reference=reference,
        dataset=dataset,
        timings={"inference": inference_seconds, "results": time.perf_counter() - start},
    )
