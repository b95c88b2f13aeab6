"""What the decoded states of a fitted HMM say (numbers, and the sentences that read them; no
matplotlib): the regimes of one sequence and the posterior probability of each change."""

from __future__ import annotations

import numpy as np


def describe_regimes(idata, sequence: int = 0, units: str = "", digits: int = 0) -> dict:
    """What the decoded states say about one sequence, in numbers and in words.

    segments: the runs of the Viterbi path at the posterior mean (start and end time, state,
    the state's posterior mean emission level in the data's units);
    switches: for each change of regime on that path, the posterior probability that the
    sampled state paths (FFBS, one per draw) change state between the two time steps, and
    within +-2 steps;
    reading: the segments and switches as sentences."""
    decoding = idata.decoding
    path = decoding["viterbi_path"].values[sequence]
    real = path >= 0
    path, time = path[real], decoding["time_label"].values[sequence][real]
    sampled = decoding["sampled_paths"].values[:, sequence][:, real]
    posterior = idata.posterior
    level_name = "means" if "means" in posterior else "rates" if "rates" in posterior else None
    levels = (posterior[level_name].mean(("chain", "draw")).values[:, 0] if level_name else None)
    segments, switches = [], []
    starts = np.concatenate([[0], np.flatnonzero(np.diff(path)) + 1])
    ends = np.concatenate([starts[1:] - 1, [len(path) - 1]])
    for a, b in zip(starts, ends):
        state = int(path[a])
        segments.append({"start": float(time[a]), "end": float(time[b]), "steps": int(b - a + 1), "state": state,
                         "level": None if levels is None else float(levels[state])})
    changes = np.diff(sampled, axis=1) != 0  # (draws, T-1): the path changes between t and t+1
    for a in starts[1:]:
        near = changes[:, max(a - 3, 0): min(a + 2, changes.shape[1])].any(axis=1)
        switches.append({"from": float(time[a - 1]), "to": float(time[a]),
                         "probability": float(changes[:, a - 1].mean()), "probability_within_2": float(near.mean())})

    def show(t):
        return f"{t:.{digits}f}"

    level_word = {"means": "mean level", "rates": "rate"}.get(level_name, "")
    parts = []
    for segment in segments:
        level = (f" ({level_word} {segment['level']:.{max(digits, 1) if level_name == 'rates' else digits}f}"
                 f"{' ' + units if units else ''})" if segment["level"] is not None else "")
        parts.append(f"{show(segment['start'])}-{show(segment['end'])}: state {segment['state']}{level}")
    reading = "Most probable path (Viterbi at the posterior mean): " + "; ".join(parts) + "."
    for switch in switches:
        reading += (f" The change between {show(switch['from'])} and {show(switch['to'])} has posterior probability "
                    f"{switch['probability']:.2f} at exactly that step and {switch['probability_within_2']:.2f} "
                    f"within two steps (from {sampled.shape[0]} sampled state paths).")
    if not switches:
        reading += " The path never changes state."
    return {"segments": segments, "switches": switches, "reading": reading}
