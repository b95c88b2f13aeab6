"""The kinds of data a family fits (`ModelSpec.data_kind`), as a registry: the one place that
knows how each kind is read. Elsewhere probgen asks the kind (`kind_of(spec)`) instead of testing
its name; a new kind joins with `register_kind` (README "Adding a data kind").

- "table": a numeric table (`probgen.data`): a bundled set or a CSV/TSV/Parquet file, columns
  chosen with --columns, optionally standardised.
- "text": documents (`probgen.data.text`): a bundled corpus or a UTF-8 .txt file.
- "ratings": (user, item, rating) rows with ids of any type (`probgen.data.ratings`), columns
  named by the family's options (--user-column, ...).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from probgen.errors import InferenceError


@dataclasses.dataclass(frozen=True)
class DataKind:
    """How one kind of data is read.

    load(data, spec, options, columns, standardize) -> the data set a fit splits and prepares
    (`Dataset`-like: `.frame`, `.split`); data is a bundled name, a path or a DataFrame.
    read_rows(path) -> the rows `probgen predict` takes as inputs, as a DataFrame.
    takes_columns: --columns and --standardize apply (a table); other kinds name their columns
    through the family's options.
    """

    name: str
    load: Callable[..., Any]
    read_rows: Callable[[Any], Any]
    takes_columns: bool = False


def _load_table(data, spec, options: Mapping[str, Any], columns, standardize):
    import pandas as pd

    from probgen import data as data_module

    if isinstance(data, pd.DataFrame):
        return data_module.from_frame(data if columns is None else data[list(columns)], standardize=standardize)
    return data_module.load(str(data), columns=columns, standardize=standardize)


def _load_text(data, spec, options: Mapping[str, Any], columns, standardize):
    from probgen.data import text as text_data

    if standardize:
        raise InferenceError(f"--standardize applies to numeric tables; model '{spec.name}' models text")
    return text_data.load_text(data, options.get("documents", "line"))


def _load_ratings(data, spec, options: Mapping[str, Any], columns, standardize):
    from probgen.data import ratings as ratings_data

    if standardize or columns:
        raise InferenceError(f"model '{spec.name}' takes ratings: name their columns with --user-column, "
                             "--item-column and --rating-column (not --columns or --standardize)")
    return ratings_data.load_ratings(data, {**spec.default_options(), **options})


def _table_rows(path):
    from probgen import data as data_module

    return data_module.load(path).frame


def _ratings_rows(path):  # (user, item) pairs with ids of any type, not a numeric table
    from probgen.data.ratings import read_raw

    return read_raw(path)


def _text_rows(path):
    raise InferenceError("a text model continues prompts (`probgen sample --prompt`); it does not predict rows")


KINDS: dict[str, DataKind] = {
    "table": DataKind("table", _load_table, _table_rows, takes_columns=True),
    "text": DataKind("text", _load_text, _text_rows),
    "ratings": DataKind("ratings", _load_ratings, _ratings_rows),
}


def register_kind(kind: DataKind) -> DataKind:
    """Add `kind` to the registry under its name (a later registration replaces an earlier one
    of the same name); a `ModelSpec` may then name it as its `data_kind`."""
    if not kind.name:
        raise ValueError("a data kind needs a name")
    KINDS[kind.name] = kind
    return kind


def kind_of(spec) -> DataKind:
    """The data kind of `spec` (a `ModelSpec`); `ModelSpec` checks the name when it is built."""
    return KINDS[spec.data_kind]
