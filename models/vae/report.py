"""The VAE's report (`ReportPart`): held-out bounds, latent-dimension summary, two-sample test
of generated against held-out rows, anomaly scores, plots."""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp
import numpy as np

from probgen.models._common.generative import mean_se as _mean_se
from probgen.models.vae.data import architecture_from, parse_image_shape
from probgen.models.vae.model import Architecture, decode_mean, sample_images


ACTIVE_UNIT_NATS = 0.01  # mean KL of a latent dimension below which it counts as inactive


def report(idata, config: dict):
    """The VAE's report (`ReportPart`): the latent-dimension summary table, sections, metrics,
    figures. Everything is read from the run's InferenceData (network parameters, per-row
    scores, data), so `probgen report RUN_DIR` rebuilds the same report."""
    import pandas as pd

    from probgen import checks
    from probgen.checks import two_sample
    from probgen.checks import metrics as information
    from probgen.infer.amortized import params_from_dataset
    from probgen.spec import ReportPart, Section

    options = config["model"]["options"]
    seed = int(config.get("seed", 0))
    key = jax.random.fold_in(jax.random.PRNGKey(seed), 7)
    params = params_from_dataset(idata.parameters)
    x_train = idata.observed_data["x"].values
    architecture = architecture_from(options, x_train.shape[1])
    held = idata.held_out_scores
    x_held = idata.held_out_data["x"].values
    num_dims = architecture.num_dims
    levels = int(options.get("pixel_levels", 0))

    # ---- likelihoods ------------------------------------------------------------------------
    rows = []
    for part, label in (("training", "training rows"), ("validation", "validation rows (early stopping)"),
                        ("held_out", "held-out rows")):
        if f"{part}_scores" in idata.groups():
            mean, se = _mean_se(idata[f"{part}_scores"]["elbo"].values)
            rows.append({"bound": f"ELBO, {label}", "rows": idata[f"{part}_scores"].sizes["obs_id"],
                         "nats_per_example": mean, "se": se})
    iwae_mean, iwae_se = _mean_se(held["iwae"].values)
    samples = int(options["iwae_samples"])
    rows.append({"bound": f"IWAE (K = {samples}), held-out rows", "rows": int(held.sizes["obs_id"]),
                 "nats_per_example": iwae_mean, "se": iwae_se})
    table = pd.DataFrame(rows).set_index("bound")
    table["bits_per_dimension"] = -table["nats_per_example"] / (num_dims * math.log(2))
    likelihood = {"elbo": {r["bound"]: {"nats_per_example": r["nats_per_example"], "se": r["se"]} for r in rows[:-1]},
                  "iwae": {"samples": samples, "nats_per_example": iwae_mean, "se": iwae_se,
                           "bits_per_dimension": -iwae_mean / (num_dims * math.log(2))}}
    bits = -iwae_mean / (num_dims * math.log(2))
    text = (f"The importance-weighted bound with K = {samples} samples is the held-out log-likelihood estimate: "
            f"{iwae_mean:.2f} nats per example (SE {iwae_se:.2f}), {bits:.3f} bits per dimension over {num_dims} "
            f"dimensions{' (negative: a density on a bounded range can exceed 1)' if bits < 0 else ''}. Both bounds are lower bounds on log p(x); the IWAE one is "
            f"{iwae_mean - rows[-2]['nats_per_example']:.2f} nats tighter than the held-out ELBO.")
    if options.get("transform") == "dequantize" and levels >= 2:
        discrete = (-iwae_mean + num_dims * math.log(levels)) / (num_dims * math.log(2))
        likelihood["iwae"]["bits_per_dimension_discrete"] = discrete
        text += (f" The values were dequantised from {levels} levels, so {discrete:.3f} bits per dimension bounds the "
                 "code length of the original integer values (adding log L per value).")
    train_elbo = rows[0]["nats_per_example"]
    held_elbo = next(r["nats_per_example"] for r in rows if r["bound"].endswith("held-out rows") and "ELBO" in r["bound"])
    if train_elbo - held_elbo > 3 * math.hypot(rows[0]["se"], rows[-2]["se"]):
        text += (f" The training ELBO is {train_elbo - held_elbo:.2f} nats above the held-out one: the networks fit "
                 "their training rows better than new ones (overfitting; early stopping limits it).")
    sections = [Section("Generative performance", text, table)]

    # ---- latent space -----------------------------------------------------------------------
    loc, scale = held["z_loc"].values, held["z_scale"].values
    kl_rows = 0.5 * (scale**2 + loc**2 - 1.0) - np.log(scale)
    kl = kl_rows.mean(0)
    kl_se = kl_rows.std(0, ddof=1) / math.sqrt(len(kl_rows)) if len(kl_rows) > 1 else np.full(len(kl), np.nan)
    active = kl > ACTIVE_UNIT_NATS
    summary = pd.DataFrame({"kl_nats": kl, "kl_se": kl_se, "active": active, "loc_mean": loc.mean(0),
                            "loc_sd": loc.std(0), "encoder_sd_mean": scale.mean(0)},
                           index=pd.Index([f"z[{i}]" for i in range(len(kl))], name="latent dimension"))
    mutual = information.aggregate_posterior_mutual_information(jnp.asarray(loc), jnp.asarray(scale),
                                                                jax.random.fold_in(key, 1), 2000)
    latent = {"kl_per_dimension_nats": kl.tolist(), "kl_per_dimension_se": kl_se.tolist(),
              "active_units": int(active.sum()), "latent_dim": int(len(kl)), "active_threshold_nats": ACTIVE_UNIT_NATS,
              "mutual_information_nats": mutual.value, "mutual_information_se": mutual.standard_error,
              "mutual_information_upper_limit_log_n": math.log(len(loc))}
    sections.append(Section(
        "Latent space",
        f"{int(active.sum())} of {len(kl)} latent dimensions are active (mean KL(q(z|x) || p(z)) above "
        f"{ACTIVE_UNIT_NATS} nats on the held-out rows; the table above gives each one). Their total, "
        f"{kl.sum():.2f} nats per example, is the rate the encoder spends. The mutual information between x and z "
        f"under the aggregate posterior is {mutual.value:.2f} nats (SE {mutual.standard_error:.2f}); it cannot "
        f"exceed log N = {math.log(len(loc)):.2f} for N = {len(loc)} rows, and an estimate near that limit means the "
        "codes tell the rows apart."))

    # ---- anomaly detection ------------------------------------------------------------------
    anomaly = None
    if "anomaly_scores" in idata.groups():
        scores = np.concatenate([-held["iwae"].values, -idata.anomaly_scores["iwae"].values])
        is_anomaly = np.concatenate([np.zeros(held.sizes["obs_id"], bool),
                                     np.ones(idata.anomaly_scores.sizes["obs_id"], bool)])
        anomaly = checks.anomaly_auroc(scores, is_anomaly)
        anomaly["anomaly_label"] = options["anomaly_label"]
        anomaly["anomaly_iwae_nats_per_example"] = float(idata.anomaly_scores["iwae"].values.mean())
        sections.append(Section(
            "Anomaly detection",
            f"The rows labelled {options['anomaly_label']} were kept out of training. Scoring every held-out row by "
            f"its negative IWAE log-likelihood, {anomaly['reading']}. Their mean IWAE is "
            f"{anomaly['anomaly_iwae_nats_per_example']:.2f} nats against {iwae_mean:.2f} for the held-out normal rows."))

    # ---- generated vs held-out --------------------------------------------------------------
    generated = np.asarray(sample_images(params, architecture, jax.random.fold_in(key, 2), len(x_held), mean=False))
    tests = two_sample.two_sample_tests(generated, x_held, seed=seed, names=list(map(str, idata.held_out_data["feature"].values)))
    test_table = pd.DataFrame([t.as_dict() for t in tests]).set_index("test")[["statistic", "p_value", "reading"]]
    sections.append(Section(
        "Generated against held-out data",
        f"{len(x_held)} rows drawn from the model (z ~ N(0, I), then x ~ p(x | z)) against the {len(x_held)} held-out "
        "rows, which training did not see. "
        + (f"{sum(t.p_value < 0.05 for t in tests)} of {len(tests)} tests reject at the 5% level: the generated rows "
           "differ from real ones in the way each names; a model can score well on likelihood and still be told apart "
           "from the data." if any(t.p_value < 0.05 for t in tests) else
           f"None of the {len(tests)} tests tells the generated rows from the held-out ones at the 5% level."),
        test_table))

    history = idata.optimization
    training = {"steps_run": int(history.attrs["steps_run"]), "best_step": int(history.attrs["best_step"]),
                "stopped_early": bool(history.attrs["stopped_early"]), "resumed_from": int(history.attrs["resumed_from"])}
    metrics = {"vae": {"likelihood": likelihood, "latent": latent, "training": training,
                       "generated_vs_held_out": [t.as_dict() for t in tests],
                       **({"anomaly": anomaly} if anomaly else {})}}
    figures = _report_figures(idata, params, architecture, options, loc, kl, key)
    return ReportPart(tuple(sections), metrics, figures, summary=summary, summary_title="Latent dimensions",
                      summary_units="nats, per latent dimension, over the held-out rows")


