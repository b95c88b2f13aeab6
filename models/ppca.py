"""Probabilistic PCA and factor analysis: the linear-Gaussian latent model, latents summed out,
the latent dimension chosen by an ARD prior on the loading columns.

    z_n ~ Normal(0, I_q)                           q = --latent-dim, the most dimensions allowed
    x_n | z_n ~ Normal(mu + W z_n, Psi)            Psi = sigma^2 I (ppca) or diag(psi^2) (fa)
so  x_n ~ Normal(mu, W W^T + Psi)                  (what the sampler sees: z is integrated out)

    mu_d          ~ Normal(centre_d, 10 spread_d)        spread_d: column d's sd in the training rows
    tau_j         ~ HalfCauchy(overall spread)           ARD: one scale per loading column
    W_dj          ~ Normal(0, tau_j)
    sigma | psi_d ~ HalfNormal(overall spread | spread_d)

Automatic relevance determination (Bishop 1999): a column the data do not need has its tau_j
pulled to 0 by the heavy-tailed prior, and the column with it, so the posterior keeps the
dimensions the data support. The likelihood is NumPyro's `LowRankMultivariateNormal`, so each
evaluation costs O(N D q^2), not O(D^3).

W is identified only up to a rotation (W R has the same likelihood for any orthogonal R), so
chains wander over rotations. `postprocess` puts every draw in a canonical form, W = U S (the
left singular vectors scaled by the singular values, sign fixed so that each column's largest
loading is positive): W W^T is unchanged, and the columns come out ordered by the variance
they explain. R-hat and ESS are judged on rotation-free quantities (`convergence_on`): mu, the
noise, the sorted factor variances s_j^2 (the eigenvalues of W^T W) and the log density.

The closed-form maximum-likelihood PPCA (Tipping & Bishop 1999) is `maximum_likelihood`; the
tests check it against scikit-learn's `PCA.score` and the posterior against both.

Fitted by NUTS for small data (the default) and by `--method svi` (an autoguide on the global
parameters; z is summed out, so there are no per-row latents) for larger.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
import xarray as xr

from probgen.errors import ModelError
from probgen.spec import DerivedGroups, FamilyPlots, JudgedOn, ModelInputs, ModelSpec, Option, Relabel, ReportPart, Section

NOISE = ("isotropic", "diagonal")
PRIORS = ("ard", "normal")
SINGLET_SHARE = 0.9  # factor analysis: a factor with this share of its loadings on one variable is not retained


def ppca(x=None, *, num_points: int, latent_dim: int, centre, spread, noise: str = "isotropic", ard: bool = True):
    """The marginal linear-Gaussian model. x: (num_points, D) or None (to generate)."""
    centre, spread = jnp.asarray(centre), jnp.asarray(spread)
    num_dims = centre.shape[0]
    overall = jnp.sqrt(jnp.mean(spread**2))
    mu = numpyro.sample("mu", dist.Normal(centre, 10.0 * spread).to_event(1))
    if ard:
        tau = numpyro.sample("column_scale", dist.HalfCauchy(overall).expand([latent_dim]).to_event(1))
    else:
        tau = jnp.full(latent_dim, overall)
    # lower-triangular W with a positive diagonal (Geweke & Zhou 1996): one representative of
    # each rotation class, so that the sampler does not wander along the rotations
    rows, columns = np.tril_indices(num_dims, -1, latent_dim)
    # non-centred: the columns ARD prunes would otherwise form a funnel with their scale
    below = tau[columns] * numpyro.sample("W_below", dist.Normal(0.0, 1.0).expand([len(rows)]).to_event(1))
    diagonal = tau * numpyro.sample("W_diagonal", dist.HalfNormal(1.0).expand([latent_dim]).to_event(1))
    loadings = jnp.zeros((num_dims, latent_dim)).at[rows, columns].set(below)
    loadings = numpyro.deterministic("W", loadings.at[jnp.arange(latent_dim), jnp.arange(latent_dim)].set(diagonal))
    if noise == "isotropic":
        sigma = numpyro.sample("sigma", dist.HalfNormal(overall))
        noise_variance = jnp.full(num_dims, sigma**2)
    else:
        psi = numpyro.sample("psi", dist.HalfNormal(spread).to_event(1))
        noise_variance = psi**2
    numpyro.deterministic("factor_variance", jnp.sort(jnp.linalg.eigvalsh(loadings.T @ loadings))[::-1])
    with numpyro.plate("data", num_points):
        numpyro.sample("x", dist.LowRankMultivariateNormal(mu, loadings, noise_variance), obs=x)


# --------------------------------------------------------------------------------------------
# Closed forms: maximum likelihood (Tipping & Bishop 1999), log density, posterior of z
# --------------------------------------------------------------------------------------------
def maximum_likelihood(x, latent_dim: int, ddof: int = 0) -> dict:
    """The maximum-likelihood PPCA with q = latent_dim: mu = the mean, sigma^2 = the mean of the
    D - q smallest eigenvalues of the sample covariance S, W = U_q (Lambda_q - sigma^2 I)^(1/2).
    ddof=1 uses S with N - 1 (scikit-learn's convention). Returns mu (D,), W (D, q), sigma2."""
    x = np.asarray(x, np.float64)
    num_dims = x.shape[1]
    if not 1 <= latent_dim < num_dims:
        raise ModelError(f"latent dimension must be between 1 and D - 1 = {num_dims - 1}, got {latent_dim}")
    mu = x.mean(0)
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False, ddof=ddof))
    values, vectors = values[::-1], vectors[:, ::-1]
    sigma2 = float(values[latent_dim:].mean())
    loadings = vectors[:, :latent_dim] * np.sqrt(np.maximum(values[:latent_dim] - sigma2, 0.0))
    return {"mu": mu, "W": loadings, "sigma2": sigma2}


