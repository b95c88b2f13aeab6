"""The GAN's report: what cannot be reported (no likelihood), sample quality and coverage
against held-out rows, and the training diagnostics (losses, gradient norms, coverage over
training; mode collapse and oscillation named)."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd

from probgen.hooks import ReportPart, Section
from probgen.models._common.generative import compare_samples, samples_figure
from probgen.models.gan.evaluation import Modes, mode_coverage, sample_quality_verdict, two_sample_verdict


def run_modes(idata) -> Modes:
    group = idata.modes
    return Modes(group["centre"].values, group["spread"].values, group["weight"].values,
                 tuple(group["mode"].values.tolist()))


def _smooth(values, window: int):
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def report(idata, config: dict) -> ReportPart:
    from probgen.models.gan import generate

    options = config["model"]["options"]
    seed = int(config.get("seed", 0))
    key = jax.random.PRNGKey(seed + 11)
    held = idata.held_out_data["x"].values
    modes = run_modes(idata)
    history = idata.adversarial_training
    attrs = history.attrs
    sections = [Section(
        "What a GAN cannot report",
        "A GAN's generator defines no density: there is no log-likelihood (so no held-out nats or bits per "
        "dimension, no LOO or WAIC), no anomaly score, and no posterior (its networks are point estimates of a game's "
        "equilibrium, not of a likelihood's optimum). What can be measured is below: how generated rows compare with "
        "held-out ones, and how many of the data's modes the generator covers.")]

    generated = generate(idata, config, key, max(len(held), 1000))
    coverage = mode_coverage(generated, modes)
    held_coverage = mode_coverage(held, modes)
    table = pd.DataFrame([
        {"rows": "generated", "count": len(generated), "modes_hit": coverage["modes_hit"],
         "high_quality": coverage["high_quality"], "kl_modes_nats": coverage["kl_modes"]},
        {"rows": "held-out (reference)", "count": len(held), "modes_hit": held_coverage["modes_hit"],
         "high_quality": held_coverage["high_quality"], "kl_modes_nats": held_coverage["kl_modes"]},
    ]).set_index("rows")
    sections.append(Section(
        "How modes are counted",
        f"The {modes.count} modes are " + (f"the classes of column '{options['label_column']}'" if options["label_column"]
                                          else f"k-means clusters of the training rows (--modes {options['modes']})")
        + f". The generator hits {coverage['modes_hit']} of them (at least 1% of its rows near each); "
        f"{coverage['high_quality']:.1%} of its rows are high quality (as close to their mode as 99.73% of a Gaussian "
        f"mode's own rows); its mode histogram is {coverage['kl_modes']:.3f} nats (KL) from the data's. The held-out "
        "rows, scored the same way, show what a perfect generator would get (the table at the top)."))

    names = list(map(str, idata.held_out_data["feature"].values))
    comparison, compared = compare_samples(generated[:len(held)] if len(held) >= 2 else generated, held, seed, names)
    sections.append(Section(
        "Generated against held-out data",
        f"{min(len(generated), len(held))} generated rows against the {len(held)} held-out rows. The k-NN estimate of "
        f"KL(held-out || generated) is {compared['knn_kl_nats']:.3f} nats (SE {compared['knn_kl_se']:.3f}): large when "
        "the generator misses part of the data, which is what mode collapse does.", comparison))

    sections.append(Section(
        "Training diagnostics",
        f"{attrs['collapse_reading'][0].upper()}{attrs['collapse_reading'][1:]}. "
        f"{attrs['oscillation_reading'][0].upper()}{attrs['oscillation_reading'][1:]}. The plots show both losses, "
        "both gradient norms and the coverage at every evaluation. A discriminator loss near 2 log 2 = 1.386 means it "
        "cannot tell generated rows from real ones; losses that keep swinging while coverage jumps between modes are "
        "the game circling its equilibrium instead of reaching it."))

    figures = _figures(idata, generated, held, options)
    metrics = {"gan": {"coverage": {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in coverage.items()},
                       "held_out_coverage": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                             for k, v in held_coverage.items()},
                       "generated_vs_held_out": compared,
                       "training": {k: (bool(v) if k in ("collapse", "oscillation") else v) for k, v in attrs.items()},
                       "likelihood": None}}
    summary = table.copy()
    return ReportPart(tuple(sections), metrics, figures, summary=summary, summary_title="Mode coverage",
                      summary_units="modes hit of " + str(modes.count) + "; shares of rows; KL in nats",
                      verdicts=(sample_quality_verdict(coverage["high_quality"]),
                                two_sample_verdict(compared["tests"])))


def _figures(idata, generated, held, options) -> dict:
    import matplotlib.pyplot as plt

    from probgen.models._common.tabular import parse_image_shape

    history = idata.adversarial_training
    steps = history["step"].values
    window = max(1, len(steps) // 100)
    figures = {}
    figure, axes = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
    for name, label in (("d_loss", "discriminator"), ("g_loss", "generator")):
        axes[0].plot(steps[window - 1:], _smooth(history[name].values, window), label=label)
    axes[0].axhline(2 * np.log(2), color="0.5", ls=":", label="2 log 2 (D cannot tell)")
    axes[0].set_ylabel(f"loss (mean of {window} steps)")
    axes[0].legend(fontsize=8)
    for name, label in (("d_grad_norm", "discriminator"), ("g_grad_norm", "generator")):
        axes[1].plot(steps[window - 1:], _smooth(history[name].values, window), label=label)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("gradient norm")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=8)
    figure.suptitle("GAN training: losses and gradient norms", fontsize=10)
    figure.tight_layout()
    figures["losses"] = figure

    figure, axis = plt.subplots(figsize=(7, 3.5))
    evaluation_steps = history["evaluation_step"].values
    axis.plot(evaluation_steps, history["modes_hit"].values, marker="o", ms=3, label="modes hit")
    axis.axhline(history.sizes["mode"], color="0.5", ls=":", label=f"all {history.sizes['mode']} modes")
    axis.set_ylabel("modes hit")
    axis.set_xlabel("step")
    other = axis.twinx()
    other.plot(evaluation_steps, history["high_quality"].values, color="tab:orange", label="high-quality share")
    other.set_ylim(0, 1.05)
    other.set_ylabel("high-quality share", color="tab:orange")
    lines = axis.get_legend_handles_labels()
    extra = other.get_legend_handles_labels()
    # below the axes, so that it covers no evaluation
    axis.legend(lines[0] + extra[0], lines[1] + extra[1], fontsize=8, loc="upper center",
                bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False)
    axis.set_title("mode coverage over training", fontsize=10)
    figure.tight_layout()
    figures["coverage"] = figure

    figure, axis = plt.subplots(figsize=(7, 3.5))
    image = axis.imshow(history["histogram"].values.T, aspect="auto", cmap="viridis", origin="lower",
                        extent=(evaluation_steps[0], evaluation_steps[-1], -0.5, history.sizes["mode"] - 0.5))
    figure.colorbar(image, ax=axis, label="share of generated rows")
    axis.set_xlabel("step")
    axis.set_ylabel("mode")
    axis.set_title("where the generator's mass goes (mode hopping shows as moving bands)", fontsize=10)
    figure.tight_layout()
    figures["mode_histogram"] = figure

    shape = parse_image_shape(options.get("image_shape", ""), held.shape[1])
    figures["samples"] = samples_figure(generated[:40] if shape else generated, shape, "new rows from the generator",
                                        None if shape else held)
    return figures
