"""The CLI as a user runs it: a subprocess, real files, exit codes and messages."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_cli
from _seeds import seeded

QUICK = ["--chains", "2", "--warmup", "150", "--draws", "150", "--quiet"]


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    rng = np.random.default_rng(seeded(0))
    x = np.concatenate([rng.normal([0, 0], 0.5, size=(60, 2)), rng.normal([3, 2], 0.5, size=(60, 2))])
    path = tmp_path_factory.mktemp("data") / "points.csv"
    pd.DataFrame(x, columns=["u", "v"]).assign(label="x").to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def fitted_run(csv_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    result = run_cli("fit", "gmm", "--data", csv_file, "--columns", "u,v", "--out", out, *QUICK)
    assert result.returncode == 0, result.stderr
    return out, result


def test_fit_writes_a_run_folder_and_says_the_verdict(fitted_run):
    out, result = fitted_run
    assert (out / "report.html").is_file() and (out / "posterior.nc").is_file()
    verdict = json.loads((out / "diagnostics.json").read_text())["overall"]
    assert result.stdout.startswith(verdict.upper())
    assert "run folder:" in result.stdout


def test_sample_draws_new_rows_in_the_data_columns(fitted_run, tmp_path):
    out, _ = fitted_run
    target = tmp_path / "new.csv"
    result = run_cli("sample", out, "-n", "500", "--out", target, "--seed", "3")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(target)
    assert list(table.columns) == ["u", "v"] and len(table) == 500
    # Half the data sit at (0, 0) and half at (3, 2): the predictive mean is near (1.5, 1).
    assert np.allclose(table.mean().to_numpy(), [1.5, 1.0], atol=0.3)
    again = run_cli("sample", out, "-n", "500", "--out", target, "--seed", "3")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_report_rebuilds_from_the_folder(fitted_run):
    out, _ = fitted_run
    (out / "report.html").unlink()
    result = run_cli("report", out)
    assert result.returncode == 0, result.stderr
    assert (out / "report.html").is_file()


def test_a_users_model_file_fits_like_a_builtin(tmp_path):
    """The model of the README's tour, in the user's own file."""
    import re

    readme = (REPO / "README.md").read_text()
    source = re.search(r"```python\n(# my_model.py\n.*?)```", readme, re.S).group(1)
    (tmp_path / "my_model.py").write_text(source)
    out = tmp_path / "run"
    result = run_cli("fit", tmp_path / "my_model.py", "--data", "faithful", "--out", out, *QUICK)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    # The posterior mean of mu is the column mean to well within a posterior sd (sd/sqrt(272)).
    assert abs(summary.loc["mu[0]", "mean"] - 3.4878) < 0.05 and abs(summary.loc["mu[1]", "mean"] - 70.897) < 1.0


def test_models_datasets_and_help():
    models = run_cli("models")
    assert models.returncode == 0 and "gmm:" in models.stdout and "--num-components" in models.stdout
    datasets = run_cli("datasets")
    assert datasets.returncode == 0 and "faithful:" in datasets.stdout
    help_text = run_cli("fit", "gmm", "--help")
    assert help_text.returncode == 0 and "--num-components" in help_text.stdout and "--method" in help_text.stdout


def bad_inputs(tmp_path, csv_file):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with_nan = tmp_path / "nan.csv"
    with_nan.write_text("u,v\n1,2\nnan,3\n4,inf\n5,6\n")
    no_spec = tmp_path / "no_spec.py"
    no_spec.write_text("value = 1\n")
    existing = tmp_path / "existing"
    existing.mkdir()
    return {
        "missing file": (["--data", tmp_path / "nope.csv"], "does not exist"),
        "empty file": (["--data", empty], "is empty"),
        "missing column": (["--data", csv_file, "--columns", "u,w"], "column 'w' not in"),
        "non-numeric column": (["--data", csv_file], "column 'label' in .* is not numeric"),
        "nan and inf": (["--data", with_nan], r"1 missing \(NaN\) value .*row 2.* and 1 infinite value"),
        "K < 1": (["--data", csv_file, "--columns", "u,v", "--num-components", "0"], "--num-components must be an integer >= 1"),
        "K > N": (["--data", csv_file, "--columns", "u,v", "--num-components", "500"], "more than the number of data points"),
        "unknown data set": (["--data", "faithfull"], "unknown data set 'faithfull'"),
        "existing output": (["--data", "faithful", "--out", existing], "already exists"),
        "setting of another method": (["--data", "faithful", "--steps", "10"], "--steps does not apply to --method nuts"),
        "holdout out of range": (["--data", "faithful", "--holdout", "1.5"], r"held-out fraction must be in \(0, 1\), got 1.5"),
    }, no_spec


@pytest.mark.parametrize("case", ["missing file", "empty file", "missing column", "non-numeric column", "nan and inf",
                                  "K < 1", "K > N", "unknown data set", "existing output", "setting of another method",
                                  "holdout out of range"])
def test_bad_input_is_one_line_exit_2_and_no_folder(case, tmp_path, csv_file):
    cases, _ = bad_inputs(tmp_path, csv_file)
    arguments, message = cases[case]
    out = tmp_path / "out"
    if "--out" not in arguments:
        arguments = [*arguments, "--out", out]
    result = run_cli("fit", "gmm", *arguments, "--quiet")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probgen: error:"), result.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("model, message", [("gmmm", "unknown model 'gmmm'"),
                                            ("no_spec.py", "defines neither SPEC .* nor a function named 'model'")])
def test_bad_model_is_exit_2(model, message, tmp_path, csv_file):
    _, no_spec = bad_inputs(tmp_path, csv_file)
    reference = str(no_spec) if model.endswith(".py") else model
    result = run_cli("fit", reference, "--data", "faithful", "--out", tmp_path / "out")
    assert result.returncode == 2
    import re

    assert re.search(message, result.stderr) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_ctrl_c_leaves_no_run_folder(tmp_path):
    import threading

    out = tmp_path / "run"
    arguments = ["fit", "gmm", "--data", "faithful", "--out", str(out), "--draws", "10000000", "--chains", "1"]
    # A shell's background job inherits SIGINT ignored (and Python then keeps it ignored); a
    # user's Ctrl-C reaches a foreground process, so the child restores Python's handler first.
    launcher = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                f"sys.argv = ['probgen'] + {arguments!r}; runpy.run_module('probgen.cli', run_name='__main__')")
    process = subprocess.Popen(
        [sys.executable, "-c", launcher],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _interrupt_and_check(process, tmp_path)
    finally:
        if process.poll() is None:  # never leave a 10-million-draw run behind
            process.kill()
            process.wait()


def _interrupt_and_check(process, tmp_path):
    import threading

    seen = []  # stderr as it comes (no progress bar: under CI, and with no terminal, it is off)

    def read():
        while chunk := process.stderr.read(1):
            seen.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # 10 million draws cannot finish first; 25 s is past start-up and into compilation or
    # sampling even on a slow machine, and the run folder is only ever written at the end
    time.sleep(25)
    assert process.poll() is None, "".join(seen)[-2000:]
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    reader.join(timeout=10)
    stderr = "".join(seen)
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted; no run folder was written" in stderr
    assert list(tmp_path.iterdir()) == []


def test_compare_ranks_runs_and_writes_a_report(fitted_run, csv_file, tmp_path):
    out, _ = fitted_run
    one = tmp_path / "one"
    single = run_cli("fit", "gmm", "--data", csv_file, "--columns", "u,v", "--num-components", "1", "--out", one, *QUICK)
    assert single.returncode == 0, single.stderr
    result = run_cli("compare", one, out, "--out", tmp_path / "cmp")
    assert result.returncode == 0, result.stderr
    # Two well-separated clusters: the two-component run must win by far more than 2 SE.
    assert f"LOO prefers {out.name}" in result.stdout
    assert "elpd_diff" in result.stdout and "convergence" in result.stdout
    for name in ("comparison.html", "comparison.md", "comparison.csv", "comparison.json"):
        assert (tmp_path / "cmp" / name).is_file()
    refused = run_cli("compare", out)
    assert refused.returncode == 2 and "at least two run folders" in refused.stderr


def test_pareto_k_warnings_name_the_points():
    import pandas as pd

    from probgen.comparison import Comparison, pareto_lines

    comparison = Comparison(pd.DataFrame(), "", {"a": [{"point": 17, "k": 0.93}], "b": []}, {})
    assert pareto_lines(comparison) == ["a: Pareto k > 0.7 at points 17 (k=0.93): LOO is unreliable there"]


def test_sbc_writes_a_folder_and_exits_1_when_miscalibrated(tmp_path):
    # The conjugate normal-mean model of tests/test_sbc.py, fitted correctly (exit 0) and with
    # the wrong likelihood sd (exit 1); 150 simulations detect sd 3 against the true 1 (the
    # API test measures adjusted p = 3e-6 at 200 simulations).
    design = tmp_path / "design.csv"
    pd.DataFrame({"x": np.zeros(20)}).to_csv(design, index=False)
    model = REPO / "tests" / "test_sbc.py"
    common = ["--data", design, "--simulations", "150", "--num-draws", "49", "--chains", "1", "--warmup", "200",
              "--draws", "400", "--quiet"]
    good = run_cli("sbc", model, *common, "--out", tmp_path / "good")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("CALIBRATED")
    for name in ("report.html", "report.md", "ranks.csv", "uniformity.csv", "sbc.json", "config.json",
                 "plots/rank_histograms.png", "plots/ecdf_difference.png"):
        assert (tmp_path / "good" / name).is_file(), name
    ranks = pd.read_csv(tmp_path / "good" / "ranks.csv")
    assert len(ranks) == 150 and ranks["mu"].between(0, 49).all()
    config = json.loads((tmp_path / "good" / "config.json").read_text())
    assert config["seed"] == 0 and {"jax", "numpyro", "arviz"} <= set(config["versions"])

    bad = run_cli("sbc", model, *common, "--noise-sd", "3", "--simulate-option", "noise_sd=1", "--out", tmp_path / "bad")
    assert bad.returncode == 1 and bad.stdout.startswith("MISCALIBRATED"), bad.stdout + bad.stderr


@pytest.mark.parametrize("flags, message", [(["--simulations", "0"], "--simulations"),
                                            (["--simulate-option", "noise=1"], "noise_sd"),
                                            (["--method", "map"], "invalid choice")])
def test_sbc_bad_input_exits_2(flags, message, tmp_path, capsys):
    # in process, through the command's own `main` (argparse's usage errors exit 2 by SystemExit)
    from probgen import cli

    design = tmp_path / "design.csv"
    pd.DataFrame({"x": np.zeros(20)}).to_csv(design, index=False)
    arguments = ["sbc", str(REPO / "tests" / "test_sbc.py"), "--data", str(design), "--quiet", *flags,
                 "--out", str(tmp_path / "none")]
    try:
        status = cli.main(arguments)
    except SystemExit as exit:
        status = exit.code
    assert status == 2 and message in capsys.readouterr().err and not (tmp_path / "none").exists()


def hmm_bad_inputs(tmp_path):
    files = {
        "counts.csv": pd.DataFrame({"n": [3, 0, -1, 4]}),
        "fractions.csv": pd.DataFrame({"n": [3, 0.5, 2, 4]}),
        "codes.csv": pd.DataFrame({"c": [0, 1, 2, 5, 1]}),
        "short.csv": pd.DataFrame({"v": [0.1, 0.4, 0.3, 0.9], "id": [1, 1, 1, 2]}),
        "header.csv": pd.DataFrame({"v": []}),
        "backwards.csv": pd.DataFrame({"year": [1990, 1991, 1991, 1992], "v": [0.1, 0.4, 0.3, 0.9]}),
    }
    for name, frame in files.items():
        frame.to_csv(tmp_path / name, index=False)
    return {
        "K < 1": (["--data", "nile", "--num-states", "0"], "--num-states must be an integer >= 1, got 0"),
        "negative count": (["--data", tmp_path / "counts.csv", "--emission", "poisson"],
                           r"non-negative integer counts; column 'n' has -1\.0 .*rows 3"),
        "non-integer count": (["--data", tmp_path / "fractions.csv", "--emission", "poisson"],
                              r"non-negative integer counts; column 'n' has 0\.5"),
        "unknown category": (["--data", tmp_path / "codes.csv", "--emission", "categorical", "--num-categories", "3"],
                             r"unknown category label\(s\) \[5\] in column 'c' \(rows 4\)"),
        "length-1 sequence": (["--data", tmp_path / "short.csv", "--sequence-column", "id"],
                              r"sequence 2 \(1 row\) too short"),
        "empty data": (["--data", tmp_path / "header.csv"], "has a header but no rows"),
        "sequence column missing": (["--data", "nile", "--sequence-column", "river"],
                                    "--sequence-column 'river' is not among the data's columns"),
        "time not increasing": (["--data", tmp_path / "backwards.csv", "--time-column", "year"],
                                r"--time-column 'year' must increase within each sequence: row 3 \(1991\) does not "
                                r"come after row 2 \(1991\)"),
        "time column missing": (["--data", "nile", "--time-column", "year"],
                                "--time-column 'year' is not among the data's columns"),
    }


@pytest.mark.parametrize("case", ["K < 1", "negative count", "non-integer count", "unknown category",
                                  "length-1 sequence", "empty data", "sequence column missing",
                                  "time not increasing", "time column missing"])
def test_hmm_bad_input_is_named_with_exit_2(case, tmp_path, capsys):
    # In process (the same `main` the command runs; a subprocess per case would cost CI ~5 s
    # each); the test below checks the exit status of the real command once.
    import re

    from probgen import cli

    arguments, message = hmm_bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    status = cli.main(["fit", "hmm", *map(str, arguments), "--out", str(out), "--quiet"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and error[0].startswith("probgen: error:"), error
    assert re.search(message, error[0]), error[0]
    assert not out.exists()


def test_hmm_bad_input_exits_2_from_the_command(tmp_path):
    result = run_cli("fit", "hmm", "--data", "nile", "--num-states", "0", "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 2 and "--num-states must be an integer >= 1" in result.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# The VAE: `probgen fit vae`, its report, checkpoints, --resume, bad input
# --------------------------------------------------------------------------------------------
VAE_DIGITS = ["--data", "digits", "--label-column", "target", "--transform", "dequantize", "--pixel-levels", "17",
              "--likelihood", "beta", "--latent-dim", "2", "--hidden", "16", "--iwae-samples", "50"]


def test_vae_training_resumes_after_ctrl_c_and_writes_its_report(tmp_path, capsys):
    """Ctrl-C mid-training leaves the folder with its last checkpoint and how to resume; the
    resumed run starts at that step and writes the full report, which `probgen report`
    rebuilds to the same figures. (One test for both: each VAE run costs CI ~15 s.)"""
    import pickle

    from probgen import cli

    out = tmp_path / "vae"
    arguments = ["fit", "vae", *VAE_DIGITS, "--anomaly-label", "0", "--holdout", "0.3", "--steps", "1000000",
                 "--patience", "100000", "--eval-every", "20", "--checkpoint-every", "20", "--out", str(out), "--quiet"]
    launcher = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                f"sys.argv = ['probgen'] + {arguments!r}; runpy.run_module('probgen.cli', run_name='__main__')")
    process = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.pkl").is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.5)
        time.sleep(1.0)
        assert process.poll() is None and (out / "checkpoint.pkl").is_file(), process.stderr.read()[-2000:]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and f"--resume {out}" in stderr, stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["TRAINING.md", "checkpoint.pkl", "config.json"]
    step = pickle.loads((out / "checkpoint.pkl").read_bytes())["step"]
    assert step >= 20 and step % 20 == 0
    assert cli.main(["report", str(out)]) == 2 and "unfinished training run" in capsys.readouterr().err

    # everything but --data and --steps comes from the folder
    assert cli.main(["fit", "vae", "--data", "digits", "--resume", str(out), "--steps", str(step + 200), "--quiet"]) == 0
    assert f"resumed from the checkpoint at step {step}" in capsys.readouterr().out
    for name in ("config.json", "posterior.nc", "summary.csv", "metrics.json", "report.html", "report.md",
                 "checkpoint.pkl", "plots/reconstructions.png", "plots/prior_samples.png", "plots/interpolations.png",
                 "plots/latent_map.png", "plots/elbo.png", "plots/kl_per_dimension.png"):
        assert (out / name).is_file(), name
    assert not (out / "TRAINING.md").exists()
    metrics = json.loads((out / "metrics.json").read_text())["vae"]
    assert metrics["training"]["resumed_from"] == step and metrics["training"]["steps_run"] == step + 200
    held_out_elbo = metrics["likelihood"]["elbo"]["ELBO, held-out rows"]["nats_per_example"]
    # IWAE (K = 50) bounds log p(x) more tightly than the ELBO; the mean gap over ~250 rows is
    # positive by construction (Jensen) and far above its Monte Carlo error
    assert metrics["likelihood"]["iwae"]["nats_per_example"] > held_out_elbo
    assert metrics["latent"]["latent_dim"] == 2 and len(metrics["latent"]["kl_per_dimension_nats"]) == 2
    latent = metrics["latent"]
    assert 0 <= latent["mutual_information_nats"] <= latent["mutual_information_upper_limit_log_n"] + 0.1
    assert metrics["anomaly"]["anomalies"] == 178 and 0 <= metrics["anomaly"]["auroc"] <= 1  # digits has 178 zeros
    assert {t["test"] for t in metrics["generated_vs_held_out"]} == {"MMD", "KS", "Welch t"}
    text = (out / "report.md").read_text()
    for heading in ("Generative performance", "Latent space", "Anomaly detection", "Generated against held-out data"):
        assert f"## {heading}" in text
    (out / "report.html").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["vae"] == metrics  # same seed, same figures
    assert (out / "report.html").is_file() and (out / "checkpoint.pkl").is_file()
    # new images from the decoder, back in the data's units: integer pixel levels 0..16
    assert cli.main(["sample", str(out), "-n", "50", "--out", str(tmp_path / "new.csv")]) == 0
    new = pd.read_csv(tmp_path / "new.csv")
    assert new.shape == (50, 64) and new.columns[0] == "pixel_0_0" and "target" not in new.columns
    assert new.to_numpy().min() >= 0 and new.to_numpy().max() <= 16 and np.all(new.to_numpy() == np.round(new.to_numpy()))
    # a changed option is refused, naming it
    assert cli.main(["fit", "vae", "--data", "digits", "--resume", str(out), "--latent-dim", "3", "--quiet"]) == 2
    assert "option latent_dim 2 there, 3 now" in capsys.readouterr().err


def vae_bad_inputs(tmp_path) -> dict:
    pd.DataFrame({"a": [], "b": []}).to_csv(tmp_path / "empty.csv", index=False)
    pd.DataFrame({"a": [0.2, 0.5, 1.5, 0.1], "b": [0.3, 0.3, 0.2, 0.9]}).to_csv(tmp_path / "outside.csv", index=False)
    pd.DataFrame({"a": [0, 1, 3, 1], "b": [1, 0, 1, 2]}).to_csv(tmp_path / "levels.csv", index=False)
    return {
        "wrong image shape": (["--data", "digits", "--label-column", "target", "--transform", "scale", "--pixel-levels",
                               "17", "--image-shape", "8x7"], r"--image-shape 8x7 needs 56 values per row, but the data "
                                                              r"have 64 value columns \(pixel_0_0 \.\. pixel_7_7\)"),
        "outside the support": (["--data", tmp_path / "outside.csv", "--likelihood", "continuous_bernoulli"],
                                r"needs values in \[0, 1\] .* 1\.5 in column 'a', row 3"),
        "outside (0, 1) for beta": (["--data", "digits", "--label-column", "target", "--likelihood", "beta"],
                                    r"--likelihood beta needs values strictly inside \(0, 1\)"),
        "not 0/1 for bernoulli": (["--data", tmp_path / "outside.csv", "--likelihood", "bernoulli"],
                                  r"--likelihood bernoulli needs values 0 or 1 \(binarise the images first\); the "
                                  r"data have 0\.2 in column 'a', row 1"),
        "levels beyond --pixel-levels": (["--data", tmp_path / "levels.csv", "--transform", "dequantize",
                                          "--pixel-levels", "3"], r"integers 0\.\.2; column 'a' row 3 is 3 "),
        "empty data": (["--data", tmp_path / "empty.csv"], "has a header but no rows"),
        "label column missing": (["--data", "digits", "--label-column", "digit"], "--label-column 'digit' is not a column"),
        "anomaly label absent": (["--data", "digits", "--label-column", "target", "--anomaly-label", "11", "--transform",
                                  "scale", "--pixel-levels", "17"], r"--anomaly-label 11: 0 of 1797 rows"),
        "nuts for a vae": (["--data", "digits", "--method", "nuts"], "fitted by amortised minibatch SVI only"),
        "resume from nothing": (["--data", "digits", "--resume", tmp_path / "nowhere"], "does not exist"),
    }


@pytest.mark.parametrize("case", ["wrong image shape", "outside the support", "outside (0, 1) for beta",
                                  "not 0/1 for bernoulli", "levels beyond --pixel-levels", "empty data",
                                  "label column missing", "anomaly label absent", "nuts for a vae",
                                  "resume from nothing"])
def test_vae_bad_input_is_named_with_exit_2_and_no_folder(case, tmp_path, capsys):
    import re

    from probgen import cli

    arguments, message = vae_bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    extra = [] if "--resume" in arguments else ["--out", str(out)]
    status = cli.main(["fit", "vae", *map(str, arguments), *extra, "--quiet"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and error[0].startswith("probgen: error:"), error
    assert re.search(message, error[0]), error[0]
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# The BNN: `probgen fit bnn`, its report, `probgen predict`, bad input
# --------------------------------------------------------------------------------------------
def test_bnn_fit_reports_held_out_performance_and_predicts(tmp_path, capsys):
    from probgen import cli

    out = tmp_path / "bnn"
    status = cli.main(["fit", "bnn", "--data", "diabetes", "--hidden", "5", "--holdout", "0.2", "--chains", "2",
                       "--warmup", "200", "--draws", "200", "--out", str(out), "--quiet"])
    assert status == 0, capsys.readouterr().err
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())["bnn_held_out"]
    # diabetes: the target's sd is 77; a useful model's RMSE is far below it (linear models reach ~55)
    assert metrics["rows"] == 88 and 40 < metrics["rmse"] < 70
    assert 0 <= metrics["coverage_50"] <= metrics["coverage_90"] <= 1
    text = (out / "report.md").read_text()
    assert "## How convergence is judged" in text and "## Held-out predictive performance" in text
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert not any("w0" in check["reason"] or "w1" in check["reason"] for check in diagnostics["checks"])
    assert (out / "plots" / "held_out_predictions.png").is_file()

    from sklearn.datasets import load_diabetes

    new = load_diabetes(as_frame=True).frame.drop(columns="target").head(5)
    new.to_csv(tmp_path / "new.csv", index=False)
    assert cli.main(["predict", str(out), "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns) == ["mean", "sd", "q05", "q25", "median", "q75", "q95"] and len(predictions) == 5
    assert np.all(predictions["q05"] < predictions["median"]) and np.all(predictions["median"] < predictions["q95"])
    new.drop(columns="bmi").to_csv(tmp_path / "short.csv", index=False)
    capsys.readouterr()
    assert cli.main(["predict", str(out), "--data", str(tmp_path / "short.csv"), "--out", str(tmp_path / "q.csv")]) == 2
    assert "fitted on 10 features" in capsys.readouterr().err and not (tmp_path / "q.csv").exists()


@pytest.mark.parametrize("case", ["labels not 0/1", "NaN feature", "missing target"])
def test_bnn_bad_input_is_named_with_exit_2(case, tmp_path, capsys):
    from probgen import cli

    pd.DataFrame({"a": [0.1, np.nan, 0.3, 0.5], "y": [0, 1, 1, 0]}).to_csv(tmp_path / "nan.csv", index=False)
    arguments, message = {
        "labels not 0/1": (["--data", "diabetes", "--likelihood", "bernoulli"],
                           "needs labels 0 or 1; column 'target' has 151 at row 1"),
        "NaN feature": (["--data", str(tmp_path / "nan.csv")], "1 missing (NaN) value (column 'a' row 2)"),
        "missing target": (["--data", "diabetes", "--target", "progression"], "--target 'progression' is not a column"),
    }[case]
    out = tmp_path / "out"
    status = cli.main(["fit", "bnn", *arguments, "--out", str(out), "--quiet"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and message in error[0], error
    assert not out.exists()
