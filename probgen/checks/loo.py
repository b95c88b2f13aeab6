"""Predictive fit of a model to its own data and model comparison: LOO and WAIC through ArviZ.

Functions take InferenceData and return numbers, tables and plain-words readings; they never
write files.
"""

from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd

PARETO_K_BAD = 0.7


def _single_log_likelihood(idata) -> str | None:
    names = list(idata.log_likelihood.data_vars) if "log_likelihood" in idata.groups() else []
    return names[0] if len(names) == 1 else None


def without_padding(idata: az.InferenceData) -> az.InferenceData:
    """`idata` with the padded steps of (sequence, time) observations dropped from its
    log_likelihood (by `<name>_mask` in observed_data): their log-likelihood is 0 under every
    draw, which is not a data point, and PSIS reads such a constant as Pareto k = inf. Each
    such variable's real steps become one `<name>_point` dim. Unmasked data pass through."""
    if "log_likelihood" not in idata.groups() or "observed_data" not in idata.groups():
        return idata
    masked = [name for name in idata.log_likelihood.data_vars if f"{name}_mask" in idata.observed_data]
    if not masked:
        return idata
    import xarray as xr

    variables = {}
    for name, variable in idata.log_likelihood.data_vars.items():
        if name in masked:
            keep = np.asarray(idata.observed_data[f"{name}_mask"].values, bool).ravel()
            values = variable.values.reshape(variable.shape[:2] + (-1,))[:, :, keep]
            variable = xr.DataArray(values, dims=("chain", "draw", f"{name}_point"),
                                    coords={"chain": variable["chain"], "draw": variable["draw"]})
        variables[name] = variable
    groups = {"log_likelihood": xr.Dataset(variables), "observed_data": idata.observed_data}
    if "posterior" in idata.groups():  # ArviZ's LOO reads the chains' relative ESS from it
        groups["posterior"] = idata.posterior
    return az.InferenceData(**groups)


def _one_log_likelihood(idata: az.InferenceData) -> az.InferenceData:
    """`idata` with its observed sites' pointwise log-likelihoods as one variable: a model with
    several observed sites (y and z, or a scalar and a vector) is scored one observation at a
    time over all of them (each element of each site a point of leave-one-out)."""
    import xarray as xr

    variables = idata.log_likelihood.data_vars
    if len(variables) <= 1:
        return idata
    chains, draws = idata.log_likelihood.sizes["chain"], idata.log_likelihood.sizes["draw"]
    values = np.concatenate([v.values.reshape(chains, draws, -1) for v in variables.values()], axis=2)
    groups = {"log_likelihood": xr.Dataset({"observations": (("chain", "draw", "observation"), values)})}
    if "posterior" in idata.groups():
        groups["posterior"] = idata.posterior
    return az.InferenceData(**groups)


def predictive_metrics(idata: az.InferenceData, reason: str | None = None) -> dict:
    """Predictive fit of the model to its own data.

    lppd: log pointwise predictive density (in sample, nats). elpd_loo, se, p_loo: PSIS-LOO
    estimate of the out-of-sample elpd (nats), its standard error and the effective number of
    parameters; pareto_k_bad lists the points whose PSIS k exceeds 0.7 (LOO unreliable there).
    elpd_waic likewise. Point estimates (one draw) get the log-likelihood only. Several observed
    sites are scored together, one observation a point.
    reason: why a run without pointwise log-likelihoods has none (the report prints it).
    """
    if "log_likelihood" not in idata.groups():
        return {"available": False, "reason": reason or "no pointwise log-likelihood was computed"}
    idata = _one_log_likelihood(without_padding(idata))
    var_name = _single_log_likelihood(idata)
    log_lik = idata.log_likelihood[var_name]
    values = log_lik.values.reshape(log_lik.shape[0] * log_lik.shape[1], -1)
    num_draws, num_points = values.shape
    lppd = float(np.sum(np.logaddexp.reduce(values, axis=0) - np.log(num_draws)))
    metrics = {
        "num_points": int(num_points),
        "lppd": lppd,
        "lppd_per_point": lppd / num_points,
    }
    if num_draws < 100:
        metrics["loo"] = {"available": False, "reason": f"{num_draws} draw(s): LOO needs a posterior sample"}
        return metrics
    if num_points < 2:
        metrics["loo"] = {"available": False, "reason": "one observation: leaving it out leaves nothing to fit"}
        return metrics
    with warnings.catch_warnings():
        # ArviZ warns of Pareto k > 0.7 and of WAIC's variance; both are reported point by point below
        warnings.simplefilter("ignore")
        loo = az.loo(idata, var_name=var_name, pointwise=True)
        waic = az.waic(idata, var_name=var_name)
    pareto_k = np.asarray(loo.pareto_k).reshape(-1)
    bad = np.flatnonzero(pareto_k > PARETO_K_BAD)
    metrics["loo"] = {
        "elpd_loo": float(loo.elpd_loo),
        "se": float(loo.se),
        "p_loo": float(loo.p_loo),
        "elpd_loo_per_point": float(loo.elpd_loo) / num_points,
        "pareto_k_max": float(pareto_k.max()),
        "pareto_k_bad": [{"point": int(i), "k": float(pareto_k[i])} for i in bad],
    }
    metrics["waic"] = {"elpd_waic": float(waic.elpd_waic), "se": float(waic.se), "p_waic": float(waic.p_waic)}
    return metrics


