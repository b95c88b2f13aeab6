"""Handwritten digits: does a VAE model them better than a Gaussian mixture and a diagonal Gaussian?

scikit-learn's 1,797 digit images (8x8, values 0-16) are split once with the seed into 1,200
training, 300 validation (early stopping) and 297 test images, and dequantised to (0, 1) as
(v + u) / 17 with u ~ Uniform(0, 1) (Theis et al., 2016), so that every model is a density on
the same continuous values. Fitted on the training images:
- a VAE (Beta likelihood by default) by minibatch SVI, stopped on the validation ELBO;
- a Gaussian mixture (K = 5, full covariance) and a diagonal Gaussian (K = 1), both by MAP
  with `probgen.fit`.
Each is scored on the test images in nats per image (the VAE by its importance-weighted bound
with K = 1,000 samples, a lower bound on its log-likelihood) and in bits per dimension of the
discrete pixels (adding the log 17 per pixel of the dequantisation, a bound on log P(v)).
The run folder also holds the VAE's information terms (KL per latent dimension, aggregate-
posterior mutual information), its training history and plots.

    python analyses/digits_vae.py --out runs/digits_vae [--overwrite] [--quiet]

In progress (issue 5): `probgen fit vae` with checkpoints and the full report come next.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys

import numpy as np


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
    return parser.parse_args(argv)


def split_and_dequantise(values: np.ndarray, seed: int):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(values))
    x = ((values + rng.random(values.shape)) / 17.0).astype(np.float32)
    return x[order[:1200]], x[order[1200:1500]], x[order[1500:]], order


def run(args) -> int:
    import jax
    import jax.numpy as jnp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from probgen import data, metrics, report
    from probgen.errors import ProbgenError
    from probgen.infer import amortized, fit
    from probgen.infer.results import versions
    from probgen.models import vae
    from probgen.models.gmm import mixture_log_likelihood

    try:
        report.check_destination(args.out, args.overwrite)
        digits = data.load("digits", columns=[f"pixel_{r}_{c}" for r in range(8) for c in range(8)] + ["target"])
        values, labels = digits.frame.drop(columns="target").to_numpy(), digits.frame["target"].to_numpy().astype(int)
        train_x, valid_x, test_x, order = split_and_dequantise(values, args.seed)
        test_labels = labels[order[1500:]]
        hidden = tuple(int(h) for h in args.hidden.split(",") if h.strip())
        architecture = vae.Architecture(num_dims=64, latent_dim=args.latent_dim, hidden=hidden,
                                        likelihood=args.likelihood)
        for name, part in (("training", train_x), ("validation", valid_x), ("test", test_x)):
            vae.check_values(part, args.likelihood, f"the {name} images")

        def kwargs(num_points, batch_size=None, kl_weight=1.0):
            return architecture.kwargs(num_points, batch_size, kl_weight)

        def evaluate(params, x, key):
            return vae.elbo_per_example(params, x, architecture, key)

        key = jax.random.PRNGKey(args.seed)
        settings = {"steps": args.steps, "batch_size": 100, "learning_rate": 1e-3, "kl_warmup": 2000,
                    "eval_every": 500, "patience": 6}
        trained = amortized.train(vae.vae_model, vae.vae_guide, kwargs, train_x, valid_x, settings, key, evaluate,
                                  progress=not args.quiet)
        params = trained.params
        iwae = np.asarray(vae.iwae_per_example(params, jnp.asarray(test_x), architecture, jax.random.fold_in(key, 1),
                                               args.iwae_samples))
        elbo = np.asarray(vae.elbo_per_example(params, jnp.asarray(test_x), architecture, jax.random.fold_in(key, 2), 10))
        frame = pd.DataFrame(train_x, columns=[f"p{i}" for i in range(64)])
        baselines = {}
        for name, options in ((f"Gaussian mixture (K = {args.components}, full)",
                               {"num_components": args.components, "covariance": "full"}),
                              ("diagonal Gaussian", {"num_components": 1, "covariance": "diagonal"})):
            result = fit("gmm", frame, "map", options=options, seed=args.seed, progress=not args.quiet)
            point = result.idata.posterior
            baselines[name] = np.asarray(mixture_log_likelihood(
                jnp.asarray(test_x), jnp.asarray(point["weights"].values[0, 0]),
                jnp.asarray(point["means"].values[0, 0]), jnp.asarray(point["scale_tril"].values[0, 0])))
    except (ProbgenError, ValueError) as exc:
        print(f"digits_vae: error: {exc}", file=sys.stderr)
        return 2

    def row(name, per_image, kind):
        mean, se = float(per_image.mean()), float(per_image.std(ddof=1) / math.sqrt(len(per_image)))
        bits = (-mean + 64 * math.log(17)) / (64 * math.log(2))
        return {"model": name, "log_likelihood_nats_per_image": mean, "se": se,
                "bits_per_pixel_discrete": bits, "estimate": kind}

    table = pd.DataFrame([row(f"VAE ({args.likelihood}, latent {args.latent_dim})", iwae,
                              f"IWAE bound, K = {args.iwae_samples}")]
                         + [row(name, values, "exact (MAP parameters)") for name, values in baselines.items()])
    table = table.sort_values("log_likelihood_nats_per_image", ascending=False).reset_index(drop=True)
    best = table.iloc[0]["model"]
    vae_row = table[table["model"].str.startswith("VAE")].iloc[0]
    beats = all(vae_row["log_likelihood_nats_per_image"] - r["log_likelihood_nats_per_image"] > 2 * math.hypot(vae_row["se"], r["se"])
                for _, r in table.iterrows() if not r["model"].startswith("VAE"))
    verdict = (f"The VAE beats both baselines on the {len(test_x)} test images by more than two standard errors "
               "(its figure is a lower bound, so the true margin is at least this)." if beats else
               f"The VAE does not beat both baselines clearly: the best is {best}.")
    kl = np.asarray(vae.kl_per_dimension(params, jnp.asarray(test_x), architecture))
    loc, scale = vae.encode(params, jnp.asarray(test_x), architecture)
    information = metrics.aggregate_posterior_mutual_information(loc, scale, jax.random.fold_in(key, 3), 4000)
    summary = {
        "comparison": table.to_dict("records"), "verdict": verdict,
        "vae": {"test_elbo_nats_per_image": float(elbo.mean()), "test_iwae_nats_per_image": float(iwae.mean()),
                "steps_run": trained.steps_run, "best_step": trained.best_step, "stopped_early": trained.stopped_early,
                "kl_per_latent_dimension": kl.tolist(), "active_units": int((kl > 0.01).sum()),
                "mutual_information_nats": information.value, "mutual_information_se": information.standard_error,
                "mutual_information_upper_limit_log_n": math.log(len(test_x))},
    }

    def figures() -> dict:
        out = {}
        figure, axes = plt.subplots(2, 10, figsize=(10, 2.2))
        means = np.asarray(vae.decode_mean(params, loc[:10], architecture))
        for i in range(10):
            axes[0, i].imshow(test_x[i].reshape(8, 8), cmap="gray_r")
            axes[1, i].imshow(means[i].reshape(8, 8), cmap="gray_r")
        for axis in axes.ravel():
            axis.axis("off")
        figure.suptitle("test images (top) and their reconstructions E[x | z = encoder mean] (bottom)")
        out["reconstructions"] = figure
        figure, axes = plt.subplots(4, 10, figsize=(10, 4.2))
        samples = np.asarray(vae.sample_images(params, architecture, jax.random.fold_in(key, 4), 40))
        for axis, image in zip(axes.ravel(), samples):
            axis.imshow(image.reshape(8, 8), cmap="gray_r")
            axis.axis("off")
        figure.suptitle("new images: z ~ N(0, I), then E[x | z]")
        out["prior_samples"] = figure
        figure, axis = plt.subplots(figsize=(5, 4.5))
        shown = np.asarray(loc)[:, np.argsort(kl)[::-1][:2]]
        points = axis.scatter(shown[:, 0], shown[:, 1], c=test_labels, cmap="tab10", s=10)
        figure.colorbar(points, label="digit")
        axis.set_xlabel("most active latent dimension")
        axis.set_ylabel("second most active")
        axis.set_title("encoder means of the test images")
        out["latent_map"] = figure
        figure, axis = plt.subplots(figsize=(6, 3.5))
        axis.plot(trained.history["step"], trained.history["train_elbo"], label="training (minibatch, KL annealed)")
        axis.plot(trained.history["step"], trained.history["heldout_elbo"], label="validation")
        axis.set_xlabel("step")
        axis.set_ylabel("ELBO per image (nats)")
        axis.legend()
        out["elbo"] = figure
        return {name: report.figure_png(f) for name, f in out.items()}

    pngs = figures()
    markdown = "\n".join([
        "# Digits: VAE against a Gaussian mixture and a diagonal Gaussian", "",
        f"**{verdict}**", "",
        "Held-out log-likelihood of the dequantised test images (higher is better):", "",
        report.markdown_table(table, index=False), "",
        f"VAE: training stopped at step {trained.steps_run} (best validation ELBO at {trained.best_step}); test ELBO "
        f"{elbo.mean():.2f}, IWAE {iwae.mean():.2f} nats per image. Active latent dimensions (mean KL > 0.01 nats): "
        f"{summary['vae']['active_units']} of {args.latent_dim}. Mutual information I(x; z) under the aggregate "
        f"posterior: {information.value:.2f} nats (SE {information.standard_error:.2f}; at most log N = "
        f"{math.log(len(test_x)):.2f}).", "",
        *[f"![{name}](plots/{name}.png)" for name in pngs],
    ])

    def fill(folder):
        report.write_json(folder / "config.json", {"args": vars(args), "settings": settings,
                                                   "architecture": dataclasses.asdict(architecture),
                                                   "versions": versions()})
        report.write_json(folder / "metrics.json", summary)
        table.to_csv(folder / "comparison.csv", index=False)
        pd.DataFrame(trained.history).to_csv(folder / "history.csv", index=False)
        (folder / "plots").mkdir()
        for name, content in pngs.items():
            (folder / "plots" / f"{name}.png").write_bytes(content)
        (folder / "report.md").write_text(markdown + "\n")

    from pathlib import Path

    folder = report.atomic_folder(Path(args.out), fill, args.overwrite)
    print(verdict)
    print(table.to_string(index=False))
    print(f"run folder: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
