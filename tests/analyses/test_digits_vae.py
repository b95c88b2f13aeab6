"""The digits study end to end: the VAE against the two baselines on the same test images."""

import json

import pytest

from conftest import run_analysis


@pytest.mark.slow  # about 2 min on 2 cores
def test_vae_beats_the_mixture_and_the_diagonal_gaussian(tmp_path):
    out = tmp_path / "digits"
    run_analysis("digits_vae.py", out, timeout=1800)
    summary = json.loads((out / "metrics.json").read_text())
    table = {row["model"].split(" (")[0]: row for row in summary["comparison"]}
    vae, mixture, diagonal = table["VAE"], table["Gaussian mixture"], table["diagonal Gaussian"]
    # measured 86.2, 59.4 and 31.6 nats per image; SEs about 1: the margins are tens of SEs
    assert vae["log_likelihood_nats_per_image"] > mixture["log_likelihood_nats_per_image"] + 10
    assert mixture["log_likelihood_nats_per_image"] > diagonal["log_likelihood_nats_per_image"] + 10
    assert summary["vae"]["test_iwae_nats_per_image"] >= summary["vae"]["test_elbo_nats_per_image"]
    assert summary["vae"]["mutual_information_nats"] <= summary["vae"]["mutual_information_upper_limit_log_n"] + 0.01
    for name in ("reconstructions", "prior_samples", "latent_map", "elbo"):
        assert (out / "plots" / f"{name}.png").is_file()
