import pytest

from probgen.errors import ModelError
from probgen.spec import ModelSpec, builtin_model_names, load_spec


def test_builtin_gmm_is_found():
    assert "gmm" in builtin_model_names()
    spec = load_spec("gmm")
    assert spec.name == "gmm" and spec.options


def test_unknown_model_name_lists_builtins():
    with pytest.raises(ModelError, match="unknown model 'gmmm'.*gmm"):
        load_spec("gmmm")


def test_user_file_with_spec(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        "import numpyro, numpyro.distributions as dist\n"
        "from probgen import ModelSpec\n"
        "def normal(x=None, num_points=1):\n"
        "    mu = numpyro.sample('mu', dist.Normal(0, 10))\n"
        "    with numpyro.plate('n', num_points):\n"
        "        numpyro.sample('x', dist.Normal(mu, 1), obs=x)\n"
        "SPEC = ModelSpec(name='mine', model=normal)\n"
    )
    spec = load_spec(str(path))
    assert isinstance(spec, ModelSpec) and spec.name == "mine"


def test_user_file_with_model_function(tmp_path):
    path = tmp_path / "plain.py"
    path.write_text("def model(x=None, num_points=1):\n    pass\n")
    assert load_spec(str(path)).name == "plain"


def test_user_file_without_spec_or_model(tmp_path):
    path = tmp_path / "empty_model.py"
    path.write_text("x = 1\n")
    with pytest.raises(ModelError, match="defines neither SPEC .* nor a function named 'model'"):
        load_spec(str(path))


def test_missing_model_file():
    with pytest.raises(ModelError, match="model file 'nowhere/m.py' does not exist"):
        load_spec("nowhere/m.py")


def test_model_file_that_fails_to_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import not_a_module_anywhere\n")
    with pytest.raises(ModelError, match="broken.py., line 1, in <module>: ModuleNotFoundError"):
        load_spec(str(path))


def test_unknown_option_is_named():
    with pytest.raises(ModelError, match="no option 'components'"):
        load_spec("gmm").resolve_options({"components": 3})


def test_the_spec_holds_what_families_share_and_parts_hold_the_rest():
    """Issue 29: at most 12 fields, none named after a method; what only some families have
    is a part, checked against its protocol like any hook, one of each kind."""
    import dataclasses

    from probgen.infer import methods
    from probgen.spec import FamilyPlots, Relabel

    fields = {field.name for field in dataclasses.fields(ModelSpec)}
    assert len(fields) <= 12, sorted(fields)
    named_after_methods = {m.name for m in methods.registered()} | {m.command_name for m in methods.registered()}
    assert not fields & (named_after_methods | {"amortized", "conjugate", "adversarial"})

    def model(x=None):
        pass

    with pytest.raises(ModelError, match="Relabel must take 2 argument"):
        ModelSpec(name="bad", model=model, parts=(Relabel(lambda samples: samples),))
    with pytest.raises(ModelError, match="parts holds more than one FamilyPlots"):
        ModelSpec(name="twice", model=model, parts=(FamilyPlots(lambda idata: {}), FamilyPlots(lambda idata: {})))
    relabel = lambda samples, inputs: samples  # noqa: E731
    assert ModelSpec(name="ok", model=model, parts=(Relabel(relabel),)).postprocess is relabel


def test_every_way_of_drawing_new_data_from_a_run_has_one_signature():
    """Issue 29: new rows (the minibatch trainer's objective, the GAN's game) and new text (a
    language model) are drawn by one `Generate` signature, (idata, config, rng_key, amount),
    checked when a spec is built; a part whose generate takes other arguments is refused."""
    from probgen.hooks import Generate, TextGenerator, hook_problem
    from probgen.infer.amortized import Objective
    from probgen.spec import builtin_model_names, load_spec

    generators = []
    for name in builtin_model_names():
        for part in load_spec(name).parts:
            function = part.function if isinstance(part, TextGenerator) else getattr(part, "generate", None)
            if callable(function):
                generators.append(name)
                assert hook_problem(name, function, Generate) is None, name
    assert {"vae", "made", "gan", "ngram", "neural_lm"} <= set(generators), generators

    def model(x=None):
        pass

    old_text = lambda idata, config, prompt, num_symbols, temperature, rng_key: ""  # noqa: E731
    with pytest.raises(ModelError, match="TextGenerator must take 4 argument"):
        ModelSpec(name="bad", model=model, parts=(TextGenerator(old_text),))
    with pytest.raises(ModelError, match="Objective.generate must take 4 argument"):
        ModelSpec(name="bad", model=model, parts=(Objective(elbo=len, evaluate=len, generate=lambda idata, n: None),))
