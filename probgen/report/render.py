"""The report rendered as Markdown and as self-contained HTML (images inlined).

Takes a built `probgen.report.Report` (duck-typed: config, assessment, summary, metrics,
figures, sections) and lays it out; computes nothing.
"""

from __future__ import annotations

import base64
import html
import json

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
                 "observed data (two-sample tests, KL)", "factors": "factor terms", "unused": "data not used"}


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
           markdown_table(report.summary), ""]
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
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}pre{background:#f7f7f7;padding:1em;overflow-x:auto;font-size:0.85em}
"""


def render_html(report) -> str:
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
        f"<h2>{esc(report.summary_title)}</h2>",
        *(f"<p>{esc(line)}</p>" for line in _units_line(report.summary_units) if line),
        html_table(report.summary),
    ]
    if _predictive_applies(report.metrics):
        parts += ["<h2>Predictive fit</h2><ul>",
                  *(f"<li>{esc(line[2:])}</li>" for line in _metrics_lines(report.metrics)), "</ul>"]
    quality_lines, quality_table = _fit_quality_lines(report.metrics)
    if quality_lines:
        parts += ["<h2>Fit quality</h2><ul>", *(f"<li>{esc(line)}</li>" for line in quality_lines), "</ul>"]
        if quality_table is not None:
            parts.append(html_table(quality_table, index=False))
    if skipped_lines(report.metrics):
        parts += ["<h2>Checks that do not apply</h2><ul>", *(f"<li>{esc(line)}</li>" for line in skipped_lines(report.metrics)),
                  "</ul>"]
    if failed_lines(report.metrics):
        parts += ["<h2>Failed steps</h2><p>These steps raised an error; the draws are saved in posterior.nc and the "
                  "rest of the report stands.</p><ul>", *(f"<li>{esc(line)}</li>" for line in failed_lines(report.metrics)),
                  "</ul>"]
    for section in report.sections:
        parts.append(f"<h2>{esc(section.title)}</h2>{text_html(section.text)}")
        if section.table is not None:
            parts.append(html_table(section.table))
    parts.append("<h2>Plots</h2>")
    for name, content in report.figures.items():
        if name.endswith(".failed"):
            parts.append(f"<p>Plot '{esc(name[:-7])}' could not be drawn: {esc(content.decode())}</p>")
        else:
            encoded = base64.b64encode(content).decode()
            parts.append(f"<h3>{esc(name.replace('_', ' '))}</h3><img alt='{esc(name)}' src='data:image/png;base64,{encoded}'>")
    parts.append("<h2>Configuration</h2><details><summary>config.json: model, data, settings, seed, versions (click to "
                 f"show)</summary><pre>{esc(json.dumps(report.config, indent=2))}</pre></details></body></html>")
    return "\n".join(parts)
