"""Every kind of generator on one bench: which model to use for density estimation, sampling,
anomaly detection and data augmentation?

Two data sets, the same fixed splits for every model:
- ring8: 8 Gaussians on a ring (probgen's bundled simulation, 4,000 points), the classic test
  of mode collapse; split with the seed 60% training / 20% validation / 20% test
  (`--holdout 0.2 --validation 0.2`).
- digits: scikit-learn's 1,797 8x8 images, dequantised to (0, 1) as (v + u) / 17 (the VAE
  study's transform and split: `probgen fit vae --holdout 0.1658 --validation 0.1664`), with digit 0 kept out of
  training altogether so that every likelihood model can be scored as an anomaly detector.

Models, all fitted with `probgen.fit` on the same training rows: diagonal Gaussian and Gaussian
mixture (gmm, MAP), probabilistic PCA and factor analysis (ppca, SVI with ARD), VAE and MADE
(the minibatch trainer, early stopping on the validation rows) and GAN (adversarial training;
it trains on the training rows less its own 2.5% validation and 2.5% held-out rows).

For each model, on the test rows: log-likelihood per row with its SE, in nats and bits per
dimension (of the 17-level integers for digits; the VAE's is its IWAE lower bound; none for the
GAN), the MMD test and the k-NN KL(test || generated), mode coverage (ring: modes hit,
high-quality share, KL of the mode histogram from the data's; digits: the class histogram of
generated images under a classifier trained on the real training images, and its KL from
uniform), the AUROC of -log p(x) for digit 0 against the other digits' test images, and data
augmentation: the accuracy on the test images of a classifier trained on the real training
images alone against one trained on them plus as many generated images, labelled by the
real-data classifier (none of the six models is class-conditional as fitted). And the training
time.

GAN training diagnostics: a narrow discriminator (one hidden layer of 64 units) on the ring,
5 seeds, without a remedy, with the R1 gradient penalty (gamma = 1) and with packing (4 rows per
discriminator input): final modes hit, collapse and oscillation counts.

    python analyses/generators.py --out runs/generators [--quick] [--quiet]

Writes tables (Markdown and CSV) and results.json to --out, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

DIGITS_SPLIT = (298 / 1797, 299 / 1797)  # (held out, validation): the VAE study's 1,200 / 299 / 298 images (before digit 0)
RING_SPLIT = (0.2, 0.2)
ANOMALY_DIGIT = 0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/generators")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="short training everywhere (a smoke run, not the study)")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--gan-seeds", type=int, default=5)
    return parser.parse_args(argv)


class Bench:
    """One data set: the split, the fitted models, their samples and scores."""

    def __init__(self, name: str, train, valid, test, levels: int, args, labels=None, test_labels=None):
        self.name, self.train, self.valid, self.test, self.levels, self.args = name, train, valid, test, levels, args
        self.labels, self.test_labels = labels, test_labels
        self.rows: dict[str, dict] = {}
        self.samples: dict[str, np.ndarray] = {}
        self.scorers: dict = {}

    def record(self, model: str, seconds: float, samples, test_ll=None, kind: str = "exact", scorer=None):
        from probgen.models._common.generative import mean_se

        print(f"generators: {self.name}: {model} fitted in {seconds:.1f} s", file=sys.stderr, flush=True)
        row = {"model": model, "train_seconds": seconds}
        dims = self.test.shape[1]
        if test_ll is not None:
            mean, se = mean_se(test_ll)
            row.update(test_nats=mean, se=se, estimate=kind,
                       bits_per_dim=(-mean + (dims * math.log(self.levels) if self.levels else 0)) / (dims * math.log(2)))
        else:
            row.update(test_nats=float("nan"), se=float("nan"), estimate="none (no likelihood)", bits_per_dim=float("nan"))
        self.rows[model] = row
        self.samples[model] = np.asarray(samples, np.float64)
        if scorer is not None:
            self.scorers[model] = scorer


def _frame(x, columns, labels=None, label_name="label"):
    import pandas as pd

    frame = pd.DataFrame(np.asarray(x), columns=columns)
    if labels is not None:
        frame[label_name] = np.asarray(labels)
    return frame


def fit_all(bench: Bench, full_frame, options_common: dict, quick: bool, progress: bool, seed: int,
            vae_options: dict, made_options: dict, split: tuple, gmm_components: int, columns):
    """Fit the six models to bench.train; sample and score each on bench.test."""
    import jax
    import jax.numpy as jnp

    from probgen.infer import fit
    from probgen.models import gan, made, ppca
    from probgen.models.gmm import mixture_log_likelihood, simulate as gmm_simulate
    from probgen.models.vae.model import sample_images
    from probgen.models.vae.data import architecture_from as vae_architecture
    from probgen.infer.amortized import params_from_dataset

    n = len(bench.test)
    key = jax.random.PRNGKey(seed + 100)
    train_frame = _frame(bench.train, columns)

    # ---- diagonal Gaussian and Gaussian mixture: MAP with probgen's gmm ---------------------
    for model, mixture in (("diagonal Gaussian", {"num_components": 1, "covariance": "diagonal"}),
                           (f"Gaussian mixture (K = {gmm_components})", {"num_components": gmm_components,
                                                                          "covariance": "full"})):
        started = time.perf_counter()
        point = fit("gmm", train_frame, "map", options=mixture, seed=seed, progress=progress).idata.posterior
        seconds = time.perf_counter() - started
        parameters = {v: point[v].values[0, :1] for v in ("weights", "means", "scale_tril")}
        single = tuple(jnp.asarray(parameters[v][0]) for v in ("weights", "means", "scale_tril"))

        def scorer(x, single=single):
            return np.asarray(mixture_log_likelihood(jnp.asarray(x, jnp.float32), *single))

        bench.record(model, seconds, gmm_simulate(jax.random.fold_in(key, len(bench.rows)), parameters, n),
                     scorer(bench.test), scorer=scorer)

    # ---- PPCA and factor analysis: SVI with the ARD prior -----------------------------------
    for model, noise in (("probabilistic PCA", "isotropic"), ("factor analysis", "diagonal")):
        if noise == "diagonal" and ppca.ledermann_bound(bench.train.shape[1]) < 1:
            continue  # 2-D data: one factor has as many parameters as the covariance (not identified)
        started = time.perf_counter()
        result = fit("ppca", train_frame, "svi", options={"latent_dim": 0, "noise": noise}, seed=seed,
                     progress=progress, steps=2000 if quick else 20000, draws=100)
        seconds = time.perf_counter() - started
        posterior = result.idata.posterior

        def scorer(x, posterior=posterior):  # the posterior predictive: the density averaged over draws
            return ppca.predictive_log_density(posterior, x)

        rng = np.random.default_rng(seed + len(bench.rows))
        mu = posterior["mu"].values.reshape((-1,) + posterior["mu"].shape[2:])
        loadings = posterior["W"].values.reshape((-1,) + posterior["W"].shape[2:])
        variance = ppca.noise_variance_draws(posterior)
        chosen = rng.integers(len(mu), size=n)  # each new row from its own posterior draw
        draws = (mu[chosen] + np.einsum("ndq,nq->nd", loadings[chosen], rng.normal(size=(n, loadings.shape[2])))
                 + np.sqrt(variance[chosen]) * rng.normal(size=(n, mu.shape[1])))
        bench.record(model, seconds, draws, scorer(bench.test), kind="posterior predictive", scorer=scorer)

    # ---- VAE and MADE: the minibatch trainer on the whole table's standard split ------------
    trainer = {"steps": 1000 if quick else 20000, "batch_size": 100, "eval_every": 250 if quick else 500,
               "patience": 6}
    started = time.perf_counter()
    holdout, validation = split
    vae = fit("vae", full_frame, "svi", options=vae_options, seed=seed, holdout=holdout, validation=validation,
              progress=progress,
              learning_rate=1e-3, kl_warmup=0 if quick else 2000, **trainer)
    seconds = time.perf_counter() - started
    assert np.allclose(vae.idata.held_out_data["x"].values, bench.test), "the VAE's split must be the bench's"
    vae_params = params_from_dataset(vae.idata.parameters)
    vae_arch = vae_architecture(vae.options, bench.test.shape[1])
    bench.record("VAE", seconds, np.asarray(sample_images(vae_params, vae_arch, jax.random.fold_in(key, 7), n, mean=False)),
                 vae.idata.held_out_scores["iwae"].values, kind=f"IWAE bound (K = {vae_options['iwae_samples']})")
    bench.vae_anomaly = (vae.idata.held_out_scores["iwae"].values, vae.idata.anomaly_scores["iwae"].values) \
        if "anomaly_scores" in vae.idata.groups() else None

    started = time.perf_counter()
    made_fit = fit("made", full_frame, "svi", options=made_options, seed=seed, holdout=holdout, validation=validation,
                   progress=progress,
                   learning_rate=1e-3, **trainer)
    seconds = time.perf_counter() - started
    made_params = params_from_dataset(made_fit.idata.parameters)
    made_arch = made.architecture_from(made_fit.options, bench.test.shape[1])

    def made_scorer(x):
        return np.asarray(made.log_likelihood(made_params, jnp.asarray(x, jnp.float32), made_arch))

    bench.record("MADE", seconds, np.asarray(made.sample_rows(made_params, made_arch, jax.random.fold_in(key, 8), n)),
                 made_fit.idata.held_out_scores["log_likelihood"].values, scorer=made_scorer)

    # ---- GAN --------------------------------------------------------------------------------
    started = time.perf_counter()
    gan_frame = _frame(bench.train, columns, bench.labels, "label")
    gan_fit = fit("gan", gan_frame, "adversarial", options={**options_common.get("gan", {}), "label_column": "label"},
                  seed=seed, holdout=0.025, validation=0.025, progress=progress, steps=1000 if quick else options_common.get("gan_steps", 5000))
    seconds = time.perf_counter() - started
    params, architecture, loc, scale = gan.trained_generator(gan_fit.idata, gan_fit.options)
    bench.record("GAN", seconds, gan.parts.generate(params, architecture, jax.random.fold_in(key, 9), n, loc, scale))
    bench.gan_fit = gan_fit


def sample_metrics(bench: Bench, seed: int) -> None:
    from probgen.checks import metrics
    from probgen.checks import two_sample

    for model, samples in bench.samples.items():
        test = two_sample.mmd_test(samples, bench.test, 200, seed)
        kl = metrics.kl_knn(bench.test, samples)
        bench.rows[model].update(mmd_p_value=test.p_value, knn_kl=kl.value, knn_kl_se=kl.standard_error)


def ring_coverage(bench: Bench, modes) -> None:
    from probgen.models.gan.evaluation import mode_coverage

    for model, samples in bench.samples.items():
        coverage = mode_coverage(samples, modes)
        bench.rows[model].update(modes_hit=coverage["modes_hit"], high_quality=coverage["high_quality"],
                                 kl_modes=coverage["kl_modes"])


def digits_studies(bench: Bench, anomalies, seed: int) -> None:
    """Class histogram under a real-data classifier, anomaly AUROC, augmentation accuracy."""
    from sklearn.linear_model import LogisticRegression

    from probgen import checks

    def classifier(x, y):
        return LogisticRegression(max_iter=3000, C=1.0).fit(x, y)

    real = classifier(bench.train, bench.labels)
    baseline = float((real.predict(bench.test) == bench.test_labels).mean())
    classes = np.unique(bench.labels)
    bench.baseline_accuracy = baseline
    for model, samples in bench.samples.items():
        predicted = real.predict(np.clip(samples, -1, 2))
        histogram = np.array([(predicted == c).mean() for c in classes])
        share = np.maximum(histogram, 1e-12)
        bench.rows[model]["classes_hit"] = int((histogram >= 0.01).sum())
        bench.rows[model]["class_kl_uniform"] = float(np.sum(np.where(histogram > 0, histogram * np.log(share * len(classes)), 0)))
        synthetic = np.clip(np.asarray(samples)[:len(bench.train)], -1, 2)
        rng = np.random.default_rng(seed)
        extra = synthetic if len(synthetic) >= len(bench.train) else synthetic[rng.integers(len(synthetic),
                                                                                             size=len(bench.train))]
        augmented = classifier(np.vstack([bench.train, extra]), np.concatenate([bench.labels, real.predict(extra)]))
        accuracy = float((augmented.predict(bench.test) == bench.test_labels).mean())
        bench.rows[model]["augmented_accuracy"] = accuracy
        bench.rows[model]["augmentation_gain"] = accuracy - baseline
        if model in bench.scorers or model == "VAE":
            if model == "VAE":
                normal, odd = bench.vae_anomaly
            else:
                normal, odd = bench.scorers[model](bench.test), bench.scorers[model](anomalies)
            scores = -np.concatenate([normal, odd])
            is_odd = np.concatenate([np.zeros(len(normal), bool), np.ones(len(odd), bool)])
            auroc = checks.anomaly_auroc(scores, is_odd)
            bench.rows[model].update(anomaly_auroc=auroc["auroc"], anomaly_auroc_se=auroc["se"])


def gan_remedies(args, progress: bool):
    import pandas as pd

    from probgen import data
    from probgen.infer import fit

    ring = data.load("ring8").frame
    settings = {"no remedy": {}, "R1 gradient penalty (gamma = 1)": {"penalty": 1.0},
                "packing (4 rows per input)": {"pack": 4}}
    rows = []
    for name, extra in settings.items():
        finals, collapses, oscillations = [], 0, 0
        for seed in range(args.gan_seeds):
            result = fit("gan", ring, "adversarial", options={"label_column": "mode", "discriminator_hidden": "64", **extra},
                         seed=args.seed + seed, holdout=0.1, progress=progress, steps=1000 if args.quick else 5000)
            attrs = result.idata.adversarial_training.attrs
            finals.append(float(attrs["final_modes_hit"]))
            collapses += int(attrs["collapse"])
            oscillations += int(attrs["oscillation"])
        rows.append({"setting": name, "seeds": args.gan_seeds, "final_modes_hit_mean": float(np.mean(finals)),
                     "final_modes_hit_sd": float(np.std(finals, ddof=1)) if len(finals) > 1 else float("nan"),
                     "per_seed": " ".join(f"{v:g}" for v in finals), "collapsed": collapses, "oscillated": oscillations})
    return pd.DataFrame(rows).set_index("setting")


def run(args) -> int:
    import pandas as pd

    from probgen import data
    from probgen.errors import ProbgenError
    from probgen.infer.amortized import Objective
    from probgen.infer.parts import split_parts
    from probgen.models.gan.evaluation import modes_from
    from probgen.report.render import markdown_table
    from probgen.spec import load_spec

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    results = {}
    try:
        # ---- ring8 ------------------------------------------------------------------------------
        ring = data.load("ring8")
        made_ring = {"hidden": "64,64", "conditional": "mog", "components": 5, "label_column": "mode"}
        vae_ring = {"latent_dim": 2, "hidden": "64,64", "likelihood": "gaussian", "label_column": "mode",
                    "iwae_samples": 500}
        parts = split_parts(load_spec("made"), ring, load_spec("made").resolve_options(made_ring), RING_SPLIT[0],
                            args.seed, validation=RING_SPLIT[1])
        columns = ["x", "y"]
        ring_bench = Bench("ring8", parts["training"].frame[columns].to_numpy(), parts["validation"].frame[columns].to_numpy(),
                           parts["held_out"].frame[columns].to_numpy(), 0, args,
                           labels=parts["training"].frame["mode"].to_numpy())
        fit_all(ring_bench, ring.frame, {"gan_steps": 5000}, args.quick, progress, args.seed, vae_ring, made_ring,
                RING_SPLIT, 8, columns)
        sample_metrics(ring_bench, args.seed)
        ring_coverage(ring_bench, modes_from(ring_bench.train, ring_bench.labels))

        # ---- digits -----------------------------------------------------------------------------
        digits = data.load("digits")
        pixels = [c for c in digits.frame.columns if c != "target"]
        common = {"transform": "dequantize", "pixel_levels": 17, "label_column": "target", "anomaly_label": ANOMALY_DIGIT,
                  "image_shape": "8x8"}
        vae_digits = {**common, "likelihood": "beta", "latent_dim": 8, "hidden": "128,64", "iwae_samples": 1000}
        made_digits = {**common, "hidden": "256,256", "conditional": "mog", "components": 5}
        spec = load_spec("made")
        parts = split_parts(spec, digits, spec.resolve_options(made_digits), DIGITS_SPLIT[0], args.seed,
                            validation=DIGITS_SPLIT[1],
                            set_apart=spec.part(Objective).preprocess)
        digits_bench = Bench("digits", parts["training"].frame[pixels].to_numpy(), parts["validation"].frame[pixels].to_numpy(),
                             parts["held_out"].frame[pixels].to_numpy(), 17, args,
                             labels=parts["training"].frame["target"].to_numpy(),
                             test_labels=parts["held_out"].frame["target"].to_numpy())
        fit_all(digits_bench, digits.frame, {"gan": {"latent_dim": 8, "hidden": "128,128"}, "gan_steps": 10000},
                args.quick, progress, args.seed, vae_digits, made_digits, DIGITS_SPLIT, 5, pixels)
        sample_metrics(digits_bench, args.seed)
        digits_studies(digits_bench, parts["anomaly"].frame[pixels].to_numpy(), args.seed)

        remedies = gan_remedies(args, progress)
    except ProbgenError as exc:
        print(f"generators: error: {exc}", file=sys.stderr)
        return 2

    tables = {"ring8": pd.DataFrame(ring_bench.rows.values()).set_index("model"),
              "digits": pd.DataFrame(digits_bench.rows.values()).set_index("model"), "gan_remedies": remedies}
    text = []
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv")
        text.append(f"## {name}\n\n{markdown_table(table.round(4))}\n")
        results[name] = table.reset_index().to_dict("records")
        print(f"\n{name}\n{table.round(4).to_string()}")
    results["digits_baseline_accuracy"] = digits_bench.baseline_accuracy
    text.append(f"Classifier on the real training images alone: accuracy {digits_bench.baseline_accuracy:.4f} on the "
                "test images.\n")
    (out / "tables.md").write_text("\n".join(text))
    (out / "results.json").write_text(json.dumps({"args": vars(args), **results}, indent=2, default=float))
    print(f"\nwrote {out / 'tables.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
