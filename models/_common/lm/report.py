"""The report of a language model (`ReportPart`): bits per character with standard errors and
perplexity on every part, the uncertainty of the held-out score, samples at several
temperatures, how far the model's memory reaches (mutual information by lag, real text against
text it writes), the n-gram ladder and training curves. Read from the run's InferenceData, so
`probgen report RUN_DIR` rebuilds it."""

from __future__ import annotations

import numpy as np

from probgen.models._common.lm.information import LAGS, mutual_information_by_lag
from probgen.models._common.lm.sampling import continue_texts, sample_documents
from probgen.models._common.lm.scoring import bits_per_character
from probgen.models._common.lm.text import END

TEMPERATURES = (0.5, 0.8, 1.0)
PARTS = (("training", "training documents"), ("validation", "validation documents"), ("held_out", "held-out documents"))


def part_documents(group) -> list[np.ndarray]:
    """The documents of a data group as symbol arrays (END dropped): from a flat stream
    (`symbols`, `document`) or from rows (`x`, whose last `block` positions `owner` marks)."""
    if "symbols" in group:
        symbols, owner = group["symbols"].values, group["document"].values
    else:
        owner = group["owner"].values
        symbols = group["x"].values[:, -owner.shape[1]:].reshape(-1)
        owner = owner.reshape(-1)
    keep = (owner >= 0) & (symbols != END)
    symbols, owner = symbols[keep], owner[keep]
    order = np.argsort(owner, kind="stable")
    symbols, owner = symbols[order], owner[order]
    cuts = np.flatnonzero(np.diff(owner)) + 1
    return np.split(symbols, cuts)


def _score_rows(idata, label: str, column: str, top: bool) -> list[dict]:
    rows = []
    for part, description in PARTS:
        group = f"{part}_scores"
        if group not in idata.groups() or column not in idata[group]:
            continue
        scores = idata[group]
        bits = scores[column].values
        bits = bits[:, -1] if top and bits.ndim == 2 else bits
        value, se = bits_per_character(bits, scores["symbols"].values)
        if scores.attrs.get("rows_scored"):  # a random subset of the part's rows was scored: say so
            description += f" (a random {int(scores.attrs['rows_scored']):,} of {int(scores.attrs['rows']):,} rows)"
        rows.append({"model": label, "part": description, "documents": int(scores.sizes["document"]),
                     "characters": int(scores["symbols"].values.sum()), "bits_per_char": value, "se": se,
                     "perplexity": float(2 ** value)})
    return rows


