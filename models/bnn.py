"""Bayesian neural network: an MLP whose weights carry priors, written over plain weight arrays.

    h_0 = x                                   (N, D) standardised features
    h_l = activation(h_{l-1} W_l + b_l)       l = 1 .. L hidden layers (sizes `hidden`)
    f   = h_L W_out + b_out                   (N,) or (N, C) logits for `categorical`

    fixed prior:        W_l ~ Normal(0, prior_scale / sqrt(fan_in)), b_l ~ Normal(0, prior_scale)
    hierarchical prior: tau_l ~ HalfNormal(prior_scale) per layer, W_l = tau_l / sqrt(fan_in) * W_raw_l,
                        W_raw_l ~ Normal(0, 1) (non-centred, so NUTS sees a well-scaled geometry)

    gaussian:     y ~ Normal(f, sigma), sigma ~ HalfNormal(noise_prior) or fixed (--noise-sd)
    student_t:    y ~ StudentT(df, f, sigma)
    bernoulli:    y ~ Bernoulli(logits = f),   y in {0, 1}
    categorical:  y ~ Categorical(logits = f), y in {0, .., C-1}

With `hidden=()` the network is linear: Bayesian linear (or logistic) regression, whose
posterior under the fixed prior and a known noise sd is the conjugate Gaussian one (the tests
check NUTS against it).

The features (and a regression target) are standardised with the training rows' mean and sd;
held-out and new inputs use the same figures (`held_out`, `predict`), and every reported error
is converted back to the target's units. `prediction` (f at each row) is a deterministic site:
hidden-unit permutations and sign flips make the weights' R-hat meaningless across chains, so
the report judges convergence on `prediction` and the log density instead
(`ModelSpec.convergence_on`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import xarray as xr

from probgen.errors import ModelError
from probgen.spec import HeldOut, ModelInputs, ModelSpec, Option, ReportPart, Section

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


# --------------------------------------------------------------------------------------------
# Data: features and target, standardised with the training rows' figures
# --------------------------------------------------------------------------------------------
def parse_hidden(text: str) -> tuple:
    """"20,20" -> (20, 20); "" or "0" -> () (no hidden layer: linear or logistic regression)."""
    try:
        sizes = tuple(int(part) for part in str(text).replace(" ", "").split(",") if part and part != "0")
    except ValueError:
        raise ModelError(f"--hidden must be comma-separated layer sizes such as 20,20, got '{text}'") from None
    if any(size < 1 for size in sizes):
        raise ModelError(f"--hidden layer sizes must be >= 1, got '{text}'")
    return sizes


def _target_column(frame, options) -> str:
    target = options["target"] or str(frame.columns[-1])
    if target not in frame.columns:
        raise ModelError(f"--target '{target}' is not a column of the data (columns: {', '.join(map(str, frame.columns))})")
    return target


def _check_target(y: np.ndarray, target: str, options) -> int:
    """The number of classes (1 for regression); names the first bad label."""
    likelihood = options["likelihood"]
    if likelihood in REGRESSION:
        return 1
    whole = (y == np.round(y)) & (y >= 0)
    if likelihood == "bernoulli":
        bad = np.flatnonzero(~np.isin(y, (0.0, 1.0)))
        if len(bad):
            raise ModelError(f"--likelihood bernoulli needs labels 0 or 1; column '{target}' has {y[bad[0]]:g} at row "
                             f"{bad[0] + 1} ({len(bad)} such row(s)); use categorical for more classes")
        return 2
    bad = np.flatnonzero(~whole)
    if len(bad):
        raise ModelError(f"--likelihood categorical needs class codes 0, 1, ..; column '{target}' has {y[bad[0]]:g} at "
                         f"row {bad[0] + 1}")
    classes = options["num_classes"] or int(y.max()) + 1
    if y.max() >= classes:
        row = int(np.argmax(y >= classes))
        raise ModelError(f"column '{target}' has class {y[row]:g} at row {row + 1}, but --num-classes is {classes}")
    return max(classes, 2)


def scaling(frame, options) -> dict:
    """Mean and sd of each feature (and of a regression target) in `frame`: the training rows."""
    target = _target_column(frame, options)
    features = [c for c in frame.columns if c != target]
    values = frame[features].to_numpy(np.float64)
    if options["scaling"] == "none":  # the data are used as they are (e.g. simulated from the prior)
        return {"target": target, "features": features, "feature_mean": [0.0] * len(features),
                "feature_sd": [1.0] * len(features), "target_mean": 0.0, "target_sd": 1.0}
    sd = values.std(0)
    constant = [features[j] for j in np.flatnonzero(~(sd > 0))]
    if constant:
        raise ModelError(f"feature column(s) {', '.join(constant)} are constant in the training rows; drop them")
    record = {"target": target, "features": features, "feature_mean": values.mean(0).tolist(), "feature_sd": sd.tolist(),
              "target_mean": 0.0, "target_sd": 1.0}
    if options["likelihood"] in REGRESSION:
        y = frame[target].to_numpy(np.float64)
        if not y.std() > 0:
            raise ModelError(f"target column '{target}' is constant in the training rows")
        record.update(target_mean=float(y.mean()), target_sd=float(y.std()))
    return record


def _model_kwargs(options, num_points: int, num_features: int, num_classes: int) -> dict:
    return {"num_points": num_points, "num_features": num_features, "hidden": parse_hidden(options["hidden"]),
            "activation": options["activation"], "prior": options["prior"], "prior_scale": float(options["prior_scale"]),
            "likelihood": options["likelihood"], "num_classes": num_classes, "noise_prior": float(options["noise_prior"]),
            "noise_sd": float(options["noise_sd"]), "student_df": float(options["student_df"])}


def _inputs(frame, options, scale: dict) -> ModelInputs:
    target, features = scale["target"], scale["features"]
    missing = [c for c in features + [target] if c not in frame.columns]
    if missing:
        raise ModelError(f"the data lack column(s) {', '.join(missing)} that the model was fitted with")
    if len(frame) == 0:
        raise ModelError("the data have no rows")
    x = (frame[features].to_numpy(np.float64) - scale["feature_mean"]) / scale["feature_sd"]
    y = frame[target].to_numpy(np.float64)
    classes = _check_target(y, target, options)
    if options["likelihood"] in REGRESSION:
        y = (y - scale["target_mean"]) / scale["target_sd"]
    y = y.astype(np.float32) if options["likelihood"] in REGRESSION else y.astype(np.int32)
    return ModelInputs(
        kwargs=_model_kwargs(options, len(frame), len(features), classes),
        observed={"y": y},
        coords={"obs_id": np.arange(len(frame)), "feature": features},
        dims={"y": ["obs_id"], "prediction": ["obs_id"] if options["likelihood"] != "categorical" else ["obs_id", "class"]},
        labels={"x": x.astype(np.float32), "scaling": scale},
    )


def prepare(frame, options) -> ModelInputs:
    """Inputs for the training rows: standardised features x (passed as a keyword argument)
    and target y (standardised for regression)."""
    inputs = _inputs(frame, options, scaling(frame, options))
    return ModelInputs({**inputs.kwargs, "x": inputs.labels["x"]}, inputs.observed, inputs.coords, inputs.dims,
                       labels=inputs.labels)


def held_out(train_frame, held_frame, options) -> ModelInputs:
    """Inputs for held-out rows, standardised with the training rows' figures."""
    inputs = _inputs(held_frame, options, scaling(train_frame, options))
    return ModelInputs({**inputs.kwargs, "x": inputs.labels["x"]}, inputs.observed, inputs.coords, inputs.dims,
                       labels=inputs.labels)


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


