"""Mode coverage of generated rows, and the two failures of GAN training named from its history.

Modes are the classes of a label column (the ring's 8 Gaussians, the digits) or, without one,
k-means clusters of the training rows. Each generated row goes to its nearest mode (distance
scaled by the mode's own spread); it is *high quality* when it lies as close to that mode as
99.73% of the mode's own rows would if the mode were Gaussian (squared scaled distance below
the chi-square(D) 0.9973 quantile: "within 3 sd" in one dimension). A mode is *hit* when at
least `HIT_SHARE` of the generated rows are high-quality rows of it.

Mode collapse: coverage at the end (median of the last quarter of evaluations) below
`COLLAPSE_COVERAGE` of the modes, or fallen from its peak by a quarter of the modes or more.
Oscillation: the generator's mass moves between modes instead of settling: the total-variation
distance between the mode histograms of successive evaluations (the same latent draws each
time, so the distance is the generator's change, not noise) averages above `OSCILLATION_TV`
over the last third of training.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

HIT_SHARE = 0.01
COLLAPSE_COVERAGE = 0.75
OSCILLATION_TV = 0.15


@dataclasses.dataclass(frozen=True)
class Modes:
    """centres (K, D), spreads (K,) (rms distance per dimension of a mode's rows from its
    centre), weights (K,) (the data's share of each mode), names."""

    centres: np.ndarray
    spreads: np.ndarray
    weights: np.ndarray
    names: tuple

    @property
    def count(self) -> int:
        return len(self.centres)

    def assign(self, x) -> tuple[np.ndarray, np.ndarray]:
        """(nearest mode of each row (N,), its squared distance in units of that mode's spread)."""
        x = np.asarray(x, np.float64)
        scaled = ((x[:, None, :] - self.centres[None]) ** 2).sum(-1) / self.spreads[None] ** 2
        nearest = (scaled + x.shape[1] * np.log(self.spreads[None] ** 2)).argmin(1)
        return nearest, scaled[np.arange(len(x)), nearest]


def modes_from(x, labels=None, count: int = 10, seed: int = 0) -> Modes:
    """The modes of training rows x: one per label value, or `count` k-means clusters."""
    from probgen.models._common.mixtures import kmeans

    x = np.asarray(x, np.float64)
    if labels is None:
        labels = kmeans(x / (x.std(0) + 1e-12), min(count, len(x)), np.random.default_rng(seed))
    labels = np.asarray(labels)
    names = tuple(np.unique(labels).tolist())
    centres = np.array([x[labels == name].mean(0) for name in names])
    spreads = np.array([np.sqrt(((x[labels == name] - centres[i]) ** 2).sum(1).mean() / x.shape[1]) + 1e-9
                        for i, name in enumerate(names)])
    weights = np.array([(labels == name).mean() for name in names])
    return Modes(centres, spreads, weights, names)


def mode_coverage(samples, modes: Modes) -> dict:
    """modes_hit, high_quality (share of rows near a mode), kl_modes (KL of the generated mode
    histogram from the data's, nats), histogram (share of rows per mode)."""
    samples = np.asarray(samples, np.float64)
    nearest, distance = modes.assign(samples)
    good = distance <= stats.chi2.ppf(0.9973, samples.shape[1])
    counts = np.bincount(nearest[good], minlength=modes.count)
    histogram = np.bincount(nearest, minlength=modes.count) / len(samples)
    share = np.maximum(histogram, 1e-12)
    return {"modes_hit": int((counts >= HIT_SHARE * len(samples)).sum()), "high_quality": float(good.mean()),
            "kl_modes": float(np.sum(np.where(histogram > 0, histogram * np.log(share / modes.weights), 0.0))),
            "histogram": histogram}


def diagnose(modes_hit, histograms, num_modes: int) -> dict:
    """Mode collapse and oscillation from the coverage history (one entry per evaluation)."""
    modes_hit = np.asarray(modes_hit, float)
    histograms = np.asarray(histograms, float)
    count = len(modes_hit)
    final = float(np.median(modes_hit[-max(1, count // 4):]))
    smoothed = np.array([np.median(modes_hit[max(0, i - 1):i + 2]) for i in range(count)])
    peak, peak_index = float(smoothed.max()), int(smoothed.argmax())
    fell = peak - final >= 0.25 * num_modes
    collapse = bool(final < COLLAPSE_COVERAGE * num_modes or fell)
    changes = 0.5 * np.abs(np.diff(histograms, axis=0)).sum(1) if count > 1 else np.zeros(0)
    late = changes[len(changes) - len(changes) // 3:] if len(changes) >= 3 else changes
    movement = float(late.mean()) if len(late) else 0.0
    oscillation = bool(movement > OSCILLATION_TV)
    collapse_reading = (f"mode collapse: the generator covers {final:g} of {num_modes} modes at the end"
                        + (f", down from {peak:g} at evaluation {peak_index}" if fell else "")) if collapse else (
        f"no mode collapse: {final:g} of {num_modes} modes covered at the end (peak {peak:g})")
    oscillation_reading = (f"oscillation: the generator's mass moves between modes ({movement:.2f} of it, in total "
                           "variation, between successive evaluations over the last third) instead of settling"
                           if oscillation else f"no oscillation: the mass between modes settled (movement "
                           f"{movement:.2f} between successive evaluations over the last third)")
    return {"final_modes_hit": final, "peak_modes_hit": peak, "collapse": collapse, "oscillation": oscillation,
            "mode_movement": movement, "collapse_reading": collapse_reading, "oscillation_reading": oscillation_reading,
            "num_modes": int(num_modes), "collapse_coverage": COLLAPSE_COVERAGE, "oscillation_tv": OSCILLATION_TV}


TWO_SAMPLE_ALPHA = 0.05


def two_sample_verdict(tests: list[dict]):
    """The generator judged by the two-sample tests of generated against held-out rows (MMD; KS
    and Welch's t per column, each already Holm-adjusted over columns), Holm-adjusted again over
    the tests: warn when one rejects at `TWO_SAMPLE_ALPHA`, since rows the tests tell apart from
    the data are what a generator can get wrong even with every mode hit."""
    from probgen.checks.diagnostics import Verdict
    from probgen.checks.two_sample import holm

    tests = [t for t in tests if t.get("p_value") is not None and np.isfinite(t["p_value"])]
    threshold = f"no test rejects at {TWO_SAMPLE_ALPHA} (Holm over the tests)"
    if not tests:
        return Verdict("two_sample", "skip", None, threshold, "no two-sample test could be computed")
    adjusted = holm([t["p_value"] for t in tests])
    smallest = int(np.argmin(adjusted))
    named = ", ".join(f"{t['test']} p = {p:.3g}" for t, p in zip(tests, adjusted))
    if adjusted[smallest] >= TWO_SAMPLE_ALPHA:
        return Verdict("two_sample", "pass", float(adjusted[smallest]), threshold,
                       f"the two-sample tests do not tell generated rows from held-out ones (adjusted {named})")
    rejected = [t["test"] for t, p in zip(tests, adjusted) if p < TWO_SAMPLE_ALPHA]
    return Verdict("two_sample", "warn", float(adjusted[smallest]), threshold,
                   f"the {' and '.join(rejected)} test{'s' if len(rejected) > 1 else ''} tell generated rows from "
                   f"held-out ones (adjusted {named}): the generator's rows differ from the data's")


QUALITY_WARN = 0.8  # share of generated rows near a mode below which the verdict warns (a faithful generator: 0.997)
QUALITY_FAIL = 0.5  # ... and fails: half the rows fall between the data's modes


def sample_quality_verdict(quality: float):
    """The final generator judged by the share of its rows near a mode (`mode_coverage`'s
    high_quality, on the rows the report shows): a generator that matches the data puts 99.73%
    there; below `QUALITY_WARN` it warns, below `QUALITY_FAIL` it fails."""
    from probgen.checks.diagnostics import Verdict

    status = "pass" if quality >= QUALITY_WARN else "warn" if quality >= QUALITY_FAIL else "fail"
    return Verdict("sample_quality", status, float(quality), f">= {QUALITY_WARN:.0%} of generated rows near a mode",
                   f"{quality:.1%} of the final generator's rows lie near a mode (within the region holding 99.73% of "
                   "the mode's own rows)" + ("" if status == "pass" else
                                            "; the rest fall between modes, where the data have none"))
