"""The BNN: with no hidden layer it is Bayesian linear regression, whose posterior NUTS must
match in closed form; predictive intervals reach nominal coverage on data drawn from the prior;
bad input is named."""

import arviz as az
import numpy as np
import pandas as pd
import pytest

from probgen.errors import ModelError
from probgen.infer import fit
from probgen.models import bnn
from _seeds import seeded

NOISE_SD = 0.5  # known noise, standardised target units


@pytest.fixture(scope="module")
def linear_fit():
    rng = np.random.default_rng(seeded(0))
    x = rng.normal(size=(80, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, -2.0]
    y = x @ np.array([0.8, -0.3, 1.5]) + 0.4 + rng.normal(0.0, 1.0, size=80)
    frame = pd.DataFrame(x, columns=["a", "b", "c"]).assign(y=y)
    result = fit("bnn", frame, "nuts", options={"hidden": "0", "noise_sd": NOISE_SD, "prior_scale": 1.0}, seed=seeded(1),
                 progress=False, chains=2, warmup=500, draws=1000)
    return result


def test_no_hidden_layer_is_conjugate_bayesian_linear_regression(linear_fit):
    inputs = linear_fit.inputs
    x, y = np.asarray(inputs.labels["x"], float), np.asarray(inputs.observed["y"], float)
    design = np.column_stack([x, np.ones(len(x))])
    # prior: w ~ N(0, 1 / D) (scale / sqrt(fan_in)), b ~ N(0, 1)
    prior_precision = np.diag([x.shape[1]] * x.shape[1] + [1.0])
    covariance = np.linalg.inv(design.T @ design / NOISE_SD**2 + prior_precision)
    mean = covariance @ design.T @ y / NOISE_SD**2
    posterior = linear_fit.idata.posterior
    draws = np.concatenate([posterior["w0"].values[..., 0], posterior["b0"].values], axis=-1)  # (chain, draw, 4)
    estimate = draws.reshape(-1, 4).mean(0)
    sd = draws.reshape(-1, 4).std(0)
    # ravel: with numba installed (nutpie's, make bench) ArviZ's mcse of an array is a 1-element array
    mcse = np.array([np.ravel(az.mcse(draws[..., j]))[0] for j in range(4)])
    # each coefficient's posterior mean within 4 Monte Carlo SE of the exact one (4 coefficients:
    # a false alarm has probability ~2.5e-4)
    assert np.all(np.abs(estimate - mean) < 4 * mcse), (estimate, mean, mcse)
    # posterior sds within 10%: with ESS near 2,000 an sd's relative Monte Carlo error is ~1.6%
    np.testing.assert_allclose(sd, np.sqrt(np.diag(covariance)), rtol=0.10)


def test_prediction_at_new_inputs_and_its_errors(linear_fit):
    from probgen.report import build_report

    idata, options = linear_fit.idata, linear_fit.options
    new = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 1.0], "c": [-2.0, -2.0]})
    drawn = bnn.predict(idata, options, new)
    # E[y | x] in data units: the exact posterior mean of the coefficients maps back through the
    # standardisation; the difference of the two rows is the slope of a (0.8 by simulation)
    slope = float(np.mean(drawn["prediction"][:, 1] - drawn["prediction"][:, 0]))
    assert abs(slope - 0.8) < 0.35  # the posterior sd of the slope is about 0.12
    with pytest.raises(ModelError, match=r"fitted on 3 features \(a, b, c\); missing: c"):
        bnn.predict(idata, options, new.drop(columns="c"))
    with pytest.raises(ModelError, match=r"unknown: d"):
        bnn.predict(idata, options, new.assign(d=1.0))
    with pytest.raises(ModelError, match=r"nan in column 'b', row 2"):
        bnn.predict(idata, options, new.assign(b=[1.0, np.nan]))
    built = build_report(idata, linear_fit.config(), linear_fit.spec)
    # convergence is judged on predictions, noise and log density: no weight is named
    assert all("w0" not in v.reason for v in built.assessment.verdicts)


