"""Does a run folder's report say what its files hold? `check_run_folder(folder)` reads
report.md beside summary.csv, diagnostics.json and metrics.json and returns one line per
problem (empty when none):

- a template left unfilled (`{name}`, `{value:.4f}`);
- a posterior summary cell that differs from summary.csv at the precision it is shown with;
- a verdict whose status differs from diagnostics.json;
- a NaN or inf shown in a table;
- an interval whose lower end lies above its upper end (q05 > q95, hdi_3% > hdi_97%, p_5% > p_95%),
  or an estimate outside its own interval without a note in its row saying why;
- a figure outside its possible range: a coverage or share outside [0, 1], bits per character
  below 0 or above 32 (the log2 of any vocabulary of characters), a posterior summary row of
  weights or probabilities outside [0, 1];
- a headline figure of metrics.json outside the range its family declares (`ModelSpec.headline`:
  held-out bits per character within [0, log2 of the vocabulary], ...), or not stated in the
  report when the family says the report states it.

The contract test runs it over every family's report, and tests feed it each wrong number the
reports once showed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

PLACEHOLDER = re.compile(r"\{[A-Za-z_][\w.]*(\[[^]]*\])*(:[^}]*)?\}")
ESTIMATES = ("predictive_p", "estimate", "median", "factor_variance")  # shown beside their interval
INTERVALS = (("q05", "q95"), ("hdi_3%", "hdi_97%"), ("p_5%", "p_95%"), ("q25", "q75"))
UNIT_INTERVAL = re.compile(r"(^|_| )(coverage|cover|share|probability|p_value)( |_|$|\d)", re.I)
BITS = re.compile(r"bits_per_char|bits per character", re.I)
MAX_BITS = 32  # log2 of a vocabulary of 4 billion symbols: no character model's score can be above it
# summary rows that are probabilities: mixture weights, an HMM's initial and transition probabilities
PROBABILITY_ROW = re.compile(r"^(weights|init_probs|probs|probabilities|transition)(\[|$)")
NON_NEGATIVE = re.compile(r"bits_per_char|bits per character|perplexity|^se$|^sd$", re.I)


def markdown_tables(text: str) -> list[tuple[str, pd.DataFrame]]:
    """(the heading above it, the table as strings) for every Markdown table in `text`."""
    tables, heading, lines = [], "", text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and index + 1 < len(lines) and set(lines[index + 1].replace("|", "")) <= set("-: "):
            header = _cells(line)
            rows = []
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                cells = _cells(lines[index])
                rows.append((cells + [""] * len(header))[:len(header)])
                index += 1
            tables.append((heading, pd.DataFrame(rows, columns=header)))
            continue
        index += 1
    return tables


def _cells(line: str) -> list[str]:
    """The cells of a Markdown table row; an escaped pipe (\\|) belongs to its cell."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def _number(cell: str) -> float | None:
    try:
        return float(cell.replace(",", ""))
    except ValueError:
        return None


def check_report_text(text: str, summary: pd.DataFrame | None = None, diagnostics: dict | None = None) -> list[str]:
    """The problems of a report's Markdown, against its summary table and verdicts if given."""
    problems = []
    for match in PLACEHOLDER.finditer(text.split("## Configuration")[0]):
        problems.append(f"an unfilled template {match.group(0)!r}")
    for heading, table in markdown_tables(text):
        where = f"table under '{heading}'"
        label = table.columns[0] if len(table.columns) else None
        if label is not None:  # a row named for a quantity (a summary row "held_out_bits_per_char")
            for _, row in table.iterrows():
                if BITS.search(str(row[label])):
                    values = [_number(row[c]) for c in table.columns[1:] if c.lower() in ("mean", "estimate", "value")]
                    if any(v is not None and not 0 <= v <= MAX_BITS for v in values):
                        problems.append(f"{where}: {row[label]} is outside [0, {MAX_BITS}] bits per character")
        for column in table.columns:
            values = table[column]
            shown = [cell for cell in values if cell.lower() in ("nan", "inf", "-inf")]
            if shown:
                problems.append(f"{where}: column '{column}' shows {shown[0]}")
            numbers = [_number(cell) for cell in values]
            numbers = [v for v in numbers if v is not None and math.isfinite(v)]  # NaN is named above
            if UNIT_INTERVAL.search(column) and any(not 0 <= v <= 1 for v in numbers):
                problems.append(f"{where}: column '{column}' has a value outside [0, 1]")
            if NON_NEGATIVE.search(column) and any(v < 0 for v in numbers):
                problems.append(f"{where}: column '{column}' has a negative value")
            if BITS.search(column) and any(v > MAX_BITS for v in numbers):
                problems.append(f"{where}: column '{column}' states more than {MAX_BITS} bits per character, more "
                                "than any vocabulary of characters needs")
        for low, high in INTERVALS:
            if low in table.columns and high in table.columns:
                for position, (a, b) in enumerate(zip(table[low], table[high])):
                    a, b = _number(a), _number(b)
                    if a is not None and b is not None and a > b:
                        problems.append(f"{where}: row {position + 1} has {low} {a:g} above {high} {b:g}")
                # an estimate outside its own interval needs a note in its row saying why
                for estimate in (c for c in table.columns if c in ESTIMATES):
                    for position, row in table.iterrows():
                        value, a, b = _number(row[estimate]), _number(row[low]), _number(row[high])
                        if None not in (value, a, b) and not a <= value <= b and not str(row.get("note", "")).strip():
                            problems.append(f"{where}: row {position + 1} has {estimate} {value:g} outside its interval "
                                            f"[{a:g}, {b:g}] and no note saying why")
    for heading, table in markdown_tables(text):
        if heading.lower().startswith("posterior summary") and len(table.columns) > 1:
            for _, row in table.iterrows():
                if PROBABILITY_ROW.search(str(row[table.columns[0]])):
                    values = [_number(row[c]) for c in table.columns[1:] if c in ("mean", "hdi_3%", "hdi_97%", "estimate")]
                    if any(v is not None and math.isfinite(v) and not 0 <= v <= 1 for v in values):
                        problems.append(f"posterior summary: {row[table.columns[0]]} is a probability shown outside [0, 1]")
    if summary is not None and len(summary):
        problems += _summary_problems(text, summary)
    if diagnostics is not None:
        problems += _verdict_problems(text, diagnostics)
    return problems