def report(idata, config: dict):
    """The BNN's sections: how convergence was judged, and the held-out evaluation."""
    import pandas as pd



    options = config["model"]["options"]
    sections = [Section(
        "How convergence is judged",
        "A network's hidden units can be permuted and their signs flipped without changing what it predicts, so "
        "different chains may settle on differently labelled but equivalent weights; R-hat on the raw weights would "
        "then be large for no fault of the sampler. R-hat and ESS above are computed on the network's output at every "
        "training row (`prediction`), the noise sd and the log density, which the symmetries leave unchanged.")]
    metrics, figures = {}, {}
    if "held_out_predictive" in idata.groups() and "prediction" in idata.held_out_predictive:
        evaluation = held_out_evaluation(idata, options)
        metrics["bnn_held_out"] = evaluation
        target = str(idata.scaling.attrs.get("target", "target"))
        if options["likelihood"] in REGRESSION:
            table = pd.DataFrame({"value": [evaluation["rmse"], evaluation["log_predictive_density_per_row"],
                                            evaluation["coverage_50"], evaluation["coverage_90"]],
                                  "se": [evaluation["rmse_se"], evaluation["log_predictive_density_se"],
                                         evaluation["coverage_50_se"], evaluation["coverage_90_se"]]},
                                 index=["RMSE", "log predictive density per row", "coverage of 50% intervals",
                                        "coverage of 90% intervals"])
            off = [level for level in (50, 90) if abs(evaluation[f"coverage_{level}"] - level / 100)
                   > 2 * evaluation[f"coverage_{level}_se"]]
            text = (f"On {evaluation['rows']} held-out rows, in the units of '{target}': RMSE {evaluation['rmse']:.4g} "
                    f"(SE {evaluation['rmse_se']:.2g}), log predictive density {evaluation['log_predictive_density_per_row']:.3f} "
                    f"per row. The predictive intervals cover {evaluation['coverage_50']:.0%} (50% nominal) and "
                    f"{evaluation['coverage_90']:.0%} (90% nominal) of the held-out targets: "
                    + (f"the {' and '.join(f'{v}%' for v in off)} coverage is more than 2 SE from nominal, so the "
                       "predictive uncertainty is miscalibrated." if off else "both within 2 SE of nominal."))
            figures["held_out_predictions"] = _predicted_figure(idata, options)
        else:
            ece = evaluation["calibration"]["ece"]
            table = pd.DataFrame({"value": [evaluation["accuracy"], evaluation["log_predictive_density_per_row"], ece],
                                  "se": [evaluation["accuracy_se"], evaluation["log_predictive_density_se"], np.nan]},
                                 index=["accuracy", "log predictive density per row", "expected calibration error"])
            text = (f"On {evaluation['rows']} held-out rows: accuracy {evaluation['accuracy']:.1%} (SE "
                    f"{evaluation['accuracy_se']:.1%}), log predictive density {evaluation['log_predictive_density_per_row']:.3f} "
                    f"per row, expected calibration error {ece:.3f} over 10 confidence bins (0 is perfectly calibrated; "
                    "the reliability diagram shows each bin).")
            figures["reliability"] = _reliability_figure(evaluation["calibration"])
        sections.append(Section("Held-out predictive performance", text, table))
    if int(idata.posterior["w0"].shape[-2]) == 1 and options["likelihood"] in REGRESSION:
        figures["predictive_uncertainty"] = _uncertainty_figure(idata, options)
    return ReportPart(tuple(sections), metrics, figures)


