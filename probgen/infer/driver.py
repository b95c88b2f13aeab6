"""The one pipeline of every fit (`fit`): load and split the data (`load_parts`), read the
model's structure, run the method (`Method.run` on a `Problem`), build the results from its
`Result` (`probgen.infer.results.to_inference_data`). A user's exception inside their model is
reported with its file and line (`user_code`).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import arviz as az
import numpy as np

from probgen.data import binding
from probgen import data as data_module
from probgen.data import kinds as data_kinds
from probgen.errors import InferenceError, ModelError, ProbgenError, user_exception
from probgen.infer.parts import part_inputs, split_parts
from probgen.infer.results import Fit, draws_only, model_structure, to_inference_data
from probgen.spec import ModelSpec, describe_function, is_plain_model, load_spec, takes_x_array


def _as_dataset(data, columns, standardize, spec: ModelSpec | None = None, options: Mapping[str, Any] | None = None):
    """The data set `spec` fits, read as its data kind reads it (`probgen.data.kinds`; a
    numeric table without a spec)."""
    if isinstance(data, data_module.Dataset):
        return data
    kind = data_kinds.kind_of(spec) if spec is not None else data_kinds.KINDS["table"]
    return kind.load(data, spec, options or {}, columns, standardize)


def as_spec(model) -> ModelSpec:
    """A `ModelSpec` from a spec, a built-in name or model file path, or a plain model function."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        return load_spec(model)
    if callable(model):
        return ModelSpec(name=getattr(model, "__name__", "model"), model=model)
    raise InferenceError(f"model must be a ModelSpec, a model name, a .py path or a function, not {type(model).__name__}")


def load_parts(spec: ModelSpec, data, options: Mapping[str, Any], *, seed: int = 0, holdout: float = 0.0,
               columns=None, standardize: bool = False, sets: Mapping[str, Any] | None = None,
               validation: float = 0.0, set_apart=None) -> tuple[Any, dict]:
    """(training data set, {part: ModelInputs}) for fitting `spec` to `data`: the one split
    (`probgen.infer.parts`) and the one binding of every part.

    A spec with its own `prepare`, or a model that takes the `x` array, gets its data kind's
    data set (`probgen.data.kinds`: a numeric table, text, ratings); any other plain model is
    bound to its data by argument name (`probgen.data.binding`): a dict, JSON, NPZ, or a table's
    columns. `validation` (a fraction of the rows) and `set_apart`: what the method asks of the
    split (its `validation` setting, `Method.set_apart`).
    """
    if is_plain_model(spec):
        named = data_module.load_named(data, sets)
        if not takes_x_array(spec, named.values):
            if standardize or columns:
                raise InferenceError("--standardize and --columns apply to models that take the data as one x array; "
                                     f"{describe_function(spec.model)} takes its data by argument name")
            parts = {"training": named}
            if holdout:
                parts["training"], parts["held_out"] = named.split(holdout, seed)
            return parts["training"], {part: binding.bind(spec.model, values) for part, values in parts.items()}
    if sets:
        raise InferenceError(f"--set gives arguments by name; {describe_function(spec.model)} takes its data as x"
                             if is_plain_model(spec) else
                             f"--set gives arguments by name; model '{spec.name}' takes its data as a table")
    dataset = _as_dataset(data, columns, standardize, spec, options)
    parts = split_parts(spec, dataset, options, holdout, seed, validation=validation, set_apart=set_apart)
    return parts["training"], part_inputs(spec, parts, options)


def prepare(spec: ModelSpec, data, options: Mapping[str, Any], *, seed: int = 0, holdout: float = 0.0, columns=None,
            standardize: bool = False, sets: Mapping[str, Any] | None = None):
    """(training data set, training inputs, held-out inputs or None): `load_parts` without a
    validation part."""
    dataset, parts = load_parts(spec, data, options, seed=seed, holdout=holdout, columns=columns,
                                standardize=standardize, sets=sets)
    return dataset, parts["training"], parts.get("held_out")


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


