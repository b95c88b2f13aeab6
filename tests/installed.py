"""probgen as a user installs it: the wheel built from this checkout, installed with its
dependencies into a fresh virtual environment in a folder outside the checkout, so that nothing
can be imported from the source tree (an editable install hides a module the wheel leaves out).

The environment is built once per test run and shared by the xdist workers (a file lock: the
first worker builds it, the others wait for it). PROBGEN_INSTALLED_VENV=PATH uses a venv built
beforehand instead (it must hold this checkout's wheel).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXTRAS = "distributed"  # the README's `probgen sbc --workers` needs the Dask extra


@dataclasses.dataclass
class Installed:
    venv: Path
    wheel: Path | None = None  # None when PROBGEN_INSTALLED_VENV names a venv built beforehand

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def env(self, **extra) -> dict:
        """The environment of a user's shell with the venv activated: its bin first on PATH,
        nothing from this checkout on PYTHONPATH, a compilation cache of its own."""
        # PYTHONDONTWRITEBYTECODE (set on some CI machines) goes too: a user's Python writes each
        # module's bytecode on its first import, which `_build` leaves to it
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}
        environment.update(PATH=f"{self.bin}{os.pathsep}{environment.get('PATH', '')}", VIRTUAL_ENV=str(self.venv),
                           MPLBACKEND="Agg", **extra)
        return environment

    def run(self, command: str, cwd, timeout: int = 600, **env) -> subprocess.CompletedProcess:
        """Run a shell command line in `cwd` as a user of this venv would."""
        return subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=self.env(**env))

    def run_in_one_process(self, commands: list[list[str]], cwd, timeout: int = 600) -> list[Done]:
        """Run several `probgen` command lines (without the word probgen) one after another in
        one Python process of this venv, through the installed `probgen.cli.main` that the
        console script calls, each with its own stdout and stderr; stop after a command that
        fails (status not 0 or 3). One process saves the interpreter's start and the imports
        (about 4 s) per further command; `probgen` itself, the console script, is run by
        test_packaging.py and the README's commands."""
        done = subprocess.run([str(self.bin / "python"), "-c", _IN_ONE_PROCESS, json.dumps(commands)], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, env=self.env())
        assert done.returncode == 0 and done.stdout.strip(), done.stdout[-3000:] + done.stderr[-3000:]
        return [Done(*result) for result in json.loads(done.stdout.strip().splitlines()[-1])]


@dataclasses.dataclass
class Done:
    """What one command of `run_in_one_process` did."""
    returncode: int
    stdout: str
    stderr: str


# the launcher of `run_in_one_process`: its last line of output is the JSON list of results
_IN_ONE_PROCESS = """
import contextlib, io, json, sys
from probgen.cli import main
from probgen.devices import use_compilation_cache

use_compilation_cache()
results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else 1
    results.append((status, out.getvalue(), err.getvalue()))
    if status not in (0, 3):
        break
print(json.dumps(results))
"""


def _build(root: Path) -> Path:
    venv = root / "venv"
    wheels = root / "wheels"
    steps = [
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir",
         str(wheels), str(REPO)],
        [sys.executable, "-m", "venv", str(venv)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900, cwd=root)
        assert done.returncode == 0, f"{' '.join(step)}\n{done.stderr[-3000:]}"
    wheel = next(wheels.glob("probgen-*.whl"))
    # --no-compile: the first command compiles the modules it imports (6 s), rather than pip
    # compiling every module of every dependency ahead (the install took 57 s with it, 20 s without)
    install = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile",
               "--disable-pip-version-check", f"probgen[{EXTRAS}] @ {wheel.as_uri()}"]
    done = subprocess.run(install, capture_output=True, text=True, timeout=1800, cwd=root)
    assert done.returncode == 0, f"{' '.join(install)}\n{done.stderr[-3000:]}"
    return venv


def installed(shared_root: Path) -> Installed:
    """The fresh install, built under `shared_root` (a folder every xdist worker of this run
    sees) by whichever worker gets here first."""
    given = os.environ.get("PROBGEN_INSTALLED_VENV")
    if given:
        return Installed(Path(given))
    root = shared_root / "installed-probgen"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            ready = root / "ready"
            if not ready.is_file():
                _build(root)
                ready.write_text("ok\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return Installed(root / "venv", next((root / "wheels").glob("probgen-*.whl")))
