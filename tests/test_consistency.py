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