def check_discrete_sites(structure, method) -> None:
    """Discrete latent sites are summed out by enumeration, which the methods with
    `sums_discrete_sites` do (NUTS and HMC: NumPyro's funsor enumeration); a site without
    finite support, or a method that cannot sum, is an error naming the site."""
    if structure.not_enumerable:
        raise ModelError(f"discrete latent site{'s' if len(structure.not_enumerable) > 1 else ''} "
                         f"{', '.join(structure.not_enumerable)} cannot be enumerated (no finite support to sum "
                         "over); marginalise it in the model or give it a finite support")
    if structure.discrete and not method.sums_discrete_sites:
        from probgen.infer import methods

        plural = len(structure.discrete) > 1
        able = " and ".join(m.command_name for m in methods.registered() if m.sums_discrete_sites)
        raise InferenceError(f"the discrete latent site{'s' if plural else ''} {', '.join(structure.discrete)} "
                             f"{'are' if plural else 'is'} summed out by enumeration, which --method {able} do; "
                             f"{method.describe()} cannot")


def check_subsampling(structure, method) -> None:
    """A plate that draws minibatches (`subsample_size`) is fitted by the methods that
    `subsamples` (SVI, on NumPyro's scaled ELBO); the others need the exact log density of the
    whole data at every step, so they refuse in one line naming the plate."""
    if not structure.subsampled or method.subsamples:
        return
    from probgen.infer import methods

    name, (size, subsample_size) = next(iter(structure.subsampled.items()))
    able = " or ".join(f"--method {m.command_name}" for m in methods.registered() if m.subsamples)
    raise InferenceError(f"plate '{name}' draws minibatches of {subsample_size} of its {size} entries "
                         f"(subsample_size), which {able} fits; {method.describe()} needs the whole data at every "
                         f"step: use {able}, or remove subsample_size to fit all {size} entries")


def fit(method, spec: ModelSpec, data, settings: dict, *, options: dict, seed: int = 0, progress: bool = True,
        columns=None, standardize: bool = False, holdout: float = 0.0, sets: Mapping[str, Any] | None = None,
        reference: str | None = None, checkpoint_dir=None, resume=None, init_from=None) -> Fit:
    """The only fit, for every method: load and split the data (`load_parts`), trace the
    model (for a method that `traces_model`), `method.run` the `Problem`, build the results
    (`to_inference_data`) and return the `Fit`.

    checkpoint_dir, resume: for a `durable` method (`probgen.infer.durable`) a folder its draws,
    optimiser or trainer state stream into, and such a folder to carry on from (a run stopped
    early, or a finished one to extend); the folder's checkpoint.json holds the request, which a
    resumed run must repeat. init_from: a finished run whose last state starts this one (a
    `warm_starts` method)."""
    from probgen.infer import methods

    if (checkpoint_dir is not None or resume is not None) and not method.durable:
        raise InferenceError(f"{method.describe()} does not save its work in steps; checkpoint_dir and resume apply to "
                             f"{methods.resumable_runs()}")
    if init_from is not None and not method.warm_starts:
        raise InferenceError(f"init_from (--init-from) applies to {methods.warm_starting_runs()}, not to "
                             f"{method.describe()}")
    missing = method.missing_parts(spec)
    if missing:
        raise InferenceError(f"model '{spec.name}' provides no {' or '.join(missing)}, which {method.describe()} needs")
    holdout = float(holdout) or method.default_holdout
    dataset, parts = load_parts(spec, data, options, seed=seed, holdout=holdout, columns=columns,
                                standardize=standardize, sets=sets, validation=settings.get("validation", 0.0),
                                set_apart=method.set_apart(spec))
    keys = methods.Keys.from_seed(seed)
    checkpoint = None
    if checkpoint_dir is not None or resume is not None:
        from probgen.infer import durable

        request = durable.run_request(reference or spec.name, dataset, spec.resolve_options(options), settings, seed,
                                      holdout, sets=sets, standardize=standardize)
        checkpoint = durable.open_checkpoint(resume if resume is not None else checkpoint_dir, request,
                                             resume=resume is not None, method=method)
    start = time.perf_counter()
    structure, noncentred = None, None
    if method.traces_model:
        inputs = parts["training"]
        if settings.get("reparam") == "noncentred":
            from probgen.infer import reparam

            spec, noncentred = user_code(spec, lambda: reparam.noncentre_spec(spec, inputs))
        structure = user_code(spec, lambda: model_structure(inputs.bound_model(spec.model), inputs.observed))
        check_discrete_sites(structure, method)
        check_subsampling(structure, method)
    problem = methods.Problem(spec, options, parts, dataset, int(seed), keys, structure, progress, checkpoint,
                              init_from)
    # the graph of a model the method runs as NumPyro model (not an encoder's or a count table's)
    graph = read_graph(spec, parts["training"]) if method.traces_model else None
    result = user_code(spec, lambda: method.run(problem, settings))
    if graph is not None:
        result.facts["model_graph"] = graph
    if noncentred is not None:
        result.facts["reparam"] = {"requested": "noncentred", "sites": noncentred}
    if settings.get("reparam") == "auto" and structure is not None and result.sample_stats is not None:
        problem, result = user_code(spec, lambda: rerun_noncentred(method, problem, settings, result))
    return results(method, problem, settings, result, reference, {"inference": time.perf_counter() - start})


