"""One contract over every built-in family (as dynamax's `models/test_models.py`): hooks that
take what their protocol passes, prepare on a tiny data set, a short fit by the family's own
method, results, the report, new rows (`probgen sample`), and predictions where the family
predicts. A new family joins by adding its tiny case to CASES; the test fails for a family
that has none."""

import numpy as np
import pytest

from probgen import report
from probgen.data import load
from probgen.hooks import check_hooks
from probgen.infer import fit, methods
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


@pytest.mark.parametrize("family", builtin_model_names())
def test_every_family_keeps_the_contract(family, tmp_path):
    from probgen.sampling import continued_text, posterior_predictive_table
    from probgen.text_data import load_text

    assert family in CASES, f"add a tiny case for the new family '{family}' to CASES"
    name, columns, rows, options, settings = CASES[family]
    spec = load_spec(family)
    assert check_hooks(spec) == [], check_hooks(spec)
    if spec.data_kind == "ratings":  # (user, item, rating) rows in their own columns, ids of any type
        from probgen.ratings_data import load_ratings, read_raw

        frame = read_raw(name).iloc[:rows].reset_index(drop=True)
        prepared = load_ratings(frame, spec.resolve_options(options)).frame
    else:
        source = load_text(name) if spec.data_kind == "text" else load(name, columns=columns)
        frame = prepared = source.frame.iloc[:rows].reset_index(drop=True)

    inputs = spec.prepare(prepared, spec.resolve_options(options))
    assert isinstance(inputs, ModelInputs) and inputs.observed

    method = methods.for_spec(None, spec)
    result = fit(spec, frame, options=options, seed=seeded(0), progress=False, holdout=0.2, **settings)
    assert result.method == method.command_name and not result.failures
    assert "posterior" in result.idata.groups()

    built = report.build_report(result.idata, report.run_config(result), result.spec)
    assert not built.failures, built.failures
    assert built.assessment.overall in ("trusted", "suspect", "failed")
    folder = report.save_run(result, built, tmp_path / "run")
    assert (folder / "report.html").is_file() and (folder / "posterior.nc").is_file()

    if spec.generate_text is not None:  # a language model continues a prompt (`probgen sample --prompt`)
        text = continued_text(folder, "The ", 30, 0.8, seed=seeded(1))
        assert text.startswith("The ") and len(text) == 34
    elif spec.predict is None:  # a generative family draws new rows in the data's columns
        table = posterior_predictive_table(folder, 7, seed=seeded(1))
        assert table.shape[0] == 7 and np.isfinite(table.to_numpy(float)).all()
    else:  # a conditional family predicts one row per input row
        new = frame.iloc[:5]
        predicted = spec.predict(result.idata, result.options, new, None)
        assert len(predicted) == 5
