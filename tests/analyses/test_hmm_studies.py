"""The two HMM studies end to end, as scripts: LOO's choice of K and the regimes they report."""

import json

import pytest

from conftest import run_analysis


def run_study(script, out):
    result = run_analysis(script, out)
    return result, json.loads((out / "metrics.json").read_text())


@pytest.mark.slow  # about 5 min on 2 cores: three NUTS fits of 4 chains x 2000 iterations
def test_nile_study_finds_the_1899_level_shift(tmp_path):
    result, metrics = run_study("nile_hmm.py", tmp_path / "nile")
    assert metrics["loo_comparison"]["chosen"] == "K=2"
    regimes = metrics["regimes"]
    assert [(s["start"], s["end"]) for s in regimes["segments"]] == [(1871, 1898), (1899, 1970)]
    high, low = (s["level"] for s in regimes["segments"])
    assert 1000 < high < 1200 and 800 < low < 900  # the known means before and after: about 1097 and 850
    assert regimes["switches"][0]["probability_within_2"] > 0.9
    diagnostics = json.loads((tmp_path / "nile" / "diagnostics.json").read_text())
    assert diagnostics["overall"] == "trusted"
    assert "Where does the Nile's level shift?" in (tmp_path / "nile" / "report.md").read_text()


@pytest.mark.slow  # about 5 min on 2 cores
def test_coal_study_finds_the_drop_in_the_disaster_rate(tmp_path):
    result, metrics = run_study("coal_hmm.py", tmp_path / "coal")
    assert metrics["loo_comparison"]["chosen"] == "K=2"
    segments = metrics["regimes"]["segments"]
    # one drop, between 1880 and 1900 (the literature: about 1890), from about 3 to about 1 a year
    assert len(segments) == 2 and 1880 <= segments[1]["start"] <= 1900
    assert 2.3 < segments[0]["level"] < 3.8 and 0.6 < segments[1]["level"] < 1.3
    diagnostics = json.loads((tmp_path / "coal" / "diagnostics.json").read_text())
    assert diagnostics["overall"] == "trusted"
