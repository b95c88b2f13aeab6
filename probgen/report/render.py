"""The report rendered as Markdown and as self-contained HTML (images inlined).

Takes a built `probgen.report.Report` (duck-typed: config, assessment, summary, metrics,
figures, sections) and lays it out; computes nothing.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pandas as pd

# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
def _format(value) -> str:
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "nan"
        return f"{value:.4g}"
    return "" if value is None else str(value)


def supported_decimals(mcse: float) -> int | None:
    """The decimal places an estimate with Monte Carlo standard error `mcse` supports: down to the
    place of the MCSE's first significant digit (an MCSE of 0.012 supports 2 decimals, of 30
    supports tens: -1); None when the MCSE is 0 or not finite (nothing to go by)."""
    if not (isinstance(mcse, (int, float, np.floating)) and math.isfinite(mcse) and mcse > 0):
        return None
    return min(-math.floor(math.log10(mcse)), 10)


def rounded(value: float, decimals: int) -> str:
    """`value` to `decimals` places (negative: to tens, hundreds, ...)."""
    return f"{value:.{decimals}f}" if decimals >= 0 else f"{round(value, decimals):.0f}"


def summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    """The posterior summary as a reader should see it: each row's mean, sd and HDI bounds to the
    decimal its mean's MCSE supports (a mean of 14.0312 with MCSE 0.012 shows as 14.03, never a
    bound rounded to "14 to 14"), the MCSEs to 2 significant digits, ESS in whole draws and R-hat
    to 3 decimals. A table without an MCSE column (one draw, a family's own summary) is shown
    as it is, to 4 significant digits."""
    if "mcse_mean" not in summary.columns or summary.empty:
        return summary
    def finite(value) -> bool:
        return isinstance(value, (int, float, np.floating)) and math.isfinite(value)

    shown = summary.astype(object).copy()
    for label, row in summary.iterrows():
        decimals = supported_decimals(row["mcse_mean"])
        by_mcse = {column: (lambda v: rounded(v, decimals)) if decimals is not None else None
                   for column in ("mean", "sd", "hdi_3%", "hdi_97%")}
        fixed = {"mcse_mean": "{:.2g}".format, "mcse_sd": "{:.2g}".format, "ess_bulk": "{:.0f}".format,
                 "ess_tail": "{:.0f}".format, "r_hat": "{:.3f}".format}
        for column, form in {**by_mcse, **fixed}.items():
            if column in summary.columns:
                value = row[column]
                shown.loc[label, column] = form(value) if form is not None and finite(value) else _format(value)
    return shown


def _shown(frame: pd.DataFrame, index: bool) -> tuple[pd.DataFrame, bool]:
    """What a reader should see of `frame`: row numbers 0..N-1 (a default index) are not
    shown, and a named index becomes the first column under its name (not a header row of
    its own, as pandas' HTML puts it)."""
    if not index:
        return frame, False
    if isinstance(frame.index, pd.RangeIndex) and frame.index.name is None and frame.index.start == 0 and \
            frame.index.step == 1:
        return frame, False
    if frame.index.name is not None and frame.index.name not in frame.columns:
        return frame.reset_index(), False
    return frame, True


def text_html(text: str) -> str:
    """A section's text (written as Markdown: paragraphs apart by blank lines, "- " items,
    blocks indented by 4 spaces) as HTML: the indented blocks (generated text, commands) keep
    their line breaks in <pre>, items become a list, the rest paragraphs."""
    import html as html_module

    out, paragraph, block, items = [], [], [], []

    def flush():
        if paragraph:
            out.append(f"<p>{html_module.escape(' '.join(paragraph))}</p>")
        if items:
            out.append("<ul>" + "".join(f"<li>{html_module.escape(item)}</li>" for item in items) + "</ul>")
        while block and not block[-1].strip():
            block.pop()
        if block:
            out.append(f"<pre>{html_module.escape(chr(10).join(block))}</pre>")
        paragraph.clear(), items.clear(), block.clear()

    for line in text.split("\n"):
        if line.startswith("    ") and not paragraph and not items:
            block.append(line[4:])
        elif not line.strip():
            if block:
                block.append("")  # a blank line inside generated text
            else:
                flush()
        elif line.lstrip().startswith("- "):
            if paragraph or block:
                flush()
            items.append(line.lstrip()[2:].strip())
        else:
            if block or items:
                flush()
            paragraph.append(line.strip())
    flush()
    return "".join(out)


LONG_TABLE = 25  # rows above which a table in the HTML report is folded (<details>), one click away


def html_table(frame: pd.DataFrame, index: bool = True) -> str:
    """`frame` as an HTML table, numbers to 4 significant digits, shown as `_shown` says; a
    table of more than `LONG_TABLE` rows is folded under a line saying how many rows it has."""
    frame, index = _shown(frame, index)
    table = frame.to_html(float_format=lambda v: f"{v:.4g}", border=0, index=index)
    if len(frame) > LONG_TABLE:
        return f"<details><summary>{len(frame):,} rows (click to show)</summary>{table}</details>"
    return table


def markdown_table(frame: pd.DataFrame, index: bool = True) -> str:
    frame, index = _shown(frame, index)
    headers = ([frame.index.name or ""] if index else []) + [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label, row in frame.iterrows():
        cells = ([str(label)] if index else []) + [_format(v) for v in row.tolist()]
        # a cell's own "|" (a character a language model predicted) or line break must not break the table
        cells = [cell.replace("|", "\\|").replace("\n", "\\n") for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _checks_frame(assessment) -> pd.DataFrame:
    return pd.DataFrame(
        [{"check": v.check, "status": v.status, "value": "—" if v.value is None else v.value, "threshold": v.threshold,
          "reason": v.reason}
         for v in assessment.verdicts]
    )


def _title(config: dict) -> str:
    data = (config.get("data") or {}).get("source", "data")
    title = f"{config['model']['name']} on {data} ({config['method'].upper()})"
    incomplete = config.get("incomplete")
    if incomplete:  # a run stopped early (or still running): the report of the draws so far
        title = f"incomplete: {incomplete['draws']} of {incomplete['of']} draws per chain, {title}"
    return title


PLAIN_UNITS = "data units"  # the summary's units when nothing was converted: not worth a line


def _units_line(units: str) -> list[str]:
    """The line saying the summary's units, when they are worth saying (converted from
    standardised data, or given by the family), followed by a blank line."""
    return [f"Units: {units}.", ""] if units and units != PLAIN_UNITS else []


def _predictive_applies(metrics: dict) -> bool:
    """False for a method that never scores the model's own sites (an exact update, a
    trainer, a game): no "LOO, WAIC not computed" bullet on a report that can never have them."""
    return (metrics.get("predictive") or {}).get("applies", True)


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
    generated = quality.get("generated_vs_observed")
    held_out = generated is not None and generated.get("compared_with") == "held_out_data"
    if held_out:
        lines.append(f"Generated data against the {generated['rows']} held-out rows, which the fit did not see:")
    if generated is not None:
        lines += [test["reading"] for test in generated["tests"]]
        lines.append(generated["kl_observed_to_generated"]["reading"])
    if generated is not None and not held_out:
        lines.append("These are the data the model was fitted to: a rejection means the model cannot reproduce "
                     "them; no rejection is weaker evidence than the same tests on held-out data (fit with --holdout).")
    shown = table[["variable", "statistic", "column", "observed", "predictive_mean", "predictive_3%", "predictive_97%", "p_value"]]
    return lines, shown


SKIPPED_NAMES = {"loo": "LOO and WAIC", "prior_predictive": "prior predictive check", "two_sample": "generated against "
                 "observed data (two-sample tests, KL)", "factors": "factor terms", "unused": "data not used", "plots": "plots",
                 "predictive": "predictive checks", "missing": "missing values",
                 "prior_sensitivity": "prior sensitivity", "model_graph": "model graph"}


def skipped_lines(metrics: dict) -> list[str]:
    """'what: why' for each check that does not apply to this run."""
    return [f"{SKIPPED_NAMES.get(name, name)}: {reason}" for name, reason in metrics.get("skipped", {}).items()]


def failed_lines(metrics: dict) -> list[str]:
    """'step: error' for each step of the run that failed."""
    return [f"{failure['step']}: {failure['error']}" for failure in metrics.get("failed_steps", [])]


def _fit_quality_markdown(metrics: dict) -> list[str]:
    lines, table = _fit_quality_lines(metrics)
    if not lines:
        return []
    return ["## Fit quality", "", *[f"- {line}" for line in lines], "",
            *([markdown_table(table, index=False), ""] if table is not None else [])]


def render_markdown(report) -> str:
    a = report.assessment
    out = [f"# probgen report: {_title(report.config)}", "",
           f"## Verdict: {a.overall.upper()}", "", a.summary, "",
           markdown_table(_checks_frame(a), index=False), "",
           f"## {report.summary_title}", "", *_units_line(report.summary_units),
           markdown_table(summary_display(report.summary)), ""]
    if _predictive_applies(report.metrics):
        out += ["## Predictive fit", "", *_metrics_lines(report.metrics), ""]
    out += _fit_quality_markdown(report.metrics)
    if skipped_lines(report.metrics):
        out += ["## Checks that do not apply", "", *[f"- {line}" for line in skipped_lines(report.metrics)], ""]
    if failed_lines(report.metrics):
        out += ["## Failed steps", "", "These steps raised an error; the draws are saved in posterior.nc and the rest "
                "of the report stands.", "", *[f"- {line}" for line in failed_lines(report.metrics)], ""]
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
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}pre{background:#f7f7f7;padding:1em;white-space:pre-wrap;overflow-wrap:anywhere;font-size:0.85em}
"""


def _environment():
    """The Jinja2 environment of `probgen/report/templates`, autoescaping every value: text
    reaches the page escaped unless it is `Markup` (tables from pandas' escaping `to_html`, a
    section's text from `text_html`)."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        import jinja2

        _ENVIRONMENT = jinja2.Environment(loader=jinja2.PackageLoader("probgen.report", "templates"),
                                          autoescape=True, undefined=jinja2.StrictUndefined)
    return _ENVIRONMENT


_ENVIRONMENT = None


def render_page(title: str, heading: str, parts: list[dict]) -> str:
    """A simple report page (`templates/page.html.j2`): `parts` in order, each a dict with a
    `kind` (heading, verdict, paragraph, list, html, image, config) and its fields."""
    return _environment().get_template("page.html.j2").render(title=title, heading=heading, css=_CSS, parts=parts)


def markup(html_text: str):
    """HTML that probgen escaped itself (a table from pandas, a section's text), passed through."""
    from markupsafe import Markup

    return Markup(html_text)


def image_part(name: str, content: bytes) -> dict:
    return {"kind": "image", "name": name, "png": base64.b64encode(content).decode()}


def render_html(report) -> str:
    a = report.assessment
    quality_lines, quality_table = _fit_quality_lines(report.metrics)
    figures = [{"name": name[:-7], "failed": content.decode()} if name.endswith(".failed") else
               {**image_part(name, content), "failed": None} for name, content in report.figures.items()]
    context = {
        "title": _title(report.config), "heading": f"probgen report: {_title(report.config)}", "css": _CSS,
        "overall": a.overall, "summary": a.summary,
        "checks": [{"check": v.check, "status": v.status, "value": "—" if v.value is None else _format(v.value),
                    "threshold": v.threshold, "reason": v.reason} for v in a.verdicts],
        "summary_title": report.summary_title, "units": [line for line in _units_line(report.summary_units) if line],
        "summary_table": markup(html_table(summary_display(report.summary), index=True)),
        "predictive": [line[2:] for line in _metrics_lines(report.metrics)] if _predictive_applies(report.metrics)
        else None,
        "quality": quality_lines,
        "quality_table": markup(html_table(quality_table, index=False)) if quality_table is not None else "",
        "skipped": skipped_lines(report.metrics), "failed": failed_lines(report.metrics),
        "sections": [{"title": section.title, "text": markup(text_html(section.text)),
                      "table": markup(html_table(section.table)) if section.table is not None else ""}
                     for section in report.sections],
        "figures": figures, "config": json.dumps(report.config, indent=2),
    }
    return _environment().get_template("report.html.j2").render(**context)
