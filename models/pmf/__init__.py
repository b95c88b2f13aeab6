"""Bayesian probabilistic matrix factorisation for recommendation (Salakhutdinov & Mnih 2008).

    r[u, i] ~ Normal(mu + b_u + b_i + <U_u, V_i>, sigma)

with hierarchical Normal priors on the biases and factors (`model.py`). The data are (user,
item, rating) rows of any ids (`probgen.data.ratings`, `--user-column`, `--item-column`,
`--rating-column`); MovieLens ships as the bundled set `movielens`.

Fitted by minibatch SVI over all ratings (the default, `--method svi`: the trainer the VAE uses,
streaming batches from host memory, with checkpoints, `--resume`, early stopping and `--devices`
for data-parallel training), by NUTS on a subset (`--method nuts --max-users N
--min-item-ratings 5`, with `--noncentred-below 10` for the prior-dominated users and items) and
by MAP (`--method map`). The report gives held-out RMSE, MAE and log predictive density,
calibration of the 50% and 90% predictive intervals by how many ratings a user and an item have, ranking metrics
and a top-10 with the probability each item beats the user's mean (`report.py`); `probgen
predict` gives the predictive of any pairs, falling back to the population for new users and
items.

Layout: `model` (model, guide, data to inputs), `evaluation` (predictive, metrics, ranking),
`training` (the minibatch trainer's parts), `report` (report, predict, convergence).
"""

from __future__ import annotations

from probgen.models.pmf import report as _report
from probgen.models.pmf import parts as _parts
from probgen.models.pmf.model import OPTIONS, held_out_inputs, pmf_guide, pmf_model, prepare, time_sequence
from probgen.infer.amortized import Objective
from probgen.spec import Bound, Headline, DerivedGroups, HeldOut, JudgedOn, ModelSpec, Predictor

SPEC = ModelSpec(
    name="pmf",
    model=pmf_model,
    guide=pmf_guide,
    prepare=prepare,
    options=OPTIONS,
    summary_vars=("mu", "sigma", "user_scale", "item_scale", "factor_scale"),
    held_out=HeldOut(inputs=held_out_inputs, sequence=time_sequence),
    report=_report.report,
    parts=(DerivedGroups(_parts.derived), JudgedOn(_report.convergence_on), Predictor(_report.predict),
           Objective(elbo=_parts.validation_score, evaluate=_parts.evaluate, stream=("user", "item", "rating"),
                     only=False),
           Headline(Bound("recommendation_held_out/coverage_50", 0, 1, stated=True),
                    Bound("recommendation_held_out/coverage_90", 0, 1, stated=True),
                    Bound("recommendation_held_out/rmse", 0, None, stated=True), Bound("ranking/ndcg_at_10", 0, 1))),
    data_kind="ratings",
    description="Bayesian matrix factorisation for recommendation: (user, item, rating) rows, minibatch SVI over all "
                "ratings (default), NUTS on a subset, MAP; calibrated intervals, top-N, `probgen predict` for pairs",
)
