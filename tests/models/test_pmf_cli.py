"""pmf through the command line and the trainer: a ratings CSV with text ids, `probgen predict`
for known and unknown pairs and for top-N, bad input (exit 2, one line, no folder), the time
split, an exact resume of streamed training, and data-parallel training on 4 forced devices."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from probgen.models.pmf.model import simulate_ratings
from _seeds import seeded


def _cli(*arguments, cwd=None):
    """`probgen ARGUMENTS` through the command's main, in this process (`cli_in_process`)."""
    from conftest import cli_in_process

    return cli_in_process(*arguments, cwd=cwd)


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory):
    frame, _ = simulate_ratings(60, 40, 2500, latent_dim=2, seed=seeded(0), popularity=0.5)
    frame = frame.rename(columns={"userId": "who", "movieId": "film", "rating": "stars", "timestamp": "when"})
    frame["who"] = "u" + frame["who"].astype(str)
    frame["film"] = "f" + frame["film"].astype(str)
    path = tmp_path_factory.mktemp("ratings") / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


COLUMNS = ("--user-column", "who", "--item-column", "film", "--rating-column", "stars", "--time-column", "when")


def test_fit_report_and_predict_with_text_ids(ratings_csv, tmp_path):
    run = tmp_path / "run"
    done = _cli("fit", "pmf", "--data", ratings_csv, *COLUMNS, "--latent-dim", "2", "--steps", "500", "--eval-every",
                "100", "--batch-size", "128", "--learning-rate", "0.02", "--holdout", "0.2", "--out", run, "--quiet")
    assert done.returncode == 0, done.stderr
    report = (run / "report.md").read_text()
    assert "## Held-out accuracy and calibration" in report and "## Ranking (held-out)" in report
    from probgen.report.consistency import check_run_folder

    assert check_run_folder(run) == [], check_run_folder(run)  # the report says what its files hold (issue 30)
    metrics = json.loads((run / "metrics.json").read_text())
    held = metrics["recommendation_held_out"]
    assert held["rows"] > 0 and 0 < held["rmse"] < 2 and 0 <= held["coverage_90"] <= 1

    pairs = pd.DataFrame({"who": ["u1", "u1", "nobody", "nobody"], "film": ["f0", "unseen", "f0", "unseen"]})
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    done = _cli("predict", run, "--data", tmp_path / "pairs.csv", "--out", tmp_path / "predicted.csv")
    assert done.returncode == 0, done.stderr
    assert "3 of 4 pairs have a user or item the fit never saw" in done.stderr
    predicted = pd.read_csv(tmp_path / "predicted.csv")
    assert predicted["basis"].tolist() == ["user and item", "population: new item", "population: new user",
                                           "population: new user and item"]
    assert (predicted["q05"] < predicted["mean"]).all() and (predicted["mean"] < predicted["q95"]).all()
    # a new user and item: the widest interval (every source of spread is the population's)
    width = predicted["q95"] - predicted["q05"]
    assert width.iloc[3] == width.max() and width.iloc[0] == width.min()
    assert predicted["p_above_user_mean"].between(0, 1).all()

    pd.DataFrame({"who": ["u1", "u2"]}).to_csv(tmp_path / "users.csv", index=False)
    done = _cli("predict", run, "--data", tmp_path / "users.csv", "--out", tmp_path / "top.csv")
    assert done.returncode == 0, done.stderr
    top = pd.read_csv(tmp_path / "top.csv")
    assert len(top) == 20 and top.groupby("who")["mean"].apply(lambda m: m.is_monotonic_decreasing).all()
    from probgen.report import load_run

    data = load_run(run)[0].pmf_data
    code = list(data["user_id"].values).index("u1")
    rated = data["item_id"].values[data["item"].values[data["user"].values == code]]
    assert len(rated) and not set(top.query("who == 'u1'")["film"]) & set(rated)  # never what u1 rated in training


@pytest.mark.parametrize("change, message", [
    ({"drop": "stars"}, "rating column 'stars' is not in data file"),
    ({"stars": "bad"}, "rating column 'stars' in data file .* is not a finite number at row 2: 'bad'"),
    ({"duplicate": True}, r"rates the same \(user, item\) pair more than once"),
    ({"option": ["--noncentred-below", "5"]}, "--noncentred-below is for NUTS and HMC: the mean-field guide"),
    ({"option": ["--min-item-ratings", "500"]}, r"--min-item-ratings 500 leaves 0 rating\(s\) of data file .*bad.csv"),
    ({"option": ["--title-column", "name"]}, r"title column 'name' is not in data file"),
    ({"option": ["--validation", "1.5"]}, r"--validation must be in \(0, 1\), got 1.5"),
    ({"option": ["--holdout", "0.6", "--validation", "0.5"]}, r"--holdout 0.6 and --validation 0.5 keep all the rows out"),
])
def test_bad_ratings_exit_2_with_one_line(ratings_csv, tmp_path, change, message):
    import re

    frame = pd.read_csv(ratings_csv).iloc[:50]
    if "drop" in change:
        frame = frame.drop(columns=change["drop"])
    if "stars" in change:
        frame["stars"] = frame["stars"].astype(object)
        frame.loc[1, "stars"] = change["stars"]
    if "duplicate" in change:
        frame = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    done = _cli("fit", "pmf", "--data", path, *COLUMNS, *change.get("option", ()), "--out", tmp_path / "run",
                "--quiet")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), done.stderr
    assert not (tmp_path / "run").exists()


