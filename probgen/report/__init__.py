"""The report's content: verdicts, summary table, predictive checks, plots and the model's own
sections, built in memory (`build_report`) and saved with the draws as a run folder
(`save_run`, `write_run`, `rebuild_report`).

Statistics come from `probgen.checks.diagnostics`, `probgen.checks` and `probgen.checks.loo` (and ArviZ's
summary); this module only gathers them. Rendering is `probgen.report.render`, the folder on disk
`probgen.report.runfolder`, comparison across runs `probgen.checks.comparison`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import arviz as az
import numpy as np
import pandas as pd

from probgen import checks
from probgen.checks import diagnostics
from probgen.checks import loo
from probgen.checks import sensitivity
from probgen.data import standardization_arrays
from probgen.report.readings import discrete_figure, discrete_text, graph_section, missing_text, reparam_text
from probgen.report.runfolder import (  # noqa: F401  (the run-folder API, re-exported: report.load_run, ...)
    RUN_FILES, TRAINING_NOTE, _write_report_files, atomic_folder, check_destination, load_config, load_run,
    start_training_folder, write_json,
)
from probgen.spec import ModelSpec, ReportPart, Section  # noqa: F401  (Section: report.Section, as before)


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
    failures: tuple[dict, ...] = ()  # steps that failed: {"step": ..., "error": ...}


# --------------------------------------------------------------------------------------------
# Building (in memory)
# --------------------------------------------------------------------------------------------
def summary_table(idata, spec: ModelSpec | None, config: dict, chains: bool = True) -> tuple[pd.DataFrame, str]:
    """ArviZ summary of the spec's summary variables, in the data's original units if the data
    were standardised and the model knows how to undo it. `chains` False (independent draws:
    an exact posterior, an approximation's draws): no R-hat or ESS, which judge Markov chains."""
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
    with warnings.catch_warnings(), diagnostics.one_chain_is_fine():
        # ArviZ's RuntimeWarnings on constant elements (their ESS and R-hat are NaN, shown as such
        # with the verdicts judging only varying elements) and its one-chain notice (said in words)
        warnings.simplefilter("ignore")
        if draws == 1:
            table = az.summary(posterior, var_names=var_names, kind="stats", stat_focus="mean")[["mean"]]
            table = table.rename(columns={"mean": "estimate"})
        else:
            # unrounded (ArviZ rounds to 3 decimals, which prints an MCSE of 0.0004 as 0); the
            # renderers show 4 significant digits
            table = az.summary(posterior, var_names=var_names, hdi_prob=0.94, round_to="none")
            if not chains:
                table = table.drop(columns=["ess_bulk", "ess_tail", "r_hat"], errors="ignore")
            elif posterior.sizes["chain"] < 2:  # R-hat compares chains: one chain has none to compare
                table = table.drop(columns=["r_hat"], errors="ignore")
    return table, units


def table_predictive_figure(idata, num_draws: int):
    """The posterior predictive check of a table (one observed site of rows x named columns):
    one panel per column under its name, since pooling columns of different units into one
    density on an axis called "x" says nothing; None for data of any other shape."""
    observed = idata.observed_data
    if len(observed.data_vars) != 1:
        return None
    site = observed[next(iter(observed.data_vars))]
    if not (site.ndim == 2 and site.dims[1] == "feature" and "feature" in site.coords):
        return None
    axes = np.ravel(az.plot_ppc(idata, var_names=[site.name], num_pp_samples=num_draws, flatten=[site.dims[0]]))
    for axis, column in zip(axes, site["feature"].values):
        axis.set_xlabel(str(column))
    axes[0].figure.tight_layout()
    return axes[0].figure


def figures_for(idata, spec: ModelSpec | None, method, var_names: Sequence[str],
                metrics: Mapping | None = None, graph: Mapping | None = None) -> dict[str, bytes]:
    """The report's plots as PNG bytes. A plot that fails is left out, with a note, rather
    than losing the whole report."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    makers: dict[str, Callable] = {}
    draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    var_names = _varying(idata, var_names)
    if method.markov_chains and var_names:
        makers["rank"] = lambda: az.plot_rank(idata, var_names=var_names)
    if draws > 1 and var_names:
        makers["posterior"] = lambda: az.plot_posterior(idata, var_names=var_names, hdi_prob=0.94)
    # a model that computes its observations from the parameters has no fixed data to plot against
    if "posterior_predictive" in idata.groups() and "predictive" not in checks.run_notes(idata):
        def ppc():
            table = table_predictive_figure(idata, min(100, draws))
            if table is not None:
                return table
            rows = checks.rows_view(idata)  # (sequence, time, feature) data: real steps as rows
            # a scalar observation has no distribution to draw (the predictive check covers it)
            names = [n for n in rows.observed_data.data_vars if rows.observed_data[n].size > 1] or \
                list(rows.observed_data.data_vars)
            first = rows.observed_data[names[0]]
            # one table with feature columns: a panel per column; otherwise (a user's model with
            # several observed sites of other shapes) one panel per site, all its values pooled,
            # rather than a panel (and 100 densities) for every element
            flatten = list(first.dims[:1]) if len(names) == 1 and "feature" in first.dims else None
            return az.plot_ppc(rows, var_names=names, num_pp_samples=min(100, draws), flatten=flatten)
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
            axis.set_ylabel(method.loss_label)
            axis.legend()
            return figure
        makers["loss"] = loss_curve
    if "discrete_posterior" in idata.groups() and idata.discrete_posterior.data_vars:
        makers["discrete"] = lambda: discrete_figure(idata)
    if metrics is not None and (metrics.get("sensitivity") or {}).get("flagged"):
        makers["sensitivity"] = lambda: sensitivity.sensitivity_figure(metrics["sensitivity"])
    if graph and "error" not in graph:
        from probgen.graph import graph_figure

        makers["model_graph"] = lambda: graph_figure(graph)
    if spec is not None and spec.plots is not None:
        makers["model"] = lambda: spec.plots(idata)

    pngs: dict[str, bytes] = {}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                # matplotlib and ArviZ plotting notices (deprecated arguments, tight_layout, too few
                # draws for a KDE); a plot that fails is named in the report instead
                warnings.simplefilter("ignore")
                result = make()
        except Exception as exc:  # a plot must not take the report down; say what broke
            pngs[f"{name}.failed"] = f"{type(exc).__name__}: {exc}".encode()
            plt.close("all")
            continue
        named = result if isinstance(result, dict) else {name: result}
        for figure_name, figure in named.items():
            if not hasattr(figure, "savefig"):  # ArviZ returns its axes: lay out the grid so that a row's
                figure = np.asarray(figure).ravel()[0].get_figure()  # x labels clear the titles below
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "tight_layout not applied": the figure is kept as it is
                    figure.tight_layout(h_pad=1.5)
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
    from probgen.infer import methods

    return diagnostics.assess(idata, methods.for_config(config), config.get("settings"),
                              _convergence_quantities(idata, spec), methods.facts_of(config))


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
    """The report of a run: verdicts, summary, predictive fit and checks, the model's own
    sections, plots. Each step runs on its own: one that fails is named in the report (and in
    `Report.failures`) and the others still run, so that a model the checks cannot handle still
    gets its draws summarised."""
    from probgen.infer import methods

    method = methods.for_config(config)
    failures: list[dict] = [dict(failure) for failure in config.get("failed_steps", ())]
    seconds: dict[str, float] = {}  # each step's wall time: metrics.json "report_seconds"

    def step(name: str, compute, default=None):
        import time

        start = time.perf_counter()
        try:
            return compute()
        except Exception as exc:  # one check must not take the report (or the draws) down
            failures.append({"step": name, "error": f"{type(exc).__name__}: {exc}"})
            return default
        finally:
            seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - start, 3)

    assessment = step("convergence diagnostics", lambda: diagnostics.assess(
        idata, method, config.get("settings"), _convergence_quantities(idata, spec), methods.facts_of(config)))
    if assessment is None:
        assessment = diagnostics.Assessment("failed", "The convergence checks could not run (see the failed steps): "
                                                      "do not use these estimates until they do.", ())
    if not method.posterior_report:  # no posterior of global parameters: the model's own report is the report
        return _model_report(idata, config, spec, assessment, sections, extra_metrics)
    seed = int(config.get("seed", 0))
    skipped = dict(checks.run_notes(idata))
    summary, units = step("posterior summary", lambda: summary_table(idata, spec, config, method.markov_chains),
                          (pd.DataFrame(columns=["mean"]), "not computed"))
    predictive = ({"available": False, "applies": False,
                   "reason": f"{method.describe()} does not score the model's own sites, so no LOO or WAIC"}
                  if not method.traces_model else
                  step("LOO and WAIC", lambda: loo.predictive_metrics(idata, skipped.get("loo")),
                       {"available": False, "reason": "failed (see the failed steps)"}))
    metrics = {"predictive": predictive,
               **(extra_metrics or {})}
    predictive_check = None
    draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    if "posterior_predictive" in idata.groups() and draws >= 100 and "predictive" not in skipped:
        predictive_check = step("posterior predictive check", lambda: checks.predictive_check(idata, seed=seed))
        held_out = "held_out_data" in idata.groups()
        quality = metrics["fit_quality"] = {}
        if predictive_check is not None:
            quality["predictive_check"] = predictive_check.table.to_dict("records")
        compared = step("generated against observed data", lambda: checks.generated_vs_observed(
            idata, seed=seed, group="held_out_data" if held_out else "observed_data"))
        if compared is not None and compared.get("skipped"):
            skipped["two_sample"] = compared["skipped"]
        elif compared is not None:
            quality["generated_vs_observed"] = compared
    prior_check = None
    if "prior_predictive" in idata.groups() and "observed_data" in idata.groups() and "predictive" not in skipped:
        prior_check = step("prior predictive check", lambda: checks.predictive_check(idata, "prior_predictive", seed=seed))
        if prior_check is not None:
            metrics.setdefault("fit_quality", {})["prior_predictive_check"] = prior_check.table.to_dict("records")
    discrete = step("discrete sites", lambda: checks.discrete_summary(idata))
    standard_sections = []
    sensitive = step("prior sensitivity", lambda: sensitivity.power_scaling(idata))
    if sensitive is not None:
        metrics["sensitivity"] = sensitive
        standard_sections.append(Section("Prior sensitivity (power-scaling)", sensitivity.sensitivity_text(sensitive),
                                         sensitivity.sensitivity_table(sensitive)))
    elif not method.traces_model:
        skipped["prior_sensitivity"] = (f"{method.describe()} draws what the family reports, not the model's sites: "
                                        "there is no log prior to power-scale")
    elif "log_prior" not in idata.groups() and draws > 1:
        skipped["prior_sensitivity"] = ("the model's log prior could not be computed from its trace at the draws, so "
                                        "there is no power-scaling sensitivity check")
    elif 1 < draws < sensitivity.MIN_DRAWS:
        skipped["prior_sensitivity"] = (f"{draws} draws: too few to re-weight for power-scaling sensitivity (it needs "
                                        f"at least {sensitivity.MIN_DRAWS}); draw more")
    elif draws <= 1:
        skipped["prior_sensitivity"] = ("a point estimate has no posterior draws to reweight, so there is no power-"
                                        "scaling sensitivity check (fit with nuts, svi or pathfinder for one)")
    cost = step("sampling cost", lambda: diagnostics.sampling_cost(idata, assessment))
    if cost is not None:
        metrics["sampling"] = cost
        per = cost["gradients_per_effective_draw"]
        standard_sections.append(Section(
            "Sampling cost",
            f"{cost['gradient_evaluations']:,} gradient evaluations (leapfrog steps) for {cost['draws']:,} kept draws"
            + (f", {per:.1f} per effective draw (the smallest bulk ESS, {cost['smallest_bulk_ess']:.0f}): the figure to "
               "compare samplers by, as fewer evaluations buy the same precision" if per is not None else "")
            + (f"; mean tree depth {cost['mean_tree_depth']:.2f}" if "mean_tree_depth" in cost else "")
            + (", step size per chain " + ", ".join(f"{s:.3g}" for s in cost["step_size_per_chain"])
               if cost.get("step_size_per_chain") else "")
            + (f", mean acceptance {cost['mean_acceptance']:.3f}"
               + (f" (target {target})" if (target := (config.get("settings") or {}).get("target_accept")) else "")
               if "mean_acceptance" in cost else "") + "."
            + (f" Warm-up adaptation: {(config.get('settings') or {})['adapt']} (--adapt)."
               if (config.get("settings") or {}).get("adapt") else "")))
    graph = methods.facts_of(config).get("model_graph")
    if graph and "error" not in graph:
        standard_sections.insert(0, graph_section(graph))
    elif graph:
        skipped["model_graph"] = f"the model's graph could not be read from its trace ({graph['error']})"
    elif not method.traces_model:
        skipped["model_graph"] = (f"{method.describe()} does not run the model's sites, so probgen reads no graph "
                                  "of them")
    reparameterised = methods.facts_of(config).get("reparam")
    if reparameterised:
        standard_sections.append(Section("Reparameterisation", reparam_text(reparameterised)))
    if discrete is not None:
        table, discrete_metrics = discrete
        metrics["discrete_sites"] = discrete_metrics
        standard_sections.append(Section("Discrete sites (summed out by NUTS, recovered by infer_discrete)",
                                         discrete_text(discrete_metrics), table))
    scores = step("held-out scores", lambda: checks.held_out_scores(idata))
    if scores is not None:
        metrics["held_out"] = scores
    if sections:
        metrics["sections"] = [_section_record(section) for section in sections]
    model_sections, model_figures = [], {}
    if spec is not None and spec.report is not None:
        part = step("the model's own report (ModelSpec.report)", lambda: spec.report(idata, config), ReportPart())
        model_sections, model_figures = list(part.sections), dict(part.figures)
        metrics.update(part.metrics)
        assessment = diagnostics.with_verdicts(assessment, part.verdicts)
    var_names = [v for v in (spec.summary_vars if spec and spec.summary_vars else idata.posterior.data_vars) if v in idata.posterior]
    draw = config.get("plots", True)  # `probgen fit --no-plots`: the report without its figures
    figures = step("plots", lambda: figures_for(idata, spec, method, var_names, metrics, graph), {}) if draw else {}
    if predictive_check is not None and draw:
        figures["predictive_statistics"] = predictive_statistics_figure(predictive_check)
    if prior_check is not None and draw:
        figures["prior_predictive_statistics"] = predictive_statistics_figure(
            prior_check, "Test statistics of data drawn from the prior predictive (histogram) and of the observed data (line)")
    if model_figures:
        import matplotlib.pyplot as plt

        if draw:
            figures.update({name: figure_png(figure) for name, figure in model_figures.items()})
        plt.close("all")
    if not draw:
        skipped["plots"] = "not drawn (--no-plots); `probgen report RUN_DIR` draws them"
    missing = (config.get("data") or {}).get("missing")
    if missing:
        skipped["missing"] = missing_text(missing, json.loads(idata.observed_data.attrs.get("missing", "{}"))
                                          if "observed_data" in idata.groups() else {})
    unused = (config.get("data") or {}).get("unused")
    if unused:
        skipped["unused"] = f"the model takes no argument named {', '.join(unused)}; those data entries were ignored"
    if skipped:
        metrics["skipped"] = skipped
    if failures:
        metrics["failed_steps"] = failures
    metrics["report_seconds"] = seconds
    return Report(config, assessment, summary, units, metrics, figures,
                  tuple(standard_sections) + tuple(model_sections) + tuple(sections), failures=tuple(failures))


def _model_report(idata, config, spec, assessment, sections, extra_metrics) -> Report:
    """The report of a fit without a posterior of global parameters (an amortised VAE): the
    model's `ReportPart` lays out the summary (for a VAE, one row per latent dimension), the
    sections, metrics and figures; sections given by the caller (an analysis script) follow."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    part = spec.report(idata, config)
    assessment = diagnostics.with_verdicts(assessment, part.verdicts)
    metrics = {"predictive": {"available": False, "applies": False,
                              "reason": "no posterior of global parameters to leave one out from: see the held-out scores"},
               **(extra_metrics or {}), **part.metrics}
    if sections:
        metrics["sections"] = [_section_record(section) for section in sections]
    figures = {name: figure_png(figure) for name, figure in part.figures.items()}
    plt.close("all")
    return Report(config, assessment, part.summary, part.summary_units, metrics, figures,
                  tuple(part.sections) + tuple(sections), summary_title=part.summary_title)


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
    # fixed spacing for the panels' titles and x labels (no y labels), in inches, rather than
    # `tight_layout`, which measured every tick label again (a third of this figure's time);
    # `figure_png` crops the margins
    height = 2.4 * rows
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, height), squeeze=False,
                                gridspec_kw=dict(left=0.03, right=0.97, bottom=0.3 / height, top=1 - 0.62 / height,
                                                 hspace=0.55 / 1.9, wspace=0.08))
    observed = {(r["variable"], r["statistic"], r["column"]): (r["observed"], r["p_value"]) for r in check.table.to_dict("records")}
    for axis, ((variable, statistic, column), series) in zip(axes.ravel(), items):
        value, p_value = observed[(variable, statistic, column)]
        # one filled step patch rather than `hist`'s 40 bars: a check of 19 statistics drew in
        # 1.7 s with bars, most of the report's plotting time for a small model
        counts, edges = np.histogram(np.asarray(series, float)[np.isfinite(series)], bins=40)
        axis.stairs(counts, edges, fill=True, color="0.75")
        axis.axvline(value, color="C3" if p_value < 0.025 or p_value > 0.975 else "black", lw=2)
        axis.set_title(f"{statistic}({column})  p = {p_value:.2f}", fontsize=9)
        axis.set_yticks([])
    for axis in axes.ravel()[len(items):]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10, y=1 - 0.1 / height, va="top")
    content = figure_png(figure)
    plt.close(figure)
    return content


