"""Bayesian probabilistic matrix factorisation (Salakhutdinov & Mnih 2008) as a NumPyro model:
the rating user u gives item i is

    r[u, i] ~ Normal(mu + b_u + b_i + <U_u, V_i>, sigma)

with hierarchical Normal priors: b_u ~ N(0, user_scale), b_i ~ N(0, item_scale), and per latent
dimension k a shared scale, U[u, k], V[i, k] ~ N(0, factor_scale[k]) (an automatic relevance
determination prior: dimensions the data do not need shrink to 0). Every scale has a half-normal
prior in the ratings' units, and the model is written centred, the
geometry NUTS handles because each scale is shared by many users or items, and the one a
mean-field guide needs: written non-centred (b_u = user_scale * z_u), mean-field SVI switches the
factors off (the scale and the standardised factors are strongly dependent a posteriori, which
a factorised guide cannot express, and shrinking the scale to 0 is its way out). For NUTS,
`noncentred_below` writes the users and items with few training ratings non-centred, one
`LocScaleReparam` per member (centred suits those the data pin down, non-centred those the
prior dominates: E-BFMI 0.3 -> 0.6 on MovieLens).

A user or item the fit never saw (code -1) is a new member of the population: its bias and
factors are drawn from the hierarchical prior, which the model integrates out exactly when one of
the two is new (given the other's factors the rating is Normal with the added variance) and by
matching the first two moments when both are. So held-out rows, `probgen predict` and top-N all
fall back to the population-level prediction through one function, `predictor`.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.distributions import constraints

from probgen.errors import ModelError
from probgen.spec import ModelInputs, Option

GLOBAL_SITES = ("mu", "sigma", "user_scale", "item_scale", "factor_scale")
RAW_SITES = ("user_bias", "item_bias", "user_factors", "item_factors")

OPTIONS = (
    Option("latent_dim", int, 10, "latent factors per user and item (0: biases only)", minimum=0),
    Option("user_column", str, "userId", "column of user ids (any type)"),
    Option("item_column", str, "movieId", "column of item ids (any type)"),
    Option("rating_column", str, "rating", "column of ratings (numbers)"),
    Option("title_column", str, "title", "column naming each item, shown beside its id in the report's top 10 and by "
           "`probgen predict` ('' for none; the default is used when the data have it)"),
    Option("time_column", str, "timestamp", "column of rating times, for --split time ('' for none; the default "
                                            "is used when the data have it)"),
    Option("split", str, "random", "held-out rows: random ratings, or each user's last ratings in time (time)",
           choices=("random", "time")),
    Option("duplicates", str, "refuse", "repeated (user, item) rows: refuse (exit 2), keep the last, or average them",
           choices=("refuse", "last", "mean")),
    Option("max_users", int, 0, "fit the ratings of this many users drawn at random with a fixed seed (0: all; "
                                "a subset for NUTS)", minimum=0),
    Option("noncentred_below", int, 0, "write users and items with fewer training ratings than this non-centred "
                                       "(NUTS and HMC: 10 lifts E-BFMI from about 0.3 to 0.6 on MovieLens; the "
                                       "mean-field guide of --method svi needs 0)", minimum=0),
    Option("min_item_ratings", int, 0, "drop items with fewer ratings than this, counted after --max-users (NUTS "
                                       "on factors needs about 5: rarely rated items mix too slowly)", minimum=0),
)


def predictor(params: Mapping[str, Any], user, item):
    """(mean, sd) of the predictive Normal of each (user, item) pair under one draw of the global
    parameters `params` (the sites of `GLOBAL_SITES` and `RAW_SITES`); code -1 is a user or item
    the fit never saw, drawn from the population."""
    known_user, known_item = user >= 0, item >= 0
    u, i = jnp.maximum(user, 0), jnp.maximum(item, 0)
    user_scale, item_scale = params["user_scale"], params["item_scale"]
    mean = (params["mu"] + jnp.where(known_user, params["user_bias"][u], 0.0)
            + jnp.where(known_item, params["item_bias"][i], 0.0))
    variance = (params["sigma"] ** 2 + jnp.where(known_user, 0.0, user_scale ** 2)
                + jnp.where(known_item, 0.0, item_scale ** 2))
    if "factor_scale" in params:
        scale = params["factor_scale"]
        user_factors = params["user_factors"][u]
        item_factors = params["item_factors"][i]
        mean = mean + jnp.where(known_user & known_item, jnp.sum(user_factors * item_factors, -1), 0.0)
        # a new user's factors ~ N(0, scale): <U_new, V_i> ~ N(0, sum_k scale_k^2 V_ik^2); both new:
        # the product of two independent N(0, scale_k) has variance scale_k^4 (moment matched)
        variance = variance + jnp.where(~known_user & known_item, jnp.sum((scale * item_factors) ** 2, -1), 0.0)
        variance = variance + jnp.where(known_user & ~known_item, jnp.sum((scale * user_factors) ** 2, -1), 0.0)
        variance = variance + jnp.where(~known_user & ~known_item, jnp.sum(scale ** 4), 0.0)
    return mean, jnp.sqrt(variance)


def _centring(user_centred, item_centred) -> dict:
    """`LocScaleReparam` per user and item: 1 keeps the centred prior, 0 writes b = scale * z
    (Papaspiliopoulos, Roberts & Skold 2007: centred suits members the data pin down, non-centred
    those the prior dominates, and one plate can hold both)."""
    if user_centred is None:
        return {}
    from numpyro.infer.reparam import LocScaleReparam

    user_centred, item_centred = jnp.asarray(user_centred), jnp.asarray(item_centred)
    return {"user_bias": LocScaleReparam(user_centred), "user_factors": LocScaleReparam(user_centred[:, None]),
            "item_bias": LocScaleReparam(item_centred), "item_factors": LocScaleReparam(item_centred[:, None])}


def pmf_model(user, item, rating=None, *, num_users: int, num_items: int, latent_dim: int, rating_loc: float,
              rating_scale: float, num_points: int | None = None, user_centred=None, item_centred=None):
    """Ratings `rating` of pairs (`user`, `item`) (integer codes, -1 for new). `num_points`: the
    number of training ratings when the arrays are a minibatch of them (the likelihood is scaled
    by num_points / batch); None: the arrays are all the data. `user_centred`, `item_centred`:
    1 or 0 per user and item, how its bias and factors are written (`--noncentred-below`; the
    posterior keeps every site under its own name, the standardised values beside it as
    `*_decentered`); None: all centred."""
    with numpyro.handlers.reparam(config=_centring(user_centred, item_centred)):
        _pmf(user, item, rating, num_users=num_users, num_items=num_items, latent_dim=latent_dim,
             rating_loc=rating_loc, rating_scale=rating_scale, num_points=num_points)


def _pmf(user, item, rating, *, num_users, num_items, latent_dim, rating_loc, rating_scale, num_points):
    params = {
        "mu": numpyro.sample("mu", dist.Normal(rating_loc, rating_scale)),
        "sigma": numpyro.sample("sigma", dist.HalfNormal(rating_scale)),
        "user_scale": numpyro.sample("user_scale", dist.HalfNormal(rating_scale)),
        "item_scale": numpyro.sample("item_scale", dist.HalfNormal(rating_scale)),
    }
    with numpyro.plate("users", num_users):
        params["user_bias"] = numpyro.sample("user_bias", dist.Normal(0.0, params["user_scale"]))
    with numpyro.plate("items", num_items):
        params["item_bias"] = numpyro.sample("item_bias", dist.Normal(0.0, params["item_scale"]))
    if latent_dim:
        scale = numpyro.sample("factor_scale", dist.HalfNormal(0.5 * jnp.sqrt(rating_scale)).expand([latent_dim])
                               .to_event(1))
        params["factor_scale"] = scale
        params["user_factors"] = numpyro.sample(
            "user_factors", dist.Normal(0.0, scale).expand([num_users, latent_dim]).to_event(2))
        params["item_factors"] = numpyro.sample(
            "item_factors", dist.Normal(0.0, scale).expand([num_items, latent_dim]).to_event(2))
    batch = user.shape[0]
    mean, sd = predictor(params, user, item)
    with numpyro.plate("ratings", num_points or batch, subsample_size=batch):
        numpyro.deterministic("rating_mean", mean)
        numpyro.deterministic("rating_sd", sd)
        numpyro.sample("rating", dist.Normal(mean, sd), obs=rating)


def pmf_guide(user, item, rating=None, *, num_users: int, num_items: int, latent_dim: int, rating_loc: float,
              rating_scale: float, num_points: int | None = None, user_centred=None, item_centred=None):
    """Mean-field guide: a Normal for mu and for every bias and factor, a log-normal for every
    scale. Factor means start at random values of the prior's size (at 0 the product <U, V>
    has no gradient). It fits the centred model only."""
    if user_centred is not None:
        raise ModelError("--noncentred-below is for NUTS and HMC: the mean-field guide of --method svi fits the "
                         "centred model (give --noncentred-below 0)")

    def normal(name, shape, loc=0.0, spread=0.1, random=False):
        init = ((lambda key: spread * __import__("jax").random.normal(key, shape)) if random
                else jnp.full(shape, loc, jnp.float32))
        location = numpyro.param(f"{name}_loc", init)
        scale = numpyro.param(f"{name}_scale", jnp.full(shape, spread, jnp.float32), constraint=constraints.positive)
        return location, scale

    loc, scale = normal("mu", (), rating_loc, 0.01)
    numpyro.sample("mu", dist.Normal(loc, scale))
    for name, start in (("sigma", rating_scale), ("user_scale", 0.3 * rating_scale), ("item_scale", 0.3 * rating_scale)):
        loc, scale = normal(name, (), float(np.log(start)), 0.05)
        numpyro.sample(name, dist.LogNormal(loc, scale))
    with numpyro.plate("users", num_users):
        loc, scale = normal("user_bias", (num_users,), 0.0, 0.1)
        numpyro.sample("user_bias", dist.Normal(loc, scale))
    with numpyro.plate("items", num_items):
        loc, scale = normal("item_bias", (num_items,), 0.0, 0.1)
        numpyro.sample("item_bias", dist.Normal(loc, scale))
    if latent_dim:
        loc, scale = normal("factor_scale", (latent_dim,), float(np.log(0.3 * np.sqrt(rating_scale))), 0.05)
        numpyro.sample("factor_scale", dist.LogNormal(loc, scale).to_event(1))
        for name, rows in (("user_factors", num_users), ("item_factors", num_items)):
            loc, scale = normal(name, (rows, latent_dim), spread=0.3 * float(np.sqrt(rating_scale)), random=True)
            numpyro.sample(name, dist.Normal(loc, scale).to_event(2))


# --------------------------------------------------------------------------------------------
# data -> inputs
# --------------------------------------------------------------------------------------------
def _codes(index: pd.Index, values) -> np.ndarray:
    return index.get_indexer(pd.Index(values)).astype(np.int32)


def _kwargs(user, item, training: pd.DataFrame, labels: dict, options) -> dict:
    rating = training["rating"].to_numpy(np.float64)
    kwargs = {"user": user, "item": item, "num_users": len(labels["user_id"]), "num_items": len(labels["item_id"]),
              "latent_dim": int(options["latent_dim"]), "rating_loc": float(rating.mean()),
              "rating_scale": float(max(rating.std(), 0.1))}
    least = int(options.get("noncentred_below") or 0)
    if least:  # each user's and item's training count decides how it is written
        kwargs["user_centred"] = (labels["users_count"] >= least).astype(np.float32)
        kwargs["item_centred"] = (labels["items_count"] >= least).astype(np.float32)
    return kwargs


def _index(values) -> pd.Index:
    return pd.Index(pd.unique(np.asarray(values, dtype=object) if not pd.api.types.is_numeric_dtype(values)
                              else np.asarray(values)))


def _labels(user, item, users: pd.Index, items: pd.Index, training: pd.DataFrame) -> tuple[dict, dict]:
    """Per-row codes and training counts, and per-user / per-item ids, counts and mean rating."""
    train_user = _codes(users, training["user"].to_numpy())
    train_item = _codes(items, training["item"].to_numpy())
    user_count = np.bincount(train_user, minlength=len(users))
    item_count = np.bincount(train_item, minlength=len(items))
    rating = training["rating"].to_numpy(np.float64)
    user_mean = np.bincount(train_user, weights=rating, minlength=len(users)) / np.maximum(user_count, 1)

    def ids(index):  # NetCDF stores numbers as numbers and anything else as text
        values = np.asarray(index)
        return values if values.dtype.kind in "iuf" else values.astype(str)

    labels = {"user": user, "item": item,
              "user_count": np.where(user >= 0, user_count[np.maximum(user, 0)], 0),
              "item_count": np.where(item >= 0, item_count[np.maximum(item, 0)], 0),
              "user_id": ids(users), "item_id": ids(items), "users_count": user_count, "items_count": item_count,
              "users_mean": user_mean}
    dims = {"rating": ["rating_id"], "user": ["rating_id"], "item": ["rating_id"], "user_count": ["rating_id"],
            "item_count": ["rating_id"], "user_id": ["user_code"], "item_id": ["item_code"],
            "users_count": ["user_code"], "items_count": ["item_code"], "users_mean": ["user_code"]}
    if "title" in training:  # each item's name (its first in the training rows)
        titles = training.drop_duplicates("item").set_index("item")["title"]
        labels["item_title"] = titles.reindex(items).fillna("").to_numpy(str)
        dims["item_title"] = ["item_code"]
    return labels, dims


def _inputs(frame: pd.DataFrame, training: pd.DataFrame, options) -> ModelInputs:
    users, items = _index(training["user"]), _index(training["item"])
    user, item = _codes(users, frame["user"].to_numpy()), _codes(items, frame["item"].to_numpy())
    labels, dims = _labels(user, item, users, items, training)
    return ModelInputs(kwargs=_kwargs(user, item, training, labels, options),
                       observed={"rating": frame["rating"].to_numpy(np.float32)}, dims=dims, labels=labels)


def prepare(frame: pd.DataFrame, options: Mapping[str, Any]) -> ModelInputs:
    """Training ratings (frame columns user, item, rating[, time], from `probgen.data.ratings`)
    as the model's inputs: ids coded 0..U-1 and 0..I-1 in order of appearance."""
    missing = [column for column in ("user", "item", "rating") if column not in frame.columns]
    if missing:
        raise ModelError(f"pmf needs the columns user, item and rating (from probgen.data.ratings); missing "
                         f"{', '.join(missing)}")
    if options["split"] == "time" and "time" not in frame.columns:
        raise ModelError(f"--split time needs a time column; the data have none named '{options['time_column']}' "
                         "(name it with --time-column)")
    return _inputs(frame, frame, options)


