"""Shared fixtures. JAX's CPU devices are set up here, before anything imports JAX, so that
MCMC chains run in parallel in tests as they do from the CLI."""

from probgen.devices import expose_cpu_devices

expose_cpu_devices(4)

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402
import pytest  # noqa: E402
from _seeds import seeded  # noqa: E402

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parent.parent


def run_analysis(script: str, out, timeout: int = 3600, extra=()):
    """Run `analyses/<script> --out OUT --quiet [extra]` as a user would; fail the test, with
    the script's stderr, unless it exits 0. Returns the completed process."""
    result = subprocess.run([sys.executable, str(REPO / "analyses" / script), "--out", str(out), "--quiet", *extra],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def faithful_fit():
    """The analysis' main fit: Old Faithful, K = 2, full covariance, NUTS 4 x 1000."""
    from probgen.infer import fit

    return fit("gmm", "faithful", "nuts", options={"num_components": 2}, seed=seeded(0), progress=False)


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run `probgen ARGS` as a user would: a subprocess with the installed entry point."""
    command = [sys.executable, "-m", "probgen.cli", *map(str, args)]
    environment = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)
