"""The Bayesian neural network as a NumPyro model (an MLP with Normal weight priors, fixed or
hierarchical), and what convergence is judged on (its predictions and log density, as its
weights are not identified across chains)."""

from __future__ import annotations

import math
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import xarray as xr
from probgen.spec import ModelInputs


LIKELIHOODS = ("gaussian", "student_t", "bernoulli", "categorical")
ACTIVATIONS = ("tanh", "relu", "gelu", "silu", "sigmoid")
PRIORS = ("fixed", "hierarchical")
REGRESSION = ("gaussian", "student_t")


def bnn(x, y=None, *, num_points: int, num_features: int, hidden: tuple = (20,), activation: str = "tanh",
        prior: str = "fixed", prior_scale: float = 1.0, likelihood: str = "gaussian", num_classes: int = 2,
        noise_prior: float = 1.0, noise_sd: float = 0.0, student_df: float = 4.0):
    """The network and its likelihood. x: (N, D) features; y: (N,) targets or None."""
    outputs = num_classes if likelihood == "categorical" else 1
    sizes = (num_features, *hidden, outputs)
    h = x
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if prior == "hierarchical":
            tau = numpyro.sample(f"tau{layer}", dist.HalfNormal(prior_scale))
            raw = numpyro.sample(f"w{layer}_raw", dist.Normal(0.0, 1.0).expand([fan_in, fan_out]).to_event(2))
            weight = numpyro.deterministic(f"w{layer}", raw * tau / math.sqrt(fan_in))
        else:
            weight = numpyro.sample(f"w{layer}", dist.Normal(0.0, prior_scale / math.sqrt(fan_in))
                                    .expand([fan_in, fan_out]).to_event(2))
        bias = numpyro.sample(f"b{layer}", dist.Normal(0.0, prior_scale).expand([fan_out]).to_event(1))
        h = h @ weight + bias
        if layer < len(sizes) - 2:
            h = getattr(jax.nn, activation)(h)
    f = h if likelihood == "categorical" else h[..., 0]
    numpyro.deterministic("prediction", f)
    if likelihood in REGRESSION:
        sigma = noise_sd if noise_sd > 0 else numpyro.sample("sigma", dist.HalfNormal(noise_prior))
    with numpyro.plate("data", num_points):
        if likelihood == "gaussian":
            numpyro.sample("y", dist.Normal(f, sigma), obs=y)
        elif likelihood == "student_t":
            numpyro.sample("y", dist.StudentT(student_df, f, sigma), obs=y)
        elif likelihood == "bernoulli":
            numpyro.sample("y", dist.Bernoulli(logits=f), obs=y)
        else:
            numpyro.sample("y", dist.Categorical(logits=f), obs=y)


def convergence_on(idata) -> xr.Dataset:
    """What R-hat and ESS are judged on: f at every training row, the noise sd and the log
    density (not the weights, whose labels the posterior's symmetries permute)."""
    quantities = {"prediction": idata.posterior["prediction"]}
    for name in ("sigma",):
        if name in idata.posterior:
            quantities[name] = idata.posterior[name]
    if "sample_stats" in idata.groups() and "lp" in idata.sample_stats:
        quantities["log_density"] = idata.sample_stats["lp"]
    return xr.Dataset(quantities)


def derived(draws: dict, inputs: ModelInputs, rng_key) -> dict:
    """The training rows' standardised features (`constant_data`) and their standardisation
    (`scaling`), kept in the run so that held-out errors are reported and new inputs are
    predicted in the data's own units."""
    scale = inputs.labels["scaling"]
    features = list(scale["features"])
    return {"constant_data": xr.Dataset({"x": (("obs_id", "feature"), np.asarray(inputs.labels["x"]))},
                                        coords={"obs_id": np.arange(len(inputs.labels["x"])), "feature": features}),
            "scaling": xr.Dataset(
        {"feature_mean": ("feature", np.asarray(scale["feature_mean"])),
         "feature_sd": ("feature", np.asarray(scale["feature_sd"])),
         "target_mean": ((), scale["target_mean"]), "target_sd": ((), scale["target_sd"])},
        coords={"feature": list(scale["features"])}, attrs={"target": scale["target"]})}