def compare(
    fits: Mapping[str, az.InferenceData],
    convergence: Mapping[str, str] | None = None,
    scale: str = "log",
) -> tuple[pd.DataFrame, str]:
    """Rank models by PSIS-LOO; return ArviZ's comparison table and a plain-words reading.

    convergence: optional name -> overall verdict ("trusted", "suspect", "failed"). A model
    whose fit failed its convergence checks stays in the table (with a "convergence" column)
    but cannot be preferred: its LOO figures describe the sampler's trouble, not the model.
    The reading prefers the top usable model only when its elpd lead over the usable
    runner-up exceeds twice the standard error of the difference.
    """
    with warnings.catch_warnings():
        # the Pareto k warnings of each fit: the comparison's report lists them per run (pareto_lines)
        warnings.simplefilter("ignore")
        fits = {name: without_padding(fit) for name, fit in fits.items()}
        table = az.compare(dict(fits), ic="loo", scale=scale)
    if convergence is not None:
        table["convergence"] = [convergence[name] for name in table.index]
    failed = [name for name in table.index if convergence and convergence[name] == "failed"]
    usable = [name for name in table.index if name not in failed]
    if not usable:
        return table, "Every fit failed its convergence checks: no model can be preferred."
    reading = ""
    if failed:
        reading = (f"The fits of {', '.join(failed)} failed their convergence checks, so their LOO figures are not "
                   f"usable and they are left out of the choice. Among {', '.join(usable)}: ")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # as above: Pareto k is reported per run
            ranked = az.compare({name: fits[name] for name in usable}, ic="loo", scale=scale)
    else:
        ranked = table
    names = list(ranked.index)
    best = names[0]
    if len(names) == 1:
        return table, reading + f"only {best} remains, so it is the one to use."
    runner_up = names[1]
    difference = float(ranked.loc[runner_up, "elpd_diff"])
    se = float(ranked.loc[runner_up, "dse"])
    if difference > 2 * se:
        reading += (f"LOO prefers {best}: its expected log predictive density beats {runner_up} by "
                    f"{difference:.1f} nats (SE of the difference {se:.1f}).")
    else:
        reading += (f"{best} ranks first, but its lead over {runner_up} ({difference:.1f} nats, SE {se:.1f}) "
                    "is within two standard errors: LOO cannot tell them apart; prefer the simpler one.")
    bad = [n for n in usable if bool(table.loc[n, "warning"])]
    if bad:
        reading += f" Pareto k above 0.7 for some points in {', '.join(bad)}: their LOO estimates are less reliable."
    return table, reading


def choose_simplest(fits: Mapping[str, az.InferenceData], order: Sequence[str],
                    convergence: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(name, reason): the simplest model that PSIS-LOO cannot tell from the best, the stated
    rule for choosing a number of states or components.

    order: the names of `fits` from simplest to most complex. A fit that failed its
    convergence checks is never chosen. Among the rest (ranked again without the failed ones),
    the first in `order` whose elpd_loo is within two standard errors of its difference from
    the best one's."""
    usable = [name for name in order if not convergence or convergence[name] != "failed"]
    if not usable:
        raise ValueError("every candidate failed its convergence checks: none can be chosen")
    if len(usable) == 1:
        return usable[0], f"{usable[0]} is the only candidate whose fit passed its convergence checks"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k: each candidate's own report states it
        table = az.compare({name: without_padding(fits[name]) for name in usable}, ic="loo")
    best = table.index[0]
    for name in usable:
        gap, se = float(table.loc[name, "elpd_diff"]), float(table.loc[name, "dse"])
        if name == best:
            return name, f"{name} has the highest elpd_loo and no simpler model comes within two SE of it"
        if gap <= 2 * se:
            return name, (f"{name} is the simplest model within two standard errors of the best, {best} "
                          f"({gap:.1f} nats behind, SE of the difference {se:.1f})")
    raise AssertionError("unreachable: the best model is in `usable`")