def log_density(x, mu, loadings, noise_variance) -> np.ndarray:
    """log Normal(x_n | mu, W W^T + diag(noise_variance)) per row (N,), in float64."""
    x, mu, loadings = np.asarray(x, np.float64), np.asarray(mu, np.float64), np.asarray(loadings, np.float64)
    covariance = loadings @ loadings.T + np.diag(np.broadcast_to(np.asarray(noise_variance, np.float64), mu.shape))
    cholesky = np.linalg.cholesky(covariance)
    whitened = np.linalg.solve(cholesky, (x - mu).T)
    return (-0.5 * (whitened**2).sum(0) - np.log(np.diag(cholesky)).sum() - 0.5 * len(mu) * math.log(2 * math.pi))


def latent_means(x, mu, loadings, noise_variance) -> np.ndarray:
    """E[z_n | x_n] = M^-1 W^T Psi^-1 (x_n - mu), M = I + W^T Psi^-1 W: (N, q)."""
    weighted = np.asarray(loadings) / np.asarray(noise_variance)[:, None]
    precision = np.eye(loadings.shape[1]) + np.asarray(loadings).T @ weighted
    return np.linalg.solve(precision, weighted.T @ (np.asarray(x) - np.asarray(mu)).T).T


# --------------------------------------------------------------------------------------------
# Table -> inputs; draws -> canonical form
# --------------------------------------------------------------------------------------------
def ledermann_bound(num_dims: int) -> int:
    """The most factors a factor analysis of D variables identifies: the largest q with
    (D - q)^2 >= D + q (Ledermann 1937), i.e. fewer parameters than the covariance has."""
    return int(math.floor((2 * num_dims + 1 - math.sqrt(8 * num_dims + 1)) / 2))


def _value_columns(frame, options) -> list:
    return [c for c in frame.columns if c != options["label_column"]]


def prepare(frame, options) -> ModelInputs:
    label_column = options["label_column"]
    if label_column and label_column not in frame.columns:
        raise ModelError(f"--label-column '{label_column}' is not a column of the data")
    columns = _value_columns(frame, options)
    x = frame[columns].to_numpy(dtype=np.float32)
    num_points, num_dims = x.shape
    if num_dims < 2:
        raise ModelError(f"PPCA needs at least 2 value columns, the data have {num_dims}")
    bound = ledermann_bound(num_dims) if options["noise"] == "diagonal" else num_dims - 1
    latent_dim = int(options["latent_dim"]) or max(1, min(bound, 10))
    if latent_dim >= num_dims:
        raise ModelError(f"--latent-dim {latent_dim} must be below the number of value columns ({num_dims})")
    if latent_dim > bound:
        raise ModelError(f"--latent-dim {latent_dim} is above the Ledermann bound {bound} for {num_dims} columns: factor "
                         "analysis with that many factors has as many parameters as the covariance itself and is not "
                         "identified")
    spread = x.std(axis=0).astype(np.float64)
    constant = [str(c) for c, s in zip(columns, spread) if not s > 0]
    if constant and options["noise"] == "diagonal":
        raise ModelError(f"column {constant[0]} has a single value; factor analysis needs spread in every column")
    spread = np.where(spread > 0, spread, max(float(spread.max()), 1e-6))
    features = [str(c) for c in columns]
    labels = {"label": frame[label_column].to_numpy()} if label_column else {}
    return ModelInputs(
        kwargs={"num_points": num_points, "latent_dim": latent_dim, "centre": x.mean(axis=0).astype(np.float64),
                "spread": spread, "noise": options["noise"], "ard": options["column_prior"] == "ard"},
        observed={"x": x},
        coords={"obs_id": np.arange(num_points), "feature": features, "factor": np.arange(latent_dim)},
        dims={"x": ["obs_id", "feature"], "mu": ["feature"], "psi": ["feature"], "W": ["feature", "factor"],
              "W_diagonal": ["factor"], "column_scale": ["factor"], "factor_variance": ["factor"]},
        labels=labels,
    )


