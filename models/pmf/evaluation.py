"""What a fitted pmf predicts and how good it is: predictive moments of (user, item) pairs under
posterior draws, predictive intervals of the draws' Normal mixture, held-out accuracy and
calibration by how many ratings a user or item has, ranking metrics and top-N recommendations.

Every function takes the flat draws of the global sites (`draws_of`), so the same code serves
NUTS and MAP (posterior draws from the generic path), minibatch SVI (draws from the guide), the
report, `probgen predict` and the study.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.scipy.stats as jstats
import numpy as np
import pandas as pd

from probgen.models.pmf.model import GLOBAL_SITES, RAW_SITES, predictor

LEVELS = (0.5, 0.9)
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)  # the 90% and 50% central intervals and the median
COUNT_BINS = (0, 1, 6, 21, 101)  # training ratings of the user (item): 0, 1-5, 6-20, 21-100, > 100
BLOCK = 32768  # rows per compiled block


def bin_labels() -> list[str]:
    edges = list(COUNT_BINS) + [None]
    return ["0" if lo == 0 else f"{lo}-{hi - 1}" if hi else f">{lo - 1}" for lo, hi in zip(edges[:-1], edges[1:])]


def draws_of(posterior, max_draws: int | None = None) -> dict:
    """{site: (draws, ...)} of the global sites in an xarray posterior, evenly thinned to at
    most `max_draws`."""
    flat = {name: np.asarray(posterior[name].values).reshape((-1,) + posterior[name].shape[2:])
            for name in GLOBAL_SITES + RAW_SITES if name in posterior}
    total = len(flat["mu"])
    if max_draws and total > max_draws:
        keep = np.linspace(0, total - 1, max_draws).round().astype(int)
        flat = {name: value[keep] for name, value in flat.items()}
    return flat


@jax.jit
def _moments(draws, user, item):
    return jax.vmap(lambda params: predictor(params, user, item))(draws)


def moments(draws: dict, user, item) -> tuple[np.ndarray, np.ndarray]:
    """(mean, sd), each (draws, N): the predictive Normal of each pair under each draw."""
    user, item = np.asarray(user, np.int32), np.asarray(item, np.int32)
    means, sds = [], []
    for start in range(0, len(user), BLOCK):
        size = len(user[start:start + BLOCK])
        pad = BLOCK - size if len(user) > BLOCK else 0  # one compiled shape for every block
        u = np.pad(user[start:start + BLOCK], (0, pad))
        i = np.pad(item[start:start + BLOCK], (0, pad))
        mean, sd = _moments(draws, u, i)
        means.append(np.asarray(mean)[:, :size])
        sds.append(np.asarray(sd)[:, :size])
    return np.concatenate(means, 1), np.concatenate(sds, 1)


@jax.jit
def _mixture_quantiles(mean, sd, probabilities):
    """Quantiles of the equal-weight mixture of Normal(mean[d], sd[d]) per column, by bisection
    on its CDF (48 halvings: well below float32 resolution)."""
    low, high = (mean - 8 * sd).min(0), (mean + 8 * sd).max(0)

    def one(p):
        def halve(_, bounds):
            lo, hi = bounds
            middle = 0.5 * (lo + hi)
            below = jstats.norm.cdf((middle - mean) / sd).mean(0) < p
            return jnp.where(below, middle, lo), jnp.where(below, hi, middle)

        lo, hi = jax.lax.fori_loop(0, 48, halve, (low, high))
        return 0.5 * (lo + hi)

    return jax.vmap(one)(probabilities)


@jax.jit
def _log_density(mean, sd, rating):
    return jax.nn.logsumexp(jstats.norm.logpdf(rating, mean, sd), axis=0) - jnp.log(mean.shape[0])


def summarise(mean: np.ndarray, sd: np.ndarray, rating=None) -> pd.DataFrame:
    """Per pair: predictive mean and sd of the mixture over draws, the quantiles of `QUANTILES`
    and, given the ratings, the log predictive density (nats)."""
    columns = {"mean": mean.mean(0), "sd": np.sqrt((sd ** 2 + mean ** 2).mean(0) - mean.mean(0) ** 2)}
    quantiles = []
    for start in range(0, mean.shape[1], BLOCK):
        quantiles.append(np.asarray(_mixture_quantiles(mean[:, start:start + BLOCK], sd[:, start:start + BLOCK],
                                                       jnp.asarray(QUANTILES))))
    quantiles = np.concatenate(quantiles, 1)
    for probability, values in zip(QUANTILES, quantiles):
        columns[f"q{round(100 * probability):02d}"] = values
    if rating is not None:
        columns["log_density"] = np.asarray(_log_density(mean, sd, np.asarray(rating, np.float32)))
    return pd.DataFrame(columns)


def _bin(counts) -> np.ndarray:
    return np.searchsorted(np.asarray(COUNT_BINS), np.asarray(counts), side="right") - 1


def held_out_metrics(table: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """(metrics, calibration table) of held-out pairs: `table` has rating, user_count,
    item_count and the columns of `summarise`.

    RMSE and MAE of the predictive mean with standard errors (the SE of the mean of the squared
    or absolute errors, by the delta method for the RMSE); log predictive density per rating
    with its SE; coverage of the central 50% and 90% intervals, whose SE is the binomial one at
    the nominal level, sqrt(p (1 - p) / n). The calibration table gives, per bin of the user's
    and of the item's training ratings, the rows, RMSE, both coverages and the mean width of the
    90% interval: colder bins should have wider intervals and the same coverage."""
    rating = table["rating"].to_numpy(float)
    n = len(rating)
    error = table["mean"].to_numpy(float) - rating
    squared, absolute = error ** 2, np.abs(error)
    rmse = float(np.sqrt(squared.mean()))
    metrics = {"rows": int(n), "rmse": rmse, "rmse_se": float(squared.std(ddof=1) / math.sqrt(n) / (2 * rmse)),
               "mae": float(absolute.mean()), "mae_se": float(absolute.std(ddof=1) / math.sqrt(n))}
    if "log_density" in table:
        density = table["log_density"].to_numpy(float)
        metrics.update(log_predictive_density=float(density.mean()),
                       log_predictive_density_se=float(density.std(ddof=1) / math.sqrt(n)))
    inside = {}
    for level, (low, high) in zip(LEVELS, (("q25", "q75"), ("q05", "q95"))):
        inside[level] = (rating >= table[low].to_numpy()) & (rating <= table[high].to_numpy())
        metrics[f"coverage_{round(100 * level)}"] = float(inside[level].mean())
        metrics[f"coverage_{round(100 * level)}_se"] = float(math.sqrt(level * (1 - level) / n))
    width = (table["q95"] - table["q05"]).to_numpy(float)
    metrics["cold_users"] = int((table["user_count"] == 0).sum())
    metrics["cold_items"] = int((table["item_count"] == 0).sum())
    labels = bin_labels()
    rows = []
    for kind in ("user", "item"):
        bins = _bin(table[f"{kind}_count"].to_numpy())
        for index, label in enumerate(labels):
            where = bins == index
            if not where.any():
                continue
            rows.append({"by": kind, "training ratings": label, "rows": int(where.sum()),
                         "rmse": float(np.sqrt(squared[where].mean())),
                         "coverage 50%": float(inside[0.5][where].mean()),
                         "coverage 90%": float(inside[0.9][where].mean()),
                         "width 90%": float(width[where].mean())})
    return metrics, pd.DataFrame(rows)


def relevance_threshold(training_ratings) -> float:
    """A held-out rating at or above this is relevant for the ranking metrics: the 75th
    percentile of the training ratings (4 stars on MovieLens, the usual convention)."""
    return float(np.quantile(np.asarray(training_ratings, float), 0.75))


@jax.jit
def _expected_scores(draws, users):
    """(users, items) expected rating averaged over draws, for known users and items."""
    def one(params):
        mean = params["mu"] + params["user_bias"][users][:, None] + params["item_bias"][None, :]
        if "factor_scale" in params:
            mean = mean + params["user_factors"][users] @ params["item_factors"].T
        return mean

    return jax.lax.map(one, draws).mean(0)


def expected_scores(draws: dict, users, block: int = 256) -> np.ndarray:
    users = np.asarray(users, np.int32)
    return np.concatenate([np.asarray(_expected_scores(draws, users[start:start + block]))
                           for start in range(0, len(users), block)]) if len(users) else np.zeros((0, 0))


def ranking_metrics(draws: dict, train_user, train_item, held_user, held_item, held_rating, threshold: float,
                    k: int = 10, max_users: int = 2000, seed: int = 0) -> dict:
    """precision@k, recall@k and NDCG@k (binary relevance: held-out rating >= `threshold`),
    ranking every item the user did not rate in training by its expected rating, averaged over
    users with at least one relevant held-out item (at most `max_users` of them, drawn with
    `seed`), with standard errors over users."""
    train_user, train_item = np.asarray(train_user), np.asarray(train_item)
    held_user, held_item, held_rating = np.asarray(held_user), np.asarray(held_item), np.asarray(held_rating)
    relevant = (held_rating >= threshold) & (held_user >= 0) & (held_item >= 0)
    users = np.unique(held_user[relevant])
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    if not len(users):
        return {}
    order = np.argsort(train_user, kind="stable")
    starts = np.searchsorted(train_user[order], users)
    ends = np.searchsorted(train_user[order], users, side="right")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg = [], [], []
    for begin in range(0, len(users), 256):
        block = users[begin:begin + 256]
        scores = expected_scores(draws, block)
        for row, user in enumerate(block):
            index = begin + row
            scores[row, train_item[order[starts[index]:ends[index]]]] = -np.inf  # already rated in training
            top = np.argpartition(-scores[row], k)[:k]
            top = top[np.argsort(-scores[row, top])]
            wanted = set(held_item[relevant & (held_user == user)].tolist())
            hits = np.array([item in wanted for item in top], float)
            precision.append(hits.sum() / k)
            recall.append(hits.sum() / len(wanted))
            ideal = discounts[:min(k, len(wanted))].sum()
            ndcg.append(float((hits * discounts).sum() / ideal))
    out = {"users": int(len(users)), "k": int(k), "relevance_threshold": float(threshold)}
    for name, values in (("precision", precision), ("recall", recall), ("ndcg", ndcg)):
        values = np.asarray(values)
        out[f"{name}_at_{k}"] = float(values.mean())
        out[f"{name}_at_{k}_se"] = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else float("nan")
    return out


def probability_above(mean: np.ndarray, sd: np.ndarray, threshold) -> np.ndarray:
    """P(rating > threshold) under the predictive mixture, per pair."""
    from scipy.stats import norm

    return norm.sf((np.asarray(threshold) - mean) / sd).mean(0)


def recommend(draws: dict, user: int, rated_items, user_mean: float, count: int = 10) -> pd.DataFrame:
    """The `count` items with the highest expected rating that `user` (a code) did not rate,
    with predictive intervals and the probability that the user rates each above their mean."""
    scores = expected_scores(draws, [user])[0]
    scores[np.asarray(rated_items, int)] = -np.inf
    top = np.argsort(-scores)[:count]
    mean, sd = moments(draws, np.full(len(top), user), top)
    table = summarise(mean, sd)
    table.insert(0, "item_code", top)
    table["p_above_user_mean"] = probability_above(mean, sd, user_mean)
    return table
