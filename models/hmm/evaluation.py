"""What the decoded states of a fitted HMM say (numbers, and the sentences that read them; no
matplotlib): the regimes of one sequence and the posterior probability of each change."""

from __future__ import annotations

import numpy as np


def _number(value: float) -> str:
    """3 significant digits without an exponent for everyday sizes: 1,097, 84.9, 0.743."""
    return f"{value:,.0f}" if 100 <= abs(value) < 1e9 else f"{value:.3g}"


def state_names(idata) -> list[str]:
    """A name per state from what it emits (posterior means, in the units the model was fitted
    in): the lowest and highest level, and for Gaussian emissions the calmest and the most
    volatile when their sds differ by half or more, e.g. "low, calm (mean 0.02, sd 0.74)"."""
    posterior = idata.posterior
    if "means" in posterior:
        levels = posterior["means"].mean(("chain", "draw")).values[:, 0]
        spreads = posterior["scales"].mean(("chain", "draw")).values[:, 0] if "scales" in posterior else None
    elif "rates" in posterior:
        levels, spreads = posterior["rates"].mean(("chain", "draw")).values[:, 0], None
    else:
        count = idata.decoding.sizes["state"] if "decoding" in idata.groups() else 0
        return [f"state {k}" for k in range(count)]
    names = []
    for k in range(len(levels)):
        words = []
        if len(levels) > 1:
            words += ["low"] if k == int(np.argmin(levels)) else ["high"] if k == int(np.argmax(levels)) else []
            if spreads is not None and spreads.max() >= 1.5 * spreads.min():
                words += ["calm"] if k == int(np.argmin(spreads)) else ["volatile"] if k == int(np.argmax(spreads)) else []
        label = ", ".join(words) or f"state {k}"
        numbers = (f"mean {_number(levels[k])}, sd {_number(spreads[k])}" if spreads is not None else
                   f"mean {_number(levels[k])}" if "means" in posterior else f"rate {_number(levels[k])}")
        names.append(f"{label} ({numbers})")
    return names


def called(name: str) -> str:
    """How a sentence calls a state named by `state_names`: "the low, calm state"."""
    return f"the {name.split(' (')[0]} state"


def describe_regimes(idata, sequence: int = 0, units: str = "", digits: int = 0, names=None) -> dict:
    """What the decoded states say about one sequence, in numbers and in words.

    segments: the runs of the Viterbi path at the posterior mean (start and end time, state,
    the state's posterior mean emission level in the data's units);
    switches: for each change of regime on that path, the posterior probability that the
    sampled state paths (FFBS, one per draw) change state between the two time steps, and
    within +-2 steps;
    reading: the segments and switches as sentences (states called by `names` when given)."""
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
        state = called(names[segment["state"]]) if names else f"state {segment['state']}"
        parts.append(f"{show(segment['start'])}-{show(segment['end'])}: {state}{level}")
    reading = "Most probable path (Viterbi at the posterior mean): " + "; ".join(parts) + "."
    for switch in switches:
        reading += (f" The change between {show(switch['from'])} and {show(switch['to'])} has posterior probability "
                    f"{switch['probability']:.2f} at exactly that step and {switch['probability_within_2']:.2f} "
                    f"within two steps (from {sampled.shape[0]} sampled state paths).")
    if not switches:
        reading += " The path never changes state."
    return {"segments": segments, "switches": switches, "reading": reading}
