import numpy as np
import pandas as pd
import pytest

from probgen import data
from probgen.errors import DataError
from _seeds import seeded


def test_bundled_faithful_loads_with_default_columns():
    dataset = data.load("faithful")
    assert dataset.columns == ["eruptions", "waiting"]
    assert dataset.frame.shape == (272, 2)
    assert dataset.frame.dtypes.tolist() == [np.float64, np.float64]
    assert len(dataset.sha256) == 64


@pytest.mark.parametrize("name", data.bundled_names())
def test_every_bundled_set_loads_offline(name):
    dataset = data.load(name)
    assert len(dataset.frame) > 0
    assert np.isfinite(dataset.frame.to_numpy()).all()


def test_column_selection_as_string_and_list(tmp_path):
    assert data.load("faithful", columns="waiting").columns == ["waiting"]
    assert data.load("iris", columns=["Petal.Length", "Petal.Width"]).frame.shape == (150, 2)


def test_standardisation_is_recorded_and_invertible():
    raw = data.load("faithful")
    standardised = data.load("faithful", standardize=True)
    values = standardised.frame.to_numpy()
    np.testing.assert_allclose(values.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(values.std(axis=0), 1, atol=1e-12)
    np.testing.assert_allclose(standardised.to_original_units(values), raw.frame.to_numpy(), rtol=1e-12)
    assert standardised.sha256 == raw.sha256  # the hash is of the raw values
    assert set(standardised.config()["standardization"]) == {"eruptions", "waiting"}


def test_csv_and_parquet_read_the_same(tmp_path):
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.5], "b": [4, 5, 6]})
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    from_csv = data.load(str(tmp_path / "d.csv"))
    from_parquet = data.load(str(tmp_path / "d.parquet"))
    pd.testing.assert_frame_equal(from_csv.frame, from_parquet.frame)


def write(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "content, columns, message",
    [
        (None, None, "does not exist"),
        ("", None, "is empty"),
        ("a,b\n", None, "has a header but no rows"),
        ("a,b\n1,2\n", "a,c", "column 'c' not in data file"),
        ("a,b\n1,2\n3,x\n", None, "column 'b' in data file '.*' is not numeric: value 'x' at row 2"),
        ("a,b\n1,\n3,4\nNaN,5\n", None, r"2 missing \(NaN\) values \(column 'a' row 3; column 'b' row 1\)"),
        ("a,b\n1,inf\n3,4\n", None, r"1 infinite value \(column 'b' row 1\)"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, content, columns, message):
    path = str(tmp_path / "missing.csv") if content is None else write(tmp_path, content)
    with pytest.raises(DataError, match=message):
        data.load(path, columns=columns)


def test_unknown_dataset_lists_the_bundled_ones():
    with pytest.raises(DataError, match="unknown data set 'faithfull'.*faithful"):
        data.load("faithfull")


def test_nan_rows_are_never_dropped_from_frames():
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0]})
    with pytest.raises(DataError, match="1 missing"):
        data.from_frame(frame)


def test_constant_column_cannot_be_standardised(tmp_path):
    with pytest.raises(DataError, match="column 'a' .* is constant"):
        data.load(write(tmp_path, "a,b\n1,2\n1,3\n"), standardize=True)


def test_split_is_reproducible_disjoint_and_standardised_by_the_training_rows():
    from probgen.data import from_frame

    frame = pd.DataFrame({"a": np.arange(100.0), "b": np.arange(100.0) ** 2})
    whole = from_frame(frame, standardize=True)
    training, held_out = whole.split(0.25, seed=seeded(7))
    again_training, again_held = whole.split(0.25, seed=seeded(7))
    pd.testing.assert_frame_equal(training.frame, again_training.frame)
    assert len(training.frame) == 75 and len(held_out.frame) == 25
    original = lambda part: part.to_original_units(part.frame.to_numpy())  # noqa: E731
    rows = np.concatenate([original(training), original(held_out)])
    np.testing.assert_allclose(np.sort(rows[:, 0]), frame["a"].to_numpy(), atol=1e-9)  # every row once
    # standardised with the training rows' own mean and sd: nothing of the held-out rows leaks in
    np.testing.assert_allclose(training.frame.mean().to_numpy(), 0, atol=1e-12)
    np.testing.assert_allclose(training.frame.std(ddof=0).to_numpy(), 1, atol=1e-12)
    assert training.standardization == held_out.standardization != whole.standardization
    with pytest.raises(DataError, match="held-out fraction"):
        whole.split(1.0, seed=seeded(0))
    with pytest.raises(DataError, match="leaves 0 held-out"):
        from_frame(frame.iloc[:3]).split(0.1, seed=seeded(0))


@pytest.mark.parametrize("kind", sorted(__import__("probgen.data.kinds", fromlist=["KINDS"]).KINDS))
def test_every_data_kind_keeps_the_contract(kind, tmp_path):
    """Every registered data kind (issue 29, point 8), read from the file a user gives, as a
    family of that kind reads it: one data set with its source and hash, split by the one
    splitter into parts that share no row and leave none out (with and without a validation
    part), each part's record saying which it is; `read_rows` gives a table or one line."""
    from models.test_contract import _data_file, _tiny_case
    from probgen.data.kinds import KINDS
    from probgen.errors import ProbgenError
    from probgen.infer.parts import split_parts
    from probgen.spec import builtin_model_names, load_spec

    family = next((name for name in builtin_model_names() if load_spec(name).data_kind == kind), None)
    assert family is not None, f"data kind '{kind}' has no family to read it with: add one (or a case here)"
    spec, frame, _ = _tiny_case(family)
    path, _ = _data_file(spec, frame, tmp_path)
    options = spec.resolve_options({})
    dataset = KINDS[kind].load(path, spec, options, None, False)
    assert dataset.config()["source"] == path and dataset.sha256
    rows = len(dataset.frame)
    plain = split_parts(spec, dataset, options, 0.25, seeded(0))
    assert set(plain) == {"training", "held_out"}
    assert len(plain["training"].frame) + len(plain["held_out"].frame) == rows
    with_validation = split_parts(spec, dataset, options, 0.25, seeded(0), validation=0.2)
    assert set(with_validation) == {"training", "validation", "held_out"}
    assert sum(len(part.frame) for part in with_validation.values()) == rows
    # --holdout keeps the same rows out with or without a validation part
    pd.testing.assert_frame_equal(with_validation["held_out"].frame, plain["held_out"].frame)
    for name, part in with_validation.items():
        record = part.config()["holdout"]
        assert record["part"] == name and record["training_rows"] == len(with_validation["training"].frame)
    try:
        table = KINDS[kind].read_rows(path)
    except ProbgenError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(table, pd.DataFrame) and len(table) > 0
