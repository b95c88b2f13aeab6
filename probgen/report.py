"""The run folder and its report (HTML and Markdown).

    runs/<name>/
      config.json  posterior.nc  summary.csv  diagnostics.json  metrics.json
      plots/*.png  report.html  report.md

The folder is written under a temporary name beside its destination and renamed at the end,
so an interrupted or failed run leaves no half-written folder. Statistics come from
`probgen.diagnostics` and `probgen.checks` (and ArviZ's summary); this module only lays them out.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd

from probgen import checks, diagnostics
from probgen.data import standardization_arrays
from probgen.errors import RunFolderError
from probgen.spec import ModelSpec

RUN_FILES = ("config.json", "posterior.nc", "summary.csv", "diagnostics.json", "metrics.json", "report.html", "report.md")


@dataclasses.dataclass(frozen=True)
class Section:
    """An extra report section: a title, a paragraph, and optionally a table."""

    title: str
    text: str
    table: pd.DataFrame | None = None


@dataclasses.dataclass
class Report:
    config: dict
    assessment: diagnostics.Assessment
    summary: pd.DataFrame
    summary_units: str
    metrics: dict
    figures: dict  # name -> PNG bytes
    sections: tuple[Section, ...] = ()
    summary_title: str = "Posterior summary"


# --------------------------------------------------------------------------------------------
# Building (in memory)
# --------------------------------------------------------------------------------------------
def summary_table(idata, spec: ModelSpec | None, config: dict) -> tuple[pd.DataFrame, str]:
    """ArviZ summary of the spec's summary variables, in the data's original units if the data
    were standardised and the model knows how to undo it."""
    posterior = idata.posterior
    var_names = [v for v in (spec.summary_vars if spec and spec.summary_vars else posterior.data_vars) if v in posterior]
    if not var_names:  # the spec names its summary quantities and this run has none (a BNN without noise sd)
        return pd.DataFrame(columns=["mean"]), "no scalar parameters to summarise; see the model's sections"
    units = "data units"
    standardization = (config.get("data") or {}).get("standardization")
    if standardization:
        if spec is not None and spec.to_original_units is not None:
            loc, scale = standardization_arrays(standardization, config["data"]["columns"])
            posterior = spec.to_original_units(posterior, loc, scale)
            units = "original data units (the model was fitted to standardised data)"
        else:
            units = "standardised units (the model cannot convert back)"
    draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if draws == 1:
            table = az.summary(posterior, var_names=var_names, kind="stats", stat_focus="mean")[["mean"]]
            table = table.rename(columns={"mean": "estimate"})
        else:
            table = az.summary(posterior, var_names=var_names, hdi_prob=0.94)
    return table, units


def figures_for(idata, spec: ModelSpec | None, method: str, var_names: Sequence[str]) -> dict[str, bytes]:
    """The report's plots as PNG bytes. A plot that fails is left out, with a note, rather
    than losing the whole report."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    makers: dict[str, Callable] = {}
    draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    var_names = list(var_names)
    if method in ("nuts", "hmc") and var_names:
        makers["rank"] = lambda: az.plot_rank(idata, var_names=var_names)
    if draws > 1 and var_names:
        makers["posterior"] = lambda: az.plot_posterior(idata, var_names=var_names, hdi_prob=0.94)
    if "posterior_predictive" in idata.groups():
        def ppc():
            rows = checks.rows_view(idata)  # (sequence, time, feature) data: real steps as rows
            flatten = list(rows.observed_data[next(iter(rows.observed_data.data_vars))].dims[:1])
            return az.plot_ppc(rows, num_pp_samples=min(100, draws), flatten=flatten)
        makers["posterior_predictive"] = ppc
    if "optimization" in idata.groups():
        def loss_curve():
            figure, axis = plt.subplots(figsize=(6, 3.5))
            loss = idata.optimization["loss"].values
            axis.plot(loss, lw=0.5, color="0.6", label="loss per step")
            window = max(1, len(loss) // 100)
            smoothed = np.convolve(loss, np.ones(window) / window, mode="valid")
            axis.plot(np.arange(window - 1, len(loss)), smoothed, color="C0", label=f"mean of {window} steps")
            low, high = np.percentile(loss[len(loss) // 10 :], [0, 99]) if len(loss) > 10 else (loss.min(), loss.max())
            axis.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.05 * (high - low + 1e-9))
            axis.set_xlabel("step")
            axis.set_ylabel("negative ELBO" if method == "svi" else "negative log posterior")
            axis.legend()
            return figure
        makers["loss"] = loss_curve
    if spec is not None and spec.plots is not None:
        makers["model"] = lambda: spec.plots(idata)

    pngs: dict[str, bytes] = {}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = make()
        except Exception as exc:  # a plot must not take the report down; say what broke
            pngs[f"{name}.failed"] = f"{type(exc).__name__}: {exc}".encode()
            plt.close("all")
            continue
        named = result if isinstance(result, dict) else {name: result}
        for figure_name, figure in named.items():
            if not hasattr(figure, "savefig"):
                figure = np.asarray(figure).ravel()[0].get_figure()
            pngs[figure_name] = figure_png(figure)
        plt.close("all")
    return pngs


def _section_record(section: Section) -> dict:
    table = None
    if section.table is not None:
        table = json.loads(section.table.to_json(orient="split"))
    return {"title": section.title, "text": section.text, "table": table}


def _section_from_record(record: dict) -> Section:
    table = record.get("table")
    if table is not None:
        table = pd.DataFrame(table["data"], index=table["index"], columns=table["columns"])
    return Section(record["title"], record["text"], table)


def assess_run(idata, config: dict, spec: ModelSpec | None = None) -> diagnostics.Assessment:
    """The convergence verdicts of a run, judged on what its spec says to judge
    (`ModelSpec.convergence_on`); the spec is loaded from the run's config when not given."""
    if spec is None:
        from probgen.spec import load_spec

        try:
            spec = load_spec(config["model"]["reference"])
        except Exception:  # a moved model file: judge the posterior as it is
            spec = None
    return diagnostics.assess(idata, config["method"], config.get("settings"), _convergence_quantities(idata, spec))


def _convergence_quantities(idata, spec: ModelSpec | None):
    """What R-hat and ESS judge: the spec's `convergence_on` quantities, or None (the posterior)."""
    return spec.convergence_on(idata) if spec is not None and spec.convergence_on is not None else None


def build_report(
    idata,
    config: dict,
    spec: ModelSpec | None = None,
    sections: Sequence[Section] = (),
    extra_metrics: Mapping | None = None,
) -> Report:
    method = config["method"]
    assessment = diagnostics.assess(idata, method, config.get("settings"), _convergence_quantities(idata, spec))
    if spec is not None and spec.amortized is not None and "parameters" in idata.groups():
        return _amortized_report(idata, config, spec, assessment, sections, extra_metrics)
    summary, units = summary_table(idata, spec, config)
    metrics = {"predictive": checks.predictive_metrics(idata), **(extra_metrics or {})}
    predictive_check = None
    draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    if "posterior_predictive" in idata.groups() and draws >= 100:
        predictive_check = checks.predictive_check(idata, seed=int(config.get("seed", 0)))
        held_out = "held_out_data" in idata.groups()
        metrics["fit_quality"] = {
            "predictive_check": predictive_check.table.to_dict("records"),
            "generated_vs_observed": checks.generated_vs_observed(
                idata, seed=int(config.get("seed", 0)), group="held_out_data" if held_out else "observed_data"),
        }
    prior_check = None
    if "prior_predictive" in idata.groups() and "observed_data" in idata.groups():
        prior_check = checks.predictive_check(idata, "prior_predictive", seed=int(config.get("seed", 0)))
        metrics.setdefault("fit_quality", {})["prior_predictive_check"] = prior_check.table.to_dict("records")
    scores = checks.held_out_scores(idata)
    if scores is not None:
        metrics["held_out"] = scores
    if sections:
        metrics["sections"] = [_section_record(section) for section in sections]
    model_sections, model_figures = [], {}
    if spec is not None and spec.report is not None:
        model_sections, model_metrics, model_figures = spec.report(idata, config)
        metrics.update(model_metrics)
    var_names = [v for v in (spec.summary_vars if spec and spec.summary_vars else idata.posterior.data_vars) if v in idata.posterior]
    figures = figures_for(idata, spec, method, var_names)
    if predictive_check is not None:
        figures["predictive_statistics"] = predictive_statistics_figure(predictive_check)
    if prior_check is not None:
        figures["prior_predictive_statistics"] = predictive_statistics_figure(
            prior_check, "Test statistics of data drawn from the prior predictive (histogram) and of the observed data (line)")
    if model_figures:
        import matplotlib.pyplot as plt

        figures.update({name: figure_png(figure) for name, figure in model_figures.items()})
        plt.close("all")
    return Report(config, assessment, summary, units, metrics, figures, tuple(model_sections) + tuple(sections))


def _amortized_report(idata, config, spec, assessment, sections, extra_metrics) -> Report:
    """The report of an amortised model (VAE): its spec lays out the summary (one row per
    latent dimension), the sections, metrics and figures; sections given by the caller (an
    analysis script) follow them."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    summary, model_sections, model_metrics, made = spec.amortized.report(idata, config)
    metrics = {"predictive": {"available": False, "reason": "amortised model: see the held-out bounds"},
               **(extra_metrics or {}), **model_metrics}
    if sections:
        metrics["sections"] = [_section_record(section) for section in sections]
    figures = {name: figure_png(figure) for name, figure in made.items()}
    plt.close("all")
    units = "nats, per latent dimension, over the held-out rows"
    return Report(config, assessment, summary, units, metrics, figures, tuple(model_sections) + tuple(sections),
                  summary_title="Latent dimensions")


def predictive_statistics_figure(
    check, title: str = "Test statistics of replicated data (histogram) and of the observed data (line)",
) -> bytes:
    """Histograms of each test statistic over replicated data, the observed value marked."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    items = list(check.replicated.items())
    columns = min(4, len(items))
    rows = -(-len(items) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.4 * rows), squeeze=False)
    observed = {(r["variable"], r["statistic"], r["column"]): (r["observed"], r["p_value"]) for r in check.table.to_dict("records")}
    for axis, ((variable, statistic, column), series) in zip(axes.ravel(), items):
        value, p_value = observed[(variable, statistic, column)]
        axis.hist(series, bins=40, color="0.75")
        axis.axvline(value, color="C3" if p_value < 0.025 or p_value > 0.975 else "black", lw=2)
        axis.set_title(f"{statistic}({column})  p = {p_value:.2f}", fontsize=9)
        axis.set_yticks([])
    for axis in axes.ravel()[len(items):]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    content = figure_png(figure)
    plt.close(figure)
    return content


def figure_png(figure) -> bytes:
    """A matplotlib figure as PNG bytes, as every report plot is stored."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def _format(value) -> str:
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "nan"
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown_table(frame: pd.DataFrame, index: bool = True) -> str:
    headers = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, row in frame.iterrows():
        cells = ([str(label)] if index else []) + [_format(v) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _checks_frame(assessment) -> pd.DataFrame:
    return pd.DataFrame(
        [{"check": v.check, "status": v.status, "value": v.value, "threshold": v.threshold, "reason": v.reason}
         for v in assessment.verdicts]
    )


def _title(config: dict) -> str:
    data = (config.get("data") or {}).get("source", "data")
    return f"{config['model']['name']} on {data} ({config['method'].upper()})"


def _metrics_lines(metrics: dict) -> list[str]:
    predictive = metrics.get("predictive", {})
    lines = []
    if predictive.get("available") is False:
        lines.append(f"- in-sample predictive scores (LOO, WAIC) not computed: {predictive.get('reason')}")
    if "lppd" in predictive:
        lines.append(f"- log pointwise predictive density (in sample): {predictive['lppd']:.2f} nats "
                     f"({predictive['lppd_per_point']:.3f} per point, {predictive['num_points']} points)")
    loo = predictive.get("loo", {})
    if loo.get("available", True) and "elpd_loo" in loo:
        lines.append(f"- PSIS-LOO elpd: {loo['elpd_loo']:.2f} (SE {loo['se']:.2f}), effective parameters p_loo {loo['p_loo']:.1f}")
        if loo["pareto_k_bad"]:
            points = ", ".join(f"{p['point']} (k={p['k']:.2f})" for p in loo["pareto_k_bad"][:10])
            lines.append(f"- Pareto k > 0.7 (LOO unreliable) at points: {points}")
        else:
            lines.append(f"- every Pareto k <= 0.7 (largest {loo['pareto_k_max']:.2f}): LOO is reliable")
    elif loo:
        lines.append(f"- LOO not computed: {loo.get('reason')}")
    waic = predictive.get("waic")
    if waic:
        lines.append(f"- WAIC elpd: {waic['elpd_waic']:.2f} (SE {waic['se']:.2f})")
    held_out = metrics.get("held_out")
    if held_out:
        lines.append(f"- held out: {held_out['reading']}")
    return lines


def _fit_quality_lines(metrics: dict) -> tuple[list[str], pd.DataFrame | None]:
    quality = metrics.get("fit_quality")
    if not quality:
        return [], None
    lines = []
    prior = quality.get("prior_predictive_check")
    if prior:
        conflicts = [row["reading"] for row in prior if row["p_value"] < 0.025 or row["p_value"] > 0.975]
        lines += ["Prior predictive: " + line for line in conflicts] or [
            "Prior predictive: every test statistic of the observed data is within what the prior predicts "
            "(all p-values in [0.025, 0.975])"]
    if "predictive_check" not in quality:
        return lines, None
    table = pd.DataFrame(quality["predictive_check"])
    flagged = [row["reading"] for row in quality["predictive_check"]
               if row["p_value"] < 0.025 or row["p_value"] > 0.975]
    lines += ["Posterior predictive: " + line for line in flagged] or [
        "Posterior predictive: every test statistic of the observed data is typical of the model "
        "(all p-values in [0.025, 0.975])"]
    generated = quality["generated_vs_observed"]
    held_out = generated.get("compared_with") == "held_out_data"
    if held_out:
        lines.append(f"Generated data against the {generated['rows']} held-out rows, which the fit did not see:")
    lines += [test["reading"] for test in generated["tests"]]
    lines.append(generated["kl_observed_to_generated"]["reading"])
    if not held_out:
        lines.append("These are the data the model was fitted to: a rejection means the model cannot reproduce "
                     "them; no rejection is weaker evidence than the same tests on held-out data (fit with --holdout).")
    shown = table[["variable", "statistic", "column", "observed", "predictive_mean", "predictive_3%", "predictive_97%", "p_value"]]
    return lines, shown


def _fit_quality_markdown(metrics: dict) -> list[str]:
    lines, table = _fit_quality_lines(metrics)
    if not lines:
        return []
    return ["## Fit quality", "", *[f"- {line}" for line in lines], "",
            *([markdown_table(table, index=False), ""] if table is not None else [])]


def render_markdown(report: Report) -> str:
    a = report.assessment
    out = [f"# probgen report: {_title(report.config)}", "",
           f"## Verdict: {a.overall.upper()}", "", a.summary, "",
           markdown_table(_checks_frame(a), index=False), "",
           f"## {report.summary_title}", "", f"Units: {report.summary_units}.", "",
           markdown_table(report.summary), "",
           "## Predictive fit", "", *_metrics_lines(report.metrics), ""]
    out += _fit_quality_markdown(report.metrics)
    for section in report.sections:
        out += [f"## {section.title}", "", section.text, ""]
        if section.table is not None:
            out += [markdown_table(section.table), ""]
    out += ["## Plots", ""]
    for name in report.figures:
        if name.endswith(".failed"):
            out.append(f"- plot '{name[:-7]}' could not be drawn: {report.figures[name].decode()}")
        else:
            out.append(f"![{name}](plots/{name}.png)")
    out += ["", "## Configuration", "", "```json", json.dumps(report.config, indent=2), "```", ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:0.9em;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:last-child{text-align:left}.verdict{font-size:1.4em;padding:0.4em 0.8em;border-radius:6px;display:inline-block;color:#fff}
.trusted{background:#2e7d32}.suspect{background:#ef8f00}.failed{background:#c62828}
.pass{color:#2e7d32}.warn{color:#ef8f00;font-weight:bold}.fail{color:#c62828;font-weight:bold}.skip{color:#777}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:0.85em}
"""


def render_html(report: Report) -> str:
    a = report.assessment
    esc = html.escape
    checks_rows = "".join(
        f"<tr><td>{esc(v.check)}</td><td class='{v.status}'>{v.status}</td><td>{esc(_format(v.value))}</td>"
        f"<td>{esc(v.threshold)}</td><td>{esc(v.reason)}</td></tr>"
        for v in a.verdicts
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>probgen: {esc(_title(report.config))}</title><style>{_CSS}</style></head><body>",
        f"<h1>probgen report: {esc(_title(report.config))}</h1>",
        f"<h2>Verdict</h2><div class='verdict {a.overall}'>{a.overall.upper()}</div><p>{esc(a.summary)}</p>",
        "<table><tr><th>check</th><th>status</th><th>value</th><th>threshold</th><th>reason</th></tr>",
        checks_rows, "</table>",
        f"<h2>{esc(report.summary_title)}</h2><p>Units: {esc(report.summary_units)}.</p>",
        report.summary.to_html(float_format=lambda v: f"{v:.4g}", border=0),
        "<h2>Predictive fit</h2><ul>",
        *(f"<li>{esc(line[2:])}</li>" for line in _metrics_lines(report.metrics)), "</ul>",
    ]
    quality_lines, quality_table = _fit_quality_lines(report.metrics)
    if quality_lines:
        parts += ["<h2>Fit quality</h2><ul>", *(f"<li>{esc(line)}</li>" for line in quality_lines), "</ul>"]
        if quality_table is not None:
            parts.append(quality_table.to_html(float_format=lambda v: f"{v:.4g}", border=0, index=False))
    for section in report.sections:
        parts.append(f"<h2>{esc(section.title)}</h2><p>{esc(section.text)}</p>")
        if section.table is not None:
            parts.append(section.table.to_html(float_format=lambda v: f"{v:.4g}", border=0))
    parts.append("<h2>Plots</h2>")
    for name, content in report.figures.items():
        if name.endswith(".failed"):
            parts.append(f"<p>Plot '{esc(name[:-7])}' could not be drawn: {esc(content.decode())}</p>")
        else:
            encoded = base64.b64encode(content).decode()
            parts.append(f"<h3>{esc(name.replace('_', ' '))}</h3><img alt='{esc(name)}' src='data:image/png;base64,{encoded}'>")
    parts.append(f"<h2>Configuration</h2><pre>{esc(json.dumps(report.config, indent=2))}</pre></body></html>")
    return "\n".join(parts)


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


def _write_report_files(folder: Path, report: Report) -> None:
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


def write_run(fit, out, overwrite: bool = False, sections: Sequence[Section] = (), extra_metrics: Mapping | None = None) -> Path:
    """Write a `Fit` as a run folder with its report. Returns the folder's path."""
    return save_run(fit, build_report(fit.idata, fit.config(), fit.spec, sections, extra_metrics), out, overwrite)


def save_run(fit, report: Report, out, overwrite: bool = False, extra_config: Mapping | None = None,
             keep_files: Sequence[str] = ()) -> Path:
    """Write a `Fit` and its already built `Report` as a run folder, atomically.

    extra_config: added to config.json (e.g. an amortised run's training request).
    keep_files: files of the folder being replaced that the new one keeps (a training
    checkpoint, so that a finished run can still be resumed with more steps)."""
    out = Path(out)
    if extra_config:
        report = dataclasses.replace(report, config={**report.config, **extra_config})

    def fill(folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit.idata.to_netcdf(str(folder / "posterior.nc"))
        _write_report_files(folder, report)
        for name in keep_files:
            if (out / name).is_file():
                shutil.copy2(out / name, folder / name)

    return atomic_folder(out, fill, overwrite)


TRAINING_NOTE = "TRAINING.md"


def start_training_folder(out, request: dict, resume_command: str, overwrite: bool = False) -> Path:
    """Create the run folder of an amortised fit (VAE) before training starts, so that its
    checkpoints have a home that survives an interruption: config.json holds the training
    request (status "training") and TRAINING.md says how to resume. Written atomically; the
    finished run folder replaces it, checkpoint kept."""

    def fill(folder: Path) -> None:
        write_json(folder / "config.json", {"status": "training", "request": request})
        (folder / TRAINING_NOTE).write_text(
            "# Training in progress or interrupted\n\nThis folder holds the checkpoints of an unfinished training run. "
            f"Carry on with:\n\n    {resume_command}\n")

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
        raise RunFolderError(f"'{run_dir}' holds an unfinished training run, with no report yet; carry on with: "
                             + (run_dir / TRAINING_NOTE).read_text().split("Carry on with:")[-1].strip())
    for name in ("config.json", "posterior.nc"):
        if not (run_dir / name).is_file():
            raise RunFolderError(f"'{run_dir}' is not a probgen run folder: {name} is missing")
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{run_dir / 'config.json'} is not valid JSON: {exc}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(str(run_dir / "posterior.nc"))
        idata.load()
    return idata, config


def rebuild_report(run_dir, spec: ModelSpec | None = None) -> Path:
    """Recompute diagnostics and rewrite summary, metrics, plots and report of a run folder.

    Sections added by an analysis script (such as a model comparison) are kept: they are
    stored in metrics.json under "sections".
    """
    run_dir = Path(run_dir)
    idata, config = load_run(run_dir)
    previous = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    extra = {k: v for k, v in previous.items() if k not in ("predictive", "sections")}
    sections = [_section_from_record(record) for record in previous.get("sections", [])]
    report = build_report(idata, config, spec, sections, extra_metrics=extra)

    def fill(folder: Path) -> None:
        for name in ("posterior.nc", "checkpoint.pkl"):  # the checkpoint of an amortised run, when there is one
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, folder / name)
        _write_report_files(folder, report)

    return atomic_folder(run_dir, fill, overwrite=True)


# --------------------------------------------------------------------------------------------
# Model comparison across run folders
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
    """Rank saved runs by PSIS-LOO (`checks.compare`), each with its convergence verdict."""
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
        warnings_by_run[name] = checks.predictive_metrics(idata)["loo"]["pareto_k_bad"]
    sizes = {name: int(np.prod([idata.log_likelihood[v].shape[2:] for v in idata.log_likelihood.data_vars][0]))
             for name, idata in fits.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise RunFolderError(f"runs were fitted to different numbers of points ({listed}); LOO compares models on the same data")
    table, reading = checks.compare(fits, convergence=verdicts)
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
    esc = html.escape
    return "\n".join([
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>probgen: model comparison</title>",
        f"<style>{_CSS}</style></head><body><h1>Model comparison (PSIS-LOO)</h1>",
        f"<p>{esc(comparison.reading)}</p>",
        comparison.table.to_html(float_format=lambda v: f"{v:.4g}", border=0),
        "<h2>Pareto k</h2><ul>", *(f"<li>{esc(line)}</li>" for line in pareto_lines(comparison)), "</ul>",
        "<h2>Runs</h2><ul>", *(f"<li>{esc(n)}: {esc(p)}</li>" for n, p in comparison.runs.items()), "</ul></body></html>",
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