def canonical_loadings(loadings: np.ndarray) -> np.ndarray:
    """W = U S V^T -> U S with each column's largest-magnitude entry positive: the same W W^T,
    columns ordered by the variance they explain. Works on any leading axes (..., D, q)."""
    left, singular, _ = np.linalg.svd(np.asarray(loadings, np.float64), full_matrices=False)
    canonical = left * singular[..., None, :]
    largest = np.take_along_axis(canonical, np.abs(canonical).argmax(axis=-2)[..., None, :], axis=-2)
    return canonical * np.where(largest < 0, -1.0, 1.0)


def assemble_loadings(below, diagonal, num_dims: int) -> np.ndarray:
    """W (..., D, q) from its free entries below the diagonal and its positive diagonal."""
    below, diagonal = np.asarray(below, np.float64), np.asarray(diagonal, np.float64)
    latent_dim = diagonal.shape[-1]
    rows, columns = np.tril_indices(num_dims, -1, latent_dim)
    loadings = np.zeros(diagonal.shape[:-1] + (num_dims, latent_dim))
    loadings[..., rows, columns] = below
    loadings[..., np.arange(latent_dim), np.arange(latent_dim)] = diagonal
    return loadings


def postprocess(samples: dict, inputs) -> dict:
    """Adds W in canonical form (`canonical_loadings`) to the draws; the likelihood is the same."""
    below, diagonal = np.asarray(samples["W_below"]), np.asarray(samples["W_diagonal"])
    if "column_scale" in samples:  # the non-centred draws times their column's scale
        scale = np.asarray(samples["column_scale"])
        latent_dim = scale.shape[-1]
        below = below * scale[..., np.tril_indices(len(inputs.kwargs["centre"]), -1, latent_dim)[1]]
        diagonal = diagonal * scale
    else:
        overall = float(np.sqrt(np.mean(np.asarray(inputs.kwargs["spread"]) ** 2)))  # the model's fixed scale
        below, diagonal = below * overall, diagonal * overall
    loadings = assemble_loadings(below, diagonal, len(inputs.kwargs["centre"]))
    return {**samples, "W": canonical_loadings(loadings).astype(np.asarray(samples["W_diagonal"]).dtype)}


def lower_trapezoidal(loadings: np.ndarray) -> np.ndarray:
    """The representative of W's rotation class that the model samples: W = L Q with L lower
    trapezoidal (zeros above the diagonal), its diagonal positive, Q orthogonal (QR of W^T)."""
    _, upper = np.linalg.qr(np.asarray(loadings, np.float64).T)
    lower = upper.T
    signs = np.where(np.diag(lower) < 0, -1.0, 1.0)
    return lower * signs


def init(inputs, rng_key, num_chains: int) -> dict:
    """Each chain starts at the maximum-likelihood PPCA (q = --latent-dim) of its own bootstrap
    resample of the rows: near the posterior, yet apart, so R-hat still sees separate modes."""
    import jax

    x = np.asarray(inputs.observed["x"], np.float64)
    kwargs = inputs.kwargs
    num_dims, latent_dim = x.shape[1], kwargs["latent_dim"]
    rows, columns = np.tril_indices(num_dims, -1, latent_dim)
    overall = float(np.sqrt(np.mean(np.asarray(kwargs["spread"]) ** 2)))
    rng = np.random.default_rng(int(jax.random.randint(rng_key, (), 0, 2**31 - 1)))
    starts: dict = {}
    for _ in range(num_chains):
        sample = x[rng.integers(len(x), size=len(x))]
        ml = maximum_likelihood(sample, latent_dim)
        lower = lower_trapezoidal(ml["W"])
        scale = np.sqrt((lower**2).mean(0)) + 1e-3 * overall if kwargs["ard"] else np.full(latent_dim, overall)
        start = {"mu": ml["mu"], "W_below": lower[rows, columns] / scale[columns],
                 "W_diagonal": np.maximum(np.diag(lower), 1e-6 * overall) / scale}
        if kwargs["ard"]:
            start["column_scale"] = scale
        if kwargs["noise"] == "isotropic":
            start["sigma"] = np.sqrt(ml["sigma2"])
        else:
            residual = np.var(sample, axis=0) - (ml["W"] ** 2).sum(1)
            start["psi"] = np.sqrt(np.maximum(residual, 0.05 * np.var(sample, axis=0)))
        for name, value in start.items():
            starts.setdefault(name, []).append(value)
    return {name: np.asarray(values, np.float32) for name, values in starts.items()}


