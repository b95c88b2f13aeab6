"""What the BNN studies share: several random train/test splits, NUTS, SVI (mean-field and
low-rank) and MAP on each, a linear baseline from scikit-learn on the same rows, the distance
between NUTS's and SVI's predictive distributions, and a table of means and standard errors
over the splits."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

METHODS = {"NUTS": ("nuts", {}), "SVI mean-field": ("svi", {"guide": "normal"}),
           "SVI low-rank": ("svi", {"guide": "lowrank"}), "MAP": ("map", {})}


def study_arguments(description: str, out: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=out, help="run folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace the run folder if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first split; split s uses seed + s")
    parser.add_argument("--splits", type=int, default=5, help="random train/test splits (default 5)")
    parser.add_argument("--holdout", type=float, default=0.2, help="test fraction of each split (default 0.2)")
    parser.add_argument("--hidden", default="20", help="hidden layer sizes (default one layer of 20)")
    parser.add_argument("--prior", default="fixed", choices=["fixed", "hierarchical"], help="weight prior")
    parser.add_argument("--prior-scale", type=float, default=1.0, help="weight prior scale (times 1/sqrt(fan_in))")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--target-accept", type=float, default=0.8, help="NUTS step-size adaptation target")
    return parser


def _regression_baseline(train, test, target):
    """scikit-learn's BayesianRidge on standardised features: RMSE, log predictive density per
    row (Gaussian with its predictive sd) and 50%/90% interval coverage, in the target's units."""
    from scipy import stats
    from sklearn.linear_model import BayesianRidge

    features = [c for c in train.columns if c != target]
    mean, sd = train[features].mean(), train[features].std(ddof=0)
    model = BayesianRidge().fit((train[features] - mean) / sd, train[target])
    predicted, spread = model.predict((test[features] - mean) / sd, return_std=True)
    truth = test[target].to_numpy()
    out = {"rmse": float(np.sqrt(np.mean((predicted - truth) ** 2))),
           "log_predictive_density_per_row": float(stats.norm.logpdf(truth, predicted, spread).mean())}
    for level in (0.5, 0.9):
        half = stats.norm.ppf(0.5 + level / 2) * spread
        out[f"coverage_{int(level * 100)}"] = float(np.mean(np.abs(truth - predicted) <= half))
    return out


def _classification_baseline(train, test, target):
    """scikit-learn's (L2-regularised) LogisticRegression: accuracy, log predictive density per
    row and expected calibration error."""
    from sklearn.linear_model import LogisticRegression

    from probgen.models.bnn import calibration

    features = [c for c in train.columns if c != target]
    mean, sd = train[features].mean(), train[features].std(ddof=0)
    model = LogisticRegression(max_iter=5000).fit((train[features] - mean) / sd, train[target].astype(int))
    probabilities = model.predict_proba((test[features] - mean) / sd)
    truth = test[target].to_numpy().astype(int)
    return {"accuracy": float(np.mean(probabilities.argmax(1) == truth)),
            "log_predictive_density_per_row": float(np.mean(np.log(probabilities[np.arange(len(truth)), truth]))),
            "expected_calibration_error": calibration(probabilities, truth)["ece"]}


def predictive_distance(nuts, svi, options) -> float:
    """Mean over held-out rows of KL(NUTS predictive || SVI predictive), nats: exact between the
    two predictive Bernoulli / categorical distributions (classification); between Gaussians
    matched to each predictive's mean and sd (regression, an approximation)."""
    from probgen.models.bnn import REGRESSION, class_probabilities, regression_draws

    if options["likelihood"] in REGRESSION:
        p, q = regression_draws(nuts.idata, options), regression_draws(svi.idata, options)
        mp, sp, mq, sq = p.mean(0), p.std(0), q.mean(0), q.std(0)
        return float(np.mean(np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5))

    def probabilities(result):
        f = result.idata.held_out_predictive["prediction"].values
        return class_probabilities(f.reshape((-1,) + f.shape[2:]), options["likelihood"])

    p, q = np.clip(probabilities(nuts), 1e-12, 1), np.clip(probabilities(svi), 1e-12, 1)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def run_splits(name: str, options: dict, args):
    """Fit every method on every split; returns (per-split records, the first split's NUTS fit)."""
    from probgen import data
    from probgen.infer import fit, methods
    from probgen.models.bnn import REGRESSION, held_out_evaluation

    dataset = data.load(name)
    target = options.get("target") or dataset.columns[-1]
    records, main = [], None
    for split in range(args.splits):
        seed = args.seed + split
        train, test = dataset.split(args.holdout, seed)  # the split `fit(..., holdout, seed)` makes
        fits = {}
        for label, (method, settings) in METHODS.items():
            if methods.get(method).markov_chains:  # the study's MCMC flags go to the sampler
                settings = {"chains": args.chains, "warmup": args.warmup, "draws": args.draws,
                            "target_accept": args.target_accept}
            result = fit("bnn", dataset, method, options=options, seed=seed, holdout=args.holdout,
                         progress=not args.quiet, **settings)
            fits[label] = result
            evaluation = held_out_evaluation(result.idata, result.options)
            if "calibration" in evaluation:
                evaluation["expected_calibration_error"] = evaluation.pop("calibration")["ece"]
            records.append({"split": split, "method": label, "seconds": sum(result.timings.values()),
                            **{k: v for k, v in evaluation.items() if not k.endswith("_se") and k != "rows"}})
        baseline = (_regression_baseline if options["likelihood"] in REGRESSION else _classification_baseline)(
            train.frame, test.frame, target)
        records.append({"split": split, "method": "linear baseline (scikit-learn)", **baseline})
        for label in ("SVI mean-field", "SVI low-rank"):
            distance = predictive_distance(fits["NUTS"], fits[label], fits["NUTS"].options)
            records.append({"split": split, "method": f"KL(NUTS || {label})", "kl_nats_per_row": distance})
        if main is None:
            main = fits["NUTS"]
    return records, main