def language_model_report(idata, config: dict, model, ladder: bool = False, label: str | None = None,
                          extra_figures=None):
    """The ReportPart of a fitted language model. model: (vocabulary, context length,
    next_probabilities) as the family's `next_probabilities(idata)` returns it."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from probgen.spec import ReportPart, Section

    vocabulary, context, next_symbol = model
    seed = int(config.get("seed", 0))
    options = config["model"]["options"]
    name = label or config["model"].get("name", "model")
    sections, figures, metrics = [], {}, {}

    # ---- bits per character ---------------------------------------------------------------
    if ladder:
        order = int(options["order"])
        rows = (_score_rows(idata, f"Dirichlet, order {order}", "bits", True)
                + _score_rows(idata, f"Kneser-Ney, order {order}", "kneser_ney_bits", True))
    else:
        rows = _score_rows(idata, name, "bits", False)
    table = pd.DataFrame(rows)
    table.index = [f"{r['model']}, {r['part']}" for r in rows]
    table = table.drop(columns=["model", "part"])
    metrics["bits_per_char"] = {label: {"value": r["bits_per_char"], "se": r["se"], "perplexity": r["perplexity"]}
                                for label, r in table.to_dict("index").items()}
    # a uniform guess over the vocabulary scores log2(V) bits: no model worth reporting is worse
    metrics["vocabulary_size"] = int(vocabulary.size)
    metrics["bits_ceiling"] = float(np.log2(vocabulary.size))
    held = [r for r in rows if r["part"] == "held-out documents"]
    headline = held[0] if held else rows[-1]
    text = (f"Held-out cross-entropy {headline['bits_per_char']:.3f} ± {headline['se']:.3f} bits per character "
            f"(perplexity {headline['perplexity']:.2f}) over {headline['characters']:,} characters of "
            f"{headline['documents']:,} documents the model never saw; END (the end of a document) counts as a "
            "character. Standard errors treat documents as the independent units (ratio estimator). "
            f"Vocabulary: {vocabulary.size} symbols (PAD, END, UNK and {len(vocabulary.characters)} characters seen at "
            f"least {options.get('min_count', 1)} times in training).")

    # ---- the uncertainty of the held-out score ---------------------------------------------
    uncertainty = None
    source = (idata.held_out_score_draws if "held_out_score_draws" in idata.groups() else
              idata.posterior if "posterior" in idata.groups() and "held_out_bits_per_char" in idata.posterior
              and idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] > 1 else None)
    if source is not None:
        draws = source["held_out_bits_per_char"].values.reshape(-1)
        low, median, high = np.quantile(draws, [0.05, 0.5, 0.95])
        uncertainty = {"posterior_median": float(median), "interval_90": [float(low), float(high)],
                       "draws": int(draws.size), "posterior_predictive": headline["bits_per_char"],
                       "between_documents_se": headline["se"]}
        metrics["held_out_score_uncertainty"] = uncertainty
        digits = 3 if high < 100 else 0
        spread = (f"{median:,.{digits}f} bits per character (90% interval {low:,.{digits}f} to {high:,.{digits}f}) "
                  f"over {draws.size} posterior draws of the model's probabilities")
        if median > 2 * headline["bits_per_char"]:  # single draws are not predictions worth stating as the score
            text_uncertainty = (
                f"Scored one draw at a time, the held-out text costs {spread}, far above the posterior predictive's "
                f"{headline['bits_per_char']:.3f}. A single draw from the exact Dirichlet posterior gives a character "
                "never seen after its context in training a probability near 0 (its expected log-loss is about "
                "1 / (concentration x base probability)), so single draws measure how sparse the counts are, not how "
                "well the model predicts: judge the model by the posterior predictive (the table above), whose "
                f"uncertainty is the standard error over documents, {headline['se']:.3f}. The parameters' "
                "uncertainty shows per character, below.")
        else:
            text_uncertainty = (
                f"Scored one draw at a time, the held-out text costs {spread}: the parameters' uncertainty. (The table "
                "scores the posterior predictive, which averages the probabilities over the posterior before taking "
                f"logs, so it is lower by Jensen's inequality.) The standard error over documents, {headline['se']:.3f}, "
                "is the uncertainty from which documents were drawn for the test set; it is the larger one when the "
                "training text is large.")
        sections.append(Section("Uncertainty of the held-out score", text_uncertainty))

    # ---- the posterior predictive per character ------------------------------------------
    if "held_out_tokens" in idata.groups():
        tokens = idata.held_out_tokens
        shown = pd.DataFrame({"character": [vocabulary.decode([s]) if s > 2 else ("END" if s == 1 else "UNK")
                                            for s in tokens["symbol"].values],
                              "predictive_p": tokens["predictive"].values,
                              "bits": -np.log2(tokens["predictive"].values)})
        interval = "low" in tokens
        skewed = 0
        if interval:
            shown["p_5%"], shown["p_95%"] = tokens["low"].values, tokens["high"].values
            # the predictive probability is the mean over draws; where the context was rare the
            # draws are so skewed (most near 0, a few large) that the mean lies above their 95% quantile
            outside = (shown["predictive_p"] > shown["p_95%"]) | (shown["predictive_p"] < shown["p_5%"])
            skewed = int(outside.sum())
            shown["note"] = np.where(shown["predictive_p"] > shown["p_95%"], "mean above the interval: skewed draws",
                                     np.where(outside, "mean below the interval: skewed draws", ""))
            if not skewed:
                shown = shown.drop(columns="note")
        sections.append(Section(
            "Posterior predictive per character (the first held-out document)",
            "The probability the model gave each character of a document it never saw, given the characters before "
            "it" + (", with the 90% interval of that probability over the posterior: wide where the context was rare "
                    "in training, narrow where it was common." if interval else
                    " (the networks are point estimates: no interval; --head bayesian gives one).")
            + (f" In {skewed} row(s) (marked) the predictive probability, the mean over the posterior, lies outside "
               "the 90% interval: the draws are that skewed (after a context seen rarely in training most give the "
               "character a probability near 0 and a few give it much more, so the mean sits above the 95% "
               "quantile; near a probability of 1 the other way round). The mean is the probability the model "
               "predicts with." if skewed else ""), shown))

    # ---- the n-gram ladder: an upper bound of the entropy rate ----------------------------
    if ladder and "held_out_scores" in idata.groups():
        scores = idata.held_out_scores
        symbols = scores["symbols"].values
        ladder_rows = []
        for k, order_value in enumerate(scores["order"].values):
            d_value, d_se = bits_per_character(scores["bits"].values[:, k], symbols)
            kn_value, kn_se = bits_per_character(scores["kneser_ney_bits"].values[:, k], symbols)
            row = {"order": int(order_value), "dirichlet_bits": d_value, "dirichlet_se": d_se,
                   "kneser_ney_bits": kn_value, "kneser_ney_se": kn_se}
            if "ngram_model" in idata.groups():
                row["concentration"] = float(idata.ngram_model["concentration"].values[k])
                row["discount"] = float(idata.ngram_model["discount"].values[k])
            if "training_scores" in idata.groups():
                row["training_bits"] = bits_per_character(idata.training_scores["bits"].values[:, k],
                                                          idata.training_scores["symbols"].values)[0]
            ladder_rows.append(row)
        ladder_table = pd.DataFrame(ladder_rows).set_index("order")
        metrics["ladder"] = ladder_table.reset_index().to_dict("records")
        best = ladder_table["dirichlet_bits"].idxmin()
        sections.append(Section(
            "The n-gram ladder (held-out bits per character by order)",
            "Each order predicts a character from the n - 1 before it. The held-out cross-entropy of each rung bounds "
            "the text's entropy rate from above; where it stops falling, longer contexts are too rare in the training "
            f"text to estimate. The best Dirichlet order here is {best} ({ladder_table.loc[best, 'dirichlet_bits']:.3f} "
            f"bits per character) and the best Kneser-Ney order {ladder_table['kneser_ney_bits'].idxmin()} "
            f"({ladder_table['kneser_ney_bits'].min():.3f}). The gap between training and held-out bits at an order is "
            "what the counts overfit and the prior does not shrink away.", ladder_table))
        figure, axis = plt.subplots(figsize=(5.5, 3.5))
        axis.errorbar(ladder_table.index, ladder_table["dirichlet_bits"], ladder_table["dirichlet_se"], marker="o",
                      label="Dirichlet (held out)")
        axis.errorbar(ladder_table.index, ladder_table["kneser_ney_bits"], ladder_table["kneser_ney_se"], marker="s",
                      label="Kneser-Ney (held out)")
        if "training_bits" in ladder_table:
            axis.plot(ladder_table.index, ladder_table["training_bits"], "k--", label="Dirichlet (training)")
        axis.set_xlabel("order n")
        axis.set_ylabel("bits per character")
        axis.legend()
        figure.tight_layout()
        figures["ngram_ladder"] = figure

    # ---- samples ------------------------------------------------------------------------------
    rng = np.random.default_rng(seed + 17)
    texts = continue_texts(next_symbol, vocabulary, "", 200, TEMPERATURES, rng, max(context, 1))
    samples = {f"{t:g}": text for t, text in zip(TEMPERATURES, texts)}
    metrics["samples"] = samples
    sections.append(Section(
        "Samples",
        "Text the fitted model writes from the start of a document, 200 characters at each temperature "
        "(p^(1/T) renormalised: below 1 sharper, 1 the model itself; a new line starts a new document):\n\n"
        + "\n\n".join(f"T = {t}:\n\n    " + s.replace("\n", "\n    ") for t, s in samples.items())))

    # ---- memory: mutual information by lag ------------------------------------------------
    if "held_out_data" in idata.groups():
        real = part_documents(idata.held_out_data)
        generated = sample_documents(next_symbol, min(len(real), 200), 250, 1.0, rng, max(context, 1))
        lags = [lag for lag in LAGS if lag <= 64]
        real_mi = mutual_information_by_lag(real, lags, vocabulary.size)
        model_mi = mutual_information_by_lag(generated, lags, vocabulary.size)
        memory = pd.DataFrame({"lag": lags, "held_out_text_bits": real_mi, "model_text_bits": model_mi}).set_index("lag")
        metrics["mutual_information_by_lag"] = memory.reset_index().to_dict("records")
        # a lag longer than every document of a text has no pairs to measure: shown as a dash, said below
        memory = memory[np.isfinite(memory).any(axis=1)]
        unmeasured = bool(np.isnan(memory.to_numpy(float)).any())
        memory = memory.astype(object).where(np.isfinite(memory.to_numpy(float)), "—")
        sections.append(Section(
            "How far the memory reaches: I(X_t; X_t-k)",
            f"Mutual information between a character and the one k steps back, within documents, in held-out text and "
            f"in {len(generated)} documents the model wrote at T = 1 (plug-in estimates less their bias, measured by "
            f"shuffling one side; about 0 means "
            f"no dependence). The model's context is {context} character(s): beyond it the model's text can only "
            "keep dependence that runs through the characters between."
            + (" A dash: no document of that text is longer than the lag, so there is nothing to measure."
               if unmeasured else ""), memory))
        figure, axis = plt.subplots(figsize=(5.5, 3.5))
        axis.plot(lags, real_mi, "o-", label="held-out text")
        axis.plot(lags, model_mi, "s--", label="model's text (T = 1)")
        axis.set_xscale("log", base=2)
        axis.set_xlabel("lag k (characters)")
        axis.set_ylabel("I(X_t; X_t-k), bits")
        axis.legend()
        figure.tight_layout()
        figures["mutual_information_by_lag"] = figure

    # ---- training ---------------------------------------------------------------------------
    if "optimization" in idata.groups() and "heldout_elbo" in idata.optimization:
        trace = idata.optimization
        steps = trace["step"].values
        figure, axis = plt.subplots(figsize=(5.5, 3.5))
        axis.plot(steps, -trace["train_elbo"].values, label="training (minibatch)")
        axis.plot(steps, -trace["heldout_elbo"].values, label="validation")
        axis.set_xlabel("step")
        axis.set_ylabel("negative log-likelihood per row (nats)")
        axis.legend()
        figure.tight_layout()
        figures["learning_curve"] = figure
    if extra_figures is not None:
        figures.update(extra_figures(idata, config))
    # under the standard posterior report (the exact method's) the summary table is the posterior's, so this
    # section carries the bits-per-character table; otherwise the table is the report's summary
    from probgen.infer.methods import for_config

    standard = for_config(config).posterior_report
    sections.insert(0, Section("Cross-entropy", text, table if standard else None))
    return ReportPart(sections=tuple(sections), metrics={"language_model": metrics}, figures=figures, summary=table,
                      summary_title="Bits per character", summary_units="bits per character; perplexity = 2^bits")
