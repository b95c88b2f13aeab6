"""Continuing a prompt: one symbol at a time from a model's next-symbol distribution, with a
temperature. A generated END closes the document; the text goes on with a new one (a newline
in the output), until `num_symbols` characters are written."""

from __future__ import annotations

from typing import Callable

import numpy as np

from probgen.errors import DataError
from probgen.models._common.lm.text import END, PAD, UNK, Vocabulary


def encode_prompt(vocabulary: Vocabulary, prompt: str) -> np.ndarray:
    """The prompt's symbols, or a DataError naming the characters the model never saw."""
    unknown = vocabulary.unknown_in(prompt)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:10])
        raise DataError(f"--prompt holds character{'s' if len(unknown) > 1 else ''} {shown} that the model never saw "
                        "in training (or saw fewer than --min-count times); leave them out")
    return vocabulary.encode(prompt)


def continue_text(next_probabilities: Callable[[np.ndarray], np.ndarray], vocabulary: Vocabulary, prompt: str,
                  num_symbols: int, temperature: float, rng: np.random.Generator, context: int) -> str:
    """`prompt` followed by `num_symbols` generated characters (ENDs become newlines).

    next_probabilities(histories (B, context) int) -> (B, V) probabilities of the next symbol
    given the last `context` symbols of each history (PAD before the document's start)."""
    return continue_texts(next_probabilities, vocabulary, prompt, num_symbols, [temperature], rng, context)[0]


def continue_texts(next_probabilities: Callable[[np.ndarray], np.ndarray], vocabulary: Vocabulary, prompt: str,
                   num_symbols: int, temperatures, rng: np.random.Generator, context: int) -> list[str]:
    """`continue_text` at several temperatures at once (one batch of histories, one model call
    per character for all of them)."""
    temperatures = np.asarray(temperatures, float)
    if np.any(temperatures <= 0):
        raise DataError(f"--temperature must be > 0, got {temperatures.min():g}")
    if num_symbols < 1:
        raise DataError(f"-n must be >= 1, got {num_symbols}")
    start = np.concatenate([np.full(context, PAD, np.int32), encode_prompt(vocabulary, prompt)])[-context:]
    history = np.tile(start, (len(temperatures), 1))
    out: list[list[str]] = [[] for _ in temperatures]
    for _ in range(num_symbols):
        symbols = _draw(next_probabilities(history), temperatures[:, None], rng)
        for row, symbol in enumerate(symbols.tolist()):
            if symbol == END:
                out[row].append("\n")
                history[row] = PAD
            else:
                out[row].append(vocabulary.decode([symbol]))
                history[row] = np.append(history[row, 1:], np.int32(symbol))
    return [prompt + "".join(characters) for characters in out]


def _draw(probabilities, temperature, rng: np.random.Generator) -> np.ndarray:
    """One symbol per row of (B, V) probabilities, sharpened or flattened by the temperature
    (p^(1/T), renormalised); PAD is never drawn, nor UNK (it stands for any rare character,
    which has no one spelling)."""
    probabilities = np.array(probabilities, float)
    probabilities[:, PAD] = 0.0
    probabilities[:, UNK] = 0.0
    logits = np.log(np.maximum(probabilities, 1e-300)) / temperature
    weights = np.exp(logits - logits.max(axis=1, keepdims=True)) * (probabilities > 0)
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((cumulative < rng.random((len(weights), 1))).sum(axis=1), weights.shape[1] - 1)


def sample_documents(next_probabilities: Callable[[np.ndarray], np.ndarray], num_documents: int, max_symbols: int,
                     temperature: float, rng: np.random.Generator, context: int) -> list[np.ndarray]:
    """`num_documents` documents drawn side by side from the start (each up to `max_symbols`
    characters; END closes it), as symbol arrays without the END."""
    history = np.full((num_documents, context), PAD, np.int32)
    written = np.zeros((num_documents, max_symbols), np.int32)
    length = np.full(num_documents, max_symbols)
    open_ = np.ones(num_documents, bool)
    for step in range(max_symbols):
        symbols = _draw(next_probabilities(history), temperature, rng).astype(np.int32)
        ended = open_ & (symbols == END)
        length[ended] = step
        open_ &= ~ended
        written[:, step] = symbols
        history = np.concatenate([history[:, 1:], symbols[:, None]], axis=1)
        if not open_.any():
            break
    return [written[i, :length[i]] for i in range(num_documents)]