def _predicted_figure(idata, options: dict):
    import matplotlib.pyplot as plt

    mean, sd = float(idata.scaling["target_mean"]), float(idata.scaling["target_sd"])
    truth = idata.held_out_data["y"].values * sd + mean
    draws = regression_draws(idata, options)
    low, middle, high = np.quantile(draws, [0.05, 0.5, 0.95], axis=0)
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.errorbar(truth, middle, yerr=[middle - low, high - middle], fmt="o", ms=3, alpha=0.6, lw=0.8)
    bounds = [min(truth.min(), low.min()), max(truth.max(), high.max())]
    axis.plot(bounds, bounds, color="0.4", ls=":")
    axis.set_xlabel("held-out target")
    axis.set_ylabel("predictive median and 90% interval")
    return figure


def _reliability_figure(calibration_result: dict):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    bins = calibration_result["bins"]
    axis.plot([0, 1], [0, 1], color="0.5", ls=":", label="perfect calibration")
    axis.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label="held-out rows")
    for b in bins:
        axis.annotate(str(b["count"]), (b["confidence"], b["accuracy"]), fontsize=7, textcoords="offset points",
                      xytext=(3, -10))
    axis.set_xlabel("predicted probability of the chosen class")
    axis.set_ylabel("fraction correct")
    axis.set_title(f"reliability (ECE {calibration_result['ece']:.3f})")
    axis.legend(fontsize=8)
    return figure


