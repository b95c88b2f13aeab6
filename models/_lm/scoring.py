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
