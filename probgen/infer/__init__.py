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

from probgen import binding
from probgen import data as data_module
from probgen.errors import InferenceError, ModelError, ProbgenError, user_exception
from probgen.infer import amortized
from probgen.infer import map as map_method
from probgen.infer import mcmc, svi
from probgen.infer.results import Fit, build_inference_data, draws_only, model_structure, versions
from probgen.spec import ModelSpec, describe_function, is_plain_model, load_spec, takes_x_array

__all__ = ["fit", "Fit", "METHODS", "default_settings", "versions"]

METHODS = ("nuts", "hmc", "svi", "map")


def default_settings(method: str, spec: ModelSpec | None = None) -> dict[str, Any]:
    """The settings `fit` uses for `method` (and `spec`: amortised models such as the VAE
    have their own trainer) unless told otherwise."""
    if spec is not None and spec.amortized is not None:
        if method != "svi":
            raise InferenceError(f"model '{spec.name}' is fitted by amortised minibatch SVI only: use --method svi "
                                 f"(not {method})")
        return dict(amortized.FIT_DEFAULTS)
    if method in ("nuts", "hmc"):
        return dict(mcmc.DEFAULTS)
    if method == "svi":
        return dict(svi.DEFAULTS)
    if method == "map":
        return dict(map_method.DEFAULTS)
    raise InferenceError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")


def resolve_settings(method: str, given: Mapping[str, Any], spec: ModelSpec | None = None) -> dict[str, Any]:
    settings = default_settings(method, spec)
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


