"""The BNN's part of the report (`ReportPart`): held-out performance, calibration, plots."""

from __future__ import annotations

import jax
import numpy as np
from probgen.spec import ReportPart, Section

from probgen.models.bnn.model import REGRESSION
from probgen.models.bnn.evaluation import held_out_evaluation, predict, regression_draws


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
    if options["likelihood"] in REGRESSION and "sigma" in idata.posterior:
        # the network sees the standardised target: say which units each part of the report is in
        target = str(idata.scaling.attrs.get("target", "target"))
        mean, sd = float(idata.scaling["target_mean"]), float(idata.scaling["target_sd"])
        sigma = float(idata.posterior["sigma"].mean())
        sections.insert(1, Section(
            "Units",
            f"The network is fitted to '{target}' standardised by its training rows (mean {mean:.4g}, sd {sd:.4g}). "
            f"The posterior summary's sigma and the fit-quality checks above are in those standard units: a noise sd "
            f"of {sigma:.3g} standard units is {sigma * sd:.4g} in the units of '{target}'. Predictions, the held-out "
            f"section and `probgen predict` are in the units of '{target}'."))
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
