"""The HMM from the command line: bad input named, exit 2 (beside the model's own tests)."""

import pandas as pd
import pytest

from conftest import run_cli


def hmm_bad_inputs(tmp_path):
    files = {
        "counts.csv": pd.DataFrame({"n": [3, 0, -1, 4]}),
        "fractions.csv": pd.DataFrame({"n": [3, 0.5, 2, 4]}),
        "codes.csv": pd.DataFrame({"c": [0, 1, 2, 5, 1]}),
        "short.csv": pd.DataFrame({"v": [0.1, 0.4, 0.3, 0.9], "id": [1, 1, 1, 2]}),
        "header.csv": pd.DataFrame({"v": []}),
        "backwards.csv": pd.DataFrame({"year": [1990, 1991, 1991, 1992], "v": [0.1, 0.4, 0.3, 0.9]}),
    }
    for name, frame in files.items():
        frame.to_csv(tmp_path / name, index=False)
    return {
        "K < 1": (["--data", "nile", "--num-states", "0"], "--num-states must be an integer >= 1, got 0"),
        "negative count": (["--data", tmp_path / "counts.csv", "--emission", "poisson"],
                           r"non-negative integer counts; column 'n' has -1\.0 .*rows 3"),
        "non-integer count": (["--data", tmp_path / "fractions.csv", "--emission", "poisson"],
                              r"non-negative integer counts; column 'n' has 0\.5"),
        "unknown category": (["--data", tmp_path / "codes.csv", "--emission", "categorical", "--num-categories", "3"],
                             r"unknown category label\(s\) \[5\] in column 'c' \(rows 4\)"),
        "length-1 sequence": (["--data", tmp_path / "short.csv", "--sequence-column", "id"],
                              r"sequence 2 \(1 row\) too short"),
        "empty data": (["--data", tmp_path / "header.csv"], "has a header but no rows"),
        "sequence column missing": (["--data", "nile", "--sequence-column", "river"],
                                    "--sequence-column 'river' is not among the data's columns"),
        "time not increasing": (["--data", tmp_path / "backwards.csv", "--time-column", "year"],
                                r"--time-column 'year' must increase within each sequence: row 3 \(1991\) does not "
                                r"come after row 2 \(1991\)"),
        "time column missing": (["--data", "nile", "--time-column", "year"],
                                "--time-column 'year' is not among the data's columns"),
    }


@pytest.mark.parametrize("case", ["K < 1", "negative count", "non-integer count", "unknown category",
                                  "length-1 sequence", "empty data", "sequence column missing",
                                  "time not increasing", "time column missing"])
def test_hmm_bad_input_is_named_with_exit_2(case, tmp_path, capsys):
    # In process (the same `main` the command runs; a subprocess per case would cost CI ~5 s
    # each); the test below checks the exit status of the real command once.
    import re

    from probgen import cli

    arguments, message = hmm_bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    status = cli.main(["fit", "hmm", *map(str, arguments), "--out", str(out), "--quiet"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and error[0].startswith("probgen: error:"), error
    assert re.search(message, error[0]), error[0]
    assert not out.exists()


def test_hmm_bad_input_exits_2_from_the_command(tmp_path):
    result = run_cli("fit", "hmm", "--data", "nile", "--num-states", "0", "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 2 and "--num-states must be an integer >= 1" in result.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# The VAE: `probgen fit vae`, its report, checkpoints, --resume, bad input
# --------------------------------------------------------------------------------------------
