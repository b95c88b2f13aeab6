"""Long MCMC runs that survive, as a user meets them: `probgen fit` in a subprocess,
interrupted by Ctrl-C during warm-up, killed with SIGKILL while sampling, reported half-done,
interrupted again, and resumed each time; the finished draws are bit for bit those of an
uninterrupted run with the same seed (the same machine, the same chain layout). The refusals,
extensions and `--resume RUN_DIR` alone that follow need no signals: they run the command's
`main` in this process (`cli_in_process`)."""

import json
import os
import signal
import subprocess
import sys
import time

import arviz as az
import h5py
import numpy as np
import pytest

from conftest import REPO, cli_in_process, run_cli
from _seeds import seeded

MODEL = REPO / "benchmarks" / "eight_schools" / "model.py"
DATA = REPO / "benchmarks" / "eight_schools" / "data.json"
# 2 x 60,000 iterations of eight schools: a few seconds of sampling, saved every 3,000
# iterations (5%), the first 10 chunks warm-up; long enough to interrupt at a chosen chunk
# (--checkpoint-overhead 0: every 5%, though saves cost more than 2% of so short a run)
LONG = ["--chains", "2", "--warmup", "30000", "--draws", "30000", "--checkpoint-overhead", "0", "--quiet"]


def start(arguments):
    """`probgen ARGS` in a subprocess that takes Ctrl-C as a terminal's foreground job does (a
    background job inherits SIGINT ignored; the child restores Python's handler first)."""
    launcher = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                f"sys.argv = ['probgen'] + {list(map(str, arguments))!r}; runpy.run_module('probgen.cli', run_name='__main__')")
    return subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"})


def chunks(out):
    return sorted((out / "chains").glob("chunk-*.nc")) if (out / "chains").is_dir() else []


def stop_at(process, out, count: int, how: int) -> str:
    """Send signal `how` once `count` chunk files exist; return stderr after it exits."""
    deadline = time.monotonic() + 300
    try:
        while len(chunks(out)) < count:
            assert process.poll() is None, f"the run ended before chunk {count}: " + process.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "no chunk files after 300 s"
            time.sleep(0.02)
        process.send_signal(how)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return stderr


def run_training_note(out):
    """Run the command that the unfinished folder's TRAINING.md says carries it on, as printed
    (its `probgen` is this checkout's, run as `python -m probgen.cli`)."""
    import shlex

    note = (out / "TRAINING.md").read_text()
    command = shlex.split(note.split("Carry on with:")[1].strip().split("\n")[0])
    assert command[:3] == ["probgen", "fit", "--resume"], note
    return run_cli(*command[1:], "--quiet")


def has_draws(path) -> bool:
    with h5py.File(path, "r") as file:
        return "posterior" in file


