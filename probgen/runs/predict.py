"""The posterior predictive of any model bound by name at new inputs (`probgen predict`).

The new data give the model's inputs by name (a JSON, NPZ or table file, as for `probgen fit`);
arguments they lack are passed as None, which is what a model written `y=None` expects for the
values to predict. Every observed site of the model is then drawn under each posterior draw
(un-conditioned, so `obs=y` models need no change), and summarised per element: mean, sd and
the 5%, 50% and 95% quantiles.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from probgen.errors import ModelError

QUANTILES = (0.05, 0.5, 0.95)


def posterior_predictive_at(spec, idata, data, rng_key, sets=None):
    """(table, xarray Dataset of draws): the posterior predictive of every observed site of
    `spec`'s model at the inputs `data`, under the run's posterior draws `idata.posterior`."""
    from probgen.data import binding
    from probgen import data as data_module
    from probgen.infer import user_code
    from probgen.infer.results import model_structure, predictions_and_log_likelihood
    from probgen.tracing import is_imputation

    named = data_module.load_named(data, sets)
    required, _ = binding.model_arguments(spec.model)
    missing = [name for name in required if name not in named.values]
    inputs = binding.bind(spec.model, dataclasses.replace(named, values={**named.values, **{m: 0 for m in missing}}))
    inputs = dataclasses.replace(inputs, kwargs={**inputs.kwargs, **{m: None for m in missing}})
    model = inputs.bound_model(spec.model)

    def explain(step):
        try:
            return user_code(spec, step)
        except ModelError as exc:
            lacking = f" (the new data lack {', '.join(missing)}, passed as None)" if missing else ""
            raise ModelError(f"prediction at the new inputs failed{lacking}: {exc}") from exc

    structure = explain(lambda: model_structure(model, {}))
    # the sites observed in the fit that the new data do not give: drawn here (the new data may
    # give them, as a Gaussian process's training data beside its new inputs: then they condition)
    fitted = tuple(name for name in (idata.observed_data.data_vars if "observed_data" in idata.groups() else ())
                   if not name.endswith("_mask"))
    if not fitted:
        raise ModelError(f"{spec.name} had no observed sites in its fit: nothing to predict")
    posterior = idata.posterior
    # latent sites at the new inputs that the fit never had (a GP's values at new inputs, drawn
    # from their conditional given the training data) are predictions too, as is an obs_mask
    # imputation (`<x>_unobserved`), which belongs to the fitted rows and is drawn afresh
    new_quantities = tuple(name for name in structure.latent if name not in posterior and name not in fitted)
    sites = tuple(name for name in fitted if name not in structure.observed) + new_quantities
    if not sites:
        raise ModelError(f"the new data give every observed site of {spec.name} ({', '.join(fitted)}) and the model "
                         "draws nothing new: nothing to predict")
    latent = [name for name in structure.latent if name not in sites and not is_imputation(name, fitted)]
    flat = {name: posterior[name].values.reshape((-1,) + posterior[name].shape[2:]) for name in latent}
    predicted, _ = explain(lambda: predictions_and_log_likelihood(model, flat, {}, rng_key,
                                                                  tuple(n for n in sites if n in fitted)))
    sites = tuple(name for name in sites if not is_imputation(name, fitted))
    rows, draws = [], {}
    for site in sites:
        values = np.asarray(predicted[site])
        draws[site] = values
        flat_values = values.reshape(values.shape[0], -1)
        quantiles = np.quantile(flat_values, QUANTILES, axis=0)
        for index in range(flat_values.shape[1]):
            position = np.unravel_index(index, values.shape[1:]) if values.ndim > 1 else ()
            rows.append({"site": site, "index": ",".join(map(str, position)),
                         "mean": float(flat_values[:, index].mean()), "sd": float(flat_values[:, index].std()),
                         **{f"q{round(100 * q)}": float(v) for q, v in zip(QUANTILES, quantiles[:, index])}})
    import xarray as xr

    dataset = xr.Dataset({site: (("draw",) + tuple(f"{site}_dim_{i}" for i in range(values.ndim - 1)), values)
                          for site, values in draws.items()})
    return pd.DataFrame(rows), dataset
