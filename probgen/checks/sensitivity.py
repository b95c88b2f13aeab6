"""How much the prior decided: power-scaling sensitivity (Kallioinen et al. 2023, priorsense).

The posterior is re-weighted as if the prior (or the likelihood) were raised to a power alpha
near 1, by importance weights (alpha - 1) log p(component) of the existing draws, smoothed by
PSIS. ArviZ's `az.psens` turns the change per unit log alpha into a sensitivity per parameter
(the cumulative Jensen-Shannon distance's derivative); priorsense's reading, with its 0.05
threshold, is the diagnosis:

- prior sensitive and likelihood sensitive: **prior-data conflict** (the prior and the data pull
  the parameter different ways);
- prior sensitive, likelihood not: **weak likelihood** (the prior decides; the data say little);
- otherwise nothing to say.

The log prior of every latent site under each draw is the `log_prior` group that the results
build from the model's trace (`probgen.tracing.log_prior_terms`), so a user's plain NumPyro
model gets the check as a built-in family does. Improper priors (`ImproperUniform`) have no
density to scale and are left out, and said so.

For the parameters flagged, the power-scaled posterior mean and sd at alpha 0.8 and 1.25 show how
far the answer moves; PSIS's Pareto k of those weights says whether the re-weighting can be
trusted (k > 0.7: it cannot, and the report says so).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

THRESHOLD = 0.05  # priorsense's: a sensitivity above it is worth a word
MIN_DRAWS = 100  # fewer draws re-weight too coarsely for PSIS (its tail fit needs some 20 of the largest)
ALPHAS = (0.8, 1.25)  # the powers of the plot and the power-scaled summaries
PARETO_K = 0.7
FLAGS = ("prior-data conflict", "weak likelihood", "prior-sensitive")
MAX_ROWS = 20


def _elements(dataset, names) -> dict[str, float]:
    """{'theta[3]': value} for every element of every variable of an ArviZ result (a Dataset, or a
    DataArray when there is one variable)."""
    if not hasattr(dataset, "data_vars"):
        dataset = dataset.to_dataset(name=names[0])
    out = {}
    for name, variable in dataset.data_vars.items():
        values = np.asarray(variable.values)
        if values.ndim == 0:
            out[name] = float(values)
        else:
            for index in np.ndindex(values.shape):
                out[f"{name}[{','.join(map(str, index))}]"] = float(values[index])
    return out


def _flat_draws(posterior, names) -> dict[str, np.ndarray]:
    """{'theta[3]': draws (chain * draw,)} for the elements of `names`."""
    out = {}
    for name in names:
        values = np.asarray(posterior[name].values)
        flat = values.reshape((values.shape[0] * values.shape[1],) + values.shape[2:])
        if flat.ndim == 1:
            out[name] = flat
        else:
            for index in np.ndindex(flat.shape[1:]):
                out[f"{name}[{','.join(map(str, index))}]"] = flat[(slice(None),) + index]
    return out


def diagnosis(prior: float, likelihood: float | None) -> str:
    if not np.isfinite(prior):
        return "not measured"
    if prior <= THRESHOLD:
        return ""
    if likelihood is None:
        return "prior-sensitive"
    return "prior-data conflict" if likelihood > THRESHOLD else "weak likelihood"


def flat_component(values: np.ndarray) -> bool:
    """Whether a component's log density is the same at every draw, to float32's resolution (a
    prior far wider than the posterior: N(0, 100) varies by 1e-6 over a posterior of sd 0.1).
    Raising it to any power then leaves the posterior as it is: sensitivity 0, weights equal
    (PSIS would call equal weights k = inf, and ArviZ's psens returns NaN)."""
    return float(np.ptp(values)) <= 1e-5 * max(1.0, float(np.abs(values).max()))


def power_scaled(draws: dict[str, np.ndarray], component: np.ndarray, alpha: float):
    """({element: (mean, sd)} of the posterior with the component raised to `alpha`, by PSIS
    weights of the draws; Pareto k of those weights)."""
    import arviz as az

    if flat_component(component):
        return {name: (float(values.mean()), float(values.std())) for name, values in draws.items()}, 0.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on a large k; the report states it
        log_weights, k = az.psislw((alpha - 1.0) * component)
    weights = np.exp(log_weights - np.max(log_weights))
    weights /= weights.sum()
    summary = {}
    for name, values in draws.items():
        mean = float(np.sum(weights * values))
        summary[name] = (mean, float(np.sqrt(max(np.sum(weights * (values - mean) ** 2), 0.0))))
    return summary, float(k)


def power_scaling(idata) -> dict | None:
    """The sensitivity record of a run (JSON-ready), or None when it has no draws to re-weight.

    {"rows": [{"parameter", "prior", "likelihood", "diagnosis"}], "flagged": [...],
     "scaled": {element: {component: {alpha: [mean, sd]}}}, "pareto_k": {component: {alpha: k}},
     "left_out": improper sites, "note": why a component is missing}
    """
    import arviz as az

    if "posterior" not in idata.groups() or "log_prior" not in idata.groups():
        return None
    posterior = idata.posterior
    if posterior.sizes.get("chain", 1) * posterior.sizes.get("draw", 1) < MIN_DRAWS:
        return None
    improper = json.loads(idata.log_prior.attrs.get("improper", "[]"))
    hierarchical = json.loads(idata.log_prior.attrs.get("hierarchical", "[]"))
    proper = [name for name in idata.log_prior.data_vars if name not in improper]
    # as priorsense advises, the top-level priors are scaled: a site whose prior depends on other
    # latent sites (a group effect's N(mu, tau)) is part of the model's structure
    top = [name for name in proper if name not in hierarchical]
    proper = top or proper
    names = [name for name in idata.log_prior.data_vars if name in posterior]
    record: dict = {"left_out": improper, "rows": [], "flagged": [], "scaled": {}, "pareto_k": {},
                    "scaled_priors": proper}
    if not proper:
        record["note"] = (f"every prior is improper ({', '.join(improper)}): there is no prior density to power-scale")
        return record
    components = {"prior": np.sum([np.asarray(idata.log_prior[name].values).reshape(-1) for name in proper], axis=0)}
    has_likelihood = "log_likelihood" in idata.groups() and bool(idata.log_likelihood.data_vars)
    if has_likelihood:
        components["likelihood"] = np.sum([np.asarray(variable.values).reshape(variable.shape[0] * variable.shape[1], -1)
                                           .sum(axis=1) for variable in idata.log_likelihood.data_vars.values()], axis=0)
    else:
        record["note"] = ("the model has no pointwise log-likelihood (its likelihood is in factor terms or sums out "
                          "discrete sites that are not local to rows), so only the prior's sensitivity is measured")

    def measured(component, **options):
        if flat_component(components[component]):  # nothing to scale: the posterior cannot move
            return {element: 0.0 for element in _elements(idata.posterior[names].isel(chain=0, draw=0), names)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _elements(az.psens(idata, component=component, var_names=names, **options), names)

    prior = measured("prior", component_var_names=proper)
    likelihood = measured("likelihood") if has_likelihood else None
    draws = _flat_draws(posterior, names)
    for element, value in prior.items():
        if element in draws and float(np.ptp(draws[element])) == 0.0:  # a fixed element (a Cholesky factor's 1)
            continue
        lik = None if likelihood is None else likelihood.get(element)
        row = {"parameter": element, "prior": value, "likelihood": lik, "diagnosis": diagnosis(value, lik)}
        record["rows"].append(row)
        if row["diagnosis"] in FLAGS:
            record["flagged"].append(element)
    shown = {name: draws[name] for name in record["flagged"] if name in draws}
    for component, values in components.items():
        record["pareto_k"][component] = {}
        for alpha in ALPHAS:
            summary, k = power_scaled(shown, values, alpha)
            record["pareto_k"][component][str(alpha)] = k
            for name, moments in summary.items():
                record["scaled"].setdefault(name, {}).setdefault(component, {})[str(alpha)] = list(moments)
    base = {name: [float(values.mean()), float(values.std())] for name, values in shown.items()}
    for name in shown:
        record["scaled"][name]["posterior"] = base[name]
    return record


def sensitivity_text(record: dict) -> str:
    """The record in words: what was flagged, why, and whether the re-weighting is reliable."""
    if record.get("note") and not record["rows"]:
        return record["note"] + "."
    parts = []
    conflict = [r["parameter"] for r in record["rows"] if r["diagnosis"] == "prior-data conflict"]
    weak = [r["parameter"] for r in record["rows"] if r["diagnosis"] == "weak likelihood"]
    sensitive = [r["parameter"] for r in record["rows"] if r["diagnosis"] == "prior-sensitive"]
    if conflict:
        parts.append(f"Prior-data conflict for {_names(conflict)}: the prior and the data pull "
                     f"{'it' if len(conflict) == 1 else 'them'} different ways (both sensitivities above "
                     f"{THRESHOLD}); check the prior against what the data say.")
    if weak:
        parts.append(f"Weak likelihood for {_names(weak)}: the prior decides {'it' if len(weak) == 1 else 'them'} "
                     f"(prior sensitivity above {THRESHOLD}, likelihood sensitivity below); the data say little, so "
                     "the prior must be one you would defend.")
    if sensitive:
        parts.append(f"Prior-sensitive: {_names(sensitive)} (prior sensitivity above {THRESHOLD}).")
    unmeasured = [r["parameter"] for r in record["rows"] if r["diagnosis"] == "not measured"]
    if unmeasured:
        parts.append(f"The sensitivity of {_names(unmeasured)} could not be measured (the importance weights "
                     "degenerate).")
    if not parts:
        parts.append(f"No parameter is sensitive to its prior (every prior sensitivity at most {THRESHOLD}): the data "
                     "decide the posterior.")
    unreliable = [f"{component} at alpha {alpha} (k = {k:.2f})" for component, ks in record["pareto_k"].items()
                  for alpha, k in ks.items() if k > PARETO_K]
    if unreliable:
        parts.append("The importance weights are unreliable for " + ", ".join(unreliable) + f" (Pareto k > {PARETO_K}): "
                     "the power-scaled summaries may be off; refit with the prior changed to confirm.")
    if record.get("scaled_priors"):
        parts.append(f"Scaled: the prior{'s' if len(record['scaled_priors']) > 1 else ''} of "
                     f"{_names(record['scaled_priors'])} (the top-level priors; a site whose prior depends on other "
                     "parameters is part of the model's structure).")
    if record.get("left_out"):
        parts.append(f"Improper priors ({', '.join(record['left_out'])}) have no density to scale and are left out.")
    if record.get("note"):
        parts.append(record["note"] + ".")
    parts.append("Power-scaling sensitivity (Kallioinen et al. 2023; ArviZ's psens), threshold 0.05 as priorsense.")
    return " ".join(parts)


def _names(items: list[str]) -> str:
    return ", ".join(items[:8]) + (f" and {len(items) - 8} more" if len(items) > 8 else "")


def sensitivity_table(record: dict) -> pd.DataFrame | None:
    """Flagged parameters first, then the most prior-sensitive, at most `MAX_ROWS`."""
    if not record["rows"]:
        return None
    rows = sorted(record["rows"], key=lambda r: (r["diagnosis"] not in FLAGS,
                                                 -(r["prior"] if np.isfinite(r["prior"]) else 0.0)))[:MAX_ROWS]
    frame = pd.DataFrame(rows).set_index("parameter")
    return frame.rename(columns={"prior": "prior_sensitivity", "likelihood": "likelihood_sensitivity"})


def sensitivity_figure(record: dict):
    """For each flagged parameter (at most 6): its posterior mean +- sd with the prior and the
    likelihood power-scaled by alpha 0.8 and 1.25 beside the unscaled posterior."""
    import matplotlib.pyplot as plt

    names = [name for name in record["flagged"] if name in record["scaled"]][:6]
    if not names:
        return None
    figure, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.0), squeeze=False)
    for axis, name in zip(axes[0], names):
        scaled = record["scaled"][name]
        mean, sd = scaled["posterior"]
        for offset, component, colour in ((-0.08, "prior", "C0"), (0.08, "likelihood", "C1")):
            if component not in scaled:
                continue
            alphas = [ALPHAS[0], 1.0, ALPHAS[1]]
            moments = [scaled[component][str(ALPHAS[0])], [mean, sd], scaled[component][str(ALPHAS[1])]]
            axis.errorbar(np.log2(alphas) + offset, [m for m, _ in moments], yerr=[s for _, s in moments], fmt="o-",
                          color=colour, capsize=3, label=f"{component} scaled")
        axis.set_xticks(np.log2([ALPHAS[0], 1.0, ALPHAS[1]]), [str(ALPHAS[0]), "1", str(ALPHAS[1])])
        axis.set_xlabel("power alpha")
        axis.set_title(name, fontsize=10)
    axes[0][0].set_ylabel("posterior mean +- sd")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    return figure
