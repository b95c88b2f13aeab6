"""Model comparison across saved run folders: PSIS-LOO ranks, each run's verdict, Pareto k."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from probgen.checks import loo
from probgen.errors import RunFolderError
from probgen.report.render import html_table, markdown_table, markup, render_page
from probgen.report import assess_run
from probgen.report.runfolder import atomic_folder, load_run, write_json


# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Comparison:
    table: pd.DataFrame  # ArviZ's comparison table plus each run's convergence verdict
    reading: str
    pareto_warnings: dict  # run name -> [{"point": i, "k": k}, ...] with k > 0.7
    runs: dict  # run name -> folder


def _run_names(run_dirs: Sequence) -> list[str]:
    paths = [Path(p) for p in run_dirs]
    names = [p.name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def compare_runs(run_dirs: Sequence) -> Comparison:
    """Rank saved runs by PSIS-LOO (`loo.compare`), each with its convergence verdict."""
    if len(run_dirs) < 2:
        raise RunFolderError(f"compare needs at least two run folders, got {len(run_dirs)}")
    names = _run_names(run_dirs)
    fits, verdicts, warnings_by_run = {}, {}, {}
    for name, run_dir in zip(names, run_dirs):
        idata, config = load_run(run_dir)
        draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
        if "log_likelihood" not in idata.groups() or draws < 100:
            raise RunFolderError(f"run '{run_dir}' has {'no log-likelihood' if draws >= 100 else f'{draws} draw(s)'}: "
                                 "LOO needs posterior draws with pointwise log-likelihoods (not a MAP run)")
        fits[name] = idata
        verdicts[name] = assess_run(idata, config).overall
        warnings_by_run[name] = loo.predictive_metrics(idata)["loo"]["pareto_k_bad"]
    sizes = {name: int(np.prod([idata.log_likelihood[v].shape[2:] for v in idata.log_likelihood.data_vars][0]))
             for name, idata in fits.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise RunFolderError(f"runs were fitted to different numbers of points ({listed}); LOO compares models on the same data")
    table, reading = loo.compare(fits, convergence=verdicts)
    return Comparison(table, reading, warnings_by_run, dict(zip(names, map(str, run_dirs))))


def pareto_lines(comparison: Comparison) -> list[str]:
    lines = []
    for name, bad in comparison.pareto_warnings.items():
        if bad:
            points = ", ".join(f"{p['point']} (k={p['k']:.2f})" for p in bad[:20])
            more = f" and {len(bad) - 20} more" if len(bad) > 20 else ""
            lines.append(f"{name}: Pareto k > 0.7 at points {points}{more}: LOO is unreliable there")
    return lines or ["every Pareto k <= 0.7 in every run: the LOO estimates are reliable"]


def render_comparison_markdown(comparison: Comparison) -> str:
    out = ["# probgen model comparison (PSIS-LOO)", "", comparison.reading, "",
           markdown_table(comparison.table), "", "## Pareto k", "",
           *[f"- {line}" for line in pareto_lines(comparison)], "", "## Runs", "",
           *[f"- {name}: `{path}`" for name, path in comparison.runs.items()], ""]
    return "\n".join(out)


def render_comparison_html(comparison: Comparison) -> str:
    return render_page("model comparison", "Model comparison (PSIS-LOO)", [
        {"kind": "paragraph", "text": comparison.reading},
        {"kind": "html", "html": markup(html_table(comparison.table))},
        {"kind": "heading", "text": "Pareto k"}, {"kind": "list", "items": pareto_lines(comparison)},
        {"kind": "heading", "text": "Runs"},
        {"kind": "list", "items": [f"{name}: {path}" for name, path in comparison.runs.items()]},
    ])


def write_comparison(comparison: Comparison, out, overwrite: bool = False) -> Path:
    """A folder with comparison.md, comparison.html and comparison.csv, written atomically."""

    def fill(folder: Path) -> None:
        comparison.table.to_csv(folder / "comparison.csv")
        (folder / "comparison.md").write_text(render_comparison_markdown(comparison))
        (folder / "comparison.html").write_text(render_comparison_html(comparison))
        write_json(folder / "comparison.json", {"reading": comparison.reading, "pareto_k_bad": comparison.pareto_warnings,
                                               "runs": comparison.runs})

    return atomic_folder(Path(out), fill, overwrite)
