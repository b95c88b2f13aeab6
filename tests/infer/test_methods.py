"""The method registry (`probgen.infer.methods`): names, settings and what a new method gets."""

import numpy as np
import pandas as pd
import pytest

from probgen.checks import diagnostics
from probgen.errors import InferenceError
from probgen.infer import default_settings, fit, methods
from _seeds import seeded
from infer.conjugate import PRIOR_SD, SPEC, exact_posterior


def test_unknown_method_and_settings_are_named(frame):
    with pytest.raises(InferenceError, match="unknown method 'gibbs'"):
        fit(SPEC, frame, "gibbs")
    with pytest.raises(InferenceError, match="method 'nuts' has no setting 'steps'"):
        fit(SPEC, frame, "nuts", steps=10)
    with pytest.raises(InferenceError, match="chains and draws must be >= 1"):
        fit(SPEC, frame, "nuts", chains=0)
    with pytest.raises(InferenceError, match="unknown guide 'flow'"):
        fit(SPEC, frame, "svi", guide="flow")
    assert default_settings("nuts")["chains"] == 4


def test_the_command_line_flags_are_generated_from_the_registered_settings():
    from probgen.cli import build_parser, method_flags
    from probgen.infer import methods

    flags = method_flags()
    for method in methods.registered():
        for setting in method.settings:
            if setting.help is not None:
                assert method.name in flags[setting.flag][3], (method.name, setting.flag)
    help_text = build_parser().format_help() + build_parser()._subparsers._group_actions[0].choices["fit"].format_help()
    assert "--paths" in help_text and "--max-tree-depth" in help_text and "--batch-size" in help_text


def test_a_new_method_plugs_in_by_registration_alone(frame):
    """An exact conjugate update, registered from outside probgen: fit, verdicts and the
    standard report work for it without any other change."""
    from probgen import report
    from probgen.infer import methods
    from probgen.infer.methods import Method, Result, Setting

    class ExactNormalMean(Method):
        """Exact posterior draws of a Normal mean with known sd (the conjugate update)."""

        name = "exact_normal_mean"
        settings = (Setting("draws", int, 2000, "draws kept"),)

        def run(self, problem, settings):
            x = np.asarray(problem.inputs.observed["x"], float)
            precision = len(x) + 1 / PRIOR_SD**2
            draws = np.random.default_rng(problem.seed).normal(x.sum() / precision, 1 / np.sqrt(precision),
                                                               settings["draws"])
            return Result({"mu": draws[None].astype(np.float32)})

        def verdicts(self, idata, settings, facts, quantities=None):
            return [diagnostics.Verdict("exact", "pass", None, "closed form", "the posterior is computed exactly")]

    methods.register(ExactNormalMean())
    try:
        result = fit(SPEC, frame, "exact_normal_mean", seed=seeded(0), progress=False)
        mean, sd = exact_posterior(frame)
        # 2000 exact draws: 4 standard errors of the mean are 0.09 sd
        assert abs(float(result.idata.posterior["mu"].mean()) - mean) < 0.1 * sd
        built = report.build_report(result.idata, report.run_config(result), result.spec)
        assert built.assessment.overall == "trusted" and not built.failures
        assert "exact_normal_mean" in methods.names()
    finally:
        methods._REGISTRY.pop("exact_normal_mean", None)


def test_there_is_one_fit_and_no_method_overrides_it():
    """Every method goes through the one driver (`probgen.infer.driver.fit`: load, split,
    trace, `run`, one InferenceData builder); a method implements `run`, never `fit`."""
    for method in methods.registered():
        assert not hasattr(method, "fit"), type(method).__name__
        assert type(method).run is not methods.Method.run, type(method).__name__
    # and one `probgen fit` path, durable or not: one call of the fit, one splitter
    import inspect
    import re

    from probgen.cli import fit as fit_module
    from probgen.infer import driver, parts

    assert len(re.findall(r"\bfit\(spec, ", inspect.getsource(fit_module))) == 1
    assert [name for name, value in vars(driver).items() if callable(value) and "split" in name] == ["split_parts"]
    assert not [name for name in vars(parts) if name.startswith("split") and name != "split_parts"]