def read_graph(spec: ModelSpec, inputs, strict: bool = False) -> dict:
    """The model's graph (`probgen.graph.model_graph`) on the training inputs, or {"error": why}:
    a graph that cannot be read (a model NumPyro's provenance tracking cannot follow) must not
    stop the fit; the report says why it has none. strict: raise instead (`probgen graph`)."""
    from probgen.graph import model_graph

    try:
        return model_graph(inputs.bound_model(spec.model), inputs.observed)
    except Exception as exc:  # noqa: BLE001  (any failure of the reading, named in the report)
        if strict:
            raise
        return {"error": f"{type(exc).__name__}: {exc}"}


def rerun_noncentred(method, problem, settings: dict, result):
    """`--reparam auto`: when the run diverged and its divergent draws sit at the small values
    of a scale (`diagnostics.funnel_sites`), rerun once with the hierarchical sites that depend on
    that scale non-centred, and keep the run with fewer divergences. Returns (problem, result)
    of the chosen run; its facts["reparam"] says what was found, tried and chosen, and the other
    run's draws travel as the groups unchosen_posterior and unchosen_sample_stats (nothing
    computed is lost). With a checkpoint folder the first run's files wait in first_run/ while
    the rerun streams into the folder, and the chosen run's final sampler state ends in place."""
    import dataclasses

    from probgen.checks import diagnostics
    from probgen.infer import durable, reparam

    diverging = np.asarray(result.sample_stats.get("diverging", np.zeros(1, bool)), bool)
    record = {"requested": "auto", "divergences": int(diverging.sum())}
    if not diverging.any():
        result.facts["reparam"] = {**record, "rerun": False, "reason": "no divergent transitions"}
        return problem, result
    inputs = problem.inputs
    hierarchical = reparam.hierarchical_sites(inputs.bound_model(problem.spec.model), inputs.observed)
    funnel = diagnostics.funnel_sites(result.posterior, diverging, names=problem.structure.latent)
    sites = reparam.sites_for_funnel(hierarchical, funnel)
    record.update(funnel=funnel, sites=sites)
    if not sites:
        reason = ("the divergent draws do not concentrate at small values of any positive parameter" if not funnel
                  else "no hierarchical location-scale site depends on "
                  + ", ".join(sorted({f['site'] for f in funnel})))
        result.facts["reparam"] = {**record, "rerun": False, "reason": reason}
        return problem, result
    spec, _ = reparam.noncentre_spec(problem.spec, inputs, sites)
    structure = model_structure(inputs.bound_model(spec.model), inputs.observed)
    checkpoint = problem.checkpoint
    if checkpoint is not None:  # the first run's chunks and final state wait in first_run/
        request = durable.read_checkpoint(checkpoint.folder)["request"]
        durable.set_aside(checkpoint.folder, "first_run")
        checkpoint = durable.open_checkpoint(checkpoint.folder, request, resume=False, method=method)
    rerun_problem = dataclasses.replace(problem, spec=spec, structure=structure, checkpoint=checkpoint)
    if problem.progress:
        import sys

        print(f"probgen: {record['divergences']} divergent transitions; {diagnostics.describe_funnel(funnel)}: "
              f"rerunning with {', '.join(sites)} non-centred", file=sys.stderr)
    rerun = method.run(rerun_problem, settings)
    rerun_divergences = int(np.asarray(rerun.sample_stats["diverging"]).sum())
    chosen = rerun_divergences < record["divergences"]
    record.update(rerun=True, rerun_divergences=rerun_divergences, chosen="noncentred" if chosen else "centred")
    keep, other = ((rerun_problem, rerun), result) if chosen else ((problem, result), rerun)
    if checkpoint is not None and not chosen:  # the first run's final state back in place
        durable.set_aside(checkpoint.folder, "rerun")
        durable.bring_back(checkpoint.folder, "first_run")
    kept = dataclasses.replace(keep[1], facts={**keep[1].facts, "reparam": record},
                               groups={**keep[1].groups, **unchosen_groups(other)})
    return keep[0], kept