def held_out_inputs(training: pd.DataFrame, held_out: pd.DataFrame, options: Mapping[str, Any]) -> ModelInputs:
    """Held-out ratings coded with the training rows' ids: a user or item with no training
    rating gets code -1 and the population-level prediction."""
    return _inputs(held_out, training, options)


def time_sequence(options: Mapping[str, Any]) -> str | None:
    """--split time holds out each user's last ratings (the rows are in time order)."""
    return "user" if options["split"] == "time" else None


def simulate_ratings(num_users: int, num_items: int, num_ratings: int, truth: Mapping[str, Any] | None = None,
                     latent_dim: int = 2, seed: int = 0, popularity: float = 1.0) -> tuple[pd.DataFrame, dict]:
    """(ratings table with columns userId, movieId, rating, timestamp; the parameters drawn)
    from the model itself: known truth for tests and the scale benchmark.

    truth: values of mu, sigma, user_scale, item_scale, factor_scale (defaults: a MovieLens-like
    3.5, 0.8, 0.4, 0.4 and 0.6 per dimension); the per-user and per-item values are drawn from
    the hierarchical prior. Items are picked with Zipf-like popularity (weight rank^-popularity),
    so many items have few ratings, as in real data. Pairs are unique (repeats are dropped, so
    slightly fewer than `num_ratings` rows may come back)."""
    rng = np.random.default_rng(seed)
    truth = {"mu": 3.5, "sigma": 0.8, "user_scale": 0.4, "item_scale": 0.4,
             "factor_scale": np.full(latent_dim, 0.6), **(truth or {})}
    latent_dim = len(np.atleast_1d(truth["factor_scale"])) if latent_dim else 0
    params = {name: np.asarray(value, np.float32) for name, value in truth.items()}
    params["user_bias"] = (params["user_scale"] * rng.normal(size=num_users)).astype(np.float32)
    params["item_bias"] = (params["item_scale"] * rng.normal(size=num_items)).astype(np.float32)
    if latent_dim:
        params["user_factors"] = (params["factor_scale"] * rng.normal(size=(num_users, latent_dim))).astype(np.float32)
        params["item_factors"] = (params["factor_scale"] * rng.normal(size=(num_items, latent_dim))).astype(np.float32)
    else:
        params.pop("factor_scale", None)
    weights = np.arange(1, num_items + 1, dtype=float) ** -popularity
    user = rng.integers(num_users, size=num_ratings)
    item = rng.choice(num_items, size=num_ratings, p=weights / weights.sum())
    _, first = np.unique(user.astype(np.int64) * num_items + item, return_index=True)
    first = np.sort(first)
    user, item = user[first].astype(np.int32), item[first].astype(np.int32)
    rating = np.empty(len(user), np.float32)
    for start in range(0, len(user), 1 << 20):  # bounded memory at ten million ratings
        block = slice(start, start + (1 << 20))
        mean, sd = predictor({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(user[block]),
                             jnp.asarray(item[block]))
        rating[block] = np.asarray(mean) + np.asarray(sd) * rng.normal(size=len(user[block]))
    frame = pd.DataFrame({"userId": user, "movieId": item, "rating": rating,
                          "timestamp": np.arange(len(user), dtype=np.int64)})
    return frame, params
