"""The family's report section (retained dimensions, the check against held-out likelihood,
the held-out score) and its plots (latent map, loadings, factor variances)."""

from __future__ import annotations

import math

import numpy as np

from probgen.models.ppca.data import ledermann_bound
from probgen.models.ppca.evaluation import (dimension_verdict, held_out_by_dimension, posterior_means,
                                            predictive_log_density, retained_dimensions)
from probgen.models.ppca.model import latent_means, log_density, maximum_likelihood
from probgen.spec import ReportPart, Section

# isotropic noise on columns whose sds differ more than this (a 100-fold variance): the report
# points to --standardize or --noise diagonal
UNEQUAL_SDS = 10.0


def unequal_scales_note(x, noise: str) -> tuple[str, float]:
    """(the report's note, the columns' largest sd over their smallest): the note is empty unless
    one isotropic noise scale covers columns whose sds differ more than UNEQUAL_SDS-fold."""
    sds = np.asarray(x, np.float64).std(axis=0)
    ratio = float(sds.max() / max(sds.min(), 1e-300))
    if noise != "isotropic" or ratio <= UNEQUAL_SDS:
        return "", ratio
    return (f"The columns' sds differ {ratio:.0f}-fold ({sds.min():.3g} to {sds.max():.3g}) under one noise scale: the "
            "smallest columns set sigma, and the factors must reproduce the largest to within it, a thin curved "
            "posterior where NUTS can diverge (five mtcars columns: 1-6 divergences in 4,000 draws). --standardize "
            "(PPCA of the correlations, reported in the data's units) or --noise diagonal (factor analysis, a noise "
            "scale per column) fit such tables."), ratio


def report(idata, config) -> ReportPart:
    posterior = idata.posterior
    x = idata.observed_data["x"].values
    table = retained_dimensions(posterior, len(x))
    kept = int(table["retained"].sum())
    allowed = int(posterior.sizes["factor"])
    noise = "isotropic" if "sigma" in posterior else "diagonal"
    metrics = {"retained_dimensions": kept, "latent_dim_allowed": allowed,
               "train_log_predictive_per_row": float(predictive_log_density(posterior, x).mean())}
    judged = ("its factor variance above sigma^2 sqrt(D / N)" if "sigma" in posterior else
              "its signal-to-noise eigenvalue (W^T Psi^-1 W) above sqrt(D / N)")
    num_dims = x.shape[1]
    bound = num_dims - 1 if noise == "isotropic" else ledermann_bound(num_dims)
    text = (f"{kept} of the {allowed} loading columns allowed carry signal (the 5% quantile of {judged}, the weakest "
            "direction a sample of N rows can separate from noise; judged_q05 and threshold in the table)"
            + ("; the automatic relevance determination prior shrank the other "
               f"{allowed - kept} towards 0." if kept < allowed else
               f": every column allowed is used, and {allowed} is the most this model identifies for {num_dims} "
               "columns." if allowed >= bound else
               ": every column allowed is used, so the data may hold more; refit with a larger --latent-dim to see."))
    note, ratio = unequal_scales_note(x, noise)
    if note:
        metrics["column_sd_ratio"] = ratio
        text += " " + note
    if noise == "isotropic" and 1 <= kept < x.shape[1]:
        ml = maximum_likelihood(x, kept)
        ml_ll = float(log_density(x, ml["mu"], ml["W"], ml["sigma2"]).mean())
        metrics["train_log_likelihood_per_row_ml"] = ml_ll
        text += (f" The closed-form maximum-likelihood PPCA with q = {kept} (Tipping & Bishop 1999) has training "
                 f"log-likelihood {ml_ll:.4f} nats per row; the posterior predictive "
                 f"{metrics['train_log_predictive_per_row']:.4f}.")
    if "held_out_data" in idata.groups():
        held = idata.held_out_data["x"].values
        held_ll = predictive_log_density(posterior, held)
        metrics["held_out_log_likelihood_per_row"] = float(held_ll.mean())
        metrics["held_out_log_likelihood_se"] = float(held_ll.std(ddof=1) / math.sqrt(len(held_ll)))
        text += (f" Held-out rows: {held_ll.mean():.4f} ± {metrics['held_out_log_likelihood_se']:.4f} nats per row "
                 f"({-held_ll.mean() / (x.shape[1] * math.log(2)):.4f} bits per dimension) under the posterior "
                 "predictive (the density averaged over posterior draws).")
    metrics["retained"] = table.reset_index().to_dict("records")
    sections = [Section("Retained dimensions", text, table.round(5))]
    held = idata.held_out_data["x"].values if "held_out_data" in idata.groups() else None
    by_dimension = held_out_by_dimension(x, held, noise, allowed, seed=int(config.get("seed", 0)))
    verdict = dimension_verdict(kept, by_dimension)
    chosen = int(by_dimension.index[by_dimension["chosen"]][0])
    metrics["held_out_by_dimension"] = {"scored_on": by_dimension.attrs["scored_on"], "chosen": chosen,
                                        "rows": by_dimension.reset_index().to_dict("records")}
    sections.append(Section(
        "Retained dimensions against held-out likelihood",
        f"The same question asked of rows the fit did not see: the maximum-likelihood {'PPCA' if noise == 'isotropic' else 'factor analysis'} "
        f"with q = 0 to {allowed} dimensions, scored on {by_dimension.attrs['scored_on']} (nats per row; chosen: "
        "the smallest q within one standard error of the best). " + verdict.reason[0].upper() + verdict.reason[1:] + ".",
        by_dimension))
    return ReportPart(sections=tuple(sections), metrics=metrics, verdicts=(verdict,))