def convergence_on(idata) -> xr.Dataset:
    """Rotation-free quantities: mu, the noise, the sorted factor variances, the log density."""
    posterior = idata.posterior
    quantities = {name: posterior[name] for name in ("mu", "sigma", "psi", "factor_variance") if name in posterior}
    if "sample_stats" in idata.groups() and "lp" in idata.sample_stats:
        quantities["log_density"] = idata.sample_stats["lp"]
    return xr.Dataset(quantities)


def derived(draws: dict, inputs, rng_key) -> dict:
    """The rows' labels (when --label-column names one), for the latent map."""
    if "label" not in inputs.labels:
        return {}
    return {"constant_data": xr.Dataset({"label": ("obs_id", np.asarray(inputs.labels["label"]))},
                                        coords={"obs_id": np.arange(len(inputs.labels["label"]))})}


# --------------------------------------------------------------------------------------------
# After the fit: noise, retained dimensions, report and plots
# --------------------------------------------------------------------------------------------
def noise_variance_draws(posterior) -> np.ndarray:
    """(chain * draw, D) noise variances."""
    if "psi" in posterior:
        return (posterior["psi"].values ** 2).reshape(-1, posterior.sizes["feature"])
    sigma2 = posterior["sigma"].values.reshape(-1, 1) ** 2
    return np.repeat(sigma2, posterior.sizes["feature"], axis=1)


def retention_threshold(noise_variance: float, num_points: int, num_dims: int) -> float:
    """The smallest factor variance the data can reveal: sigma^2 sqrt(D / N), the spike above
    which a direction separates from the noise eigenvalues of a sample covariance (Baik, Ben
    Arous & Peche 2005). Below it, a column fits noise."""
    return float(noise_variance) * math.sqrt(num_dims / num_points)


def retained_dimensions(posterior, num_points: int) -> pd.DataFrame:
    """Per loading column: the factor variance s_j^2 (median, 5% and 95%), its share of the total
    variance, and whether it is retained: its 5% quantile above `retention_threshold` (an ARD-pruned
    column's posterior reaches down to 0; a real one stays clear of the noise level). Factor
    analysis judges the eigenvalues of W^T Psi^-1 W instead (signal over each variable's own
    noise, threshold sqrt(D / N)), so a noisy variable does not pass for a factor. In factor
    analysis a factor with SINGLET_SHARE of its squared loadings on one variable is not retained:
    the likelihood cannot tell it from that variable's own noise (a factor is identified only when
    it loads on several variables)."""
    variance = posterior["factor_variance"].values.reshape(-1, posterior.sizes["factor"])
    noise = noise_variance_draws(posterior).mean(axis=1, keepdims=True)
    total = variance.sum(1, keepdims=True) + noise * posterior.sizes["feature"]
    judged, level = variance, noise.mean()
    if "psi" in posterior:  # factor analysis: judged in noise-whitened units, where the noise is isotropic
        loadings = posterior["W"].values.reshape((-1,) + posterior["W"].shape[2:])
        whitened = loadings / np.sqrt(noise_variance_draws(posterior))[:, :, None]
        judged = np.sort(np.linalg.eigvalsh(np.einsum("sdj,sdk->sjk", whitened, whitened)), axis=-1)[:, ::-1]
        level = 1.0
    threshold = retention_threshold(level, num_points, posterior.sizes["feature"])
    low = np.quantile(judged, 0.05, 0)
    loadings = posterior["W"].mean(("chain", "draw")).values
    largest = (loadings**2).max(0) / np.maximum((loadings**2).sum(0), 1e-300)
    retained = low > threshold
    if "psi" in posterior:  # factor analysis: a factor on one variable is that variable's unique variance
        retained &= largest < SINGLET_SHARE
    return pd.DataFrame({
        "factor_variance": np.median(variance, 0), "q05": np.quantile(variance, 0.05, 0),
        "q95": np.quantile(variance, 0.95, 0), "share_of_variance": np.median(variance / total, 0),
        "largest_loading_share": largest,
        # what retention judges, in its own units (the factor variance; in factor analysis the
        # noise-whitened eigenvalue), against the threshold in the same units
        "judged_q05": low, "threshold": threshold, "retained": retained,
    }, index=pd.Index(np.arange(posterior.sizes["factor"]), name="factor"))


