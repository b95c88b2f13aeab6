"""`models/` is importable as `probgen.models` after a plain (non-editable) install."""

import subprocess
import sys


def test_non_editable_install_ships_the_models(tmp_path):
    from conftest import REPO

    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    assert (target / "probgen" / "models" / "gmm.py").is_file()
    for family in ("hmm", "bnn", "vae"):  # the families that are packages
        assert (target / "probgen" / "models" / family / "__init__.py").is_file(), family
    check = subprocess.run(
        [sys.executable, "-c", "import probgen.models.gmm as m, probgen.models.hmm.inference as h, probgen; "
                               "print(m.__file__); print(h.__file__); print(probgen.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
    )
    assert check.returncode == 0, check.stderr
    assert all(line.startswith(str(target)) for line in check.stdout.split())