def _report_figures(idata, params, architecture: Architecture, options: dict, loc, kl, key) -> dict:
    import matplotlib.pyplot as plt

    figures = {}
    history = idata.optimization
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(history["step"].values, history["train_elbo"].values, label="training (minibatch, KL weight as trained)")
    axis.plot(history["step"].values, history["heldout_elbo"].values, label="validation")
    axis.axvline(int(history.attrs["best_step"]), color="0.5", ls=":", label="kept parameters")
    axis.set_xlabel("step")
    axis.set_ylabel("ELBO per example (nats)")
    axis.legend(fontsize=8)
    figures["elbo"] = figure

    figure, axis = plt.subplots(figsize=(6, 3))
    order = np.arange(len(kl))
    axis.bar(order, kl, color=["C0" if value > ACTIVE_UNIT_NATS else "0.7" for value in kl])
    axis.set_xlabel("latent dimension")
    axis.set_ylabel("mean KL(q || p) (nats)")
    axis.set_title("information per latent dimension (grey: inactive)")
    figures["kl_per_dimension"] = figure

    x_held = idata.held_out_data["x"].values
    labels = idata.held_out_data["label"].values if "label" in idata.held_out_data else None
    shown = loc[:, np.argsort(kl)[::-1][:2]] if loc.shape[1] >= 2 else np.column_stack([loc[:, 0], np.zeros(len(loc))])
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    if labels is not None:
        points = axis.scatter(shown[:, 0], shown[:, 1], c=labels, cmap="tab10", s=10)
        figure.colorbar(points, label="label")
    else:
        axis.scatter(shown[:, 0], shown[:, 1], s=10)
    axis.set_xlabel("most active latent dimension")
    axis.set_ylabel("second most active" if loc.shape[1] >= 2 else "")
    axis.set_title("encoder means of the held-out rows")
    figures["latent_map"] = figure

    shape = parse_image_shape(options.get("image_shape", ""), architecture.num_dims)
    if shape is None:
        return figures
    count = min(10, len(x_held))
    means = np.asarray(decode_mean(params, jnp.asarray(loc[:count]), architecture))
    figure, axes = plt.subplots(2, count, figsize=(count, 2.3), squeeze=False)
    for i in range(count):
        axes[0, i].imshow(x_held[i].reshape(shape), cmap="gray_r")
        axes[1, i].imshow(means[i].reshape(shape), cmap="gray_r")
    for axis in axes.ravel():
        axis.axis("off")
    figure.suptitle("held-out rows (top) and their reconstructions E[x | z = encoder mean] (bottom)", fontsize=9)
    figures["reconstructions"] = figure

    images = np.asarray(sample_images(params, architecture, jax.random.fold_in(key, 3), 40))
    figure, axes = plt.subplots(4, 10, figsize=(10, 4.3))
    for axis, image in zip(axes.ravel(), images):
        axis.imshow(image.reshape(shape), cmap="gray_r")
        axis.axis("off")
    figure.suptitle("new rows from the prior: z ~ N(0, I), then E[x | z]", fontsize=9)
    figures["prior_samples"] = figure

    if len(loc) >= 2:
        pairs = [(0, 1)]
        if labels is not None:  # two held-out rows with different labels, when there are
            different = np.flatnonzero(labels != labels[0])
            pairs = [(0, int(different[0]))] if len(different) else pairs
        if len(loc) >= 4:
            pairs.append((2, 3))
        steps = np.linspace(0.0, 1.0, 10)
        figure, axes = plt.subplots(len(pairs), 12, figsize=(12, 1.25 * len(pairs) + 0.4), squeeze=False)
        for row, (a, b) in enumerate(pairs):
            path = (1 - steps)[:, None] * loc[a] + steps[:, None] * loc[b]
            decoded = np.asarray(decode_mean(params, jnp.asarray(path), architecture))
            panels = [x_held[a]] + list(decoded) + [x_held[b]]
            for column, image in enumerate(panels):
                axes[row, column].imshow(image.reshape(shape), cmap="gray_r")
                axes[row, column].axis("off")
        figure.suptitle("latent interpolation between two held-out rows (ends: the rows; between: E[x | z] along the "
                        "line between their encoder means)", fontsize=9)
        figures["interpolations"] = figure
    return figures
