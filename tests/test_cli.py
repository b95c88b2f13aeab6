"""The CLI as a user runs it: real files, exit codes and messages. The failed verdict's exit
status runs as a subprocess (`run_cli`: the status the shell sees) and so does Ctrl-C; the other
commands go through the same `main` in this process (`cli_in_process`), which spares each the
4 s of starting Python and JAX again."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, cli_in_process, run_cli, tour_model
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
    result = cli_in_process("fit", "gmm", "--data", csv_file, "--columns", "u,v", "--out", out, *QUICK)
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
    result = cli_in_process("sample", out, "-n", "500", "--out", target, "--seed", "3")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(target)
    assert list(table.columns) == ["u", "v"] and len(table) == 500
    # Half the data sit at (0, 0) and half at (3, 2): the predictive mean is near (1.5, 1).
    assert np.allclose(table.mean().to_numpy(), [1.5, 1.0], atol=0.3)
    again = cli_in_process("sample", out, "-n", "500", "--out", target, "--seed", "3")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_report_rebuilds_from_the_folder(fitted_run):
    out, _ = fitted_run
    (out / "report.html").unlink()
    result = cli_in_process("report", out)
    assert result.returncode == 0, result.stderr
    assert (out / "report.html").is_file()


def test_a_users_model_file_fits_like_a_builtin(tmp_path):
    """The model of the README's tour, in the user's own file."""
    out = tmp_path / "run"
    result = cli_in_process("fit", tour_model(tmp_path), "--data", "faithful", "--out", out, *QUICK)
    assert result.returncode == 0, result.stderr
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    # The posterior mean of mu is the column mean to well within a posterior sd (sd/sqrt(272)).
    assert abs(summary.loc["mu[0]", "mean"] - 3.4878) < 0.05 and abs(summary.loc["mu[1]", "mean"] - 70.897) < 1.0


def test_a_failed_verdict_exits_3_with_everything_written(tmp_path):
    """Exit 3: the fit finished and wrote its folder, but do not use it. 2 chains x 10 draws fail
    the ESS check whatever the draws: ArviZ caps an ESS at N log10(N) = 26 for N = 20, under the
    fail line of 25 per chain (50). The tour's small model: the status is what matters, and a
    mixture's compilation took most of this test's 31 s."""
    from probgen.report.runfolder import RUN_FILES

    out = tmp_path / "short"
    done = run_cli("fit", tour_model(tmp_path), "--data", "faithful", "--out", out, "--chains", "2", "--warmup",
                   "20", "--draws", "10", "--quiet")
    assert done.returncode == 3 and done.stdout.startswith("FAILED:"), done.stdout + done.stderr
    assert all((out / name).is_file() for name in RUN_FILES)
    assert json.loads((out / "diagnostics.json").read_text())["overall"] == "failed"
    again = cli_in_process("report", out)
    assert again.returncode == 3 and again.stdout.startswith("FAILED:"), again.stderr


def test_compare_exits_3_when_every_run_failed(fitted_run, tmp_path, monkeypatch, capsys):
    """In process: every run judged FAILED leaves no model to prefer (exit 3); one that is not
    is preferred (exit 0)."""
    import shutil

    from probgen import cli
    from probgen.checks import comparison

    out, _ = fitted_run
    shutil.copytree(out, tmp_path / "copy")
    verdict = type("Assessment", (), {"overall": "failed"})
    monkeypatch.setattr(comparison, "assess_run", lambda idata, config: verdict)
    assert cli.main(["compare", str(out), str(tmp_path / "copy")]) == 3
    assert "no model can be preferred" in capsys.readouterr().out
    monkeypatch.undo()
    assert cli.main(["compare", str(out), str(tmp_path / "copy")]) == 0


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
    result = cli_in_process("fit", "gmm", *arguments, "--quiet")
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("probgen: error:"), result.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("arguments, message", [
    (["ngram", "--data", "trump_tweets", "--standardize"], "--standardize applies to numeric tables; model 'ngram' models text"),
    (["pmf", "--data", "movielens", "--columns", "user,item"], "model 'pmf' takes ratings: name their columns with --user-column"),
])
def test_a_flag_the_data_kind_does_not_take_is_one_line_exit_2(arguments, message, tmp_path):
    """Text and ratings are read by their data kind (`probgen.data.kinds`): table-only flags are refused."""
    out = tmp_path / "out"
    result = cli_in_process("fit", *arguments, "--out", out, "--quiet")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not out.exists()


@pytest.mark.parametrize("model, message", [("gmmm", "unknown model 'gmmm'"),
                                            ("no_spec.py", "defines neither SPEC .* nor a function named 'model'")])
def test_bad_model_is_exit_2(model, message, tmp_path, csv_file):
    _, no_spec = bad_inputs(tmp_path, csv_file)
    reference = str(no_spec) if model.endswith(".py") else model
    result = cli_in_process("fit", reference, "--data", "faithful", "--out", tmp_path / "out")
    assert result.returncode == 2
    import re

    assert re.search(message, result.stderr) and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_ctrl_c_leaves_no_run_folder(tmp_path):
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
    # 10 million draws cannot finish first. The run folder appears once the data are read and the
    # sampler is about to compile; 3 s later the run is compiling or sampling, before its first
    # save (every 5% of 10 million draws, or 60 s), so nothing is worth keeping
    deadline = time.monotonic() + 120
    while not (tmp_path / "run").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    time.sleep(3)
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
    # 300 + 300 draws: at QUICK's 150 + 150 one mixture component on two clusters had R-hat up to
    # 1.065 (seed 0; failed, so compare left it out), 1.01-1.02 at 300 (five seeds)
    single = cli_in_process("fit", "gmm", "--data", csv_file, "--columns", "u,v", "--num-components", "1", "--out", one,
                            "--chains", "2", "--warmup", "300", "--draws", "300", "--quiet")
    assert single.returncode == 0, single.stderr
    result = cli_in_process("compare", one, out, "--out", tmp_path / "cmp")
    assert result.returncode == 0, result.stderr
    # Two well-separated clusters: the two-component run must win by far more than 2 SE.
    assert f"LOO prefers {out.name}" in result.stdout
    assert "elpd_diff" in result.stdout and "convergence" in result.stdout
    for name in ("comparison.html", "comparison.md", "comparison.csv", "comparison.json"):
        assert (tmp_path / "cmp" / name).is_file()
    refused = cli_in_process("compare", out)
    assert refused.returncode == 2 and "at least two run folders" in refused.stderr


def test_pareto_k_warnings_name_the_points():
    import pandas as pd

    from probgen.checks.comparison import Comparison, pareto_lines

    comparison = Comparison(pd.DataFrame(), "", {"a": [{"point": 17, "k": 0.93}], "b": []}, {})
    assert pareto_lines(comparison) == ["a: Pareto k > 0.7 at points 17 (k=0.93): LOO is unreliable there"]


def test_sbc_writes_a_folder_and_exits_3_when_miscalibrated(tmp_path):
    # The conjugate normal-mean model of tests/test_sbc.py, fitted correctly (exit 0) and with
    # the wrong likelihood sd (exit 3, as a FAILED fit); 150 simulations detect sd 3 against the true 1 (the
    # API test measures adjusted p = 3e-6 at 200 simulations).
    design = tmp_path / "design.csv"
    pd.DataFrame({"x": np.zeros(20)}).to_csv(design, index=False)
    model = REPO / "tests" / "test_sbc.py"
    common = ["--data", design, "--simulations", "150", "--num-draws", "49", "--chains", "1", "--warmup", "200",
              "--draws", "400", "--quiet"]
    good = cli_in_process("sbc", model, *common, "--out", tmp_path / "good")
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("CALIBRATED")
    for name in ("report.html", "report.md", "ranks.csv", "uniformity.csv", "sbc.json", "config.json",
                 "plots/rank_histograms.png", "plots/ecdf_difference.png"):
        assert (tmp_path / "good" / name).is_file(), name
    ranks = pd.read_csv(tmp_path / "good" / "ranks.csv")
    assert len(ranks) == 150 and ranks["mu"].between(0, 49).all()
    config = json.loads((tmp_path / "good" / "config.json").read_text())
    assert config["seed"] == 0 and {"jax", "numpyro", "arviz"} <= set(config["versions"])

    bad = cli_in_process("sbc", model, *common, "--noise-sd", "3", "--simulate-option", "noise_sd=1", "--out", tmp_path / "bad")
    assert bad.returncode == 3 and bad.stdout.startswith("MISCALIBRATED"), bad.stdout + bad.stderr


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


def test_fit_help_with_a_model_shows_only_the_settings_of_methods_that_fit_it(capsys):
    """Issue 30: `probgen fit vae --help` lists the minibatch trainer's settings with their
    defaults, not NUTS's --chains or the n-gram's draws default; a flag of another method is
    still named as not applying (exit 2), not 'unrecognized'."""
    from probgen.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "vae", "--help"])
    shown = capsys.readouterr().out
    assert "--patience" in shown and "--chains" not in shown and "--max-tree-depth" not in shown
    assert "SETTING_" not in shown and "the exact conjugate posterior 200" not in shown
    assert main(["fit", "vae", "--data", "digits", "--chains", "2", "--out", "unused", "--quiet"]) == 2
    assert "--chains does not apply" in capsys.readouterr().err
