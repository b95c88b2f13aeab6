"""How far a text's memory reaches: the mutual information between a symbol and the one k
steps back, within documents, as a function of k, for real text and for text a model writes.

The plug-in estimate from the joint table of pairs is biased upwards by about
(R - 1)(C - 1) / (2N) nats (Miller 1955; R, C the symbols seen in each role, N pairs), which at
long lags is as large as the signal; the estimate reported subtracts it.
"""

from __future__ import annotations

import math

import numpy as np

from probgen import metrics


def mutual_information_by_lag(documents, lags, size: int) -> np.ndarray:
    """(len(lags),) bits: I(X_t; X_{t-k}) over the positions t >= k of every document
    (`documents`: a list of symbol arrays), bias-corrected; NaN where no pair exists."""
    values = []
    for lag in lags:
        pairs = [(document[lag:], document[:-lag]) for document in documents if len(document) > lag]
        if not pairs:
            values.append(float("nan"))
            continue
        now = np.concatenate([p[0] for p in pairs]).astype(np.int64)
        before = np.concatenate([p[1] for p in pairs]).astype(np.int64)
        table = np.bincount(now * size + before, minlength=size * size).reshape(size, size).astype(float)
        plug_in = float(metrics.mutual_information_discrete(table))
        rows, columns = np.sum(table.sum(1) > 0), np.sum(table.sum(0) > 0)
        bias = (rows - 1) * (columns - 1) / (2.0 * len(now))
        values.append((plug_in - bias) / math.log(2.0))
    return np.asarray(values)


LAGS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
