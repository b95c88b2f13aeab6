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

Layout, as every family package: `model` (the NumPyro model), `data` (table -> inputs,
scaling), `evaluation` (posterior predictive, calibration, held-out scores), `report`
(sections and plots). Only the report imports matplotlib.
"""

from __future__ import annotations

from probgen.spec import Bound, Headline, DerivedGroups, HeldOut, JudgedOn, ModelSpec, Option, Predictor

from probgen.models.bnn.data import (  # noqa: F401
    _check_target, _inputs, _model_kwargs, _target_column, held_out, parse_hidden, prepare, scaling,
)
from probgen.models.bnn.model import (  # noqa: F401
    ACTIVATIONS, LIKELIHOODS, PRIORS, REGRESSION, bnn, convergence_on, derived,
)
from probgen.models.bnn.evaluation import (  # noqa: F401
    _flat_posterior, _noise_draws, _with_noise, calibration, class_probabilities, held_out_evaluation, predict,
    predict_table, regression_draws,
)
from probgen.models.bnn.report import _predicted_figure, _reliability_figure, _uncertainty_figure, report  # noqa: F401


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
    report=report,
    parts=(JudgedOn(convergence_on), DerivedGroups(derived), Predictor(predict_table),
           Headline(Bound("bnn_held_out/coverage_50", 0, 1, stated=True),
                    Bound("bnn_held_out/coverage_90", 0, 1, stated=True),
                    Bound("bnn_held_out/rmse", 0, None, stated=True))),
    description="Bayesian neural network: MLP with Normal weight priors (fixed or hierarchical), regression "
                "(Gaussian, Student-t) or classification (Bernoulli, categorical)",
)
