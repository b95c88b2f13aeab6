"""Ratings in: (user, item, rating) rows from a bundled set, a CSV or a Parquet file, validated
with clear errors, for recommendation models (the "ratings" data kind of `probgen.data.kinds`: pmf).

The result is a `probgen.data.Dataset` whose frame has the columns `user`, `item`, `rating` and,
when the data have one, `time`. User and item ids keep their own type (integers, strings,
anything hashable): the model codes them as 0..U-1 and 0..I-1 from its training rows, so ids
the fit never saw are recognised as new (`pmf` falls back to the population for them).

Duplicate (user, item) rows are refused by default (`duplicates="refuse"`): in ratings exports
a repeated pair is usually a join or export error, and silently keeping both would count one
opinion twice. `duplicates="last"` keeps each pair's latest row (by time when the data have a
time column, else by file order: a re-rating replaces the old one, as MovieLens does), and
`duplicates="mean"` averages them.
"""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

import numpy as np
import pandas as pd

from probgen.data import Dataset, read_table
from probgen.errors import DataError

DUPLICATES = ("refuse", "last", "mean")


def _raw(source) -> tuple[pd.DataFrame, str, str]:
    """(table, label for messages, source name for the config)."""
    if isinstance(source, pd.DataFrame):
        return source, "the ratings table", "dataframe"
    frame, label, _ = read_table(str(source))
    return frame, label, str(source)


def read_raw(source) -> pd.DataFrame:
    """The table of `source` as it is (ids of any type), for `probgen predict`'s pairs."""
    return _raw(source)[0]


def load_ratings(source, options: Mapping[str, Any]) -> Dataset:
    """A `Dataset` of ratings (frame columns user, item, rating[, time]) from `source` (a
    bundled name, a .csv/.tsv/.parquet path or a DataFrame), with the columns named by
    `options` (user_column, item_column, rating_column, time_column: "" for none) and the
    duplicate policy `options["duplicates"]`. Bad input is a `DataError` of one line."""
    raw, label, name = _raw(source)
    wanted = {"user": options["user_column"], "item": options["item_column"], "rating": options["rating_column"]}
    time_column = options.get("time_column") or ""
    if time_column and time_column in raw.columns:
        wanted["time"] = time_column
    elif time_column and time_column != "timestamp":  # the default is optional; a named one is not
        raise DataError(f"time column '{time_column}' is not in {label} (columns: {', '.join(map(str, raw.columns))})")
    title_column = options.get("title_column") or ""
    if title_column and title_column in raw.columns:
        wanted["title"] = title_column  # a name per item, for the reader (top-N lists, predictions)
    elif title_column and title_column != "title":  # the default is optional; a named one is not
        raise DataError(f"title column '{title_column}' is not in {label} (columns: {', '.join(map(str, raw.columns))})")
    missing = [f"{role} column '{column}'" for role, column in wanted.items() if column not in raw.columns]
    if missing:
        named = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
        raise DataError(f"{named} {'is' if len(missing) == 1 else 'are'} not in {label} (columns: "
                        f"{', '.join(map(str, raw.columns))}); "
                        "name them with --user-column, --item-column, --rating-column")
    frame = pd.DataFrame({role: raw[column].to_numpy() for role, column in wanted.items()})
    if "title" in frame:
        frame["title"] = frame["title"].astype(str)
    for role in ("user", "item"):
        absent = frame[role].isna().to_numpy()
        if absent.any():
            row = int(np.flatnonzero(absent)[0])
            raise DataError(f"{role} column '{wanted[role]}' in {label} is empty at row {row + 1}")
    for role in ("rating", "time"):
        if role not in frame:
            continue
        values = frame[role]
        numeric = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_numeric_dtype(values) else values
        bad = ~np.isfinite(numeric.to_numpy(dtype=float, na_value=np.nan))
        if pd.api.types.is_bool_dtype(values) or bad.any():
            row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
            raise DataError(f"{role} column '{wanted[role]}' in {label} is not a finite number at row {row + 1}: "
                            f"{values.iloc[row]!r}")
        frame[role] = numeric.astype(np.float64 if role == "rating" else np.int64 if
                                     pd.api.types.is_integer_dtype(numeric) else np.float64)
    if options.get("max_users"):
        frame = _some_users(frame, int(options["max_users"]))
    frame = _deduplicate(frame, options.get("duplicates", "refuse"), wanted, label)
    if options.get("min_item_ratings"):
        frame = _rated_items(frame, int(options["min_item_ratings"]), label)
    if "time" in frame:  # each user's ratings in time order: the time split holds out the last ones
        frame = frame.sort_values(["time"], kind="stable").reset_index(drop=True)
    if len(frame) < 3:
        raise DataError(f"{label} has {len(frame)} rating(s); a recommendation model needs at least 3")
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
    return Dataset(frame=frame, source=name, sha256=digest)


def _some_users(frame: pd.DataFrame, count: int) -> pd.DataFrame:
    """The ratings of `count` users drawn at random with a fixed seed (the same users on every
    machine): a subset small enough for NUTS that keeps whole users, as the full data has them."""
    users = pd.unique(frame["user"])
    if count >= len(users):
        return frame
    chosen = np.random.default_rng(0).choice(len(users), size=count, replace=False)
    return frame[frame["user"].isin(users[chosen])].reset_index(drop=True)


def _rated_items(frame: pd.DataFrame, least: int, label: str) -> pd.DataFrame:
    """The ratings of items rated at least `least` times (after --max-users and the duplicate
    policy; one pass, so a user can keep fewer ratings). NUTS on a factor model needs it: an item
    with one or two ratings leaves its bias and factors to the prior, and the posterior along the
    trade-off between item biases and factors mixes too slowly (the README's Recommendation
    section has the R-hats)."""
    counts = frame["item"].value_counts()
    kept = frame[frame["item"].isin(counts.index[counts >= least])].reset_index(drop=True)
    if len(kept) < 3:
        raise DataError(f"--min-item-ratings {least} leaves {len(kept)} rating(s) of {label} (its most rated item has "
                        f"{int(counts.max()) if len(counts) else 0}); a recommendation model needs at least 3")
    return kept


def _deduplicate(frame: pd.DataFrame, policy: str, wanted: dict, label: str) -> pd.DataFrame:
    if policy not in DUPLICATES:
        raise DataError(f"--duplicates must be one of {', '.join(DUPLICATES)}, got {policy!r}")
    repeated = frame.duplicated(["user", "item"], keep=False).to_numpy()
    if not repeated.any():
        return frame
    if policy == "refuse":
        first = int(np.flatnonzero(repeated)[0])
        user, item = frame["user"].iloc[first], frame["item"].iloc[first]
        rows = np.flatnonzero(repeated & (frame["user"] == user).to_numpy() & (frame["item"] == item).to_numpy()) + 1
        raise DataError(f"{label} rates the same (user, item) pair more than once: {wanted['user']}={user!r}, "
                        f"{wanted['item']}={item!r} at rows {', '.join(map(str, rows[:5]))} "
                        f"({int(frame.duplicated(['user', 'item']).sum())} repeated rows in all); "
                        "choose --duplicates last (keep the latest) or mean (average them)")
    if policy == "last":
        ordered = frame.sort_values("time", kind="stable") if "time" in frame else frame
        return ordered.drop_duplicates(["user", "item"], keep="last").sort_index().reset_index(drop=True)
    aggregations = {"rating": "mean", **({"time": "max"} if "time" in frame else {}),
                    **({"title": "first"} if "title" in frame else {})}
    return frame.groupby(["user", "item"], sort=False, as_index=False).agg(aggregations)
