"""Every shell command in README.md runs, as printed (sizes shrunk: `readme_commands.shrink`),
with probgen installed from its wheel into a fresh venv (`installed.py`), in a scratch folder
outside the checkout. A README command that fails fails the suite; one that is deliberately
not run is in NOT_RUN with its reason. After each block, every run folder it wrote must
draw new rows (`probgen sample`) or has been used by a `probgen predict` of the README, so every
family is fitted, reported and sampled from the installed package.

Exit statuses (README "Exit statuses"): a shrunk fit may end with a FAILED verdict (50 draws
cannot reach 100 effective draws per chain; 4 SBC simulations are noisy), so a command that
judges a fit (fit, sbc, report, compare) may exit 3, with its folder complete; any other status
fails, and every other command must exit 0.

The blocks are spread over a few test classes so that xdist's loadscope distribution runs them
on both workers (`make test`)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import readme_commands
from conftest import REPO
from probgen.spec import builtin_model_names

# `make test-install`: about 10 minutes on 2 cores, which CI's 20 minutes cannot hold beside the
# default suite's 14 (the wheel itself is checked in the default suite: test_packaging.py)
pytestmark = pytest.mark.install

BLOCKS, README_FILES = readme_commands.read(REPO / "README.md")

# Commands deliberately not run, each with its reason. Keep this list short.
NOT_RUN = {
    "make run": "builds the .venv this suite runs in; its job (analyses/faithful_gmm.py, NUTS 4 x 1000 for K = 1..4) "
                "is tests/analyses/test_faithful_gmm.py (slow)",
    "make test": "the suite itself",
    "probgen sbc my_model.py --data design.csv --scheduler tcp://host:8786": "needs a Dask cluster on another host; "
                                                                              "--workers runs the same code locally",
    "python -c": "jax.distributed over several hosts",
}


def _not_run(command: str) -> str | None:
    for prefix, reason in NOT_RUN.items():
        if command.startswith(prefix):
            return reason
    return None


# --------------------------------------------------------------------------------------------
# The files the README's commands name, made small: what each stands for is in its comment.
# --------------------------------------------------------------------------------------------
def _write_files(folder: Path) -> None:
    from probgen.data import load

    for name, text in README_FILES.items():  # eight_schools.py/.json, new.json, my_model.py: the tour's blocks
        (folder / name).write_text(text)
    rng = np.random.default_rng(0)
    schools = json.loads(README_FILES["eight_schools.json"])
    shutil.copy(folder / "eight_schools.py", folder / "model.py")  # Long runs: any model and its data
    (folder / "data.json").write_text(json.dumps(schools))
    (folder / "updated.json").write_text(json.dumps({**schools, "y": [y + 1 for y in schools["y"]]}))
    pd.DataFrame(rng.normal([1.0, -2.0], [1.0, 0.5], (60, 2)), columns=["a", "b"]).to_csv(
        folder / "measurements.csv", index=False)
    pd.DataFrame(rng.normal(0, 1, (30, 2)), columns=["a", "b"]).to_csv(folder / "design.csv", index=False)
    faithful = load("faithful").frame.copy()
    faithful.loc[[2, 16], "waiting"] = np.nan  # data rows 3 and 17, as the README's message says
    faithful.to_csv(folder / "broken.csv", index=False)
    states = rng.integers(0, 2, (2, 40))
    pd.DataFrame({"id": np.repeat([1, 2], 40), "t": np.tile(np.arange(40), 2),
                  "x": rng.normal(3.0 * states.ravel(), 1.0), "y": rng.normal(-2.0 * states.ravel(), 1.0)}).to_csv(
        folder / "sequences.csv", index=False)
    loadings = rng.normal(0, 1, (10, 2))
    survey = rng.normal(0, 1, (150, 2)) @ loadings.T + rng.normal(0, 0.5, (150, 10))
    pd.DataFrame(survey, columns=[f"q{i}" for i in range(10)]).to_csv(folder / "survey.csv", index=False)
    diabetes = load("diabetes").frame
    diabetes.drop(columns=diabetes.columns[-1]).head(5).to_csv(folder / "new_patients.csv", index=False)
    import pydoc_data.topics

    lines = [line.strip() for text in pydoc_data.topics.topics.values() for line in text.split("\n") if line.strip()]
    (folder / "my_corpus.txt").write_text("\n".join(lines[:300]) + "\n")
    who, film = rng.integers(0, 40, 800), rng.integers(0, 30, 800)
    pd.DataFrame({"who": [f"u{w}" for w in who], "film": [f"f{f}" for f in film],
                  "stars": np.clip(np.round(3 + 0.05 * (who - film) + rng.normal(0, 1, 800)), 1, 5)}).drop_duplicates(
        ["who", "film"]).to_parquet(folder / "ratings.parquet")
    from probgen.data.ratings import load_ratings
    from probgen.spec import load_spec

    # pairs of the users the shrunk fits keep (FAMILY_SIZE's --max-users), their most active first,
    # and a user the fit never saw; users.csv: the most active user
    max_users = int(readme_commands.FAMILY_SIZE["pmf"][1])
    kept = load_ratings("movielens", {**load_spec("pmf").default_options(), "max_users": max_users}).frame
    active = kept["user"].value_counts().index[:3].tolist()
    pd.DataFrame({"userId": active + [999999], "movieId": kept["item"].iloc[:4].tolist()}).to_csv(
        folder / "pairs.csv", index=False)
    pd.DataFrame({"userId": active[:1]}).to_csv(folder / "users.csv", index=False)
    (folder / "analyses").symlink_to(REPO / "analyses")


# --------------------------------------------------------------------------------------------
# Shrinking needs to know each model's default method
# --------------------------------------------------------------------------------------------
def _family(reference: str) -> str:
    return reference if reference in builtin_model_names() else "user"


def _method(reference: str, given: str | None) -> str:
    from probgen.infer import methods
    from probgen.spec import load_spec

    if reference.endswith(".py"):
        return methods.get(given or "nuts").name
    return methods.for_spec(given, load_spec(reference)).name


def _finished_runs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.glob("runs/*/posterior.nc") if not (p.parent / "TRAINING.md").exists())


def _walk(block: readme_commands.Block, installed, scratch: Path) -> list[str]:
    """Run one block's commands in order; returns what each printed, for the failure message."""
    skipped = [_not_run(command.text) for command in block.commands]
    if all(skipped):
        pytest.skip("; ".join(f"{command.text.split('#')[0].strip()}: {reason}"
                              for command, reason in zip(block.commands, skipped)))
    _write_files(scratch)
    log = []
    predicted = set()
    for command in block.commands:
        if _not_run(command.text):
            continue
        shrunk = readme_commands.shrink(command.text, _family, _method)
        done = installed.run(shrunk, scratch, timeout=900)
        log.append(f"$ {shrunk}  (README.md:{command.line})\n-> exit {done.returncode}\n{done.stdout[-1500:]}"
                   f"{done.stderr[-3000:]}")
        judges = shlex.split(shrunk)[:2] in (["probgen", verb] for verb in ("fit", "sbc", "report", "compare"))
        allowed = (0, 3) if judges else (0,)
        if command.expected_output:  # a console transcript: the status and the lines it shows
            allowed = (2,) if any(line.startswith("probgen: error:") for line in command.expected_output) else (0,)
            for line in command.expected_output:
                assert line in done.stdout + done.stderr, "\n\n".join(log)
        assert done.returncode in allowed, "\n\n".join(log)
        tokens = shlex.split(command.text, comments=True)
        if tokens[:2] == ["probgen", "predict"]:
            predicted.add(Path(tokens[2]).name)
    covered = set()  # each family the block fitted draws new rows or text once, unless it predicted
    for run in _finished_runs(scratch):
        config = json.loads((run / "config.json").read_text())
        family = _family(str(config["model"]["reference"]))
        if run.name in predicted:
            covered.add(family)
        if family in covered or family in ("bnn", "pmf"):  # conditional models: `probgen predict` only
            continue
        covered.add(family)
        text = family in ("ngram", "neural_lm", "attention_lm")
        sample = (f"probgen sample {shlex.quote(str(run))} -n 20 --prompt 'The '" if text else
                  f"probgen sample {shlex.quote(str(run))} -n 5 --out {shlex.quote(str(run))}-new.csv")
        done = installed.run(sample, scratch)
        log.append(f"$ {sample}\n-> exit {done.returncode}\n{done.stdout[-800:]}{done.stderr[-2000:]}")
        assert done.returncode == 0, "\n\n".join(log)
        if not text:
            assert len(pd.read_csv(f"{run}-new.csv")) == 5
    return log


