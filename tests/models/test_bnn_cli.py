"""The BNN from the command line: held-out report, `probgen predict`, bad input."""

import json

import numpy as np
import pandas as pd
import pytest


def test_bnn_fit_reports_held_out_performance_and_predicts(tmp_path, capsys):
    from probgen import cli

    out = tmp_path / "bnn"
    status = cli.main(["fit", "bnn", "--data", "diabetes", "--hidden", "5", "--holdout", "0.2", "--chains", "2",
                       "--warmup", "200", "--draws", "200", "--out", str(out), "--quiet"])
    assert status == 0, capsys.readouterr().err
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())["bnn_held_out"]
    # diabetes: the target's sd is 77; a useful model's RMSE is far below it (linear models reach ~55)
    assert metrics["rows"] == 88 and 40 < metrics["rmse"] < 70
    assert 0 <= metrics["coverage_50"] <= metrics["coverage_90"] <= 1
    text = (out / "report.md").read_text()
    assert "## How convergence is judged" in text and "## Held-out predictive performance" in text
    # the summary's sigma is in standard units; the report says so and gives it in the target's
    import re

    sigma = pd.read_csv(out / "summary.csv", index_col=0).loc["sigma", "mean"]
    units = text.split("## Units")[1].split("##")[0]
    sd = float(re.search(r"\(mean [-\d.e+]+, sd ([\d.e+]+)\)", units).group(1))
    converted = float(re.search(r"standard units is ([-\d.e+]+) in the units", units).group(1))
    assert 60 < sd < 90 and abs(converted - sigma * sd) < 1e-3 * converted + 0.01, units  # diabetes: sd about 77
    from probgen.report.consistency import check_run_folder

    assert check_run_folder(out) == [], check_run_folder(out)  # the report says what its files hold (issue 30)
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    assert not any("w0" in check["reason"] or "w1" in check["reason"] for check in diagnostics["checks"])
    assert (out / "plots" / "held_out_predictions.png").is_file()

    from sklearn.datasets import load_diabetes

    new = load_diabetes(as_frame=True).frame.drop(columns="target").head(5)
    new.to_csv(tmp_path / "new.csv", index=False)
    assert cli.main(["predict", str(out), "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")]) == 0
    predictions = pd.read_csv(tmp_path / "p.csv")
    assert list(predictions.columns) == ["mean", "sd", "q05", "q25", "median", "q75", "q95"] and len(predictions) == 5
    assert np.all(predictions["q05"] < predictions["median"]) and np.all(predictions["median"] < predictions["q95"])
    new.drop(columns="bmi").to_csv(tmp_path / "short.csv", index=False)
    capsys.readouterr()
    assert cli.main(["predict", str(out), "--data", str(tmp_path / "short.csv"), "--out", str(tmp_path / "q.csv")]) == 2
    assert "fitted on 10 features" in capsys.readouterr().err and not (tmp_path / "q.csv").exists()


@pytest.mark.parametrize("case", ["labels not 0/1", "NaN feature", "missing target"])
def test_bnn_bad_input_is_named_with_exit_2(case, tmp_path, capsys):
    from probgen import cli

    pd.DataFrame({"a": [0.1, np.nan, 0.3, 0.5], "y": [0, 1, 1, 0]}).to_csv(tmp_path / "nan.csv", index=False)
    arguments, message = {
        "labels not 0/1": (["--data", "diabetes", "--likelihood", "bernoulli"],
                           "needs labels 0 or 1; column 'target' has 151 at row 1"),
        "NaN feature": (["--data", str(tmp_path / "nan.csv")], "1 missing (NaN) value (column 'a' row 2)"),
        "missing target": (["--data", "diabetes", "--target", "progression"], "--target 'progression' is not a column"),
    }[case]
    out = tmp_path / "out"
    status = cli.main(["fit", "bnn", *arguments, "--out", str(out), "--quiet"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and message in error[0], error
    assert not out.exists()