def plots(idata) -> dict:
    """The 2-D latent map (E[z | x] on the first two canonical factors), the loadings and the
    factor variances of every column allowed."""
    import matplotlib.pyplot as plt

    posterior = idata.posterior
    x = idata.observed_data["x"].values
    mu, loadings, noise = posterior_means(posterior)
    z = latent_means(x, mu, loadings, noise)
    figures = {}
    figure, axis = plt.subplots(figsize=(6, 5))
    labels = idata.constant_data["label"].values if ("constant_data" in idata.groups()
                                                      and "label" in idata.constant_data) else None
    second = z[:, 1] if z.shape[1] > 1 else np.zeros(len(z))
    if labels is not None:
        for value in np.unique(labels):
            chosen = labels == value
            axis.scatter(z[chosen, 0], second[chosen], s=8, alpha=0.6, label=str(value))
        axis.legend(fontsize=7, markerscale=2, ncol=2)
    else:
        axis.scatter(z[:, 0], second, s=8, alpha=0.6)
    axis.set_xlabel("factor 0")
    axis.set_ylabel("factor 1")
    axis.set_title("Latent map: E[z | x] for each training row (posterior-mean parameters)")
    figure.tight_layout()
    figures["latent_map"] = figure

    figure, axis = plt.subplots(figsize=(min(10, 2 + 0.4 * loadings.shape[1]), min(10, 2 + 0.15 * loadings.shape[0])))
    limit = np.abs(loadings).max() or 1.0
    image = axis.imshow(loadings, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
    axis.set_xlabel("factor (canonical order: most variance first)")
    axis.set_ylabel("feature")
    if loadings.shape[0] <= 30:
        axis.set_yticks(range(loadings.shape[0]), [str(f) for f in posterior["feature"].values], fontsize=7)
    figure.colorbar(image, ax=axis)
    axis.set_title("Loadings W (posterior mean, canonical rotation)")
    figure.tight_layout()
    figures["loadings"] = figure

    table = retained_dimensions(posterior, len(x))
    figure, axis = plt.subplots(figsize=(6, 3.5))
    position = np.arange(len(table))
    axis.bar(position, table["factor_variance"], color=np.where(table["retained"], "tab:blue", "0.7"))
    axis.errorbar(position, table["factor_variance"], yerr=[table["factor_variance"] - table["q05"],
                                                            table["q95"] - table["factor_variance"]], fmt="none",
                  color="black", lw=1)
    axis.axhline(table["threshold"].iloc[0], color="tab:red", ls=":", label="retention threshold")
    axis.set_yscale("log")
    axis.set_xlabel("factor")
    axis.set_ylabel("factor variance s_j^2")
    axis.set_title("Retained dimensions (blue): median and 90% interval")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figures["retained_dimensions"] = figure
    return figures
