"""Report pieces that the density and sample generators share (MADE, the GAN, and the bench in
`analyses/generators.py`): held-out log-likelihood in nats and bits per dimension, generated
rows against held-out ones (MMD and per-column tests, k-NN KL), training curves and sample
figures. One module, so that no family imports another's report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from probgen.hooks import ReportPart, Section


def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    return float(values.mean()), (float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan"))


def bits_per_dimension(nats_per_row: float, num_dims: int, levels: int = 0) -> float:
    """-log p / (D log 2); with `levels` > 1 (dequantised integers), of the discrete values:
    adding D log L (a bound on the code length of the integers, Theis et al. 2016)."""
    return (-nats_per_row + (num_dims * math.log(levels) if levels > 1 else 0.0)) / (num_dims * math.log(2))


def likelihood_table(idata, score: str, num_dims: int, levels: int = 0) -> pd.DataFrame:
    """Per part (training, validation, held-out, anomaly): rows, mean log-likelihood per row, its
    SE, bits per dimension (and of the discrete values when dequantised)."""
    rows = []
    for part in ("training", "validation", "held_out", "anomaly"):
        if f"{part}_scores" in idata.groups():
            mean, se = mean_se(idata[f"{part}_scores"][score].values)
            row = {"part": part.replace("_", "-"), "rows": int(idata[f"{part}_scores"].sizes["obs_id"]),
                   "nats_per_row": mean, "se": se, "bits_per_dimension": bits_per_dimension(mean, num_dims)}
            if levels > 1:
                row["bits_per_dimension_discrete"] = bits_per_dimension(mean, num_dims, levels)
            rows.append(row)
    return pd.DataFrame(rows).set_index("part")


def compare_samples(generated, real, seed: int, names=None) -> tuple[pd.DataFrame, dict]:
    """Generated rows against real (held-out) rows: the MMD permutation test, KS and Welch's t
    per column (Holm), and the k-NN estimate of KL(real || generated). (table, metrics)."""
    from probgen.checks import metrics
    from probgen.checks import two_sample

    tests = two_sample.two_sample_tests(generated, real, seed=seed, names=names)
    table = pd.DataFrame([t.as_dict() for t in tests]).set_index("test")[["statistic", "p_value", "reading"]]
    kl = metrics.kl_knn(real, generated)
    table["p_value"] = table["p_value"].astype(object)
    table.loc["k-NN KL(real || generated), nats"] = [kl.value, "— (an estimate, not a test)", f"SE {kl.standard_error:.3f}"]
    return table, {"tests": [t.as_dict() for t in tests], "knn_kl_nats": kl.value, "knn_kl_se": kl.standard_error}


def samples_figure(samples, shape, title: str, real=None):
    """A grid of images (when `shape` is given) or a scatter of the first two columns, with
    the real rows behind when given."""
    import matplotlib.pyplot as plt

    samples = np.asarray(samples)
    if shape is not None:
        count = min(40, len(samples))
        rows = max(1, math.ceil(count / 10))
        figure, axes = plt.subplots(rows, 10, figsize=(10, 1.1 * rows + 0.3), squeeze=False)
        for axis in axes.ravel():
            axis.axis("off")
        for axis, image in zip(axes.ravel(), samples[:count]):
            axis.imshow(image.reshape(shape), cmap="gray_r")
        figure.suptitle(title, fontsize=9)
        return figure
    figure, axis = plt.subplots(figsize=(5.5, 5))
    if real is not None:
        axis.scatter(real[:, 0], real[:, 1], s=6, color="0.6", alpha=0.5, label="held-out rows")
    axis.scatter(samples[:, 0], samples[:, 1], s=6, color="tab:blue", alpha=0.6, label="generated")
    axis.legend(fontsize=8)
    axis.set_title(title, fontsize=9)
    return figure


def training_figure(history, ylabel: str, train_label: str, heldout_label: str):
    """Training and validation score over steps, the kept step marked."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(history["step"].values, history["train_elbo"].values, label=train_label)
    axis.plot(history["step"].values, history["heldout_elbo"].values, label=heldout_label)
    axis.axvline(int(history.attrs["best_step"]), color="0.5", ls=":", label="kept parameters")
    axis.set_xlabel("step")
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def likelihood_model_report(idata, config: dict, name: str, draw, description: str) -> ReportPart:
    """The report of a model with an exact per-row log-likelihood (`{part}_scores.log_likelihood`)
    trained by the minibatch trainer: likelihood table, anomaly AUROC, generated against
    held-out rows, training curve and samples. draw(rng_key, num) -> generated rows (model units)."""
    import jax

    from probgen import checks
    from probgen.models._common.tabular import parse_image_shape

    options = config["model"]["options"]
    seed = int(config.get("seed", 0))
    x_held = idata.held_out_data["x"].values
    num_dims = x_held.shape[1]
    levels = int(options.get("pixel_levels", 0)) if options.get("transform") == "dequantize" else 0
    table = likelihood_table(idata, "log_likelihood", num_dims, levels)
    held = table.loc["held-out"]
    text = (f"{description}. Held-out rows: {held['nats_per_row']:.3f} nats per row (SE {held['se']:.3f}), "
            f"{held['bits_per_dimension']:.4f} bits per dimension")
    if levels > 1:
        text += f" ({held['bits_per_dimension_discrete']:.4f} bits per dimension of the {levels}-level integers)"
    text += "."
    gap = table.loc["training", "nats_per_row"] - held["nats_per_row"]
    if gap > 3 * math.hypot(table.loc["training", "se"], held["se"]):
        text += (f" Training rows score {gap:.2f} nats higher than held-out ones: the network fits its training rows "
                 "better than new ones (early stopping on the validation rows limits it).")
    sections = [Section("Generative performance", text)]
    metrics: dict = {"likelihood": table.reset_index().to_dict("records")}

    if "anomaly_scores" in idata.groups():
        scores = -np.concatenate([idata.held_out_scores["log_likelihood"].values,
                                  idata.anomaly_scores["log_likelihood"].values])
        is_anomaly = np.concatenate([np.zeros(idata.held_out_scores.sizes["obs_id"], bool),
                                     np.ones(idata.anomaly_scores.sizes["obs_id"], bool)])
        anomaly = checks.anomaly_auroc(scores, is_anomaly)
        metrics["anomaly"] = {**anomaly, "anomaly_label": options["anomaly_label"]}
        sections.append(Section("Anomaly detection", f"The rows labelled {options['anomaly_label']} were kept out of "
                                f"training; scoring each row by its negative log-likelihood, {anomaly['reading']}."))

    key = jax.random.PRNGKey(seed + 7)
    generated = draw(key, len(x_held))
    names = list(map(str, idata.held_out_data["feature"].values))
    comparison, compared = compare_samples(generated, x_held, seed, names)
    metrics["generated_vs_held_out"] = compared
    rejected = [t["test"] for t in compared["tests"] if t["p_value"] < 0.05]
    sections.append(Section(
        "Generated against held-out data",
        f"{len(x_held)} rows drawn from the model against the {len(x_held)} held-out rows. "
        + (f"{', '.join(rejected)} reject{'s' if len(rejected) == 1 else ''} at the 5% level: the generated rows can be "
           "told from real ones." if rejected else "No test tells the generated rows from the held-out ones at the 5% "
           "level.") + f" The k-NN estimate of KL(held-out || generated) is {compared['knn_kl_nats']:.3f} nats "
        f"(SE {compared['knn_kl_se']:.3f}); 0 for a perfect generator, large when it misses part of the data.",
        comparison))

    history = idata.optimization
    metrics["training"] = {"steps_run": int(history.attrs["steps_run"]), "best_step": int(history.attrs["best_step"]),
                           "stopped_early": bool(history.attrs["stopped_early"])}
    shape = parse_image_shape(options.get("image_shape", ""), num_dims)
    figures = {
        "training": training_figure(history, "log-likelihood per row (nats)", "training (minibatch)", "validation"),
        "samples": samples_figure(draw(jax.random.fold_in(key, 1), 40 if shape else 1000), shape,
                                  f"new rows from {name}", None if shape else x_held),
    }
    return ReportPart(tuple(sections), {name: metrics}, figures, summary=table, summary_title="Log-likelihood by part",
                      summary_units="exact, nats per row; bits per dimension")