def figure_png(figure) -> bytes:
    """A matplotlib figure as PNG bytes, as every report plot is stored: cropped to what it
    draws, with 0.1 in of margin, but never grown past twice the figure's own size. An artist
    far outside the axes (ArviZ's labels for a parameter that never moves) once made a
    1558 x 123945-pixel posterior plot, 750 MB and 4.6 s to write; such a figure is kept to its
    own area instead.

    The figure is drawn once and cropped to its drawn pixels: `savefig(bbox_inches="tight")`
    measured every artist's extent and drew the figure twice more (a laid-out figure keeps a
    layout placeholder, which makes savefig lay it out again), most of a report's plotting time.
    Only a figure that draws up to its own edge (a label cut off) is saved again through
    matplotlib's tight box, which reaches past the edge."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba
    from PIL import Image

    dpi = 90
    figure.set_dpi(dpi)
    # a Figure made without pyplot has a bare canvas with no renderer: PNGs are drawn by Agg
    canvas = figure.canvas if isinstance(figure.canvas, FigureCanvasAgg) else FigureCanvasAgg(figure)
    canvas.draw()  # lays the figure out (its layout engine, if any) and draws it
    pixels = np.asarray(canvas.buffer_rgba())
    background = np.round(np.array(to_rgba(figure.get_facecolor())) * 255).astype(np.uint8)
    drawn = np.any(pixels != background, axis=-1)
    rows, columns = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    buffer = io.BytesIO()
    height, width = drawn.shape
    if len(rows) and rows[0] > 0 and columns[0] > 0 and rows[-1] < height - 1 and columns[-1] < width - 1:
        margin = round(0.1 * dpi)
        crop = pixels[max(rows[0] - margin, 0):rows[-1] + 1 + margin, max(columns[0] - margin, 0):columns[-1] + 1 + margin]
        Image.fromarray(crop).save(buffer, format="png")
        return buffer.getvalue()
    own = figure.bbox_inches
    tight = figure.get_tightbbox(canvas.get_renderer()).padded(0.1)
    box = tight if tight.width <= 2 * own.width and tight.height <= 2 * own.height else own
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches=box)
    return buffer.getvalue()


def _varying(idata, var_names: Sequence[str]) -> list[str]:
    """The variables of `var_names` some element of which varies over the draws (as the
    convergence checks judge them, `diagnostics.varying_elements`): a parameter fixed by the
    model (the weight of a one-component mixture) has no distribution to draw; the summary table
    shows it."""
    varying = diagnostics.varying_elements(idata)
    return [name for name in var_names if name in varying]


def save_draws(fit, out, overwrite: bool, error: str, keep_files: Sequence[str] = (),
               extra_json: Mapping | None = None, extra_config: Mapping | None = None) -> Path:
    """The run folder when even the report could not be built: posterior.nc (every draw),
    config.json naming the failed step, and a short report.md saying so. Written atomically;
    keep_files, extra_json and extra_config as for `save_run`."""
    config = {**fit.config(), **(extra_config or {}),
              "failed_steps": [*fit.failures, {"step": "report", "error": error}]}

    def fill(folder: Path) -> None:
        _carry(Path(out), folder, keep_files, extra_json)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # xarray's notices on encoding attributes: the file round-trips (tests)
            fit.idata.to_netcdf(str(folder / "posterior.nc"))
        write_json(folder / "config.json", config)
        lines = [f"- {failure['step']}: {failure['error']}" for failure in config["failed_steps"]]
        (folder / "report.md").write_text("# probgen run: the report could not be built\n\nThe draws are saved in "
                                          "posterior.nc. Failed steps:\n\n" + "\n".join(lines) + "\n")

    return atomic_folder(Path(out), fill, overwrite)


def write_run(fit, out, overwrite: bool = False, sections: Sequence[Section] = (), extra_metrics: Mapping | None = None) -> Path:
    """Write a `Fit` as a run folder with its report. Returns the folder's path."""
    return save_run(fit, build_report(fit.idata, run_config(fit), fit.spec, sections, extra_metrics), out, overwrite)