def unchosen_groups(other) -> dict:
    """The unchosen run's draws and sampler statistics as InferenceData groups."""
    converted = az.from_dict(posterior=dict(other.posterior), sample_stats=dict(other.sample_stats))
    return {"unchosen_posterior": converted.posterior, "unchosen_sample_stats": converted.sample_stats}


def results(method, problem, settings: dict, result, reference: str | None, timings: dict) -> Fit:
    """The `Fit` of a method's `Result`: InferenceData with predictive draws and log-likelihood
    (`to_inference_data`). If that fails, the draws are kept and the failed step named."""
    start = time.perf_counter()
    failures = []
    try:
        idata = to_inference_data(problem, result)
    except Exception as exc:  # the draws are worth more than the step that failed: keep them
        failures.append({"step": "results (predictive draws, log-likelihood, prior predictive)"
                         if problem.structure is not None else "results (the parts' data and the method's groups)",
                         "error": user_exception(exc, problem.spec.model) or f"{type(exc).__name__}: {exc}"})
        idata = (draws_only(result.posterior, result.sample_stats, result.optimization, problem.structure)
                 if problem.structure is not None else az.InferenceData(posterior=result.posterior))
    return Fit(
        idata=idata,
        spec=problem.spec,
        inputs=problem.inputs,
        method=method.command_name,
        settings=settings,
        seed=problem.seed,
        options=problem.options,
        model_reference=reference or problem.spec.name,
        dataset=problem.dataset,
        timings={**timings, "results": time.perf_counter() - start},
        failures=failures,
        facts={"method": method.name, **result.facts},
    )


def stored_fit(folder, progress: bool = False) -> tuple[Fit, dict]:
    """The `Fit` of the draws a checkpoint folder holds (a run stopped early, or still
    running), rebuilt from its request: the data prepared again, the results built as a
    finished fit's. Returns (fit, progress record {"draws", "of", "chunks", "damaged"})."""
    from probgen.infer import durable, methods

    saved = durable.read_checkpoint(folder)
    if saved is None:
        raise InferenceError(f"'{folder}' holds no checkpoint of a run (checkpoint.json is missing)")
    request = saved["request"]
    method = methods.get(saved["method"])
    if not method.stores_draws:
        raise InferenceError(f"'{folder}' holds an unfinished {method.describe()} run: its draws come from the fitted "
                             f"approximation once it finishes; carry on with --resume {folder}")
    from probgen.runs.resume import data_to_read, model_to_load

    spec = as_spec(model_to_load(request, folder))
    options, settings = request["options"], method.resolve(request["settings"])
    data_source = data_to_read(request, folder)
    dataset, parts = load_parts(spec, data_source, options, seed=request["seed"], holdout=request["holdout"],
                                columns=request["data"].get("columns"),
                                standardize=request["data"].get("standardize", False), sets=request["data"].get("sets"))
    if dataset.sha256 != request["data"]["sha256"]:
        raise InferenceError(f"the data in '{data_source}' changed since the run in '{folder}' started "
                             "(different values): the report would pair its draws with other data")
    stored = durable.ChainStore(folder).read(saved.get("base_draws", 0))
    if not stored.samples:
        raise InferenceError(f"'{folder}' holds no draws yet: the run stopped during warm-up "
                             f"({stored.done} of {settings['warmup']} warm-up iterations saved); carry on with "
                             f"--resume {folder}")
    inputs = parts["training"]
    structure = user_code(spec, lambda: model_structure(inputs.bound_model(spec.model), inputs.observed))
    problem = methods.Problem(spec, options, parts, dataset, int(request["seed"]),
                              methods.Keys.from_seed(request["seed"]), structure, progress)
    fit = results(method, problem, settings, methods.Result(stored.samples, stored.stats), request["model"], {})
    return fit, {"draws": stored.num_draws, "of": int(settings["draws"]), "chunks": stored.chunks,
                 "damaged": stored.damaged}