def _summary_problems(text: str, summary: pd.DataFrame) -> list[str]:
    tables = [table for heading, table in markdown_tables(text) if heading.lower().startswith(("posterior summary",))]
    if not tables:
        return []
    table, problems = tables[0], []
    label = table.columns[0]
    for _, row in table.iterrows():
        name = row[label]
        if name not in summary.index:
            continue
        for column in table.columns[1:]:
            if column not in summary.columns:
                continue
            expected = summary.loc[name, column]
            if isinstance(expected, float) and math.isfinite(expected) and not agrees(row[column], expected):
                problems.append(f"posterior summary: {name} {column} is {row[column]} in the report, "
                                f"{expected:.6g} in summary.csv")
    return problems


def agrees(cell: str, expected: float) -> bool:
    """Does the number shown in `cell` equal `expected` at the precision it is shown with (its
    last digit: "14.03" is 14.03 +- 0.005, "1.234e+05" 123400 +- 50, "1200" 1200 +- 50)?"""
    value = _number(cell)
    if value is None:
        return False
    text = cell.strip().lower().replace(",", "")
    mantissa, _, exponent = text.partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else -(len(mantissa) - len(mantissa.rstrip("0")))
    if "." not in mantissa and mantissa.strip("-+") in ("0", ""):
        decimals = 0
    step = 10.0 ** (int(exponent or 0) - decimals)
    return abs(value - expected) <= 0.5 * step * (1 + 1e-9) + 1e-12 * abs(expected)


def _verdict_problems(text: str, diagnostics: dict) -> list[str]:
    tables = [table for heading, table in markdown_tables(text) if heading.lower().startswith("verdict")]
    if not tables or "check" not in tables[0].columns:
        return []
    shown = dict(zip(tables[0]["check"], tables[0]["status"]))
    return [f"verdict {check['check']}: '{shown[check['check']]}' in the report, '{check['status']}' in "
            "diagnostics.json" for check in diagnostics.get("checks", ())
            if check["check"] in shown and shown[check["check"]] != check["status"]]


def figures_at(metrics, path: str) -> list[tuple[str, object]]:
    """(concrete path, value) for every figure of `metrics` at `path` ("a/b", "states/*/share")."""
    found = [("", metrics)]
    for key in path.split("/"):
        step = []
        for where, value in found:
            if key == "*" and isinstance(value, list):
                step += [(f"{where}/{i}", item) for i, item in enumerate(value)]
            elif key == "*" and isinstance(value, dict):
                step += [(f"{where}/{k}", item) for k, item in value.items()]
            elif isinstance(value, dict) and key in value:
                step.append((f"{where}/{key}", value[key]))
        found = step
    return [(where.lstrip("/"), value) for where, value in found]


def _limit(metrics, limit):
    if limit is None or isinstance(limit, (int, float)):
        return limit
    values = [v for _, v in figures_at(metrics, limit) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return values[0] if values else None


REPORT_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?", re.I)


def headline_problems(text: str, metrics: dict, bounds) -> list[str]:
    """Each `probgen.spec.Bound` of a family: its figures lie in their range, and the report states
    a figure marked `stated` (some number of report.md equals it at the precision shown)."""
    problems = []
    shown = None
    for bound in bounds:
        figures = [(where, v) for where, v in figures_at(metrics, bound.path)
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        low, high = _limit(metrics, bound.low), _limit(metrics, bound.high)
        for where, value in figures:
            if not math.isfinite(value):
                continue  # a NaN figure is the table's business (shown with a reason or not at all)
            if (low is not None and value < low) or (high is not None and value > high):
                problems.append(f"metrics.json {where} = {value:g} is outside its plausible range "
                                f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]")
        if bound.stated and figures:
            if shown is None:
                shown = REPORT_NUMBER.findall(text.split("## Configuration")[0])
            for where, value in figures:
                if math.isfinite(value) and not any(agrees(number, value) for number in shown):
                    problems.append(f"metrics.json {where} = {value:g} is not stated in the report")
    return problems


def check_run_folder(folder, spec=None) -> list[str]:
    """The problems of `folder`'s report.md against its own files (see the module's docstring);
    the family's headline bounds come from `spec`, or from the spec the run's config names."""
    folder = Path(folder)
    text = (folder / "report.md").read_text()
    summary = pd.read_csv(folder / "summary.csv", index_col=0) if (folder / "summary.csv").is_file() else None
    diagnostics = (json.loads((folder / "diagnostics.json").read_text())
                   if (folder / "diagnostics.json").is_file() else None)
    problems = check_report_text(text, summary, diagnostics)
    if spec is None and (folder / "config.json").is_file():
        from probgen.spec import load_spec

        reference = json.loads((folder / "config.json").read_text()).get("model", {}).get("reference")
        try:
            spec = load_spec(reference) if reference else None
        except Exception:  # a moved model file: no family bounds to check
            spec = None
    if spec is not None and spec.headline and (folder / "metrics.json").is_file():
        problems += headline_problems(text, json.loads((folder / "metrics.json").read_text()), spec.headline)
    return problems
