"""`Fit` and the one InferenceData builder that every inference method goes through
(`to_inference_data`, from the `Problem` the driver posed and the method's `Result`).

A method that draws the model's latent sites produces draws with leading (chain, draw) axes;
`build_inference_data` turns them into an `arviz.InferenceData` the same way for all of them:
deterministic sites and the posterior predictive from one `Predictive` pass, the pointwise
log-likelihood of every observed site, and the observed data read from a trace of the model.
Downstream code therefore treats MCMC, SVI, MAP and Pathfinder alike. A method that does not
trace the model (a trainer, an exact update, a game) gives its posterior group as it stands;
the builder adds each part's data and the method's own groups (`parts_inference_data`).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import platform
import warnings
from typing import Any, Mapping

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from numpyro import handlers
from numpyro.infer import Predictive

from probgen.checks import NOTES_ATTRIBUTE
from probgen.spec import ModelInputs, ModelSpec
from probgen.tracing import ModelStructure, is_imputation, model_structure, uncondition  # noqa: F401  (read from here too)


@dataclasses.dataclass
class Fit:
    """The result of `probgen.fit`.

    idata:    posterior (chain, draw, ...), sample_stats, observed_data, log_likelihood,
              posterior_predictive; SVI and MAP add an `optimization` group (loss per step).
    spec, inputs, dataset: what was fitted, on what.
    method, settings, seed, options: how; `config()` gives all of it for config.json.
    facts:    what happened (the method's `Result.facts`: steps run, convergence, Pareto k, the
              registered method that ran), kept apart from the settings asked for.
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
    failures: list = dataclasses.field(default_factory=list)  # [{"step": ..., "error": ...}] after inference
    facts: dict = dataclasses.field(default_factory=dict)

    def config(self) -> dict:
        """Everything needed to reproduce this fit, as JSON-ready values."""
        return {
            "model": {"name": self.spec.name, "reference": self.model_reference, "options": self.options},
            "data": ({**self.dataset.config(), **({"unused": list(self.inputs.unused)} if self.inputs.unused else {}),
                      **({"missing": dict(self.inputs.missing)} if self.inputs.missing else {})}
                     if self.dataset is not None else None),
            "method": self.method,
            "settings": self.settings,
            "facts": self.facts,
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


def pointwise_log_likelihood(model, flat_samples: dict, observed: dict, sites: tuple[str, ...]):
    """log p(y_site | theta) elementwise for each observed site in `sites`, under each draw
    (leading axis of `flat_samples`). `factor` terms are left out: they are not observations."""

    def one(sample):
        trace = handlers.trace(handlers.substitute(handlers.seed(model, 0), data=sample)).get_trace(**observed)
        return {name: trace[name]["fn"].log_prob(trace[name]["value"]) for name in sites}

    return jax.vmap(one)(flat_samples)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _predict_and_score(model, rng_key, flat_samples, observed, sites):
    unobserved = {name: None for name in observed}
    predicted = Predictive(uncondition(model, sites), posterior_samples=flat_samples, parallel=True)(rng_key, **unobserved)
    pointwise = pointwise_log_likelihood(model, flat_samples, observed, sites)
    return predicted, pointwise


@functools.partial(jax.jit, static_argnums=(0, 3))
def _discrete_draws(model, rng_key, flat_samples, sites):
    return Predictive(model, posterior_samples=flat_samples, infer_discrete=True, return_sites=list(sites))(rng_key)


def local_discrete_sites(structure: ModelStructure) -> bool:
    """Whether each discrete site sits in exactly the plates of the one observed site (a per-row
    assignment, as in a mixture): then log p(y_i | theta) sums out row i's own discrete values
    alone, and LOO applies."""
    if len(structure.observed) != 1:
        return False
    plates = structure.plates.get(next(iter(structure.observed)), ())
    return bool(plates) and all(structure.plates.get(name) == plates for name in structure.discrete)


def enumerated_log_likelihood(model, flat_samples: dict, observed: dict, structure: ModelStructure) -> dict:
    """log p(y_i | theta) for each element i of the one observed site of a model whose discrete
    sites are local to its rows (`local_discrete_sites`), under each draw: the joint of y_i and
    row i's discrete values, enumerated by NumPyro's funsor, summed over those values."""
    from numpyro.contrib.funsor import config_enumerate, enum, trace as enum_trace

    site = next(iter(structure.observed))
    batch_ndim = len(structure.plates[site])
    first_dim = -max(len(plates) for plates in structure.plates.values()) - 1

    def one(sample):
        enumerated = enum(config_enumerate(handlers.substitute(model, data=sample)), first_available_dim=first_dim)
        trace = enum_trace(enumerated).get_trace(**observed)
        total = trace[site]["fn"].log_prob(trace[site]["value"])
        for name in structure.discrete:
            total = total + trace[name]["fn"].log_prob(trace[name]["value"])
        enumerated_axes = tuple(range(jnp.ndim(total) - batch_ndim))
        return jax.nn.logsumexp(total, axis=enumerated_axes) if enumerated_axes else total

    return {site: np.asarray(jax.jit(jax.vmap(one))(flat_samples))}


def predictions_and_scores(model, flat_samples: dict, observed: dict, rng_key, structure: ModelStructure):
    """`predictions_and_log_likelihood` for the model's observed sites; with discrete sites, the
    log-likelihood sums them out (`enumerated_log_likelihood`) or, when they are not local to
    the rows, is left out (no pointwise log-likelihood exists)."""
    sites = tuple(structure.observed)
    predicted, pointwise = predictions_and_log_likelihood(
        model, flat_samples, observed, rng_key, sites,
        values_per_draw=sum(int(np.size(value)) for value in structure.observed.values()))
    if structure.discrete:  # log p(y | theta) needs the discrete sites summed out, not drawn
        pointwise = (enumerated_log_likelihood(model, flat_samples, observed, structure)
                     if local_discrete_sites(structure) else {})
    return predicted, pointwise


def discrete_posterior(model, flat_samples: dict, rng_key, sites: tuple[str, ...]) -> dict:
    """A draw of each discrete latent site from p(z | y, theta) under each posterior draw of the
    continuous sites theta (NumPyro's `infer_discrete`, by enumeration): the discrete sites that
    NUTS summed out, recovered."""
    return {k: np.asarray(v) for k, v in _discrete_draws(model, rng_key, flat_samples, tuple(sites)).items()}


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _prior_draws(model, rng_key, unobserved, num_draws, sites):
    return Predictive(uncondition(model, sites), num_samples=num_draws)(rng_key, **unobserved)


PRIOR_DRAWS = 500


def prior_and_prior_predictive(model, observed: dict, rng_key, num_draws: int = PRIOR_DRAWS, sites=None):
    """Draws of every site from the prior (latent, deterministic and data), one compiled program.
    sites: the observed sites to draw (default: the keys of `observed`)."""
    sites = tuple(sorted(observed if sites is None else sites))
    drawn = _prior_draws(model, rng_key, {name: None for name in observed}, num_draws, sites)
    return {k: np.asarray(v) for k, v in drawn.items()}


# values of the observed sites per compiled batch of draws: 2**25 float32s, 128 MB per array
PREDICTION_ELEMENTS = 2**25


def predictions_and_log_likelihood(model, flat_samples: dict, observed: dict, rng_key, sites=None,
                                   values_per_draw: int | None = None):
    """Posterior predictive draws (and deterministic sites) and pointwise log-likelihoods of
    the observed sites `sites` (default: the keys of `observed`).

    One compiled program for both, compiled once per model object: an eager `Predictive`
    would compile each primitive on its own, which costs seconds on a cold start. On large data
    (draws x observed values above `PREDICTION_ELEMENTS`) the draws go through it in batches,
    so the device holds one batch's intermediates, not every draw's; batch i draws with
    fold_in(rng_key, i), one batch is the unbatched program. values_per_draw: the observed
    sites' size (default: that of `observed`'s entries; a model bound by name holds its data in
    its keyword arguments).
    """
    sites = tuple(sorted(observed if sites is None else sites))
    num_draws = int(np.shape(next(iter(flat_samples.values())))[0]) if flat_samples else 1
    if values_per_draw is None:
        values_per_draw = sum(int(np.size(observed[name])) for name in sites if observed.get(name) is not None)
    per_draw = max(1, int(values_per_draw))
    batch = max(1, min(num_draws, PREDICTION_ELEMENTS // per_draw))
    if batch >= num_draws:
        predicted, pointwise = _predict_and_score(model, rng_key, flat_samples, dict(observed), sites)
        return ({k: np.asarray(v) for k, v in predicted.items()}, {k: np.asarray(v) for k, v in pointwise.items()})
    pieces = []
    for index, start in enumerate(range(0, num_draws, batch)):
        part = {k: v[start:start + batch] for k, v in flat_samples.items()}
        predicted, pointwise = _predict_and_score(model, jax.random.fold_in(rng_key, index), part, dict(observed),
                                                  sites)
        pieces.append((jax.device_get(predicted), jax.device_get(pointwise)))
    join = lambda index: {k: np.concatenate([np.asarray(piece[index][k]) for piece in pieces])  # noqa: E731
                          for k in pieces[0][index]}
    return join(0), join(1)


def _leading_dims(dims: Mapping[str, list[str]], name: str, ndim: int) -> list[str] | None:
    names = dims.get(name)
    return None if names is None else list(names)[:ndim]


def missing_entries(observed: Mapping[str, Any], latent: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """{observed site: its NaN entries (bool, the site's shape)} for each site NumPyro's
    `obs_mask` split into `<x>_observed` (NaN where the data are missing) and `<x>_unobserved`."""
    found = {}
    for name, value in observed.items():
        base = name[: -len("_observed")] if name.endswith("_observed") else None
        value = np.asarray(value)
        if base and f"{base}_unobserved" in latent and value.dtype.kind == "f" and np.isnan(value).any():
            found[name] = np.isnan(value)
    return found


def _with_masks(group: xr.Dataset, inputs: ModelInputs, extra: Mapping[str, Any] | None = None) -> xr.Dataset:
    """`group` with `<name>_mask` beside each observed variable that `inputs.masks` (or
    `extra`) covers, over the variable's leading (row) dims."""
    for name, mask in {**inputs.masks, **(extra or {})}.items():
        if name in group:
            mask = np.asarray(mask, bool)
            group[f"{name}_mask"] = (group[name].dims[: mask.ndim], mask)
    return group


def _label_group(inputs: ModelInputs) -> xr.Dataset | None:
    """`inputs.labels` that are arrays (numbers or text) as a Dataset, dims from `inputs.dims`
    (default: the rows, then the label's own axes); None when there are none."""
    variables = {}
    for name, value in inputs.labels.items():
        array = np.asarray(value)
        if array.ndim >= 1 and array.dtype.kind in "iufbUS":
            dims = inputs.dims.get(name) or ["obs_id"] + [f"{name}_dim_{i}" for i in range(1, array.ndim)]
            variables[name] = (list(dims), array)
    return xr.Dataset(variables) if variables else None


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

    sites = tuple(observed)
    notes = structure_notes(structure)
    predicted, pointwise = predictions_and_scores(model, flat, inputs.observed, rng_key, structure)

    def by_chain(array):
        return array.reshape((chains, draws) + array.shape[1:])

    posterior = dict(samples)
    # obs_mask: `<x>_unobserved` spans every entry, but only the missing ones are parameters
    # (the rest have a masked, flat density and wander); the posterior keeps those, over a
    # `<x>_missing` dim of their flat indices, and the checks skip the missing rows of `<x>_observed`
    missing = missing_entries(observed, posterior)
    coords, dims, row_masks = dict(inputs.coords), dict(inputs.dims), {}
    for name, where in missing.items():
        base = name[: -len("_observed")]
        flat_where = where.reshape(-1)
        values = np.asarray(posterior[f"{base}_unobserved"])
        posterior[f"{base}_unobserved"] = values.reshape(values.shape[:2] + (-1,))[..., flat_where]
        coords[f"{base}_missing"] = np.flatnonzero(flat_where)
        dims[f"{base}_unobserved"] = [f"{base}_missing"]
    # entries that are not data: NaN ones (obs_mask's <x>_observed, a model that masks its own
    # NaNs) and those the model imputes itself (`structure.imputed`, shown as NaN): the checks and
    # LOO skip their rows, and the observed_data group says how each site treated them
    observed = {name: np.where(structure.imputed[name], np.nan, value) if name in structure.imputed else value
                for name, value in observed.items()}
    treated = {}
    for name, value in observed.items():
        value = np.asarray(value)
        where = np.isnan(value) if value.dtype.kind == "f" else np.zeros(value.shape, bool)
        if not where.any() or value.ndim == 0:
            continue
        row_masks[name] = ~where.reshape(where.shape[0], -1).any(axis=1)
        how = ("obs_mask" if name in missing else "imputed" if name in structure.imputed else "masked")
        treated[name] = {"entries": int(where.sum()), "rows": int((~row_masks[name]).sum()), "how": how,
                         "by": ([f"{name[: -len('_observed')]}_unobserved"] if name in missing
                                else list(structure.imputed_by.get(name, ())))}
    posterior_predictive = {}
    for name, value in predicted.items():
        if name in observed:
            posterior_predictive[name] = by_chain(value)
        elif name in structure.deterministic and name not in posterior:
            posterior[name] = by_chain(value)
    for name in missing:  # obs_mask's deterministic <x> interleaves data (here redrawn) and imputations,
        posterior.pop(name[: -len("_observed")], None)  # which <x>_unobserved holds: not kept

    log_lik = {name: by_chain(value) for name, value in pointwise.items()}

    with warnings.catch_warnings():
        # ArviZ warns about dims it has to invent; those are fine for our purposes
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=dict(sample_stats) if sample_stats else None,
            posterior_predictive=posterior_predictive or None,
            observed_data=observed,
            coords=coords,
            dims=dims,
        )
        if log_lik:
            ll_dims = {name: _leading_dims(inputs.dims, name, value.ndim - 2) for name, value in log_lik.items()}
            ll_idata = az.from_dict(
                log_likelihood=log_lik,
                coords=dict(inputs.coords),
                dims={k: v for k, v in ll_dims.items() if v is not None},
            )
            idata.extend(ll_idata)
        drawn = None
        if prior_draws and structure.improper:
            notes["prior_predictive"] = (f"the prior of {', '.join(structure.improper)} is improper (ImproperUniform): "
                                         "data cannot be drawn from the prior, so there is no prior predictive check")
        elif prior_draws:
            try:
                drawn = prior_and_prior_predictive(model, inputs.observed, jax.random.fold_in(rng_key, 2), prior_draws,
                                                   sites)
            except NotImplementedError as exc:  # a distribution without a sampler
                notes["prior_predictive"] = f"the prior cannot be drawn from ({type(exc).__name__}: {exc})"
        if drawn is not None:
            prior_idata = az.from_dict(
                prior={k: v[None] for k, v in drawn.items()
                       if k in structure.latent or k in structure.deterministic or k in structure.discrete},
                prior_predictive={k: v[None] for k, v in drawn.items() if k in observed},
                coords=dict(inputs.coords),
                dims=dict(inputs.dims),
            )
            idata.extend(prior_idata)
        if held_out is not None:
            key = jax.random.fold_in(rng_key, 1)
            held_model = held_out.bound_model(spec.model)
            # obs_mask's imputations belong to the training rows: drawn afresh for the held-out ones
            held_flat = {k: v for k, v in flat.items() if not is_imputation(k, observed)}
            held_predicted, held_pointwise = predictions_and_scores(held_model, held_flat, held_out.observed, key,
                                                                    structure)
            # the held-out rows' values as the model observes them (a model bound by name
            # computes its observations from its arguments)
            held_values = model_structure(held_model, held_out.observed).observed
            held_dims = {name: _leading_dims(held_out.dims, name, value.ndim - 1)
                         for name, value in held_pointwise.items()}
            held_ll = az.from_dict(log_likelihood={name: by_chain(value) for name, value in held_pointwise.items()},
                                   coords=dict(held_out.coords), dims={k: v for k, v in held_dims.items() if v is not None})
            held_data = az.from_dict(observed_data={name: np.asarray(held_values[name]) for name in held_pointwise},
                                     coords=dict(held_out.coords), dims=dict(held_out.dims))
            # draws of the held-out rows (and deterministic sites there) from the posterior predictive
            held_predictive = az.from_dict(posterior_predictive={name: by_chain(value) for name, value in held_predicted.items()},
                                           coords=dict(held_out.coords), dims=dict(held_out.dims))
            idata.add_groups(held_out_log_likelihood=held_ll.log_likelihood,
                             held_out_data=_with_masks(held_data.observed_data, held_out),
                             held_out_predictive=held_predictive.posterior_predictive)
            labels = _label_group(held_out)
            if labels is not None:  # what describes the held-out rows (a recommender's user and item codes)
                idata.add_groups(held_out_labels=labels)
        if inputs.masks or row_masks:
            idata.observed_data = _with_masks(idata.observed_data, inputs, row_masks)
        if treated:
            idata.observed_data.attrs["missing"] = json.dumps(treated)
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
        log_prior = _log_prior_group(model, flat, inputs.observed, structure, by_chain)
        if log_prior is not None:
            idata.add_groups(log_prior=log_prior)
        if structure.discrete:
            drawn = discrete_posterior(model, flat, jax.random.fold_in(rng_key, 4), structure.discrete)
            discrete = az.from_dict(posterior={k: by_chain(v) for k, v in drawn.items()}).posterior
            idata.add_groups(discrete_posterior=discrete)
    if notes:
        idata.posterior.attrs[NOTES_ATTRIBUTE] = json.dumps(notes)
    return idata


def _log_prior_group(model, flat: dict, observed: dict, structure: ModelStructure, by_chain):
    """The `log_prior` group: each latent site's log prior density under each draw
    (`tracing.log_prior_terms`), with the improper ones named in its attrs; None when the model
    cannot be traced that way (the report then says why there is no sensitivity check)."""
    from probgen.tracing import log_prior_terms

    sites = [name for name in structure.latent if name in flat]
    if not sites:
        return None
    try:
        terms = log_prior_terms(model, {k: v for k, v in flat.items() if k in sites}, observed, sites)
    except Exception:  # noqa: BLE001 (a model that will not trace with its draws substituted)
        return None
    shaped = {name: by_chain(value) for name, value in terms.items()}
    chains, draws = shaped[sites[0]].shape
    group = xr.Dataset({name: (("chain", "draw"), value) for name, value in shaped.items()},
                       coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    group.attrs["improper"] = json.dumps(list(structure.improper))
    try:  # sites whose prior depends on other latent sites: the model's structure, not a prior choice
        from probgen.infer.reparam import relations

        found = relations(model, observed)
        latent = set(sites)
        group.attrs["hierarchical"] = json.dumps(sorted(site for site in sites
                                                        if set(found["sample_sample"].get(site, ())) & latent))
    except Exception:  # noqa: BLE001 (NumPyro could not read the relations: every prior is scaled)
        pass
    return group


def draws_only(samples: Mapping[str, Any], sample_stats=None, optimization=None,
               structure: ModelStructure | None = None) -> az.InferenceData:
    """The draws as they came from inference (posterior and sample statistics, the loss per
    step), with nothing derived: what is saved when building the full results failed."""
    latent = {k: np.asarray(v) for k, v in samples.items() if structure is None or k in structure.latent}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = az.from_dict(posterior=latent, sample_stats=dict(sample_stats) if sample_stats else None)
    if optimization:
        idata.add_groups(optimization=xr.Dataset({k: ("step", np.asarray(v)) for k, v in optimization.items()}))
    return idata


def structure_notes(structure: ModelStructure) -> dict[str, str]:
    """Checks that cannot apply to a model, each with the reason (the report prints them)."""
    notes = {}
    if structure.discrete and not local_discrete_sites(structure):
        notes["loo"] = (f"the discrete sites {', '.join(structure.discrete)} are summed out (enumerated) but are not "
                        "local to the rows of one observed site, so the data do not split into pointwise "
                        "log-likelihoods for LOO and WAIC")
    elif not structure.observed and structure.factors:
        notes["loo"] = (f"the likelihood is all in factor terms ({', '.join(structure.factors)}); LOO and WAIC need "
                        "pointwise log-likelihoods of observed sample sites")
    elif not structure.observed:
        notes["loo"] = "the model has no observed sites: nothing to predict, so no LOO, WAIC or predictive checks"
    if structure.computed:
        names = ", ".join(f"'{name}'" for name in structure.computed)
        notes["predictive"] = (f"the observed value of {names} is computed from the parameters (obs = f(data, "
                               "parameters)), not fixed data: there is nothing fixed for the predictive checks and "
                               "the generated-against-observed tests to compare with")
    if structure.factors and structure.observed:
        notes["factors"] = (f"factor terms ({', '.join(structure.factors)}) are part of the posterior but not "
                            "observations: LOO, WAIC and the predictive checks use the observed sites only")
    return notes



def to_inference_data(problem, result) -> az.InferenceData:
    """The InferenceData of a method's `Result` on the `Problem` the driver posed: through
    `build_inference_data` (predictive draws, log-likelihood, the held-out part's scores) when
    the driver traced the model, else the method's posterior group with every part's data
    (`parts_inference_data`). The method's own groups are added either way."""
    optimization = result.optimization
    groups = dict(result.groups)
    if isinstance(optimization, xr.Dataset):  # a trainer's own record (evaluations, not steps)
        groups["optimization"], optimization = optimization, None
    if problem.structure is None:
        if optimization:
            groups["optimization"] = xr.Dataset({k: ("step", np.asarray(v)) for k, v in optimization.items()})
        return parts_inference_data(result.posterior, problem.parts, groups)
    idata = build_inference_data(problem.spec, problem.inputs, result.posterior, problem.keys.results,
                                 sample_stats=result.sample_stats, optimization=optimization,
                                 structure=problem.structure, held_out=problem.parts.get("held_out"))
    if groups:
        idata.add_groups(groups)
    return idata


def _part_dims(inputs, name: str, value) -> list[str]:
    return list(inputs.dims.get(name, ["obs_id", "feature"][:np.ndim(value)] +
                                [f"{name}_dim_{i}" for i in range(2, np.ndim(value))]))


def data_groups(inputs: Mapping[str, ModelInputs]) -> dict:
    """validation_data, held_out_data (and anomaly_data) groups: each part's observed values
    and labels."""
    groups = {}
    for part, group in (("validation", "validation_data"), ("held_out", "held_out_data"), ("anomaly", "anomaly_data")):
        if part in inputs:
            part_inputs = inputs[part]
            groups[group] = xr.Dataset({name: (_part_dims(part_inputs, name, value), np.asarray(value))
                                        for name, value in part_inputs.observed.items()},
                                       coords={k: v for k, v in part_inputs.coords.items() if k != "obs_id"})
            for name, value in part_inputs.labels.items():
                groups[group][name] = (_part_dims(part_inputs, name, value), np.asarray(value))
    return groups


def parts_inference_data(posterior: xr.Dataset, inputs: Mapping[str, ModelInputs], groups: Mapping) -> az.InferenceData:
    """The InferenceData of a method that does not trace the model: `posterior` (a Dataset with
    (chain, draw) dims), the training rows as observed_data (with their labels), every other
    part's data (`data_groups`) and the method's `groups`."""
    train = inputs["training"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = az.InferenceData(posterior=posterior)
        observed = az.from_dict(observed_data=dict(train.observed), coords=dict(train.coords), dims=dict(train.dims))
    idata.add_groups({"observed_data": observed.observed_data, **data_groups(inputs), **groups})
    for name, value in train.labels.items():
        idata.observed_data[name] = (_part_dims(train, name, value), np.asarray(value))
    return idata