def test_bad_labels_and_targets_are_named():
    frame = pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.4], "y": [0, 1, 2, 1]})
    with pytest.raises(ModelError, match=r"needs labels 0 or 1; column 'y' has 2 at row 3"):
        bnn.prepare(frame, {**bnn.SPEC.default_options(), "likelihood": "bernoulli"})
    with pytest.raises(ModelError, match=r"--target 'label' is not a column"):
        bnn.prepare(frame, {**bnn.SPEC.default_options(), "target": "label"})
    with pytest.raises(ModelError, match=r"class 2 at row 3, but --num-classes is 2"):
        bnn.prepare(frame, {**bnn.SPEC.default_options(), "likelihood": "categorical", "num_classes": 2})
    with pytest.raises(ModelError, match=r"constant in the training rows"):
        bnn.prepare(frame.assign(a=1.0), bnn.SPEC.default_options())


@pytest.mark.slow  # about 2 min: four NUTS fits
def test_predictive_intervals_reach_nominal_coverage_on_data_from_the_prior():
    """Data drawn from the model's own prior (a 5-unit network): averaged over data sets, the
    posterior predictive 50% and 90% intervals cover held-out targets at their nominal rates."""
    import jax
    from numpyro.infer import Predictive

    covered = {50: [], 90: []}
    for index in range(4):
        rng = np.random.default_rng(10 + index)
        x = rng.normal(size=(300, 2)).astype(np.float32)
        kwargs = dict(num_points=300, num_features=2, hidden=(5,), activation="tanh", prior="fixed", prior_scale=1.0,
                      likelihood="gaussian", num_classes=2, noise_prior=1.0, noise_sd=0.0, student_df=4.0)
        # fitted without standardisation, so that the data come from exactly the prior it assumes
        y = np.asarray(Predictive(bnn.bnn, num_samples=1)(jax.random.PRNGKey(index), x=x, **kwargs)["y"][0])
        frame = pd.DataFrame(x, columns=["u", "v"]).assign(y=y)
        result = fit("bnn", frame, "nuts", options={"hidden": "5", "scaling": "none"}, seed=index, holdout=0.5,
                     progress=False, chains=2, warmup=400, draws=400)
        evaluation = bnn.held_out_evaluation(result.idata, result.options)
        for level in covered:
            covered[level].append(evaluation[f"coverage_{level}"])
    for level, values in covered.items():
        # 600 held-out rows in all: binomial SE sqrt(p (1 - p) / 600) is 0.020 (50%) and 0.012
        # (90%); parameter uncertainty shared within a data set widens it, hence 4 SE
        se = np.sqrt(level / 100 * (1 - level / 100) / 600)
        assert abs(np.mean(values) - level / 100) < 4 * se, (level, values)


def test_categorical_classifier_learns_three_classes_and_reports_calibration():
    """Three Gaussian blobs, MAP: held-out accuracy far above chance (1/3), class probabilities
    that sum to one, and the report's calibration section."""
    from probgen.report import build_report

    rng = np.random.default_rng(seeded(3))
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    labels = rng.integers(0, 3, 300)
    frame = pd.DataFrame(centres[labels] + rng.normal(0, 0.7, (300, 2)), columns=["u", "v"]).assign(label=labels)
    result = fit("bnn", frame, "map", options={"likelihood": "categorical", "hidden": "8"}, seed=seeded(0), holdout=0.3,
                 progress=False)
    evaluation = bnn.held_out_evaluation(result.idata, result.options)
    # Bayes-optimal accuracy for these blobs is about 0.97; 0.85 is many SEs (0.03) above chance
    assert evaluation["accuracy"] > 0.85 and 0 <= evaluation["calibration"]["ece"] <= 1
    table = bnn.predict_table(result.idata, result.options, pd.DataFrame({"u": [0.0, 3.0], "v": [0.0, 0.0]}))
    assert list(table["predicted_class"]) == [0, 1]
    np.testing.assert_allclose(table[["p_class_0", "p_class_1", "p_class_2"]].sum(1), 1.0, rtol=1e-5)
    built = build_report(result.idata, result.config(), result.spec)
    assert "reliability" in built.figures and any(s.title == "Held-out predictive performance" for s in built.sections)