@pytest.mark.slow  # 55 s of four processes; the default suite keeps: a stopped NUTS run resumes to the same
# draws (tests/infer/test_durable.py), Ctrl-C of a real process (tests/test_cli.py, and resumed from its
# TRAINING.md command in tests/models/test_vae_cli.py), and `--resume RUN_DIR` alone for every method below
def test_a_run_stopped_three_ways_resumes_to_the_uninterrupted_draws(tmp_path):
    from probgen.infer import fit

    out = tmp_path / "run"
    seed = str(seeded(3))
    fit_args = ["fit", MODEL, "--data", DATA, "--out", out, "--seed", seed, *LONG]
    resume_args = ["fit", "--resume", out, "--quiet"]  # the run folder's request holds the rest

    # Ctrl-C during warm-up: exit 130, the warm-up chunks kept, the message says how to go on
    stderr = stop_at(start(fit_args), out, 3, signal.SIGINT)
    saved = chunks(out)
    assert "interrupted" in stderr and f"--resume {out}" in stderr and f"probgen report {out}" in stderr, stderr
    assert len(saved) >= 3 and not any(has_draws(path) for path in saved), "Ctrl-C was meant to land in warm-up"
    assert json.loads((out / "checkpoint.json").read_text())["status"] == "sampling"

    # resumed, then killed (SIGKILL: no handler runs) while sampling
    process = start(resume_args)
    stop_at(process, out, 13, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert has_draws(chunks(out)[-1]) and not (out / "posterior.nc").exists()

    # the draws so far can be reported; the report says it is incomplete
    reported = cli_in_process("report", out)
    assert reported.returncode in (0, 3), reported.stderr  # 3: the verdict on the draws so far failed
    draws = int(reported.stdout.split("(")[1].split(" of ")[0])
    assert reported.stdout.startswith(f"INCOMPLETE ({draws} of 30000 draws per chain)") and 0 < draws < 30000
    assert "# probgen report: incomplete:" in (out / "report.md").read_text()

    # resumed, Ctrl-C while sampling, resumed to the end by the command TRAINING.md gives, as printed
    stderr = stop_at(start(resume_args), out, 17, signal.SIGINT)
    assert "interrupted" in stderr and f"probgen fit --resume {out}" in stderr, stderr
    finished = run_training_note(out)
    assert finished.returncode in (0, 3), finished.stderr  # 3: the verdict failed (divergences, say)
    assert "resuming" in finished.stderr

    # the same draws as one uninterrupted run (in this process: the same two-device layout)
    reference = fit(str(MODEL), str(DATA), "nuts", seed=int(seed), chains=2, warmup=30000, draws=30000,
                    progress=False).idata
    resumed = az.from_netcdf(out / "posterior.nc")
    for group in ("posterior", "sample_stats"):
        for name, values in getattr(reference, group).data_vars.items():
            assert np.array_equal(values.values, getattr(resumed, group)[name].values), f"{group}/{name} differs"
    assert json.loads((out / "checkpoint.json").read_text())["status"] == "finished"
    assert not (out / "chains").exists() and (out / "sampler_state.nc").is_file()


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "run"
    result = cli_in_process("fit", MODEL, "--data", DATA, "--out", out, "--chains", "2", "--warmup", "200", "--draws", "200",
                     "--quiet")
    assert result.returncode in (0, 3), result.stderr
    return out


def test_resuming_with_another_option_exits_2_naming_it(short_run):
    # (changed data, and the other refusals, are tested through the API: tests/infer/test_durable.py)
    changed = cli_in_process("fit", MODEL, "--data", DATA, "--resume", short_run, "--target-accept", "0.9", "--quiet")
    assert changed.returncode == 2
    assert "setting target_accept 0.8 there, 0.9 now" in changed.stderr and len(changed.stderr.strip().splitlines()) == 1


def test_a_finished_run_is_extended_and_reported_again(short_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(short_run, out)
    before = az.from_netcdf(out / "posterior.nc")
    result = cli_in_process("fit", "--resume", out, "--draws", "300", "--quiet")
    assert result.returncode in (0, 3), result.stderr
    after = az.from_netcdf(out / "posterior.nc")
    assert after.posterior.sizes["draw"] == 300
    assert np.array_equal(before.posterior["mu"].values, after.posterior["mu"].values[:, :200])
    assert json.loads((out / "config.json").read_text())["settings"]["draws"] == 300


def test_a_warm_start_from_another_model_exits_2(short_run, tmp_path):
    (tmp_path / "other.py").write_text(
        "import numpyro\nimport numpyro.distributions as dist\n\n"
        "def model(y):\n    numpyro.sample('y', dist.Normal(numpyro.sample('mu', dist.Normal(0, 5)), 1), obs=y)\n")
    (tmp_path / "y.json").write_text(json.dumps({"y": [0.5, 1.0, 1.5]}))
    result = cli_in_process("fit", tmp_path / "other.py", "--data", tmp_path / "y.json", "--init-from", short_run,
                     "--warmup", "50", "--out", tmp_path / "warm", "--quiet")
    assert result.returncode == 2
    assert "a warm start needs a run of the same model" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "warm").exists()


@pytest.mark.parametrize("extra, message", [
    (["--resume", "{tmp}/nowhere"], "nothing to resume in '.*nowhere': it does not exist"),
    (["--method", "svi", "--init-from", "{tmp}"], "--init-from applies to --method nuts and --method hmc"),
], ids=["resume a missing folder", "warm start for svi"])
def test_bad_long_run_flags_exit_2_with_one_line(tmp_path, extra, message):
    import re

    result = cli_in_process("fit", MODEL, "--data", DATA, "--quiet", *[e.format(tmp=tmp_path) for e in extra])
    assert result.returncode == 2 and re.search(message, result.stderr), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("method, first, more", [
    ("hmc", ["--chains", "1", "--warmup", "100", "--draws", "60"], ["--draws", "90"]),
    ("svi", ["--steps", "300", "--draws", "40"], ["--steps", "450"]),
    ("map", ["--steps", "300"], ["--steps", "450"]),
])
def test_resume_alone_carries_on_each_method_from_another_folder(method, first, more, tmp_path):
    """`probgen fit --resume RUN_DIR` and nothing else (but a longer run): the model, the data,
    the method and its settings come from the folder, found from another working folder. NUTS
    and the minibatch trainer are resumed this way by the test above, tests/models/test_vae_cli.py
    and the README's commands (tests/test_readme.py)."""
    import shutil

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    shutil.copy(MODEL, work / "model.py"), shutil.copy(DATA, work / "data.json")
    done = cli_in_process("fit", "model.py", "--data", "data.json", "--method", method, "--out", "runs/x", "--quiet", *first,
                   cwd=work)
    assert done.returncode in (0, 3), done.stderr
    run = work / "runs" / "x"
    length = int(more[1])
    resumed = cli_in_process("fit", "--resume", run, "--quiet", *more, cwd=elsewhere)
    assert resumed.returncode in (0, 3), resumed.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == method and config["settings"][more[0][2:]] == length
    idata = az.from_netcdf(run / "posterior.nc")
    if method == "hmc":
        assert idata.posterior.sizes["draw"] == length
    else:
        assert idata.optimization.sizes[[d for d in idata.optimization.dims if d != "restart"][0]] >= length

    if method == "svi":  # the data file changed, then moved: one line naming it, exit 2, the run untouched
        schools = json.loads(DATA.read_text())
        (work / "data.json").write_text(json.dumps({**schools, "y": [v + 1 for v in schools["y"]]}))
        changed = cli_in_process("fit", "--resume", run, "--steps", "600", "--quiet", cwd=elsewhere)
        assert changed.returncode == 2 and len(changed.stderr.strip().splitlines()) == 1, changed.stderr
        assert "data.json' changed since the run was fitted" in changed.stderr
        (work / "data.json").rename(work / "moved.json")
        moved = cli_in_process("fit", "--resume", run, "--steps", "600", "--quiet", cwd=elsewhere)
        assert moved.returncode == 2 and len(moved.stderr.strip().splitlines()) == 1, moved.stderr
        assert "data.json' of the run in" in moved.stderr and "is not there" in moved.stderr, moved.stderr
        assert json.loads((run / "config.json").read_text())["settings"]["steps"] == length
