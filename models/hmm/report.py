"""The HMM's report: its states named by what they emit and when each regime holds (numbers
from `evaluation`), and its plots (matplotlib): the data coloured by decoded state, and the
state marginals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from probgen.hooks import ReportPart, Section
from probgen.models.hmm.evaluation import called, describe_regimes, state_names

MAX_SEGMENTS_LISTED = 12  # a longer decoded path is read state by state instead of run by run


def report(idata, config) -> ReportPart:
    """The states, named by their emissions, with the share of time each holds; and when each
    regime occurs in the first sequence (its runs, or per state for a path of many runs)."""
    if "decoding" not in idata.groups():
        return ReportPart()
    names = state_names(idata)
    decoding = idata.decoding
    real = decoding["viterbi_path"].values >= 0
    paths = decoding["viterbi_path"].values[real]
    share = np.bincount(paths, minlength=len(names)) / max(len(paths), 1)
    table = pd.DataFrame({"state": np.arange(len(names)), "name": names, "share_of_time": share})
    regimes = describe_regimes(idata, 0, names=names)
    segments = regimes["segments"]
    if len(segments) <= MAX_SEGMENTS_LISTED:
        when = regimes["reading"]
    else:
        lines = []
        for k, name in enumerate(names):
            runs = [s for s in segments if s["state"] == k]
            if not runs:
                lines.append(f"{called(name)} never holds on the most probable path")
                continue
            longest = max(runs, key=lambda run: run["steps"])
            lines.append(f"{called(name)} holds {len(runs)} times for {np.mean([r['steps'] for r in runs]):.1f} "
                         f"steps on average, longest {longest['start']:g}-{longest['end']:g}")
        when = (f"The most probable path (Viterbi at the posterior mean) changes state {len(segments) - 1} times: "
                + "; ".join(lines) + ".")
    text = ("Each state is named by what it emits (posterior means), with the share of steps the most probable path "
            "spends in it. " + when)
    return ReportPart(sections=(Section("States and regimes", text, table),),
                      metrics={"states": table.to_dict("records"), "regimes": {"segments": len(segments),
                                                                               "switches": regimes["switches"][:50]}})


def plots(idata) -> dict:
    """Per sequence (up to 3): the data over time coloured by the Viterbi state at the posterior
    mean, and the posterior state probabilities over time."""
    import matplotlib.pyplot as plt

    if "decoding" not in idata.groups():
        return {}
    decoding = idata.decoding
    x = idata.observed_data["x"]
    names = state_names(idata)
    figures = {}
    colours = plt.get_cmap("tab10")
    sequences = list(decoding["sequence"].values)[:3]
    for s, sequence in enumerate(sequences):
        path = decoding["viterbi_path"].values[s]
        real = path >= 0
        values = x.values[s][real]
        probabilities = decoding["state_probability"].values[s][real]
        time = decoding["time_label"].values[s][real] if "time_label" in decoding else np.arange(real.sum())
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
        top.plot(time, values[:, 0], color="0.75", lw=0.8, zorder=1)
        for k in range(probabilities.shape[1]):
            chosen = path[real] == k
            top.scatter(time[chosen], values[chosen, 0], s=10, color=colours(k % 10), label=names[k], zorder=2)
        top.set_ylabel(str(x["feature"].values[0]))
        top.legend(fontsize=8, ncol=min(4, probabilities.shape[1]))
        top.set_title(f"sequence {sequence}: data by most probable state (Viterbi at the posterior mean)")
        bottom.stackplot(time, probabilities.T, colors=[colours(k % 10) for k in range(probabilities.shape[1])],
                         alpha=0.8)
        bottom.set_ylim(0, 1)
        bottom.set_ylabel("P(state | data)")
        bottom.set_xlabel(decoding.attrs.get("time_column") or "time step")
        figure.tight_layout()
        figures["states" if len(sequences) == 1 else f"states_{sequence}"] = figure
    return figures
