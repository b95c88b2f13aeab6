"""The posterior predictive at inputs (means, intervals, class probabilities), calibration and
the held-out evaluation the report reads; pure functions of the InferenceData."""

from __future__ import annotations

import math
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from probgen.errors import ModelError

from probgen.models.bnn.data import _model_kwargs, parse_hidden
from probgen.models.bnn.model import REGRESSION, bnn


def _flat_posterior(idata) -> dict:
    posterior = idata.posterior
    return {name: value.values.reshape((-1,) + value.shape[2:]) for name, value in posterior.data_vars.items()
            if not name.startswith("prediction")}


def predict(idata, options: dict, frame, rng_key=None, num_draws: int | None = None) -> dict:
    """Posterior predictive at new inputs `frame` (the fitted feature columns, in data units).

    Returns {"prediction": (S, N) f (logits for classification, target units for regression),
    "y": (S, N) draws of y in the target's units}, S posterior draws. Wrong or missing feature
    columns and NaNs are errors that name them."""
    from numpyro.infer import Predictive

    scaling = idata.scaling
    features = [str(f) for f in scaling["feature"].values]
    missing = [f for f in features if f not in frame.columns]
    extra = [c for c in frame.columns if c not in features and c != scaling.attrs.get("target")]
    if missing or extra:
        raise ModelError(f"the new inputs have {len(frame.columns)} column(s) but the model was fitted on {len(features)} "
                         f"features ({', '.join(features)})" + (f"; missing: {', '.join(missing)}" if missing else "")
                         + (f"; unknown: {', '.join(map(str, extra))}" if extra else ""))
    values = frame[features].to_numpy(np.float64)
    if not np.all(np.isfinite(values)):
        row, column = np.argwhere(~np.isfinite(values))[0]
        raise ModelError(f"the new inputs have {values[row, column]} in column '{features[column]}', row {row + 1}")
    x = ((values - scaling["feature_mean"].values) / scaling["feature_sd"].values).astype(np.float32)
    draws = _flat_posterior(idata)
    if num_draws is not None:
        draws = {k: v[:num_draws] for k, v in draws.items()}
    num_classes = 2
    if options["likelihood"] == "categorical":
        num_classes = int(idata.posterior[f"b{len(parse_hidden(options['hidden']))}"].shape[-1])
    kwargs = _model_kwargs(options, len(x), len(features), num_classes)
    predicted = Predictive(bnn, posterior_samples=draws, return_sites=["prediction", "y"])(
        jax.random.PRNGKey(0) if rng_key is None else rng_key, x=jnp.asarray(x), **kwargs)
    out = {name: np.asarray(value) for name, value in predicted.items()}
    if options["likelihood"] in REGRESSION:
        mean, sd = float(scaling["target_mean"]), float(scaling["target_sd"])
        # y from f plus the likelihood's noise, each draw reused when there are few (MAP: one)
        seed = int(jax.random.randint(rng_key, (), 0, 2**31 - 1)) if rng_key is not None else 0
        out = {"prediction": out["prediction"] * sd + mean,
               "y": _with_noise(idata, options, out["prediction"][:, :], seed=seed)}
    return out


