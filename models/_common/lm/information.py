"""How far a text's memory reaches: the mutual information between a symbol and the one k
steps back, within documents, as a function of k, for real text and for text a model writes.

The plug-in estimate from the joint table of pairs is biased upwards, by about
(R - 1)(C - 1) / (2N) nats for a dense table (Miller 1955), which at long lags is as large as the
signal. That formula overcorrects the sparse tables of a few hundred sampled documents (it went
well below zero), so the bias is measured instead: the mean plug-in MI of the same pairs with
one side shuffled (independent, with the same marginals and N), subtracted.
"""

from __future__ import annotations

import math

import numpy as np

from probgen.checks import metrics


SHUFFLES = 5


def _plug_in(now, before, size: int) -> float:
    table = np.bincount(now * size + before, minlength=size * size).reshape(size, size).astype(float)
    return float(metrics.mutual_information_discrete(table))


def mutual_information_by_lag(documents, lags, size: int, seed: int = 0) -> np.ndarray:
    """(len(lags),) bits: I(X_t; X_{t-k}) over the positions t >= k of every document
    (`documents`: a list of symbol arrays), bias-corrected by shuffling; NaN where no pair
    exists."""
    rng = np.random.default_rng(seed)
    values = []
    for lag in lags:
        pairs = [(document[lag:], document[:-lag]) for document in documents if len(document) > lag]
        if not pairs:
            values.append(float("nan"))
            continue
        now = np.concatenate([p[0] for p in pairs]).astype(np.int64)
        before = np.concatenate([p[1] for p in pairs]).astype(np.int64)
        bias = np.mean([_plug_in(now, rng.permutation(before), size) for _ in range(SHUFFLES)])
        values.append((_plug_in(now, before, size) - bias) / math.log(2.0))
    return np.asarray(values)


LAGS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
