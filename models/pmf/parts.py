"""pmf's parts for the minibatch trainer (`probgen.infer.amortized`, `--method svi`) and for the
run folder: the validation score early stopping watches, draws from the fitted guide, the
held-out evaluation stored at the end of training, and the data group every method stores.

The trainer streams (user, item, rating) minibatches from host memory (`Amortized.stream`), so
the same command fits MovieLens's 100,000 ratings or ten million: the device holds one chunk of
batches, the parameters and the validation rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import xarray as xr

from probgen.models.pmf.evaluation import moments, summarise
from probgen.models.pmf.model import predictor

EVALUATION_DRAWS = 100  # guide draws behind the held-out predictive intervals
MAX_EVALUATED = 200_000  # held-out rows scored at the end of training (a random subset beyond)
POSITIVE = ("sigma", "user_scale", "item_scale", "factor_scale")


def _sites(params: dict) -> list[str]:
    return [name[: -len("_loc")] for name in params if name.endswith("_loc")]


def guide_median(params: dict) -> dict:
    """The global sites at the guide's median (its location; exp of it for the scales)."""
    return {name: jnp.exp(params[f"{name}_loc"]) if name in POSITIVE else params[f"{name}_loc"]
            for name in _sites(params)}


def guide_draws(params: dict, rng_key, count: int) -> dict:
    """{site: (count, ...)} independent draws from the mean-field guide."""
    draws = {}
    for index, name in enumerate(sorted(_sites(params))):
        loc, scale = jnp.asarray(params[f"{name}_loc"]), jnp.asarray(params[f"{name}_scale"])
        value = loc + scale * jax.random.normal(jax.random.fold_in(rng_key, index), (count,) + loc.shape)
        draws[name] = np.asarray(jnp.exp(value) if name in POSITIVE else value)
    return draws


def validation_score(params, rows: dict, kwargs: dict, rng_key):
    """Per-rating log density of validation ratings at the guide's median (deterministic, so
    successive evaluations compare parameters, not Monte Carlo noise)."""
    mean, sd = predictor(guide_median(params), rows["user"], rows["item"])
    return jax.scipy.stats.norm.logpdf(rows["rating"], mean, sd)


def data_group(inputs) -> xr.Dataset:
    """The training pairs' codes and, per user and item, its id, training count and (users)
    mean rating: what the report, ranking and `probgen predict` need besides the draws."""
    labels = inputs.labels
    return xr.Dataset({
        "user": ("rating_id", np.asarray(labels["user"], np.int32)),
        "item": ("rating_id", np.asarray(labels["item"], np.int32)),
        "user_id": ("user_code", labels["user_id"]), "item_id": ("item_code", labels["item_id"]),
        "users_count": ("user_code", labels["users_count"]), "items_count": ("item_code", labels["items_count"]),
        "users_mean": ("user_code", labels["users_mean"]),
        **({"item_title": ("item_code", labels["item_title"])} if "item_title" in labels else {}),
    })


def evaluated_rows(count: int) -> np.ndarray:
    """The held-out rows scored: all, or `MAX_EVALUATED` drawn with a fixed seed."""
    rows = np.arange(count)
    return rows if count <= MAX_EVALUATED else np.sort(np.random.default_rng(0).choice(count, MAX_EVALUATED,
                                                                                       replace=False))


def summary_table(mean, sd, rating, labels, rows) -> pd.DataFrame:
    """The held-out table the report reads: rating, predictive summary (`summarise`) of the
    (draws, rows) moments, and each row's codes and training counts from `labels`."""
    table = summarise(mean, sd, rating[rows])
    table.insert(0, "rating", rating[rows])
    for name in ("user", "item", "user_count", "item_count"):
        table[name] = np.asarray(labels[name])[rows]
    return table


def held_out_frame(draws: dict, inputs) -> pd.DataFrame:
    """Held-out pairs with their ratings, training counts and predictive summary, at most
    `MAX_EVALUATED` of them."""
    labels = inputs.labels
    rating = np.asarray(inputs.observed["rating"], np.float32)
    rows = evaluated_rows(len(rating))
    mean, sd = moments(draws, np.asarray(labels["user"])[rows], np.asarray(labels["item"])[rows])
    return summary_table(mean, sd, rating, labels, rows)


def table_group(table: pd.DataFrame) -> xr.Dataset:
    return xr.Dataset({name: ("held_out_row", table[name].to_numpy()) for name in table.columns})


def evaluate(params: dict, inputs: dict, options: dict, rng_key) -> dict:
    """The groups the minibatch trainer stores: `pmf_data` and the held-out evaluation
    (`pmf_held_out`, under `EVALUATION_DRAWS` guide draws)."""
    draws = guide_draws(params, rng_key, EVALUATION_DRAWS)
    held = held_out_frame(draws, inputs["held_out"])
    group = table_group(held)
    group.attrs.update(draws=EVALUATION_DRAWS, rows_total=int(len(inputs["held_out"].observed["rating"])))
    return {"pmf_data": data_group(inputs["training"]), "pmf_held_out": group}


def derived(draws: dict, inputs, rng_key) -> dict:
    """The posterior methods (NUTS, MAP) store the same data group."""
    return {"pmf_data": data_group(inputs)}