def predict_table(idata, options: dict, frame, rng_key=None):
    """One row per input row: regression mean, sd and the 5/25/50/75/95% predictive quantiles
    of y in the target's units; classification the predicted class and each class's
    posterior predictive probability."""
    import pandas as pd

    drawn = predict(idata, options, frame, rng_key)
    if options["likelihood"] in REGRESSION:
        y = drawn["y"]
        quantiles = np.quantile(y, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
        return pd.DataFrame({"mean": y.mean(0), "sd": y.std(0), "q05": quantiles[0], "q25": quantiles[1],
                             "median": quantiles[2], "q75": quantiles[3], "q95": quantiles[4]})
    probabilities = class_probabilities(drawn["prediction"], options["likelihood"])
    table = pd.DataFrame({f"p_class_{c}": probabilities[:, c] for c in range(probabilities.shape[1])})
    table.insert(0, "predicted_class", probabilities.argmax(1))
    return table


# --------------------------------------------------------------------------------------------
# The report: held-out accuracy or error, predictive density, interval coverage, calibration
# --------------------------------------------------------------------------------------------
def class_probabilities(prediction: np.ndarray, likelihood: str) -> np.ndarray:
    """Posterior predictive class probabilities (N, C) from f draws (S, N) or (S, N, C)."""
    if likelihood == "bernoulli":
        p1 = np.asarray(jax.nn.sigmoid(prediction)).mean(0)
        return np.column_stack([1 - p1, p1])
    return np.asarray(jax.nn.softmax(prediction, axis=-1)).mean(0)


def calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = 10) -> dict:
    """Expected calibration error of the top-class probability over `bins` equal-width bins,
    and the reliability table (confidence, accuracy, count per bin)."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            ece += members.mean() * gap
            rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "confidence": float(confidence[members].mean()),
                         "accuracy": float(correct[members].mean()), "count": int(members.sum())})
    return {"ece": float(ece), "bins": rows}


def _noise_draws(idata, options: dict, num_draws: int) -> np.ndarray:
    """The noise sd of each posterior draw (standardised units): (S,)."""
    if options["noise_sd"] > 0:
        return np.full(num_draws, float(options["noise_sd"]))
    return idata.posterior["sigma"].values.reshape(-1)


def regression_draws(idata, options: dict, group: str = "held_out_predictive", minimum: int = 2000,
                     seed: int = 0) -> np.ndarray:
    """Draws of y at each row of `group` (held-out rows by default) from the posterior predictive,
    in the target's units: each posterior draw's f plus noise from the likelihood, with each
    draw used several times when there are fewer than `minimum` (a MAP fit has one), so that
    its predictive intervals come from the noise and not from a single draw. (S', N)"""
    f = idata[group]["prediction"].values
    return _with_noise(idata, options, f.reshape((-1,) + f.shape[2:]), minimum, seed)


def _with_noise(idata, options: dict, f: np.ndarray, minimum: int = 2000, seed: int = 0) -> np.ndarray:
    # f's draws are the posterior's first f.shape[0] draws, in the same (chain, draw) order
    sigma = _noise_draws(idata, options, f.shape[0])[: f.shape[0]]
    repeats = max(1, int(math.ceil(minimum / f.shape[0])))
    f, sigma = np.repeat(f, repeats, axis=0), np.repeat(sigma, repeats)[:, None]
    rng = np.random.default_rng(seed)
    noise = (rng.standard_t(options["student_df"], size=f.shape) if options["likelihood"] == "student_t"
             else rng.standard_normal(f.shape))
    return (f + sigma * noise) * float(idata.scaling["target_sd"]) + float(idata.scaling["target_mean"])


def held_out_evaluation(idata, options: dict) -> dict:
    """Held-out metrics in the target's units: regression RMSE, log predictive density per row
    and the coverage of the central 50% and 90% predictive intervals; classification accuracy,
    log predictive density and expected calibration error. Each with its standard error."""
    likelihood = options["likelihood"]
    y = idata.held_out_data["y"].values
    n = len(y)
    log_lik = idata.held_out_log_likelihood["y"].values.reshape(-1, n)
    pointwise = np.asarray(jax.nn.logsumexp(log_lik, axis=0)) - math.log(log_lik.shape[0])
    prediction = idata.held_out_predictive["prediction"].values
    prediction = prediction.reshape((-1,) + prediction.shape[2:])
    out = {"rows": int(n)}
    if likelihood in REGRESSION:
        mean, sd = float(idata.scaling["target_mean"]), float(idata.scaling["target_sd"])
        truth = y * sd + mean
        draws = regression_draws(idata, options)
        errors = (prediction.mean(0) * sd + mean - truth) ** 2
        rmse = float(np.sqrt(errors.mean()))
        pointwise = pointwise - math.log(sd)  # density of the target in its own units
        out["rmse"] = rmse
        out["rmse_se"] = float(errors.std(ddof=1) / math.sqrt(n) / (2 * rmse))  # delta method
        for level in (0.5, 0.9):
            low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
            inside = (truth >= low) & (truth <= high)
            out[f"coverage_{int(level * 100)}"] = float(inside.mean())
            out[f"coverage_{int(level * 100)}_se"] = float(math.sqrt(level * (1 - level) / n))
    else:
        probabilities = class_probabilities(prediction, likelihood)
        correct = probabilities.argmax(1) == y
        out["accuracy"] = float(correct.mean())
        out["accuracy_se"] = float(correct.std(ddof=1) / math.sqrt(n))
        out["calibration"] = calibration(probabilities, y)
    out["log_predictive_density_per_row"] = float(pointwise.mean())
    out["log_predictive_density_se"] = float(pointwise.std(ddof=1) / math.sqrt(n))
    return out
