"""probgen as a user installs it: the wheel holds every module of the tree (and the report templates), and the `probgen`
command of a fresh venv outside the checkout (`installed.py`) knows every family."""

import zipfile

import pytest

from conftest import REPO, cli_in_process
from probgen.spec import builtin_model_names

pytestmark = pytest.mark.wheel  # `make test-wheel`, which .ci/run runs after the default suite


def test_the_wheel_holds_every_module_of_the_tree(installed_probgen):
    if installed_probgen.wheel is None:
        pytest.skip("PROBGEN_INSTALLED_VENV names a venv built beforehand: no wheel to read")
    names = set(zipfile.ZipFile(installed_probgen.wheel).namelist())
    tree = {f"probgen/{p.relative_to(REPO / 'probgen').as_posix()}" for p in (REPO / "probgen").rglob("*.py")}
    tree |= {f"probgen/models/{p.relative_to(REPO / 'models').as_posix()}" for p in (REPO / "models").rglob("*.py")}
    # and the files a module reads at run time: the HTML report's templates
    tree |= {f"probgen/{p.relative_to(REPO / 'probgen').as_posix()}" for p in (REPO / "probgen").rglob("*.j2")}
    assert tree - names == set(), f"left out of the wheel: {sorted(tree - names)}"


def test_the_installed_command_knows_every_family(installed_probgen, tmp_path):
    families = builtin_model_names()
    assert len(families) == 11, families
    listed = installed_probgen.run("probgen models", tmp_path)
    assert listed.returncode == 0, listed.stderr
    described = {line.split(":")[0] for line in listed.stdout.splitlines() if line and not line.startswith(" ")}
    assert described == set(families) and "in development" not in listed.stdout
    for command, expected in (("probgen datasets", "faithful:"), ("probgen methods", "nuts:"),
                              ("python -c 'import probgen; print(probgen.__file__)'", str(installed_probgen.venv))):
        done = installed_probgen.run(command, tmp_path)
        assert done.returncode == 0 and expected in done.stdout, (command, done.stdout, done.stderr)
    # a family's --help from the installed command; every family's, through the same `main` in
    # this process (the contract test fits every family with the installed command)
    done = installed_probgen.run("probgen fit gmm --help", tmp_path)
    assert done.returncode == 0 and "options of model 'gmm'" in done.stdout, done.stderr
    for name in families:
        helped = cli_in_process("fit", name, "--help")
        assert helped.returncode == 0, (name, helped.stderr)
        assert f"options of model '{name}'" in helped.stdout, (name, helped.stdout[-500:])


def test_a_closed_pipe_is_not_a_traceback(installed_probgen, tmp_path):
    """`probgen models | head -1` prints one line and no traceback (a user's pipe)."""
    done = installed_probgen.run("set -o pipefail; probgen models | head -1", tmp_path)
    assert "Traceback" not in done.stderr and len(done.stdout.splitlines()) == 1, done.stderr
