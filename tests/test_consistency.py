"""The report consistency check (issue 30, point 1): it passes a real report and catches each
wrong number the reports once showed."""

import pandas as pd
import pytest

from probgen.report.consistency import check_report_text, check_run_folder, markdown_tables

GOOD = """# probgen report: x

## Verdict: TRUSTED

| check | status | value | threshold | reason |
|---|---|---|---|---|
| r_hat | pass | 1.002 | <= 1.01 | the 4 chains agree |

## Posterior summary

|  | mean | sd | hdi_3% | hdi_97% |
|---|---|---|---|---|
| mu | 1.234 | 0.5 | 0.3 | 2.1 |
"""

SUMMARY = pd.DataFrame({"mean": [1.2341], "sd": [0.5], "hdi_3%": [0.3], "hdi_97%": [2.1]}, index=["mu"])
DIAGNOSTICS = {"checks": [{"check": "r_hat", "status": "pass"}]}


def test_a_consistent_report_passes():
    assert check_report_text(GOOD, SUMMARY, DIAGNOSTICS) == []
    assert len(markdown_tables(GOOD)) == 2


@pytest.mark.parametrize("wrong, found", [
    # the n-gram's summary and its unformatted placeholder
    ("| held_out_bits_per_char | 3.898e+10 | 1 | 0 | 1 |", "outside \\[0, 32\\] bits per character"),
    ("The standard error over documents, {headline['se']:.4f}, is", "unfilled template"),
    # factor analysis's retained dimensions: q05 above q95
    ("\n## Retained dimensions\n\n| factor | q05 | q95 |\n|---|---|---|\n| 0 | 1.331e+05 | 156.3 |\n", "q05 .* above q95"),
    # a coverage above 1, a NaN shown without a word
    ("\n## Held out\n\n| bin | coverage 90% |\n|---|---|\n| cold | 1.3 |\n", "outside \\[0, 1\\]"),
    ("\n## Held out\n\n| bin | rmse |\n|---|---|\n| cold | nan |\n", "shows nan"),
])
def test_each_wrong_number_is_caught(wrong, found):
    import re

    text = GOOD + "\n" + wrong if not wrong.startswith("|") else GOOD + wrong + "\n"
    problems = check_report_text(text, SUMMARY, DIAGNOSTICS)
    assert any(re.search(found, problem) for problem in problems), problems


def test_a_report_that_disagrees_with_its_files_is_caught():
    assert any("1.5 in summary.csv" in p for p in check_report_text(GOOD, SUMMARY.assign(mean=1.5), DIAGNOSTICS))
    failed = {"checks": [{"check": "r_hat", "status": "fail"}]}
    assert any("'fail' in diagnostics.json" in p for p in check_report_text(GOOD, SUMMARY, failed))


def test_a_written_run_folder_passes(faithful_fit, tmp_path):
    from probgen import report

    folder = report.write_run(faithful_fit, tmp_path / "run")
    assert check_run_folder(folder) == []


def test_each_family_headline_range_is_enforced_and_its_figure_must_be_stated():
    """Issue 30: a family declares its headline figures' ranges (`ModelSpec.headline`); the check
    catches the n-gram's 3.898e+10 bits per character above log2 of its vocabulary, a coverage
    above 1, more retained dimensions than allowed, and a headline the report never states."""
    from probgen.report.consistency import headline_problems
    from probgen.spec import load_spec

    lm = {"language_model": {"bits_ceiling": 6.34, "bits_per_char": {"Dirichlet, held-out documents": {"value": 3.898e10}}}}
    bounds = load_spec("ngram").headline
    assert any("outside its plausible range [0, 6.34]" in p for p in headline_problems("3.898e+10", lm, bounds))
    lm["language_model"]["bits_per_char"]["Dirichlet, held-out documents"]["value"] = 2.71
    assert headline_problems("| held-out | 2.71 |", lm, bounds) == []
    assert any("not stated in the report" in p for p in headline_problems("| held-out | 2.93 |", lm, bounds))
    pmf = {"recommendation_held_out": {"coverage_50": 1.3, "coverage_90": 0.9, "rmse": 0.95}}
    problems = headline_problems("coverage 1.3, 0.9; RMSE 0.95", pmf, load_spec("pmf").headline)
    assert problems == ["metrics.json recommendation_held_out/coverage_50 = 1.3 is outside its plausible range [0, 1]"]
    ppca = {"retained_dimensions": 5, "latent_dim_allowed": 4}
    assert any("[0, 4]" in p for p in headline_problems("5 of the 4", ppca, load_spec("ppca").headline))


def test_a_probability_row_of_the_summary_outside_0_1_is_caught():
    text = GOOD.replace("| mu | 1.234 | 0.5 | 0.3 | 2.1 |", "| weights[c0] | 1.234 | 0.5 | 0.3 | 2.1 |")
    assert any("weights[c0] is a probability" in p for p in check_report_text(text))


def test_an_estimate_outside_its_interval_needs_a_note():
    """Issue 30: a per-character row showed p = 1.3e-05 with a 90% interval of 0 to 1.1e-42. The
    mean of skewed draws can lie above their 95% quantile, but the row must say so."""
    table = "\n## Posterior predictive per character\n\n| character | predictive_p | p_5% | p_95% |{note}\n|---|---|---|---|{dash}\n| D | 1.3e-05 | 0 | 1.1e-42 |{cell}\n"
    bare = check_report_text(GOOD + table.format(note="", dash="", cell=""))
    assert any("outside its interval" in p for p in bare), bare
    noted = table.format(note=" note |", dash="---|", cell=" mean above the interval: skewed draws |")
    assert check_report_text(GOOD + noted) == []
