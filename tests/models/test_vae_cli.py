"""The VAE from the command line: checkpointed training, --resume after Ctrl-C, bad input."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import REPO


VAE_DIGITS = ["--data", "digits", "--label-column", "target", "--transform", "dequantize", "--pixel-levels", "17",
              "--likelihood", "beta", "--latent-dim", "2", "--hidden", "16", "--iwae-samples", "50"]


def test_vae_training_resumes_after_ctrl_c_and_writes_its_report(tmp_path, capsys):
    """Ctrl-C mid-training leaves the folder with its last checkpoint and how to resume; the
    resumed run starts at that step and writes the full report, which `probgen report`
    rebuilds to the same figures. (One test for both: each VAE run costs CI ~15 s.)"""
    from probgen import cli

    out = tmp_path / "vae"
    arguments = ["fit", "vae", *VAE_DIGITS, "--anomaly-label", "0", "--holdout", "0.3", "--steps", "1000000",
                 "--patience", "100000", "--eval-every", "20", "--checkpoint-every", "20", "--out", str(out), "--quiet"]
    launcher = ("import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                f"sys.argv = ['probgen'] + {arguments!r}; runpy.run_module('probgen.cli', run_name='__main__')")
    process = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.npz").is_file() and time.time() < deadline and process.poll() is None:
            time.sleep(0.5)
        time.sleep(1.0)
        assert process.poll() is None and (out / "checkpoint.npz").is_file(), process.stderr.read()[-2000:]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130 and f"--resume {out}" in stderr, stderr[-2000:]
    # one checkpoint for every resumable method: checkpoint.json (the request) beside the state
    assert sorted(p.name for p in out.iterdir()) == ["TRAINING.md", "checkpoint.json", "checkpoint.npz", "config.json"]
    from probgen.infer.amortized import load_checkpoint

    step = load_checkpoint(out)["step"]
    assert step >= 20 and step % 20 == 0
    assert cli.main(["report", str(out)]) == 2 and "holds an unfinished amortised minibatch SVI run" in capsys.readouterr().err

    # the command TRAINING.md gives, as printed (and more --steps): everything comes from the folder
    import shlex

    note = (out / "TRAINING.md").read_text()
    command = shlex.split(note.split("Carry on with:")[1].strip().split("\n")[0])
    assert command == ["probgen", "fit", "--resume", str(out)], note
    assert cli.main([*command[1:], "--steps", str(step + 200), "--quiet"]) == 0
    assert f"resumed from the checkpoint at step {step}" in capsys.readouterr().out
    for name in ("config.json", "posterior.nc", "summary.csv", "metrics.json", "report.html", "report.md",
                 "checkpoint.npz", "plots/reconstructions.png", "plots/prior_samples.png", "plots/interpolations.png",
                 "plots/latent_map.png", "plots/elbo.png", "plots/kl_per_dimension.png"):
        assert (out / name).is_file(), name
    assert not (out / "TRAINING.md").exists()
    metrics = json.loads((out / "metrics.json").read_text())["vae"]
    assert metrics["training"]["resumed_from"] == step and metrics["training"]["steps_run"] == step + 200
    held_out_elbo = metrics["likelihood"]["elbo"]["ELBO, held-out rows"]["nats_per_example"]
    # IWAE (K = 50) bounds log p(x) more tightly than the ELBO; the mean gap over ~250 rows is
    # positive by construction (Jensen) and far above its Monte Carlo error
    assert metrics["likelihood"]["iwae"]["nats_per_example"] > held_out_elbo
    assert metrics["latent"]["latent_dim"] == 2 and len(metrics["latent"]["kl_per_dimension_nats"]) == 2
    latent = metrics["latent"]
    assert 0 <= latent["mutual_information_nats"] <= latent["mutual_information_upper_limit_log_n"] + 0.1
    assert metrics["anomaly"]["anomalies"] == 178 and 0 <= metrics["anomaly"]["auroc"] <= 1  # digits has 178 zeros
    assert {t["test"] for t in metrics["generated_vs_held_out"]} == {"MMD", "KS", "Welch t"}
    text = (out / "report.md").read_text()
    for heading in ("Generative performance", "Latent space", "Anomaly detection", "Generated against held-out data"):
        assert f"## {heading}" in text
    from probgen.report.consistency import check_run_folder

    assert check_run_folder(out) == [], check_run_folder(out)  # the report says what its files hold (issue 30)
    (out / "report.html").unlink()
    assert cli.main(["report", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["vae"] == metrics  # same seed, same figures
    assert (out / "report.html").is_file() and (out / "checkpoint.npz").is_file()
    # new images from the decoder, back in the data's units: integer pixel levels 0..16
    assert cli.main(["sample", str(out), "-n", "50", "--out", str(tmp_path / "new.csv")]) == 0
    new = pd.read_csv(tmp_path / "new.csv")
    assert new.shape == (50, 64) and new.columns[0] == "pixel_0_0" and "target" not in new.columns
    assert new.to_numpy().min() >= 0 and new.to_numpy().max() <= 16 and np.all(new.to_numpy() == np.round(new.to_numpy()))
    # a changed option is refused, naming it
    assert cli.main(["fit", "vae", "--data", "digits", "--resume", str(out), "--latent-dim", "3", "--quiet"]) == 2
    assert "option latent_dim 2 there, 3 now" in capsys.readouterr().err
    # a folder whose checkpoint is a pickle (an older probgen's, or planted): one line, exit 2, never unpickled
    (out / "checkpoint.npz").rename(out / "checkpoint.pkl")
    assert cli.main(["fit", "--resume", str(out), "--steps", str(step + 400), "--quiet"]) == 2
    refused = capsys.readouterr().err.strip().splitlines()
    assert len(refused) == 1 and "checkpoint.pkl' is a pickle written by an older probgen" in refused[0], refused


def vae_bad_inputs(tmp_path) -> dict:
    pd.DataFrame({"a": [], "b": []}).to_csv(tmp_path / "empty.csv", index=False)
    pd.DataFrame({"a": [0.2, 0.5, 1.5, 0.1], "b": [0.3, 0.3, 0.2, 0.9]}).to_csv(tmp_path / "outside.csv", index=False)
    pd.DataFrame({"a": [0, 1, 3, 1], "b": [1, 0, 1, 2]}).to_csv(tmp_path / "levels.csv", index=False)
    return {
        "wrong image shape": (["--data", "digits", "--label-column", "target", "--transform", "scale", "--pixel-levels",
                               "17", "--image-shape", "8x7"], r"--image-shape 8x7 needs 56 values per row, but the data "
                                                              r"have 64 value columns \(pixel_0_0 \.\. pixel_7_7\)"),
        "outside the support": (["--data", tmp_path / "outside.csv", "--likelihood", "continuous_bernoulli"],
                                r"needs values in \[0, 1\] .* 1\.5 in column 'a', row 3"),
        "outside (0, 1) for beta": (["--data", "digits", "--label-column", "target", "--likelihood", "beta"],
                                    r"--likelihood beta needs values strictly inside \(0, 1\)"),
        "not 0/1 for bernoulli": (["--data", tmp_path / "outside.csv", "--likelihood", "bernoulli"],
                                  r"--likelihood bernoulli needs values 0 or 1 \(binarise the images first\); the "
                                  r"data have 0\.2 in column 'a', row 1"),
        "levels beyond --pixel-levels": (["--data", tmp_path / "levels.csv", "--transform", "dequantize",
                                          "--pixel-levels", "3"], r"integers 0\.\.2; column 'a' row 3 is 3 "),
        "empty data": (["--data", tmp_path / "empty.csv"], "has a header but no rows"),
        "label column missing": (["--data", "digits", "--label-column", "digit"], "--label-column 'digit' is not a column"),
        "anomaly label absent": (["--data", "digits", "--label-column", "target", "--anomaly-label", "11", "--transform",
                                  "scale", "--pixel-levels", "17"], r"--anomaly-label 11: 0 of 1797 rows"),
        "nuts for a vae": (["--data", "digits", "--method", "nuts"], "fitted by amortised minibatch SVI only"),
        "resume from nothing": (["--data", "digits", "--resume", tmp_path / "nowhere"], "does not exist"),
    }


@pytest.mark.parametrize("case", ["wrong image shape", "outside the support", "outside (0, 1) for beta",
                                  "not 0/1 for bernoulli", "levels beyond --pixel-levels", "empty data",
                                  "label column missing", "anomaly label absent", "nuts for a vae",
                                  "resume from nothing"])
def test_vae_bad_input_is_named_with_exit_2_and_no_folder(case, tmp_path, capsys):
    import re

    from probgen import cli

    arguments, message = vae_bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    extra = [] if "--resume" in arguments else ["--out", str(out)]
    status = cli.main(["fit", "vae", *map(str, arguments), *extra, "--quiet"])
    error = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(error) == 1 and error[0].startswith("probgen: error:"), error
    assert re.search(message, error[0]), error[0]
    assert not out.exists()


# --------------------------------------------------------------------------------------------
# The BNN: `probgen fit bnn`, its report, `probgen predict`, bad input
# --------------------------------------------------------------------------------------------
