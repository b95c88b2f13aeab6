"""The report's readings of single checks, in words and figures: discrete sites, what
--reparam did, how missing values were treated, the model's graph. Each takes what the run
recorded (metrics, config facts, InferenceData) and computes nothing new; `probgen.report`
places them."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from probgen import checks


def discrete_text(discrete_metrics: dict) -> str:
    """The discrete sites in words: a small site's highest-probability set of values per
    element, a vector of local assignments by how many are confident."""
    parts = []
    for name, m in discrete_metrics.items():
        if m.get("shown") == "distribution":
            for index, element in enumerate(m["distribution"]):
                label = name if m["elements"] == 1 else f"{name}[{index}]"
                chosen = element["set"]
                parts.append(f"{label}: the {checks.SET_LEVEL:.0%} highest-probability set is "
                             f"{{{checks.value_ranges(chosen)}}} ({len(chosen)} value{'s' if len(chosen) > 1 else ''}, "
                             f"probability {element['set_probability']:.3f}); the most probable value, "
                             f"{element['mode']}, has probability {element['probability']:.3f}.")
        else:
            parts.append(f"{name}: {m['elements']} elements (local assignments), {m['confident']} with a posterior "
                         f"mode of probability >= 0.9 (mean mode probability {m['mode_probability_mean']:.3f}).")
    return (" ".join(parts) + " The plot 'discrete' shows each distribution (bars: the set in colour) or the "
            "assignments' probabilities (a heat-map); the table shows the first elements; every draw is in "
            "posterior.nc (group discrete_posterior).")


def discrete_figure(idata):
    """The discrete sites' posteriors: for a site of at most `checks.SMALL_DISCRETE_SITE`
    elements, one bar chart per element (probability of each value, the 90% highest-probability
    set in colour); for a longer vector of local assignments, a heat-map of each element's
    probabilities (the first 500 elements)."""
    import matplotlib.pyplot as plt

    panels = []
    for name, variable in idata.discrete_posterior.data_vars.items():
        values, probabilities = checks.discrete_probabilities(variable.values)
        if len(probabilities) <= checks.SMALL_DISCRETE_SITE:
            for index, row in enumerate(probabilities):
                panels.append(("bars", name if variable.ndim == 2 else f"{name}[{index}]", values, row))
        else:
            panels.append(("heat", name, values, probabilities[:500]))
    heights = [2.6 if kind == "bars" else min(8.0, 2.0 + len(probabilities) / 25) for kind, _, _, probabilities in panels]
    figure, axes = plt.subplots(len(panels), 1, figsize=(7, sum(heights)), squeeze=False,
                                gridspec_kw={"height_ratios": heights})
    for axis, (kind, label, values, probabilities) in zip(axes[:, 0], panels):
        if kind == "bars":
            chosen, total = checks.highest_probability_set(values, probabilities)
            inside = np.isin(values, chosen)
            axis.bar(values, probabilities, width=0.85, color=np.where(inside, "C0", "0.75"))
            axis.set_title(f"{label}: {checks.SET_LEVEL:.0%} highest-probability set in colour "
                           f"(probability {total:.3f})", fontsize=10)
            axis.set_xlabel("value")
            axis.set_ylabel("posterior probability")
        else:
            image = axis.imshow(probabilities, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1,
                                extent=(values[0] - 0.5, values[-1] + 0.5, len(probabilities) - 0.5, -0.5))
            axis.set_xticks(values)
            axis.set_title(f"{label}: posterior probability of each value, per element", fontsize=10)
            axis.set_xlabel("value")
            axis.set_ylabel("element")
            figure.colorbar(image, ax=axis, label="probability")
    figure.tight_layout()
    return figure


def reparam_text(record: Mapping) -> str:
    """What --reparam did (config.json facts "reparam"), in words."""
    from probgen.checks.diagnostics import describe_funnel

    sites = ", ".join(record.get("sites", ()))
    how = ("each is drawn as <site>_decentered from its family's standard form, and the site itself, a "
           "deterministic function of that, keeps its name in the summary and in posterior.nc")
    if record.get("requested") == "noncentred":
        if not sites:
            return ("--reparam noncentred found no hierarchical location-scale site (none whose location or scale "
                    "depends on another latent site): the model ran as written.")
        return f"Non-centred (--reparam noncentred): {sites}; {how}."
    first = f"--reparam auto: the run as written had {record['divergences']} divergent transition(s)"
    if not record.get("rerun"):
        return f"{first}; no rerun: {record.get('reason', '')}."
    plural = "s" if record["rerun_divergences"] != 1 else ""
    kept = ("the non-centred run (fewer divergences)" if record["chosen"] == "noncentred"
            else "the run as written (the non-centred rerun did not diverge less)")
    return (f"{first}; {describe_funnel(record['funnel'])}. Rerun once with {sites} non-centred ({how}): "
            f"{record['rerun_divergences']} divergent transition{plural}. Kept: {kept}; the other run's draws are in "
            "posterior.nc (groups unchosen_posterior and unchosen_sample_stats).")


def missing_text(missing: dict, treated: dict) -> str:
    """What the data lacked (argument -> {"count", "first"}) and how each observed site treated
    it (`results.build_inference_data`'s observed_data attrs "missing"), in one paragraph."""
    lacked = "; ".join(f"'{name}' has {where['count']} missing value(s) (first at index {where['first']})"
                       for name, where in missing.items())
    how = []
    for site, t in treated.items():
        rows = f"the predictive checks and LOO skip its {t['rows']} row(s) with them"
        if t["how"] == "obs_mask":
            base = site[: -len("_observed")]
            how.append(f"'{base}' observes the rest through obs_mask and its {t['entries']} missing entries are "
                       f"parameters (their posterior is {t['by'][0]}, over {base}_missing); {rows}")
        elif t["how"] == "imputed":
            by = (f"the latent site{'s' if len(t['by']) > 1 else ''} {', '.join(repr(b) for b in t['by'])}"
                  if t["by"] else "its parameters")
            how.append(f"the model imputes {t['entries']} entries of '{site}' itself, from {by} (their posterior is "
                       f"in the summary); {rows}")
        else:
            how.append(f"'{site}' leaves its {t['entries']} missing entries out of its log density (masked); {rows}")
    if not how:
        how.append("no observed site holds them: the model's log density is finite with them, so it imputes or masks "
                   "them itself, before they reach an observation")
    said = "; ".join(how)
    return f"{lacked}. {said[0].upper()}{said[1:]}"


def graph_section(graph: dict):
    """The model's graph (config facts "model_graph", `probgen.graph`) as a report section."""
    import pandas as pd

    from probgen.graph import graph_rows, graph_summary
    from probgen.spec import Section

    return Section("Model graph", f"The model as probgen read it from one trace: {graph_summary(graph)}. An arrow "
                   "(a 'depends on' entry) means the site's density or value is computed from that site's value, "
                   "as NumPyro's get_model_relations follows it through the code; the plot 'model_graph' draws the "
                   "graph with each plate as a box.", pd.DataFrame(graph_rows(graph)))