def test_a_method_refuses_a_family_without_the_part_it_needs(frame):
    """The exact method needs a `ConjugateUpdate`, the minibatch trainer an `Objective`,
    adversarial training a `Game` (`Method.needs`); a family that provides none is refused with
    one line naming the part, before any data is read, and the family that provides one is
    fitted by that method by default (`for_spec`)."""
    from probgen.spec import load_spec

    for name, part in (("exact", "ConjugateUpdate"), ("adversarial", "Game")):
        with pytest.raises(InferenceError, match=f"model 'normal_mean' provides no {part}, which .* needs"):
            fit(SPEC, "no such data is read", name)
    assert methods.for_spec(None, load_spec("ngram")).name == "exact"
    assert methods.for_spec(None, load_spec("gan")).name == "adversarial"
    assert methods.for_spec("svi", load_spec("vae")).name == "minibatch"
    assert methods.for_spec("map", load_spec("pmf")).name == "map"  # pmf's Objective shares its family


def test_nothing_outside_the_registry_asks_which_method_ran():
    """The registry is the one place that knows method names: no `method == "..."` test (nor a
    config's `["method"] ==` or `.get("method") ==`), no comparison with any registered method's
    name, and no branch on a method's part (`spec.part(Objective)`) elsewhere in the library (issue 13: 24 and 7 before;
    issue 29 found `config.get("method") == "exact"` in the LM report, which this missed); nor a
    `data_kind ==` test: the data kinds are read by their registry (`probgen/data/kinds.py`)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    names = "|".join(sorted({m.name for m in methods.registered()} | {m.command_name for m in methods.registered()}))
    pattern = re.compile(r"\bmethod[\"']?\)?\]?\s*(==|!=)|\bmethod\s+(not\s+)?in\s*[\(\[{]"
                         rf"|[=!]= *[\"']({names})[\"']")
    # a method's parts are read by the method that needs them (`Method.needs`), and data kinds by their registry
    amortized = re.compile(r"spec\.(amortized|conjugate|adversarial)\b|\.part\((Objective|ConjugateUpdate|Game)\)"
                           r"|\bdata_kind\s*(==|!=|in\b)")
    found = []
    library = [path for path in root.glob("probgen/**/*.py") if "infer" not in path.relative_to(root).parts]
    for path in [*library, *root.glob("models/**/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) or amortized.search(code):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


@pytest.mark.parametrize("flags, message", [
    (["--method", "pathfinder", "--paths", "0"], "--paths must be >= 1, got 0"),
    (["--method", "pathfinder", "--init", "sample"], "--init must be one of uniform, median, got 'sample'"),
    (["--method", "pathfinder", "--chains", "2"], "--chains does not apply to --method pathfinder"),
    (["--method", "map", "--draws", "5"], "--draws does not apply to --method map"),
    (["--chain-method", "threads"], "--chain-method must be one of auto, sequential, parallel, vectorized, got 'threads'"),
    (["--method", "exact"], "model 'gmm' provides no ConjugateUpdate, which the exact conjugate posterior needs"),
    (["--set", "K=3"], "--set gives arguments by name; model 'gmm' takes its data as a table"),
])
def test_a_bad_setting_is_named_from_its_metadata_with_exit_2(flags, message, tmp_path, capsys):
    """Checked from the method's `Setting`s before any data is read: one line, exit 2."""
    from probgen.cli import main

    status = main(["fit", "gmm", "--data", "faithful", "--out", str(tmp_path / "run"), "--quiet", *flags])
    assert status == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_resume_message_names_exactly_the_methods_that_resume(tmp_path):
    """`--resume` on a folder with nothing to resume lists the runs that can be, from the
    registry (the messages once said "only NUTS and HMC" when SVI, MAP and the trainer resumed)."""
    from probgen.errors import RunFolderError
    from probgen.runs.resume import saved_request

    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFolderError) as refused:
        saved_request(tmp_path / "empty")
    for method in methods.registered():
        assert (method.describe() in str(refused.value)) == method.durable, method.name
    assert sum(method.durable for method in methods.registered()) >= 5


