"""pmf's report, plots, `probgen predict` and the quantities NUTS's convergence is judged on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from probgen.errors import DataError
from probgen.hooks import ReportPart, Section
from probgen.models.pmf.evaluation import (
    QUANTILES, held_out_metrics, moments, probability_above, ranking_metrics, recommend, relevance_threshold,
    summarise,
)
from probgen.models.pmf.model import GLOBAL_SITES
from probgen.models.pmf.parts import evaluated_rows, summary_table

INTERVAL_DRAWS = 200  # posterior draws behind the predictive intervals of the posterior methods


def _draws(idata, max_draws: int = INTERVAL_DRAWS) -> dict:
    from probgen.models.pmf.evaluation import draws_of

    return draws_of(idata.posterior, max_draws)


def held_out_table(idata) -> pd.DataFrame | None:
    """The held-out pairs with ratings, training counts and predictive summaries: stored by the
    minibatch trainer, or computed from the posterior methods' held-out predictive draws."""
    if "pmf_held_out" in idata.groups():
        group = idata.pmf_held_out
        return pd.DataFrame({name: group[name].values for name in group.data_vars})
    if "held_out_predictive" not in idata.groups() or "held_out_labels" not in idata.groups():
        return None
    predictive, labels = idata.held_out_predictive, idata.held_out_labels
    mean = predictive["rating_mean"].values
    sd = predictive["rating_sd"].values
    mean, sd = mean.reshape((-1,) + mean.shape[2:]), sd.reshape((-1,) + sd.shape[2:])
    if len(mean) > INTERVAL_DRAWS:
        keep = np.linspace(0, len(mean) - 1, INTERVAL_DRAWS).round().astype(int)
        mean, sd = mean[keep], sd[keep]
    rating = idata.held_out_data["rating"].values
    rows = evaluated_rows(len(rating))
    return summary_table(mean[:, rows], sd[:, rows], rating, labels, rows)


def _id(value):
    return value.item() if hasattr(value, "item") else value


def coverage_reading(held: dict) -> str:
    """A sentence for each interval whose held-out coverage is more than 3 binomial standard
    errors from its level (too wide or too narrow), or one saying both are within."""
    flagged = []
    for level in (50, 90):
        coverage, se = held[f"coverage_{level}"], held[f"coverage_{level}_se"]
        if abs(coverage - level / 100) > 3 * se:
            flagged.append(f"The {level}% intervals are too {'wide' if coverage > level / 100 else 'narrow'}: they hold "
                           f"{coverage:.1%} of the held-out ratings, more than 3 standard errors from {level}%.")
    return (" ".join(flagged) + " ") if flagged else "Both are within 3 standard errors of their levels. "


def width_reading(calibration: pd.DataFrame) -> str:
    """What the calibration table shows about interval widths by how many training ratings a
    user or item has: colder bins should get wider intervals; say whether they do."""
    sentences = []
    for kind, noun in (("user", "users"), ("item", "items")):
        rows = calibration[calibration["by"] == kind]
        if len(rows) < 2:
            continue
        coldest, warmest = rows.iloc[0], rows.iloc[-1]
        ratio = coldest["width 90%"] / warmest["width 90%"]
        if ratio > 1.05:
            sentences.append(f"the coldest {noun} ({coldest['training ratings']} training ratings) get 90% intervals "
                             f"{ratio:.2f} times as wide as the warmest ({warmest['training ratings']})")
        else:
            sentences.append(f"the coldest {noun} ({coldest['training ratings']} training ratings) get 90% intervals "
                             f"no wider than the warmest ({ratio:.2f} times): the model is not more uncertain about "
                             f"{noun} it knows less about")
    return ("By bin of training ratings (below), " + "; ".join(sentences) + ".") if sentences else ""


