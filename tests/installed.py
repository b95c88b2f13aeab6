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
