"""Run folders on disk: written atomically (a temporary folder and a rename), read back with
errors that name what is missing.

    runs/<name>/
      config.json  posterior.nc  summary.csv  diagnostics.json  metrics.json
      plots/*.png  report.html  report.md
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import arviz as az
import numpy as np

from probgen.errors import RunFolderError
from probgen.report.render import render_html, render_markdown

RUN_FILES = ("config.json", "posterior.nc", "summary.csv", "diagnostics.json", "metrics.json", "report.html", "report.md")


# --------------------------------------------------------------------------------------------
# Writing (atomically)
# --------------------------------------------------------------------------------------------
def check_destination(out: Path, overwrite: bool) -> None:
    """Fail before any work if `out` cannot be written."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise RunFolderError(f"output folder '{out}' already exists (use --overwrite to replace it)")
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"output path '{out}' exists and is not a folder")


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.bool_,)):
        return bool(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(path: Path, content) -> None:
    path.write_text(json.dumps(content, indent=2, default=_json_default) + "\n")


def naming_the_folder(report, run_dir):
    """`report` with the RUN_DIR of its verdicts' hints (`probgen fit --resume RUN_DIR --steps
    N`) replaced by the folder it is written to, so that the hint in report.md, report.html and
    diagnostics.json runs as printed, as the terminal's does."""
    if run_dir is None:
        return report
    folder = shlex.quote(str(run_dir))
    assessment = report.assessment
    named = dataclasses.replace(
        assessment, summary=assessment.summary.replace("RUN_DIR", folder),
        verdicts=tuple(dataclasses.replace(v, reason=v.reason.replace("RUN_DIR", folder)) for v in assessment.verdicts))
    return dataclasses.replace(report, assessment=named)


def _write_report_files(folder: Path, report, run_dir=None) -> None:
    """The report's files in `folder` (a temporary folder that becomes `run_dir`)."""
    report = naming_the_folder(report, run_dir)
    write_json(folder / "config.json", report.config)
    report.summary.to_csv(folder / "summary.csv")
    write_json(folder / "diagnostics.json", report.assessment.as_dict())
    write_json(folder / "metrics.json", report.metrics)
    plots = folder / "plots"
    if plots.exists():
        shutil.rmtree(plots)
    plots.mkdir()
    for name, content in report.figures.items():
        if not name.endswith(".failed"):
            (plots / f"{name}.png").write_bytes(content)
    (folder / "report.md").write_text(render_markdown(report))
    (folder / "report.html").write_text(render_html(report))


def atomic_folder(out: Path, fill: Callable[[Path], None], overwrite: bool) -> Path:
    """Create folder `out` by `fill(temporary_folder)` and a rename: all or nothing.

    On any exception, KeyboardInterrupt included, the temporary folder is removed and `out`
    is left as it was.
    """
    out = Path(out)
    check_destination(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        fill(temporary)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(temporary, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(temporary, out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out


TRAINING_NOTE = "TRAINING.md"


def start_training_folder(out, resume_command: str, overwrite: bool = False, sampling: bool = False) -> Path:
    """Create the run folder of a run that saves its work as it goes (a trainer's or an
    optimiser's checkpoints, an MCMC run's chunks: `sampling`) before it starts, so that its
    checkpoints have a home that survives an interruption: config.json holds the status and
    TRAINING.md says how to carry on (and, for a sampler, how to report the draws saved so
    far). Written atomically; the finished run folder replaces it."""

    def fill(folder: Path) -> None:
        write_json(folder / "config.json", {"status": "sampling" if sampling else "training"})
        (folder / TRAINING_NOTE).write_text(
            f"# {'Sampling' if sampling else 'Training'} in progress or interrupted\n\nThis folder holds "
            f"the checkpoints of an unfinished run. Carry on with:\n\n    {resume_command}\n"
            + (f"\nReport the draws saved so far with:\n\n    probgen report {out}\n" if sampling else ""))

    return atomic_folder(Path(out), fill, overwrite)


def load_config(run_dir) -> dict:
    """config.json of a run folder (finished or still training), with errors that name the problem."""
    path = Path(run_dir) / "config.json"
    if not Path(run_dir).is_dir():
        raise RunFolderError(f"run folder '{run_dir}' does not exist")
    if not path.is_file():
        raise RunFolderError(f"'{run_dir}' is not a probgen run folder: config.json is missing")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path} is not valid JSON: {exc}") from None


def load_run(run_dir) -> tuple[az.InferenceData, dict]:
    """InferenceData and config of a run folder, with errors that name what is missing."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder '{run_dir}' does not exist")
    if (run_dir / TRAINING_NOTE).is_file() and not (run_dir / "posterior.nc").is_file():
        command = (run_dir / TRAINING_NOTE).read_text().split("Carry on with:")[-1].strip().split("\n")[0]
        raise RunFolderError(f"'{run_dir}' holds an unfinished run, with no finished posterior yet; carry on with: "
                             + command)
    for name in ("config.json", "posterior.nc"):
        if not (run_dir / name).is_file():
            raise RunFolderError(f"'{run_dir}' is not a probgen run folder: {name} is missing")
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{run_dir / 'config.json'} is not valid JSON: {exc}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xarray's decoding notices: the groups are read back as written (tests)
        idata = az.from_netcdf(str(run_dir / "posterior.nc"))
        idata.load()
    return idata, config
