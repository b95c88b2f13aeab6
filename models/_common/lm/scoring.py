"""Held-out scores of a language model in bits per character, with standard errors that treat
documents (not characters) as the independent units."""

from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2.0)


def per_document(bits: np.ndarray, owner: np.ndarray, num_documents: int) -> tuple[np.ndarray, np.ndarray]:
    """(bits (D,), symbols (D,)) per document, from the bits of each target and its document
    (`owner`; -1 marks positions that are not targets and are skipped)."""
    keep = owner >= 0
    return (np.bincount(owner[keep], weights=bits[keep], minlength=num_documents),
            np.bincount(owner[keep], minlength=num_documents).astype(float))


def bits_per_character(document_bits, document_symbols) -> tuple[float, float]:
    """(bits per character, its standard error): the ratio sum(bits) / sum(symbols) over
    documents, with the delta-method (ratio-estimator) standard error over documents, since
    characters within a document are not independent."""
    bits, symbols = np.asarray(document_bits, float), np.asarray(document_symbols, float)
    keep = symbols > 0
    bits, symbols = bits[keep], symbols[keep]
    ratio = bits.sum() / symbols.sum()
    count = len(symbols)
    if count < 2:
        return float(ratio), float("nan")
    residual = bits - ratio * symbols
    return float(ratio), float(math.sqrt(np.sum(residual ** 2) / (count * (count - 1))) / symbols.mean())


def paired_difference(bits_a, bits_b, document_symbols) -> tuple[float, float]:
    """(difference of bits per character a - b, its standard error), paired by document (the
    same test documents under both models, so most of the between-document noise cancels)."""
    return bits_per_character(np.asarray(bits_a, float) - np.asarray(bits_b, float), document_symbols)


TOKENS_SHOWN = 80


def token_predictive(symbols, log_predictive, log_draws=None):
    """The `held_out_tokens` group: for the first TOKENS_SHOWN held-out targets, the symbol, its
    posterior predictive probability and, with posterior draws (S, N) of log p, the 5% and 95%
    quantiles of p over the posterior."""
    import xarray as xr

    count = min(TOKENS_SHOWN, len(symbols))
    variables = {"symbol": ("token", np.asarray(symbols[:count], np.int32)),
                 "predictive": ("token", np.exp(np.asarray(log_predictive[:count], float)))}
    if log_draws is not None:
        low, high = np.quantile(np.exp(np.asarray(log_draws[:, :count], float)), [0.05, 0.95], axis=0)
        variables.update(low=("token", low), high=("token", high))
    return xr.Dataset(variables)