def summarise(records):
    """Mean and standard error over splits of each method's metrics: a table with one row per
    method and columns `<metric>` and `<metric>_se`."""
    import pandas as pd

    frame = pd.DataFrame(records)
    metrics = [c for c in frame.columns if c not in ("split", "method")]
    grouped = frame.groupby("method", sort=False)[metrics]
    means, ses = grouped.mean(), grouped.std(ddof=1) / np.sqrt(grouped.count())
    table = pd.concat({"mean": means, "se": ses}, axis=1).swaplevel(axis=1)
    table.columns = [f"{metric}" if kind == "mean" else f"{metric}_se" for metric, kind in table.columns]
    ordered = [c for metric in metrics for c in (metric, f"{metric}_se") if c in table.columns]
    return table[ordered].dropna(axis=1, how="all")


def finish(name: str, main, sections, extra, args) -> int:
    from probgen import report

    folder = report.write_run(main, args.out, overwrite=args.overwrite, sections=sections, extra_metrics=extra)
    assessment = report.assess_run(main.idata, main.config(), main.spec)
    print(f"{assessment.overall.upper()} (NUTS, first split): {assessment.summary}")
    print(f"run folder: {folder}  (open {folder / 'report.html'})")
    return 0


def fail(script: str, exc) -> int:
    print(f"{script}: error: {exc}", file=sys.stderr)
    return 2


def expose_devices(chains: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from probgen.devices import expose_cpu_devices

    expose_cpu_devices(chains)


def fmt(value, se=None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}" if se is None or math.isnan(se) else f"{value:.4g} ± {se:.2g}"


def paired_difference(records, metric: str, first: str, second: str) -> tuple[float, float]:
    """Mean over splits of metric(first) - metric(second) on the same split, and its SE."""
    by = {(r["split"], r["method"]): r.get(metric) for r in records}
    splits = sorted({r["split"] for r in records})
    differences = np.array([by[(s, first)] - by[(s, second)] for s in splits], float)
    se = float(differences.std(ddof=1) / math.sqrt(len(differences))) if len(differences) > 1 else float("nan")
    return float(differences.mean()), se


def worth_it(records, metric: str, higher_is_better: bool, label: str) -> str:
    """A plain-words reading of whether NUTS's BNN beats the linear baseline on `metric`."""
    difference, se = paired_difference(records, metric, "NUTS", "linear baseline (scikit-learn)")
    better = difference if higher_is_better else -difference
    if math.isnan(se):
        return f"One split only: the BNN's {label} differs from the linear model's by {difference:.3g}; run more splits."
    if better > 2 * se:
        return (f"The BNN is worth it on {label}: better than the linear model by {abs(difference):.3g} "
                f"(SE {se:.2g} over paired splits).")
    if better < -2 * se:
        return (f"The BNN is not worth it on {label}: the linear model is better by {abs(difference):.3g} "
                f"(SE {se:.2g} over paired splits).")
    return (f"The BNN is not worth it on {label}: it is within two standard errors of the linear model "
            f"({difference:+.3g}, SE {se:.2g} over paired splits), at far greater cost.")


def run_study(script: str, dataset: str, likelihood: str, readings: list, note: str, args) -> int:
    """One split study: fit every method on every split, tabulate, read, and write the first
    split's NUTS run folder with the table as a section. readings: (metric, higher is better,
    label) triples for `worth_it`; note: what the table's columns are."""
    from probgen import report
    from probgen.errors import ProbgenError

    try:
        report.check_destination(args.out, args.overwrite)
        options = {"hidden": args.hidden, "likelihood": likelihood, "prior": args.prior,
                   "prior_scale": args.prior_scale}
        records, main = run_splits(dataset, options, args)
    except ProbgenError as exc:
        return fail(script, exc)
    table = summarise(records)
    read = [worth_it(records, metric, higher, label) for metric, higher, label in readings]
    section = report.Section(f"Across {args.splits} random splits (test fraction {args.holdout:g})",
                             " ".join(read) + " " + note, table)
    print(table.to_string())
    print("\n".join(read))
    try:
        return finish(script, main, [section], {"splits": records, "readings": read}, args)
    except ProbgenError as exc:
        return fail(script, exc)
