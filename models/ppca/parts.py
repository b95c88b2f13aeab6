"""The family's hooks on the draws: the canonical rotation of W (`postprocess`), the chains'
starts (`init`), the rotation-free quantities R-hat judges (`convergence_on`) and the labels
kept for the latent map (`derived`)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from probgen.models.ppca.model import assemble_loadings, canonical_loadings, lower_trapezoidal, maximum_likelihood

def postprocess(samples: dict, inputs) -> dict:
    """Adds W in canonical form (`canonical_loadings`) to the draws; the likelihood is the same."""
    below, diagonal = np.asarray(samples["W_below"]), np.asarray(samples["W_diagonal"])
    spread = np.asarray(inputs.kwargs["spread"])  # W_dj = spread_d tau_j w_dj (the model's rows)
    latent_dim = diagonal.shape[-1]
    rows, columns = np.tril_indices(len(spread), -1, latent_dim)
    scale = np.asarray(samples["column_scale"]) if "column_scale" in samples else np.ones(latent_dim)
    below = below * spread[rows] * scale[..., columns]
    diagonal = diagonal * spread[:latent_dim] * scale
    loadings = assemble_loadings(below, diagonal, len(spread))
    return {**samples, "W": canonical_loadings(loadings).astype(np.asarray(samples["W_diagonal"]).dtype)}


def init(inputs, rng_key, num_chains: int) -> dict:
    """Each chain starts at the maximum-likelihood PPCA (q = --latent-dim) of its own bootstrap
    resample of the rows: near the posterior, yet apart, so R-hat still sees separate modes."""
    import jax

    x = np.asarray(inputs.observed["x"], np.float64)
    kwargs = inputs.kwargs
    num_dims, latent_dim = x.shape[1], kwargs["latent_dim"]
    rows, columns = np.tril_indices(num_dims, -1, latent_dim)
    spread = np.asarray(kwargs["spread"], np.float64)
    rng = np.random.default_rng(int(jax.random.randint(rng_key, (), 0, 2**31 - 1)))
    starts: dict = {}
    for _ in range(num_chains):
        sample = x[rng.integers(len(x), size=len(x))]
        ml = maximum_likelihood(sample, latent_dim)
        lower = lower_trapezoidal(ml["W"]) / spread[:, None]  # the model's standardised rows
        scale = np.sqrt((lower**2).mean(0)) + 1e-3 if kwargs["ard"] else np.ones(latent_dim)
        start = {"mu": ml["mu"], "W_below": lower[rows, columns] / scale[columns],
                 "W_diagonal": np.maximum(np.diag(lower), 1e-6) / scale}
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