PREDICTIVE_DRAWS = 200  # posterior draws averaged in the predictive density of a row


def predictive_log_density(posterior, x, max_draws: int = PREDICTIVE_DRAWS) -> np.ndarray:
    """log p(x_n | data) = log mean_s N(x_n | mu_s, W_s W_s^T + Psi_s) per row (N,), over up to
    `max_draws` posterior draws evenly thinned: the posterior predictive, not a plug-in of
    averaged parameters (which in a rotation-invariant model scores below the maximum
    likelihood)."""
    mu = posterior["mu"].values.reshape((-1,) + posterior["mu"].shape[2:])
    loadings = posterior["W"].values.reshape((-1,) + posterior["W"].shape[2:])
    noise = noise_variance_draws(posterior)
    chosen = np.unique(np.linspace(0, len(mu) - 1, min(max_draws, len(mu))).round().astype(int))
    per_draw = np.stack([log_density(x, mu[s], loadings[s], noise[s]) for s in chosen])
    top = per_draw.max(0)
    return top + np.log(np.exp(per_draw - top).mean(0))


def posterior_means(posterior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, canonical W, noise variance) averaged over the draws."""
    return (posterior["mu"].mean(("chain", "draw")).values, posterior["W"].mean(("chain", "draw")).values,
            noise_variance_draws(posterior).mean(0))


def report(idata, config) -> ReportPart:
    posterior = idata.posterior
    x = idata.observed_data["x"].values
    table = retained_dimensions(posterior, len(x))
    kept = int(table["retained"].sum())
    metrics = {"retained_dimensions": kept, "latent_dim_allowed": int(posterior.sizes["factor"]),
               "train_log_predictive_per_row": float(predictive_log_density(posterior, x).mean())}
    allowed = int(posterior.sizes["factor"])
    judged = ("its factor variance above sigma^2 sqrt(D / N)" if "sigma" in posterior else
              "its signal-to-noise eigenvalue (W^T Psi^-1 W) above sqrt(D / N)")
    text = (f"{kept} of the {allowed} loading columns allowed carry signal (the 5% quantile of {judged}, the weakest "
            "direction a sample of N rows can separate from noise; judged_q05 and threshold in the table)"
            + ("; the automatic relevance determination prior shrank the other "
               f"{allowed - kept} towards 0." if kept < allowed else
               ": every column allowed is used, so the data may hold more; refit with a larger --latent-dim to see."))
    noise_kind = "isotropic" if "sigma" in posterior else "diagonal"
    if noise_kind == "isotropic" and 1 <= kept < x.shape[1]:
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
        metrics["held_out_log_likelihood_se"] = float(held_ll.std(ddof=1) / math.sqrt(max(len(held_ll) - 1, 1)))
        text += (f" Held-out rows: {held_ll.mean():.4f} ± {metrics['held_out_log_likelihood_se']:.4f} nats per row "
                 f"({-held_ll.mean() / (x.shape[1] * math.log(2)):.4f} bits per dimension) under the posterior "
                 "predictive (the density averaged over posterior draws).")
    metrics["retained"] = table.reset_index().to_dict("records")
    return ReportPart(sections=(Section("Retained dimensions", text, table.round(5)),), metrics=metrics)


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


SPEC = ModelSpec(
    name="ppca",
    model=ppca,
    prepare=prepare,
    options=(
        Option("latent_dim", int, 0, "most latent dimensions q (0: min(D - 1, 10)); ARD keeps those the data need",
               minimum=0),
        Option("noise", str, "isotropic", "isotropic (probabilistic PCA) or diagonal (factor analysis)", NOISE),
        Option("column_prior", str, "ard", "prior of the loading columns: ard (one HalfCauchy scale per column, "
                                           "prunes unneeded ones) or normal (fixed scale: all q are kept)", PRIORS),
        Option("label_column", str, "", "column holding each row's label (not modelled; colours the latent map)"),
    ),
    init=init,
    report=report,
    parts=(Relabel(postprocess), JudgedOn(convergence_on), DerivedGroups(derived), FamilyPlots(plots)),
    summary_vars=("factor_variance", "sigma", "psi", "mu"),
    description="probabilistic PCA / factor analysis: x = mu + W z + noise, z summed out, ARD picks the dimensions",
)