def test_time_split_holds_out_each_users_latest_ratings(ratings_csv):
    from probgen.infer.parts import split_parts
    from probgen.models.pmf import SPEC
    from probgen.data.ratings import load_ratings

    options = SPEC.resolve_options({"user_column": "who", "item_column": "film", "rating_column": "stars",
                                    "time_column": "when", "split": "time"})
    dataset = load_ratings(str(ratings_csv), options)
    parts = split_parts(SPEC, dataset, options, 0.1, seeded(1), validation=0.1)
    training = parts["training"].frame
    kept = pd.concat([parts["validation"].frame, parts["held_out"].frame])
    latest_training = training.groupby("user")["time"].max()
    assert (kept["time"].to_numpy() > latest_training[kept["user"]].to_numpy()).all()
    assert set(kept["user"]) <= set(training["user"])  # every held-out user keeps training ratings
    # the validation ratings come just before the held-out ones
    latest_validation = parts["validation"].frame.groupby("user")["time"].max()
    held = parts["held_out"].frame
    held = held[held["user"].isin(latest_validation.index)]
    assert (held["time"].to_numpy() >= latest_validation[held["user"]].to_numpy()).all()


def _train(frame, devices, steps, checkpoint_dir=None, resume=None, stop_after=None):
    from probgen.infer.amortized import Stream, train
    from probgen.models.pmf import SPEC
    from probgen.models.pmf.parts import validation_score
    from probgen.data.ratings import load_ratings

    options = SPEC.resolve_options({"latent_dim": 2})
    inputs = SPEC.prepare(load_ratings(frame, options).frame, options)
    fixed = {k: v for k, v in inputs.kwargs.items() if k not in ("user", "item")}
    rows = {"user": inputs.kwargs["user"], "item": inputs.kwargs["item"], "rating": inputs.observed["rating"]}
    stream = Stream(rows, batch_size=64, seed=seeded(2), devices=devices)
    return train(SPEC.model, SPEC.guide, lambda n, b=None, w=1.0: {**fixed, "num_points": n}, stream,
                 {name: value[:200] for name, value in rows.items()},
                 {"steps": steps, "eval_every": 50, "learning_rate": 0.02, "patience": 100, "checkpoint_every": 50},
                 jax.random.PRNGKey(seeded(3)), lambda p, r, k: validation_score(p, r, {}, k), progress=False,
                 checkpoint_dir=checkpoint_dir, resume=resume, stop_after=stop_after)


def test_streamed_training_resumes_exactly(tmp_path):
    from probgen.infer.amortized import load_checkpoint

    frame, _ = simulate_ratings(50, 30, 1500, latent_dim=2, seed=seeded(4))
    straight = _train(frame, 1, 200)
    _train(frame, 1, 200, checkpoint_dir=tmp_path, stop_after=100)
    resumed = _train(frame, 1, 200, resume=load_checkpoint(tmp_path))
    assert resumed.resumed_from == 100
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


def test_data_parallel_training_on_four_forced_devices(tmp_path):
    """The same streamed training on 1 and on 4 (forced host) devices: the batch is split across
    the devices and the gradients summed, so the parameters agree up to float32 summation
    order (rtol 1e-3 after 100 Adam steps). The test process has 4 host devices (conftest.py
    exposes them before JAX starts, as the command does)."""
    assert jax.device_count() == 4, jax.devices()
    frame, _ = simulate_ratings(50, 30, 1500, latent_dim=2, seed=seeded(5))
    one, four = _train(frame, 1, 100), _train(frame, 4, 100)
    for name in one.params:
        np.testing.assert_allclose(four.params[name], one.params[name], rtol=1e-3, atol=1e-4, err_msg=name)


def test_more_devices_than_there_are_is_one_clear_error():
    from probgen.errors import InferenceError

    frame, _ = simulate_ratings(20, 10, 200, latent_dim=1, seed=seeded(6))
    with pytest.raises(InferenceError, match=r"--devices 64: this process sees \d+ device"):
        _train(frame, 64, 50)
