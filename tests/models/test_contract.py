"""One contract over every built-in family (as dynamax's `models/test_models.py`): hooks that
take what their protocol passes and `prepare` on a tiny data set (the default suite); then, as a
user who installed the wheel runs it (the `probgen` of a fresh venv outside the checkout,
`installed.py`; `make test-wheel`), a short fit by the family's own method with its report, and
new rows or text (`probgen sample`), or predictions where the family predicts (`probgen
predict`). A new family joins by adding its tiny case to CASES; the test fails for a family that
has none."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from probgen.data import load
from probgen.hooks import check_hooks
from probgen.infer import methods
from probgen.report.runfolder import RUN_FILES
from probgen.spec import ModelInputs, builtin_model_names, load_spec
from _seeds import seeded

MCMC = {"chains": 1, "warmup": 60, "draws": 60}
PIXELS = [f"pixel_{i}_{j}" for i in range(8) for j in range(8)]
# family -> (data set, columns or None, rows kept, options, settings)
CASES = {
    "gmm": ("faithful", None, 80, {"num_components": 2}, MCMC),
    "hmm": ("nile", None, 60, {"num_states": 2}, MCMC),
    "bnn": ("diabetes", ["bmi", "bp", "target"], 80, {"hidden": "3"}, MCMC),
    "vae": ("digits", PIXELS, 300, {"latent_dim": 2, "hidden": "8", "iwae_samples": 5},
            {"steps": 100, "eval_every": 50, "draws": 4}),
    "ppca": ("digits", PIXELS[18:24] + ["target"], 120, {"latent_dim": 3, "label_column": "target"}, MCMC),
    "made": ("digits", PIXELS, 300, {"hidden": "16", "transform": "dequantize", "pixel_levels": 17},
             {"steps": 100, "eval_every": 50}),
    "pmf": ("movielens", None, 400, {"latent_dim": 2}, {"steps": 100, "eval_every": 50, "batch_size": 64}),
    "gan": ("ring8", None, 400, {"label_column": "mode", "hidden": "16"}, {"steps": 100, "eval_every": 50}),
    # text families: a bundled corpus; the networks with a Bayesian head (a posterior to draw)
    "ngram": ("trump_tweets", None, 200, {"order": 3}, {"draws": 20}),
    "neural_lm": ("trump_tweets", None, 120, {"context": 8, "block": 16, "hidden": 16, "head": "bayesian"},
                  {"steps": 40, "eval_every": 20, "batch_size": 16, "draws": 2}),
    "attention_lm": ("trump_tweets", None, 120, {"context": 16, "block": 16, "hidden": 16, "layers": 1,
                                                  "heads": 2, "head": "bayesian"},
                     {"steps": 40, "eval_every": 20, "batch_size": 16, "draws": 2}),
}

# family -> (plots its own report draws, headings or phrases its report.md holds), checked on the
# installed fit's folder (the family tests check the numbers behind them)
REPORTS = {
    "ppca": (("latent_map", "loadings", "retained_dimensions"), ("Retained dimensions",)),
    "gan": (("losses", "coverage", "mode_histogram", "samples"), ("What a GAN cannot report", "Mode coverage")),
}
# family -> what its metrics.json must say whatever the tiny fit's quality
METRICS = {
    "gan": lambda m: m["gan"]["likelihood"] is None and 0 <= m["gan"]["coverage"]["modes_hit"] <= 8,  # no density
}


def _flags(values: dict) -> list[str]:
    """{"num_components": 2} -> ["--num-components", "2"], as the command spells options and settings."""
    return [token for name, value in values.items() for token in (f"--{name.replace('_', '-')}", str(value))]


def _data_file(spec, frame, folder) -> tuple[str, list[str]]:
    """The tiny data set as the file a user would give: text one document per line, tables as CSV."""
    if spec.data_kind == "text":
        path = folder / "corpus.txt"
        path.write_text("\n".join(text.replace("\n", " ") for text in frame["text"]) + "\n")
    else:
        path = folder / "data.csv"
        frame.to_csv(path, index=False)
    return str(path), ([] if spec.data_kind in ("text", "ratings") else ["--columns", ",".join(map(str, frame.columns))])


def _tiny_case(family: str):
    """(spec, the tiny data as a user's file holds it, the inputs `prepare` makes of it)."""
    name, columns, rows, options, _ = CASES[family]
    spec = load_spec(family)
    if spec.data_kind == "ratings":  # (user, item, rating) rows in their own columns, ids of any type
        from probgen.data.ratings import load_ratings, read_raw

        frame = read_raw(name).iloc[:rows].reset_index(drop=True)
        prepared = load_ratings(frame, spec.resolve_options(options)).frame
    else:
        from probgen.data.text import load_text

        source = load_text(name) if spec.data_kind == "text" else load(name, columns=columns)
        frame = prepared = source.frame.iloc[:rows].reset_index(drop=True)
    return spec, frame, spec.prepare(prepared, spec.resolve_options(options))


@pytest.mark.parametrize("family", builtin_model_names())
def test_every_family_keeps_the_contract(family):
    """Hooks that take what their protocol passes; `prepare` on the family's tiny data set."""
    assert family in CASES, f"add a tiny case for the new family '{family}' to CASES"
    spec = load_spec(family)
    assert check_hooks(spec) == [], check_hooks(spec)
    _, _, inputs = _tiny_case(family)
    assert isinstance(inputs, ModelInputs) and inputs.observed


# Where the default suite checks each family's written report with the consistency check
# (issue 30): the families' own command-line tests, and the tiny fit below for the rest.
REPORT_CHECKED = {
    "gmm": "tests/test_consistency.py::test_a_written_run_folder_passes",
    "bnn": "tests/models/test_bnn_cli.py::test_bnn_fit_reports_held_out_performance_and_predicts",
    "vae": "tests/models/test_vae_cli.py::test_vae_training_resumes_after_ctrl_c_and_writes_its_report",
    "pmf": "tests/models/test_pmf_cli.py::test_fit_report_and_predict_with_text_ids",
    "gan": "tests/models/test_gan.py::test_training_writes_the_report_and_sample_draws_new_points",
    "ngram": "tests/models/test_lm.py::test_ngram_from_a_text_file_through_the_cli_and_bad_input",
    "neural_lm": "tests/models/test_lm.py::test_a_network_lm_trains_from_a_text_file_resumes_and_continues_a_prompt",
    "attention_lm": "tests/models/test_lm.py::test_a_network_lm_trains_from_a_text_file_resumes_and_continues_a_prompt",
}


@pytest.mark.parametrize("family", builtin_model_names())
def test_every_family_report_says_what_its_files_hold(family, tmp_path):
    """The consistency check (probgen.report.consistency) over every family's written report in
    the default suite: where the family's own test writes one it checks it there (REPORT_CHECKED,
    read to make sure it does); the others fit their tiny case here, in process, and no numpy,
    JAX or ArviZ warning escapes the command (each is explained in the report or silenced with
    its reason where it is caught)."""
    from probgen.cli import main
    from probgen.report.consistency import check_run_folder

    if family in REPORT_CHECKED:
        path, name = REPORT_CHECKED[family].split("::")
        from conftest import REPO

        source = (REPO / path).read_text()
        body = source.split(f"def {name}(")[1].split("\ndef ")[0]
        assert "check_run_folder(" in body, f"{REPORT_CHECKED[family]} no longer checks the report"
        return
    spec, frame, _ = _tiny_case(family)
    _, _, _, options, settings = CASES[family]
    data, column_flags = _data_file(spec, frame, tmp_path)
    run = tmp_path / "run"
    import warnings

    with warnings.catch_warnings(record=True) as caught:  # and no numpy, JAX or ArviZ warning reaches the user
        warnings.simplefilter("always")
        status = main(["fit", family, "--data", data, *column_flags, *_flags(options), *_flags(settings), "--holdout",
                       "0.2", "--seed", str(seeded(0)), "--out", str(run), "--quiet"])
    assert status in (0, 3) and check_run_folder(run) == [], check_run_folder(run)
    escaped = [f"{w.category.__name__}: {w.message}" for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))]
    assert not escaped, escaped[:3]