def as_spec(model) -> ModelSpec:
    """A `ModelSpec` from a spec, a built-in name or model file path, or a plain model function."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        return load_spec(model)
    if callable(model):
        return ModelSpec(name=getattr(model, "__name__", "model"), model=model)
    raise InferenceError(f"model must be a ModelSpec, a model name, a .py path or a function, not {type(model).__name__}")


def prepare(spec: ModelSpec, data, options: Mapping[str, Any], *, seed: int = 0, holdout: float = 0.0, columns=None,
            standardize: bool = False, sets: Mapping[str, Any] | None = None):
    """(data set, model inputs, held-out inputs or None) for fitting `spec` to `data`.

    A spec with its own `prepare`, or a model that takes the `x` array, gets a numeric table
    (`probgen.data.Dataset`); any other plain model is bound to its data by argument name
    (`probgen.binding`): a dict, JSON, NPZ, or a table's columns.
    """
    if is_plain_model(spec):
        named = data_module.load_named(data, sets)
        if not takes_x_array(spec, named.values):
            if standardize or columns:
                raise InferenceError("--standardize and --columns apply to models that take the data as one x array; "
                                     f"{describe_function(spec.model)} takes its data by argument name")
            held = None
            if holdout:
                named, held = named.split(holdout, seed)
            inputs = binding.bind(spec.model, named)
            return named, inputs, None if held is None else binding.bind(spec.model, held)
        if sets:
            raise InferenceError(f"--set gives arguments by name; {describe_function(spec.model)} takes its data as x")
    dataset = _as_dataset(data, columns, standardize)
    held_out = held_out_inputs = None
    if holdout:
        sequence_column = spec.time_order(options) if spec.time_order is not None else None
        dataset, held_out = dataset.split(holdout, seed, sequence_column=sequence_column)
    inputs = spec.prepare(dataset.frame, options)
    if held_out is not None:
        held_out_inputs = (spec.held_out(dataset.frame, held_out.frame, options) if spec.held_out is not None
                           else spec.prepare(held_out.frame, options))
    return dataset, inputs, held_out_inputs


def user_code(spec: ModelSpec, step):
    """Run `step()`; an exception raised in the user's model file becomes a `ModelError` that
    names the file, the line and the exception (the CLI prints it as one line, exit 2)."""
    try:
        return step()
    except ProbgenError:
        raise
    except Exception as exc:
        located = user_exception(exc, spec.model)
        if located is None and is_plain_model(spec):  # a plain model: say where, without a traceback
            import traceback

            frame = traceback.extract_tb(exc.__traceback__)[-1]
            located = (f"running {describe_function(spec.model)} failed: {type(exc).__name__}: {exc} (raised in "
                       f"{frame.filename.rsplit('/', 1)[-1]}, line {frame.lineno}, in {frame.name})")
        if located is None:
            raise
        raise ModelError(located) from exc


def check_discrete_sites(structure, method: str) -> None:
    """Discrete latent sites are summed out by enumeration, which NUTS and HMC do (NumPyro's
    funsor enumeration); a site without finite support, or a method that cannot sum, is an
    error naming the site."""
    if structure.not_enumerable:
        raise ModelError(f"discrete latent site{'s' if len(structure.not_enumerable) > 1 else ''} "
                         f"{', '.join(structure.not_enumerable)} cannot be enumerated (no finite support to sum "
                         "over); marginalise it in the model or give it a finite support")
    if structure.discrete and method not in ("nuts", "hmc"):
        plural = len(structure.discrete) > 1
        raise InferenceError(f"the discrete latent site{'s' if plural else ''} {', '.join(structure.discrete)} "
                             f"{'are' if plural else 'is'} summed out by enumeration, which --method nuts and hmc do; "
                             f"--method {method} cannot")


def fit(
    spec,
    data,
    method: str = "nuts",
    *,
    options: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
    columns=None,
    standardize: bool = False,
    holdout: float = 0.0,
    checkpoint_dir=None,
    resume: Mapping | None = None,
    sets: Mapping[str, Any] | None = None,
    **settings,
) -> Fit:
    """Fit a model to data.

    spec:     a plain NumPyro model function, a `ModelSpec`, a built-in model name ("gmm") or a
              path to a model file.
    data:     for a model bound by argument name: a dict, a DataFrame, or a .json (Stan form),
              .npz, .csv/.tsv/.parquet file or bundled set; for a model that takes the `x`
              array or has a spec of its own: a `probgen.data.Dataset`, a DataFrame, a bundled
              set name or a table file.
    method:   "nuts", "hmc", "svi" or "map".
    options:  model options (e.g. {"num_components": 2}); see `probgen models`.
    seed:     the only source of randomness; the same seed gives the same draws.
    holdout:  fraction of rows (drawn with `seed`; for a time-series model, the last rows of
              each sequence) kept out of the fit; the report then scores the model on them (log predictive density, cross-entropy, perplexity) and
              compares data generated by the model with them. 0 fits every row.
    sets:     named values added to (or replacing) the data's (the CLI's --set NAME=VALUE).
    settings: method settings, e.g. chains=4, warmup=1000, draws=1000 for MCMC, or
              steps, learning_rate, guide for SVI (`default_settings(method, spec)` lists them).
    checkpoint_dir, resume: amortised models (the VAE) only: the folder training checkpoints
              are written to, and a loaded checkpoint (`amortized.load_checkpoint`) to carry
              on from. Their `holdout` (default 0.2) is split in half: validation rows stop
              training early, held-out rows are scored.

    If building the results fails after inference (a bug, or a model the checks cannot handle),
    the draws are kept: the returned `Fit` holds them (posterior and sample statistics) and
    names the failed step in `failures`.
    """
    reference = spec if isinstance(spec, str) else getattr(spec, "name", getattr(spec, "__name__", "model"))
    spec = as_spec(spec)
    settings = resolve_settings(method, settings, spec)
    resolved_options = spec.resolve_options(options)
    if spec.amortized is not None:
        dataset = _as_dataset(data, columns, standardize)
        return amortized.fit_amortized(spec, dataset, resolved_options, settings, seed, holdout, progress=progress,
                                       checkpoint_dir=checkpoint_dir, resume=resume, reference=reference)
    if checkpoint_dir is not None or resume is not None:
        raise InferenceError(f"model '{spec.name}' is not trained in steps that checkpoint; --resume applies to "
                             "amortised models such as vae")
    dataset, inputs, held_out_inputs = prepare(spec, data, resolved_options, seed=seed, holdout=holdout,
                                               columns=columns, standardize=standardize, sets=sets)
    inference_key, results_key, init_key = jax.random.split(jax.random.PRNGKey(seed), 3)

    start = time.perf_counter()
    structure = user_code(spec, lambda: model_structure(inputs.bound_model(spec.model), inputs.observed))
    check_discrete_sites(structure, method)
    sample_stats = optimization = None
    if method in ("nuts", "hmc"):
        sampler = mcmc.make_sampler(spec, inputs, method, settings, progress)
        starts = mcmc.unconstrained_starts(spec, inputs, init_key, settings["chains"], structure)
        samples, sample_stats = user_code(spec, lambda: mcmc.run_sampler(
            sampler, inputs, inference_key, settings["max_tree_depth"] if method == "nuts" else None, starts))
    elif method == "svi":
        samples, optimization, log_weights = user_code(
            spec, lambda: svi.fit_svi(spec, inputs, settings, inference_key, progress, structure))
        if log_weights is not None:
            sample_stats = {"log_importance_weight": log_weights[None]}
    else:
        samples, optimization = user_code(spec, lambda: map_method.fit_map(spec, inputs, settings, inference_key, progress))
    inference_seconds = time.perf_counter() - start

    start = time.perf_counter()
    failures = []
    try:
        idata = build_inference_data(
            spec, inputs, samples, results_key, sample_stats=sample_stats, optimization=optimization,
            structure=structure, held_out=held_out_inputs,
        )
    except Exception as exc:  # the draws are worth more than the step that failed: keep them
        failures.append({"step": "results (predictive draws, log-likelihood, prior predictive)",
                         "error": user_exception(exc, spec.model) or f"{type(exc).__name__}: {exc}"})
        idata = draws_only(samples, sample_stats, optimization, structure)
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
        failures=failures,
    )
