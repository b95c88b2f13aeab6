"""Characters to symbols and documents to the arrays the models read.

Symbols: 0 = PAD (before the start of a document: context only, never predicted), 1 = END (the
end of a document, predicted like a character, so a model knows when a document stops),
2 = UNK (a character seen fewer than `min_count` times in the training documents, or never),
then the training characters in code-point order. Held-out text is encoded with the training
vocabulary, so an unseen character is UNK there too and is scored as UNK (its probability is
the probability of "some rare character").

Every document is a stream `[PAD] * pad + symbols + [END]`; the targets are every position
that is not PAD, each predicted from the symbols before it in its own document (PAD beyond
its start). Bits per character count every target, END included.
"""

from __future__ import annotations

import collections
import dataclasses
import json

import numpy as np

from probgen.errors import DataError

PAD, END, UNK = 0, 1, 2
SPECIAL = ("<pad>", "<end>", "<unk>")


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The symbols of a model: SPECIAL, then the characters kept."""

    characters: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(SPECIAL) + len(self.characters)

    @classmethod
    def from_documents(cls, documents, min_count: int = 1) -> "Vocabulary":
        counts = collections.Counter()
        for document in documents:
            counts.update(document)
        return cls(tuple(sorted(character for character, count in counts.items() if count >= min_count)))

    def index(self) -> dict[str, int]:
        return {character: position + len(SPECIAL) for position, character in enumerate(self.characters)}

    def encode(self, document: str) -> np.ndarray:
        index = self.index()
        return np.fromiter((index.get(character, UNK) for character in document), dtype=np.int32, count=len(document))

    def decode(self, symbols) -> str:
        return "".join(self.characters[s - len(SPECIAL)] if s >= len(SPECIAL) else ("\u2047" if s == UNK else "")
                       for s in np.asarray(symbols).tolist())

    def unknown_in(self, text: str) -> list[str]:
        """The characters of `text` outside this vocabulary, in order of appearance."""
        index = self.index()
        return list(dict.fromkeys(character for character in text if character not in index))

    def to_json(self) -> str:
        return json.dumps(list(self.characters), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> "Vocabulary":
        return cls(tuple(json.loads(text)))


def documents_of(frame) -> list[str]:
    """The documents of a text frame (`probgen.data.text`), or a DataError naming the problem."""
    if "text" not in frame.columns:
        raise DataError("a language model needs text documents (a bundled corpus or a .txt file); the table has "
                        f"columns {', '.join(map(str, frame.columns))}")
    documents = frame["text"].astype(str).tolist()
    if not any(documents):
        raise DataError("the text holds no characters")
    return documents


def streams(documents, vocabulary: Vocabulary, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """(symbols (L,), document (L,)): every document as `[PAD] * pad + symbols + [END]`, joined;
    `document` is the document's index at each target and -1 at padding."""
    symbols, owners = [], []
    for number, document in enumerate(documents):
        encoded = vocabulary.encode(document)
        symbols.append(np.concatenate([np.full(pad, PAD, np.int32), encoded, [END]]).astype(np.int32))
        owners.append(np.concatenate([np.full(pad, -1, np.int32), np.full(len(encoded) + 1, number, np.int32)]))
    return np.concatenate(symbols), np.concatenate(owners)


def rows(documents, vocabulary: Vocabulary, context: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """(x (R, context + block), owner (R, block)) for the networks: the streams (one PAD before
    each document) cut into rows that overlap by `context` symbols; each row predicts its last
    `block` positions (those that are not PAD), each from the `context` symbols before it
    (positions of an earlier document are masked by the model: `same_document`). owner: the
    document of each predicted position, -1 where nothing is predicted."""
    symbols, owners = streams(documents, vocabulary, 1)
    symbols = np.concatenate([np.full(context, PAD, np.int32), symbols])
    owners = np.concatenate([np.full(context, -1, np.int32), owners])
    count = -(-(len(symbols) - context) // block)
    total = context + count * block
    symbols = np.concatenate([symbols, np.full(total - len(symbols), PAD, np.int32)])
    owners = np.concatenate([owners, np.full(total - len(owners), -1, np.int32)])
    starts = np.arange(count) * block
    x = symbols[starts[:, None] + np.arange(context + block)]
    return x, owners[starts[:, None] + context + np.arange(block)]


def text_options():
    """The options every language model has: how rare characters and a .txt file's documents
    are read."""
    from probgen.spec import Option

    return (Option("min_count", int, 3, "characters seen fewer times in the training documents become one UNK symbol",
                   minimum=1),
            Option("documents", str, "line", "what a document of a .txt file is: each non-empty line, or pieces of "
                                             "the whole file", ("line", "file")))