@pytest.mark.parametrize("method", [m.name for m in methods.registered()])
def test_every_method_keeps_the_contract(method):
    """What the driver and the command line rely on, for every registered method (issue 29,
    point 8), read from its declarations: a fit of each runs in its own tests, through the one
    driver (`test_there_is_one_fit_and_no_method_overrides_it`)."""
    from probgen.spec import builtin_model_names, load_spec

    chosen = methods.get(method)
    names = [setting.name for setting in chosen.settings]
    assert len(names) == len(set(names)), names
    assert chosen.resolve({}) == chosen.defaults()  # every default passes its own checks
    assert set(chosen.extendable) <= set(names), chosen.extendable  # what --resume may raise is a setting
    assert type(chosen).verdicts is not methods.Method.verdicts
    if chosen.durable:
        assert chosen.keeps, "a durable method says what a finished run keeps for --resume"
    if chosen.stores_draws or chosen.warm_starts:
        assert chosen.durable
    if chosen.wants_validation:
        assert 0 < chosen.default_holdout < 1
    if not chosen.traces_model:  # it gets no trace of the model: what it fits comes from a family's part
        assert chosen.needs
    # a method that needs parts fits the families that provide them, and is their default
    fitted = [name for name in builtin_model_names() if chosen.claims(load_spec(name))]
    assert bool(fitted) == bool(chosen.needs), fitted
    for name in fitted:
        assert methods.for_spec(None, load_spec(name)) is chosen


def test_a_failure_building_a_trained_models_results_keeps_what_it_fitted(monkeypatch):
    """A method that does not trace the model (the exact update here) hands the driver its
    posterior; if the InferenceData cannot be built around it, the posterior is kept and the
    failed step named, as for a sampler's draws."""
    from probgen.infer import results

    def broken(*args, **kwargs):
        raise TypeError("simulated failure while building the results")

    monkeypatch.setattr(results, "parts_inference_data", broken)
    documents = [f"document {i} says {'ab' * (i % 5 + 1)} and {'cd' * (i % 3 + 1)}" for i in range(30)]
    result = fit("ngram", documents, "exact", options={"order": 2}, progress=False, draws=8)
    assert result.failures and "simulated failure" in result.failures[0]["error"]
    assert "parts' data" in result.failures[0]["step"]
    assert result.idata.posterior.sizes["draw"] >= 1


@pytest.mark.parametrize("base", [0, 1])
def test_holdout_keeps_the_same_rows_out_for_every_method(monkeypatch, base):
    """`--holdout 0.2` means one thing: NUTS, MAP and the minibatch trainer (which also draws
    validation rows, from what is left) get the same held-out ratings for the same data and
    seed, through `fit`; the minibatch trainer's validation rows are neither trained on nor
    scored."""
    from probgen.infer import driver
    from probgen.models.pmf.model import simulate_ratings

    frame, _ = simulate_ratings(30, 20, 400, latent_dim=1, seed=seeded(5 + base))
    split, seen = driver.split_parts, {}

    class Captured(Exception):
        pass

    for name, command in (("nuts", "nuts"), ("map", "map"), ("minibatch", "svi")):
        def record(*args, name=name, **kwargs):
            seen[name] = {part: data.frame for part, data in split(*args, **kwargs).items()}
            return split(*args, **kwargs)

        def stop(problem, settings):
            raise Captured

        monkeypatch.setattr(driver, "split_parts", record)
        monkeypatch.setattr(methods.get(name), "run", stop)
        with pytest.raises(Captured):
            fit("pmf", frame, command, holdout=0.2, seed=seeded(6 + base), progress=False)

    rows = len(frame)
    for name in ("map", "minibatch"):
        pd.testing.assert_frame_equal(seen[name]["held_out"], seen["nuts"]["held_out"])
    assert len(seen["nuts"]["held_out"]) == round(0.2 * rows) and set(seen["nuts"]) == {"training", "held_out"}
    pd.testing.assert_frame_equal(seen["map"]["training"], seen["nuts"]["training"])
    minibatch = seen["minibatch"]
    assert len(minibatch["validation"]) == round(methods.get("minibatch").defaults()["validation"] * rows)
    together = pd.concat([minibatch["training"], minibatch["validation"]])
    key = ["user", "item"]
    assert not minibatch["training"].merge(minibatch["validation"], on=key).shape[0]  # no rating in both
    pd.testing.assert_frame_equal(together.sort_values(key).reset_index(drop=True),
                                  seen["nuts"]["training"].sort_values(key).reset_index(drop=True))
