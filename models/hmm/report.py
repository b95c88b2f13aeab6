"""The HMM's plots (matplotlib): the data coloured by decoded state, and the state marginals."""

from __future__ import annotations

import numpy as np


def plots(idata) -> dict:
    """Per sequence (up to 3): the data over time coloured by the Viterbi state at the posterior
    mean, and the posterior state probabilities over time."""
    import matplotlib.pyplot as plt

    if "decoding" not in idata.groups():
        return {}
    decoding = idata.decoding
    x = idata.observed_data["x"]
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
            top.scatter(time[chosen], values[chosen, 0], s=10, color=colours(k % 10), label=f"state {k}", zorder=2)
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