def run_config(fit) -> dict:
    """config.json of a fit: how it was made, plus the steps after inference that failed."""
    config = fit.config()
    if getattr(fit, "failures", None):
        config["failed_steps"] = list(fit.failures)
    return config


def save_run(fit, report: Report, out, overwrite: bool = False, extra_config: Mapping | None = None,
             keep_files: Sequence[str] = (), extra_json: Mapping | None = None) -> Path:
    """Write a `Fit` and its already built `Report` as a run folder, atomically.

    extra_config: added to config.json (e.g. an amortised run's training request).
    keep_files: files of the folder being replaced that the new one keeps (a training
    checkpoint or an MCMC run's final sampler state, so that a finished run can be resumed
    with more steps or draws). extra_json: file name -> content of more JSON files to write
    (an MCMC run's checkpoint.json, marked finished)."""
    out = Path(out)
    if extra_config:
        report = dataclasses.replace(report, config={**report.config, **extra_config})

    def fill(folder: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # xarray's notices on encoding attributes: the file round-trips (tests)
            fit.idata.to_netcdf(str(folder / "posterior.nc"))
        _write_report_files(folder, report, out)
        _carry(out, folder, keep_files, extra_json)

    return atomic_folder(out, fill, overwrite)


def _carry(old: Path, new: Path, keep_files: Sequence[str], extra_json: Mapping | None) -> None:
    for name in keep_files:
        if (old / name).is_file():
            shutil.copy2(old / name, new / name)
        elif (old / name).is_dir():
            shutil.copytree(old / name, new / name)
    for name, content in (extra_json or {}).items():
        write_json(new / name, content)


def rebuild_report(run_dir, spec: ModelSpec | None = None) -> Path:
    """Recompute diagnostics and rewrite summary, metrics, plots and report of a run folder.

    Sections added by an analysis script (such as a model comparison) are kept: they are
    stored in metrics.json under "sections".
    """
    run_dir = Path(run_dir)
    idata, config = load_run(run_dir)
    config.pop("plots", None)  # `probgen report` draws the plots a `fit --no-plots` left out
    previous = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else {}
    # what the report computes again is not carried (a stale "skipped" or "failed_steps" entry
    # would outlive its cause: the plots a `fit --no-plots` left out, a step that now succeeds)
    extra = {k: v for k, v in previous.items()
             if k not in ("predictive", "sections", "skipped", "failed_steps", "report_seconds")}
    sections = [_section_from_record(record) for record in previous.get("sections", [])]
    report = build_report(idata, config, spec, sections, extra_metrics=extra)

    def fill(folder: Path) -> None:
        # the checkpoint of an amortised run, the final state of an MCMC run, when there is one
        from probgen.infer.amortized import CHECKPOINT

        for name in ("posterior.nc", CHECKPOINT, "sampler_state.nc", "checkpoint.json"):
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, folder / name)
        if (run_dir / "chains").is_dir():  # an optimiser's saved state (SVI, MAP), for --resume
            shutil.copytree(run_dir / "chains", folder / "chains")
        _write_report_files(folder, report, run_dir)

    return atomic_folder(run_dir, fill, overwrite=True)