# In `make test-wheel` (marker `wheel`), which `.ci/run` runs after the default suite: every
# family's fit, report and new rows, text or predictions, about 5 minutes of the 2 workers'
# time; each family's own tests fit it in the default suite.
@pytest.mark.wheel
@pytest.mark.parametrize("family", builtin_model_names())
def test_the_installed_wheel_fits_reports_and_draws_for_every_family(family, tmp_path, installed_probgen):
    assert family in CASES, f"add a tiny case for the new family '{family}' to CASES"
    spec, frame, _ = _tiny_case(family)
    _, _, _, options, settings = CASES[family]

    # the installed command: fit and report, then new rows, text or predictions from the folder
    # (both in one process of the installed venv, through the `main` its console script calls)
    method = methods.for_spec(None, spec)
    data, column_flags = _data_file(spec, frame, tmp_path)
    run = tmp_path / "run"
    fit = ["fit", family, "--data", data, *column_flags, *_flags(options), *_flags(settings),
           "--holdout", "0.2", "--seed", str(seeded(0)), "--out", str(run), "--quiet"]
    if spec.generate_text is not None:  # a language model continues a prompt
        then = ["sample", str(run), "--prompt", "The ", "-n", "30", "--temperature", "0.8", "--seed", str(seeded(1))]
    elif spec.predict is None:  # a generative family draws new rows in the data's columns
        then = ["sample", str(run), "-n", "7", "--out", str(tmp_path / "new.csv"), "--seed", str(seeded(1))]
    else:  # a conditional family predicts one row per input row
        frame.iloc[:5].to_csv(tmp_path / "inputs.csv", index=False)
        then = ["predict", str(run), "--data", str(tmp_path / "inputs.csv"), "--out", str(tmp_path / "predicted.csv")]
    done, *after = installed_probgen.run_in_one_process([fit, then], tmp_path)
    # 3: a tiny fit may be judged FAILED, and says so; everything is still written
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert done.stdout.split(":")[0] in ("TRUSTED", "SUSPECT", "FAILED"), done.stdout
    assert all((run / file).is_file() for file in RUN_FILES), sorted(p.name for p in run.iterdir())
    # every number the report states agrees with its files and lies in its range (issue 30)
    from probgen.report.consistency import check_run_folder

    assert check_run_folder(run) == [], check_run_folder(run)
    config = json.loads((run / "config.json").read_text())
    assert config["method"] == method.command_name and not config.get("failed_steps"), config.get("failed_steps")
    plots, phrases = REPORTS.get(family, ((), ()))
    assert all((run / "plots" / f"{name}.png").is_file() for name in plots), sorted(p.name for p in (run / "plots").iterdir())
    text = (run / "report.md").read_text()
    assert all(phrase in text for phrase in phrases), [phrase for phrase in phrases if phrase not in text]
    if method.traces_model and method.posterior_report:  # a posterior of the model's own sites (issue 33):
        # the graph probgen read and how much the prior decided
        assert "## Model graph" in text and (run / "plots" / "model_graph.png").is_file()
        draws = settings["chains"] * settings["draws"]  # the tiny fit: too few draws to re-weight, and said so
        assert ("## Prior sensitivity (power-scaling)" in text if draws >= 100 else
                f"- prior sensitivity: {draws} draws: too few to re-weight" in text), text[:3000]
    # no template left unfilled (an f-string without its f printed "{headline['se']:.4f}")
    from probgen.report.consistency import PLACEHOLDER

    assert not PLACEHOLDER.search(text), re.findall(r"\{[^}]*\}", text)[:3]
    assert METRICS.get(family, lambda m: True)(json.loads((run / "metrics.json").read_text()))

    assert len(after) == 1 and after[0].returncode == 0, after and after[0].stderr
    if spec.generate_text is not None:
        text = after[0].stdout.rstrip("\n")
        assert text.startswith("The ") and len(text) == 34, text
    elif spec.predict is None:
        table = pd.read_csv(tmp_path / "new.csv")
        assert table.shape[0] == 7 and np.isfinite(table.select_dtypes("number").to_numpy(float)).all()
    else:
        assert len(pd.read_csv(tmp_path / "predicted.csv")) == 5
