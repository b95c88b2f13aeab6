"""The `make run` job end to end, as a script: its report must hold what the issue promises."""

import json

import pytest

from conftest import run_analysis


@pytest.mark.slow
def test_faithful_analysis_report(tmp_path):
    out = tmp_path / "faithful_gmm"
    run_analysis("faithful_gmm.py", out, timeout=1800)
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    checks = {c["check"]: c for c in diagnostics["checks"]}
    assert diagnostics["overall"] == "trusted"
    assert checks["r_hat"]["value"] <= 1.01 and checks["divergences"]["value"] == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["settings"]["chains"], config["settings"]["draws"]) == (4, 1000)
    assert config["model"]["options"]["covariance"] == "full"
    comparison = json.loads((out / "metrics.json").read_text())["loo_comparison"]
    assert {row["model"] for row in comparison["table"]} == {"K=1", "K=2", "K=3", "K=4"}
    assert "prefers K=2" in comparison["reading"]
    report = (out / "report.md").read_text()
    assert "How many components?" in report and "## Verdict: TRUSTED" in report