def report(idata, config: dict) -> ReportPart:
    data = idata.pmf_data
    options = config["model"]["options"]
    sections, metrics, figures = [], {}, {}
    metrics["users"], metrics["items"] = int(data.sizes["user_code"]), int(data.sizes["item_code"])
    metrics["training_ratings"] = int(data.sizes["rating_id"])
    table = held_out_table(idata)
    if table is not None:
        held, calibration = held_out_metrics(table)
        metrics["recommendation_held_out"] = held
        metrics["calibration"] = calibration.to_dict("records")
        split = "each user's last ratings in time" if options.get("split") == "time" else "ratings drawn at random"
        text = (f"Held out: {held['rows']:,} {split}. RMSE {held['rmse']:.4f} ± {held['rmse_se']:.4f}, MAE "
                f"{held['mae']:.4f} ± {held['mae_se']:.4f}, log predictive density {held['log_predictive_density']:.4f} "
                f"± {held['log_predictive_density_se']:.4f} nats per rating. The central 50% and 90% predictive "
                f"intervals hold {held['coverage_50']:.1%} and {held['coverage_90']:.1%} of the held-out ratings "
                f"(± {held['coverage_50_se']:.1%} and ± {held['coverage_90_se']:.1%} by chance alone). "
                + coverage_reading(held) +
                f"{held['cold_users']} held-out ratings are by users and {held['cold_items']} of items with no training "
                "rating: they get the population-level prediction (a new member drawn from the hierarchical prior). "
                + width_reading(calibration))
        sections.append(Section("Held-out accuracy and calibration", text, calibration.round(4)))
        figures["calibration"] = _calibration_figure(calibration)
        codes = idata.held_out_labels if "held_out_labels" in idata.groups() else None
        held_user = table["user"].to_numpy() if codes is None else codes["user"].values
        held_item = table["item"].to_numpy() if codes is None else codes["item"].values
        held_rating = table["rating"].to_numpy() if codes is None else idata.held_out_data["rating"].values
        threshold = relevance_threshold(idata.observed_data["rating"].values)
        ranking = ranking_metrics(_draws(idata, 50), data["user"].values, data["item"].values, held_user, held_item,
                                  held_rating, threshold)
        if ranking:
            metrics["ranking"] = ranking
            frame = pd.DataFrame([{"metric": f"{name}@10", "value": ranking[f"{name}_at_10"],
                                   "se": ranking[f"{name}_at_10_se"]} for name in ("precision", "recall", "ndcg")])
            if ranking["users"] < 2:  # one user: nothing to take a standard error over
                frame = frame.drop(columns=["se"])
            sections.append(Section(
                "Ranking (held-out)",
                f"For {ranking['users']:,} users with a relevant held-out rating (>= {threshold:g}), every item they "
                "did not rate in training is ranked by its expected rating; the tables give the share of the top 10 "
                "that are relevant held-out items (precision), the share of those items found (recall) and NDCG@10 "
                "(binary relevance), with standard errors over users"
                + (" (one user: none)." if ranking["users"] < 2 else "."), frame.round(4)))
    user_code = int(np.argsort(data["users_count"].values)[len(data["users_count"]) // 2])  # a typical user
    rated = data["item"].values[data["user"].values == user_code]
    mean_rating = float(data["users_mean"].values[user_code])
    top = recommend(_draws(idata, 100), user_code, rated, mean_rating)
    codes = top.pop("item_code").to_numpy()
    top.insert(0, "item", [_id(value) for value in data["item_id"].values[codes]])  # ids as written, not 3.317e+04
    if "item_title" in data:
        top.insert(1, "title", data["item_title"].values[codes])
    user_id = _id(data["user_id"].values[user_code])
    sections.append(Section(
        f"Top 10 for user {user_id}",
        f"User {user_id} rated {len(rated)} items in training (mean {mean_rating:.2f}). The 10 unrated items with the "
        "highest expected rating, with the 90% predictive interval and the probability that the user rates each "
        "above their own mean. `probgen predict RUN_DIR --data pairs.csv --out FILE.csv` gives the same for any "
        "pairs (a file with only a user column: each user's top 10).",
        top[[c for c in ("item", "title", "mean", "q05", "q95", "p_above_user_mean") if c in top]].round(3)))
    # the table a report without the standard posterior summary shows (minibatch SVI's)
    return ReportPart(sections=tuple(sections), metrics=metrics, figures=figures, summary=_globals_summary(idata.posterior),
                      summary_title="Global parameters (draws from the fitted guide)",
                      summary_units="the ratings' units; factor_scale per latent dimension")


def _globals_summary(posterior) -> pd.DataFrame:
    rows = []
    for name in GLOBAL_SITES:
        if name not in posterior:
            continue
        values = posterior[name].values.reshape(posterior[name].shape[:2] + (-1,))
        for index in range(values.shape[-1]):
            flat = values[..., index].ravel()
            label = name if values.shape[-1] == 1 else f"{name}[{index}]"
            rows.append({"parameter": label, "mean": flat.mean(), "sd": flat.std(), "q05": np.quantile(flat, 0.05),
                         "q95": np.quantile(flat, 0.95)})
    return pd.DataFrame(rows).set_index("parameter").round(4)


def _calibration_figure(calibration: pd.DataFrame):
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for axis, kind in zip(axes, ("user", "item")):
        part = calibration[calibration["by"] == kind]
        positions = np.arange(len(part))
        axis.plot(positions, part["coverage 50%"], "o-", label="50% interval")
        axis.plot(positions, part["coverage 90%"], "s-", label="90% interval")
        axis.axhline(0.5, color="grey", ls=":")
        axis.axhline(0.9, color="grey", ls=":")
        axis.set_xticks(positions, part["training ratings"])
        axis.set_ylim(0, 1)
        axis.set_xlabel(f"training ratings of the {kind}")
        axis.set_ylabel("held-out coverage")
        twin = axis.twinx()
        twin.bar(positions, part["width 90%"], alpha=0.15, color="k")
        twin.set_ylabel("mean width of the 90% interval")
        axis.legend(loc="lower left", fontsize=8)
    figure.suptitle("Predictive calibration by how much the fit knows the user and the item")
    figure.tight_layout()
    return figure


def plots(idata) -> dict:
    return {}


MAX_CHECKED = 5000  # training ratings whose predicted mean R-hat and ESS judge


def convergence_on(idata) -> xr.Dataset:
    """What R-hat and ESS judge for NUTS: the identified quantities (the factors rotate and
    permute between chains, their inner products do not): mu, sigma, the bias scales, the
    sorted factor scales and the predicted mean of every training rating (evenly spaced ones
    beyond `MAX_CHECKED`). Every rating, not a sample of them: on MovieLens, chains that agree on
    the globals and on most ratings can still sit in different modes for a few rarely rated
    items (R-hat 1.5 on one rating mean in 2,000)."""
    posterior = idata.posterior
    variables = {name: posterior[name] for name in ("mu", "sigma", "user_scale", "item_scale") if name in posterior}
    if "factor_scale" in posterior:
        variables["factor_scale_sorted"] = (("chain", "draw", "factor"), np.sort(posterior["factor_scale"].values, -1))
    if "rating_mean" in posterior:
        mean = posterior["rating_mean"]
        rows = mean.sizes[mean.dims[2]]
        chosen = np.unique(np.linspace(0, rows - 1, min(rows, MAX_CHECKED)).round().astype(int))
        variables["rating_mean"] = mean.isel({mean.dims[2]: chosen})
    return xr.Dataset(variables)


def _codes(ids, known) -> np.ndarray:
    index = pd.Index(known)
    ids = np.asarray(ids)
    if index.dtype.kind in "iuf" and ids.dtype.kind not in "iuf":
        ids = pd.to_numeric(pd.Series(ids), errors="coerce").to_numpy()
    elif index.dtype.kind not in "iuf":
        ids = ids.astype(str)
    return index.get_indexer(pd.Index(ids))


def predict(idata, options: dict, frame: pd.DataFrame, rng_key) -> pd.DataFrame:
    """The predictive mean, sd and quantiles of each (user, item) pair of `frame` (columns named
    by the run's --user-column and --item-column), with the probability the user rates it above
    their training mean. An unknown user or item gets the population-level prediction and the
    `basis` column says so. A frame with only the user column: each user's top 10."""
    data = idata.pmf_data
    user_column, item_column = options["user_column"], options["item_column"]
    if user_column not in frame.columns:
        raise DataError(f"the pairs need a user column '{user_column}' (columns: {', '.join(map(str, frame.columns))})")
    draws = _draws(idata)
    users = _codes(frame[user_column].to_numpy(), data["user_id"].values)
    user_means = np.where(users >= 0, data["users_mean"].values[np.maximum(users, 0)],
                          float(idata.observed_data["rating"].values.mean()))
    if item_column not in frame.columns:  # recommendations
        tables = []
        for user, user_id, user_mean in zip(users, frame[user_column], user_means):
            if user < 0:
                raise DataError(f"user {user_id!r} has no training ratings: nothing personal to recommend (give "
                                f"(user, item) pairs to get the population-level prediction)")
            rated = data["item"].values[data["user"].values == user]
            top = recommend(draws, int(user), rated, float(user_mean))
            codes = top.pop("item_code").to_numpy()
            top.insert(0, item_column, data["item_id"].values[codes])
            if "item_title" in data:
                top.insert(1, "title", data["item_title"].values[codes])
            top.insert(0, user_column, user_id)
            tables.append(top)
        return pd.concat(tables, ignore_index=True)
    items = _codes(frame[item_column].to_numpy(), data["item_id"].values)
    mean, sd = moments(draws, users, items)
    table = summarise(mean, sd)
    table["p_above_user_mean"] = probability_above(mean, sd, user_means)
    basis = np.array(["user and item"] * len(users), dtype=object)
    basis[(users < 0) & (items >= 0)] = "population: new user"
    basis[(users >= 0) & (items < 0)] = "population: new item"
    basis[(users < 0) & (items < 0)] = "population: new user and item"
    table.insert(0, item_column, frame[item_column].to_numpy())
    table.insert(0, user_column, frame[user_column].to_numpy())
    table["basis"] = basis
    new = int((basis != "user and item").sum())
    if new:
        import sys

        print(f"{new} of {len(table)} pairs have a user or item the fit never saw: their prediction is the "
              "population's (column 'basis')", file=sys.stderr)
    return table


__all__ = ["report", "plots", "predict", "convergence_on", "held_out_table", "QUANTILES"]
