"""Handwritten digits: does a VAE model them better than a Gaussian mixture and a diagonal Gaussian?

scikit-learn's 1,797 digit images (8x8, values 0-16) are dequantised to (0, 1) as (v + u) / 17
with u ~ Uniform(0, 1) drawn with the seed (Theis et al., 2016), so that every model is a
density on the same continuous values, and split with the seed into 1,200 training, 299
validation (early stopping) and 298 test images (`probgen fit vae`'s split with --holdout
0.1658 --validation 0.1664). Fitted on the training images:
- a VAE (Beta likelihood) by minibatch SVI, stopped on the validation ELBO (`probgen.fit`);
- a Gaussian mixture (K = 5, full covariance) and a diagonal Gaussian (K = 1), both by MAP
  with `probgen.fit`, on the same dequantised training images.
Each is scored on the same test images in nats per image (the VAE by its importance-weighted
bound with K = 1,000 samples, a lower bound on its log-likelihood) and in bits per dimension of
the discrete pixels (adding the log 17 per pixel of the dequantisation, a bound on log P(v)).

Anomaly detection: a second VAE and mixture are trained without one digit (--anomaly-digit,
default 0); each scores the test images of the other digits and every image of the left-out
one by its negative log-likelihood, and the AUROC says how well that separates them.

The run folder is the main VAE's (`probgen fit vae` report: bounds, active units, mutual
information, generated-vs-held-out tests, reconstructions, prior samples, interpolations, the
latent map) with the comparison and the anomaly study as extra sections.

    python analyses/digits_vae.py --out runs/digits_vae [--overwrite] [--quiet]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

HOLDOUT, VALIDATION = 298 / 1797, 299 / 1797  # 298 test and 299 validation images; 1,200 train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/digits_vae", help="run folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace the run folder if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--likelihood", default="beta", choices=["beta", "gaussian", "continuous_bernoulli"])
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", default="128,64", help="hidden layer sizes of the encoder (reversed in the decoder)")
    parser.add_argument("--steps", type=int, default=20000, help="most SVI steps (early stopping ends sooner)")
    parser.add_argument("--iwae-samples", type=int, default=1000)
    parser.add_argument("--components", type=int, default=5, help="Gaussian mixture baseline: components")
    parser.add_argument("--anomaly-digit", type=int, default=0, help="digit left out of training for the anomaly study")
    return parser.parse_args(argv)


def _per_image(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def run(args) -> int:
    import jax.numpy as jnp
    import pandas as pd

    from probgen import checks, data, report
    from probgen.errors import ProbgenError
    from probgen.infer import fit
    from probgen.models.gmm import mixture_log_likelihood

    options = {"likelihood": args.likelihood, "latent_dim": args.latent_dim, "hidden": args.hidden,
               "transform": "dequantize", "pixel_levels": 17, "label_column": "target", "image_shape": "8x8",
               "iwae_samples": args.iwae_samples}
    settings = {"steps": args.steps, "batch_size": 100, "learning_rate": 1e-3, "kl_warmup": 2000, "eval_every": 500,
                "patience": 6}
    progress = not args.quiet
    mixtures = {f"Gaussian mixture (K = {args.components}, full)": {"num_components": args.components,
                                                                    "covariance": "full"},
                "diagonal Gaussian": {"num_components": 1, "covariance": "diagonal"}}

    def baselines(train_x, which=None) -> dict:
        """{name: parameters at the MAP} of the baselines on the training images."""
        frame = pd.DataFrame(train_x, columns=[f"p{i}" for i in range(train_x.shape[1])])
        fitted = {}
        for name, mixture in mixtures.items():
            if which is not None and name != which:
                continue
            point = fit("gmm", frame, "map", options=mixture, seed=args.seed, progress=progress).idata.posterior
            fitted[name] = tuple(jnp.asarray(point[v].values[0, 0]) for v in ("weights", "means", "scale_tril"))
        return fitted

    def log_likelihood(parameters, x) -> np.ndarray:
        return np.asarray(mixture_log_likelihood(jnp.asarray(x), *parameters))

    try:
        report.check_destination(args.out, args.overwrite)
        digits = data.load("digits")
        main = fit("vae", digits, "svi", options=options, seed=args.seed, holdout=HOLDOUT, validation=VALIDATION, progress=progress,
                   **settings)
        train_x, test_x = main.idata.observed_data["x"].values, main.idata.held_out_data["x"].values
        fitted = baselines(train_x)

        # anomaly study: the same VAE and the mixture, trained without one digit
        anomaly = fit("vae", digits, "svi", options={**options, "anomaly_label": args.anomaly_digit}, seed=args.seed,
                      holdout=HOLDOUT, validation=VALIDATION, progress=progress, **settings)
        mixture_name = next(iter(mixtures))
        anomaly_mixture = baselines(anomaly.idata.observed_data["x"].values, mixture_name)[mixture_name]
    except ProbgenError as exc:
        print(f"digits_vae: error: {exc}", file=sys.stderr)
        return 2

    # ---- held-out log-likelihood: the three models on the same test images ----------------------
    def row(name, per_image, kind):
        mean, se = _per_image(per_image)
        bits = (-mean + 64 * math.log(17)) / (64 * math.log(2))
        return {"model": name, "log_likelihood_nats_per_image": mean, "se": se, "bits_per_pixel_discrete": bits,
                "estimate": kind}

    iwae = main.idata.held_out_scores["iwae"].values
    table = pd.DataFrame([row(f"VAE ({args.likelihood}, latent {args.latent_dim})", iwae,
                              f"IWAE bound, K = {args.iwae_samples}")]
                         + [row(name, log_likelihood(parameters, test_x), "exact (MAP parameters)")
                            for name, parameters in fitted.items()])
    table = table.sort_values("log_likelihood_nats_per_image", ascending=False).reset_index(drop=True)
    vae_row = table[table["model"].str.startswith("VAE")].iloc[0]
    others = table[~table["model"].str.startswith("VAE")]
    beats = all(vae_row["log_likelihood_nats_per_image"] - r["log_likelihood_nats_per_image"]
                > 2 * math.hypot(vae_row["se"], r["se"]) for _, r in others.iterrows())
    verdict = (f"The VAE beats both baselines on the {len(test_x)} test images by more than two standard errors "
               "(its figure is a lower bound, so the true margin is at least this)." if beats else
               f"The VAE does not beat both baselines clearly: the best is {table.iloc[0]['model']}. A VAE's bound can "
               "lose to a mixture when training stopped early, the decoder is too small, or the bound is loose.")
    comparison = report.Section(
        "Comparison with simpler generative models",
        f"{verdict} Every model was fitted to the same {len(train_x)} dequantised training images and scored on the "
        f"same {len(test_x)} test images; higher is better. Bits per pixel are of the original integer pixels "
        "(nats plus 64 log 17, in bits, per 64 pixels).",
        table.set_index("model"))

    # ---- anomaly detection: the left-out digit against the other digits' test images ------------
    normal_x, odd_x = anomaly.idata.held_out_data["x"].values, anomaly.idata.anomaly_data["x"].values
    is_odd = np.concatenate([np.zeros(len(normal_x), bool), np.ones(len(odd_x), bool)])
    vae_scores = -np.concatenate([anomaly.idata.held_out_scores["iwae"].values, anomaly.idata.anomaly_scores["iwae"].values])
    mixture_scores = -np.concatenate([log_likelihood(anomaly_mixture, normal_x), log_likelihood(anomaly_mixture, odd_x)])
    detectors = {"VAE (IWAE)": checks.anomaly_auroc(vae_scores, is_odd),
                 mixture_name: checks.anomaly_auroc(mixture_scores, is_odd)}
    anomaly_table = pd.DataFrame([{"model": name, "auroc": d["auroc"], "se": d["se"], "anomalies": d["anomalies"],
                                   "normal": d["normal"]} for name, d in detectors.items()]).set_index("model")
    anomaly_section = report.Section(
        f"Anomaly detection: digit {args.anomaly_digit} never seen in training",
        f"A second VAE (same options and settings) and a second mixture were trained without the {len(odd_x)} images "
        f"of digit {args.anomaly_digit}. Each image's anomaly score is its negative log-likelihood; the {len(normal_x)} "
        f"test images of the other digits are the normal ones. VAE: {detectors['VAE (IWAE)']['reading']}. Mixture: "
        f"{detectors[mixture_name]['reading']}.",
        anomaly_table)

    extra = {"comparison": table.to_dict("records"), "verdict": verdict,
             "anomaly_study": {"digit": args.anomaly_digit, **{name: d for name, d in detectors.items()}}}
    try:
        folder = report.write_run(main, args.out, overwrite=args.overwrite, sections=[comparison, anomaly_section],
                                  extra_metrics=extra)
    except ProbgenError as exc:
        print(f"digits_vae: error: {exc}", file=sys.stderr)
        return 2
    print(verdict)
    print(table.to_string(index=False))
    print(anomaly_table.to_string())
    print(f"run folder: {folder}  (open {folder / 'report.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
