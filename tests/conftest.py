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


# --------------------------------------------------------------------------------------------
# One compilation cache for the whole test run: every test process (xdist workers, and the CLI
# runs they start) keeps the programs it compiles in one fresh folder and takes those another
# process already compiled, so the same model on the same data is compiled once per run. Small
# programs count too (JAX's default keeps only those over a second). A fresh folder, removed at
# the end: the suite's time and results do not depend on what the machine ran before.
# --------------------------------------------------------------------------------------------
def pytest_configure(config):
    import shutil
    import tempfile

    if not hasattr(config, "workerinput") and not os.environ.get("PROBGEN_TEST_CACHE_KEEP"):
        folder = tempfile.mkdtemp(prefix="probgen-test-xla-")
        os.environ["PROBGEN_CACHE_DIR"] = folder
        config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    from probgen.devices import use_compilation_cache

    if use_compilation_cache():
        import jax

        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def tour_model(folder):
    """The model file of the README's tour, written to `folder`."""
    import re

    readme = (REPO / "README.md").read_text()
    source = re.search(r"```python\n(# my_model.py\n.*?)```", readme, re.S).group(1)
    (folder / "my_model.py").write_text(source)
    return folder / "my_model.py"


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


@pytest.fixture(scope="session")
def installed_probgen(tmp_path_factory):
    """probgen installed from its wheel into a fresh venv outside the checkout (`installed.py`),
    built once per test run and shared by the xdist workers."""
    from installed import installed

    base = tmp_path_factory.getbasetemp()
    return installed(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


RELEASE_ABOVE_MIB = 768


def _resident_mib() -> float:
    """This process's resident memory now (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _release() -> None:
    import ctypes
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    try:  # hand the freed heap back to the system (glibc keeps it otherwise, and RSS stays high)
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@pytest.fixture(scope="module", autouse=True)
def _release_compiled_programs_per_module():
    """Release what a test module compiled once it is done: JAX keeps every compiled program
    (and the constants baked into it) for the life of the process, and an xdist worker runs
    dozens of modules, so without this its memory only grows (4.5 GB measured)."""
    yield
    _release()


@pytest.fixture(autouse=True)
def _release_compiled_programs_when_large():
    """... and after any test that leaves the process above RELEASE_ABOVE_MIB resident: the
    gmm module alone peaked at 2.65 GB released per module, 1.57 GB released after every test.
    Only then, because a release also drops the small programs the next tests would reuse
    (they come back from the run's compilation cache on disk, but not for free)."""
    yield
    if _resident_mib() > RELEASE_ABOVE_MIB:
        _release()


def run_cli(*args, cwd=None, timeout=600, env=None):
    """Run `probgen ARGS` as a user would: a subprocess with the installed entry point. For what
    only a process shows: its exit status as the shell sees it, signals, forced devices."""
    command = [sys.executable, "-m", "probgen.cli", *map(str, args)]
    environment = {**os.environ, "MPLBACKEND": "Agg", **(env or {})}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)


def cli_in_process(*args, cwd=None) -> subprocess.CompletedProcess:
    """`probgen ARGS` through the command's own `main` in this process, with what it prints
    captured: the same code as the installed command after its entry point (`run_cli`), without
    the 4 s of starting Python, JAX and the model libraries again, and with the programs this
    process compiled already. argparse's usage errors (SystemExit) give their exit status."""
    import contextlib
    import io

    from probgen import cli

    out, err, here = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli.main([str(a) for a in args])
            except SystemExit as exit:
                status = exit.code
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(["probgen", *map(str, args)], status, out.getvalue(), err.getvalue())


# --------------------------------------------------------------------------------------------
# Peak resident memory of each pytest process (each xdist worker), printed at the end of the
# run: the suite is meant to fit a laptop (under 2 GB per worker). ru_maxrss is in KiB on Linux.
# --------------------------------------------------------------------------------------------
def _peak_rss_mib() -> tuple[float, float]:
    import resource

    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


_PEAKS: dict[str, tuple[float, float]] = {}
_RAISES: list[tuple[float, float, str]] = []  # (rise, new peak, test) where a test raised the peak


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = _peak_rss_mib()[0]
    yield
    after = _peak_rss_mib()[0]
    if after - before > 50:
        _RAISES.append((after - before, after, item.nodeid))


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput["peak_rss_mib"] = _peak_rss_mib()
        workeroutput["peak_raises"] = sorted(_RAISES, reverse=True)[:5]
    else:
        _PEAKS.setdefault("main", _peak_rss_mib())


def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {})
    if output.get("peak_rss_mib") is not None:
        _PEAKS[node.gateway.id] = tuple(output["peak_rss_mib"])
        _RAISES.extend(tuple(r) for r in output.get("peak_raises", ()))


def pytest_terminal_summary(terminalreporter):
    if not _PEAKS:
        _PEAKS["main"] = _peak_rss_mib()
    for name, (own, child) in sorted(_PEAKS.items()):
        terminalreporter.write_line(f"peak RSS {name}: {own:.0f} MiB (largest subprocess {child:.0f} MiB)")
    for rise, peak, test in sorted(_RAISES, reverse=True)[:8]:
        terminalreporter.write_line(f"  raised the peak by {rise:.0f} MiB to {peak:.0f} MiB: {test}")