def test_the_readme_fits_every_family_and_lists_what_it_skips():
    """The walk below covers every built-in family, and NOT_RUN names only commands that are there."""
    commands = [command.text for block in BLOCKS for command in block.commands]
    fits = [shlex.split(c, comments=True) for c in commands if c.startswith("probgen fit ")]
    fitted = {tokens[2] for tokens in fits if not tokens[2].startswith("-")}
    assert set(builtin_model_names()) <= fitted, set(builtin_model_names()) - fitted
    predicted = {shlex.split(c, comments=True)[2] for c in commands if c.startswith("probgen predict ")}
    assert any("bnn" in run for run in predicted) and any("movielens" in run for run in predicted)
    for prefix in NOT_RUN:
        assert any(c.startswith(prefix) for c in commands), f"NOT_RUN names '{prefix}', which the README lacks"
    assert len(NOT_RUN) <= 5


# One test class per block: xdist's --dist loadscope hands each class to whichever worker is free,
# so the blocks (15 s to 3 min each) spread over both workers.
def _block_class(block: readme_commands.Block, name: str):
    def test_block_runs_as_printed(self, installed_probgen, tmp_path):
        _walk(block, installed_probgen, tmp_path)

    test_block_runs_as_printed.__doc__ = f"README.md line {block.line} ({block.section}): {len(block.commands)} command(s)"
    return type(name, (), {"test_block_runs_as_printed": test_block_runs_as_printed})


for _block in BLOCKS:  # named by section (a second block of a section gets _2)
    _name = "TestReadme_" + re.sub(r"\W+", "_", _block.section).strip("_")[:60]
    _name = next(f"{_name}{suffix}" for suffix in ("", "_2", "_3", "_4", "_5") if f"{_name}{suffix}" not in globals())
    globals()[_name] = _block_class(_block, _name)