def _uncertainty_figure(idata, options: dict):
    """For one input: the predictive mean and 50%/90% intervals over (and beyond) the data's range."""
    import matplotlib.pyplot as plt
    import pandas as pd

    feature = str(idata.scaling["feature"].values[0])
    f_mean, f_sd = float(idata.scaling["feature_mean"].values[0]), float(idata.scaling["feature_sd"].values[0])
    t_mean, t_sd = float(idata.scaling["target_mean"]), float(idata.scaling["target_sd"])
    x_train = idata.constant_data["x"].values[:, 0] * f_sd + f_mean if "constant_data" in idata.groups() else None
    span = 3.5 * f_sd
    grid = np.linspace(f_mean - span, f_mean + span, 200)
    draws = predict(idata, options, pd.DataFrame({feature: grid}), jax.random.PRNGKey(1), num_draws=1000)["y"]
    low90, low50, middle, high50, high90 = np.quantile(draws, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.fill_between(grid, low90, high90, alpha=0.2, color="C0", label="90% predictive interval")
    axis.fill_between(grid, low50, high50, alpha=0.35, color="C0", label="50%")
    axis.plot(grid, middle, color="C0", label="median")
    y_train = idata.observed_data["y"].values * t_sd + t_mean
    if x_train is not None:
        axis.scatter(x_train, y_train, s=8, color="k", label="training rows")
    axis.set_xlabel(feature)
    axis.set_ylabel(str(idata.scaling.attrs.get("target", "target")))
    axis.legend(fontsize=8)
    axis.set_title("predictive uncertainty over the input range")
    return figure


SPEC = ModelSpec(
    name="bnn",
    model=bnn,
    prepare=prepare,
    held_out=HeldOut(inputs=held_out),
    options=(
        Option("target", str, "", "column to predict (default: the last column)"),
        Option("hidden", str, "20", "hidden layer sizes, e.g. 20 or 50,50 (0: none, Bayesian linear/logistic "
                                    "regression)"),
        Option("activation", str, "tanh", "activation between layers", ACTIVATIONS),
        Option("prior", str, "fixed", "weight prior: fixed Normal(0, prior_scale / sqrt(fan_in)), or hierarchical "
                                      "(a HalfNormal scale per layer)", PRIORS),
        Option("prior_scale", float, 1.0, "prior scale of the weights (times 1/sqrt(fan_in)) and biases", above=0),
        Option("likelihood", str, "gaussian", "gaussian or student_t (regression), bernoulli or categorical "
                                              "(classification)", LIKELIHOODS),
        Option("num_classes", int, 0, "categorical: number of classes (default: largest label + 1)"),
        Option("noise_prior", float, 1.0, "regression: HalfNormal scale of the noise sd (standardised target units)"),
        Option("noise_sd", float, 0.0, "regression: fix the noise sd (standardised units) instead of learning it (0: learned)",
               minimum=0),
        Option("student_df", float, 4.0, "student_t: degrees of freedom"),
        Option("scaling", str, "standardize", "standardize the features (and a regression target) with the "
                                               "training rows' mean and sd (the priors are set for that scale), or "
                                               "none: use them as they are", ("standardize", "none")),
    ),
    summary_vars=("sigma", "tau0", "tau1", "tau2", "tau3"),
    convergence_on=convergence_on,
    derived=derived,
    report=report,
    predict=predict_table,
    description="Bayesian neural network: MLP with Normal weight priors (fixed or hierarchical), regression "
                "(Gaussian, Student-t) or classification (Bernoulli, categorical)",
)
