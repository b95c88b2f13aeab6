"""Character n-gram language model with a hierarchical Dirichlet prior, fitted exactly.

    p_c ~ Dirichlet(alpha_n * m_c)                 one distribution per context c (n - 1 symbols)
    m_c = p_{n-1}( . | c without its oldest symbol)  the next-lower order's posterior predictive
    x_t | x_{t-n+1..t-1} = c ~ Categorical(p_c)

The posterior of every p_c is Dirichlet(alpha_n m_c + counts_c) (conjugate), so `--method exact`
computes it instead of sampling it; each alpha_n maximises its order's marginal likelihood.
Orders 1..n are fitted together, so one run gives the whole ladder (bits per character as the
order grows: an estimate of the text's entropy rate from above). Interpolated Kneser-Ney on
the same counts is the classical reference (`models._lm.ngram`).

Text: documents (`probgen.data.text`), characters seen fewer than --min-count times in the
training documents become one UNK symbol, each document is padded with n - 1 PAD symbols and
closed by END; contexts never reach into another document. An n-gram never seen in training
falls back to the lower orders through the prior, down to the uniform base, so every symbol
keeps a non-zero probability.
"""

from __future__ import annotations

import json

import numpy as np
import numpyro
import numpyro.distributions as dist

from probgen.errors import DataError
from probgen.models._common.lm import ngram as counting
from probgen.models._common.lm.scoring import bits_per_character, per_document, token_predictive
from probgen.models._common.lm.text import PAD, Vocabulary, documents_of, text_options, streams


def ngram_model(symbols=None, *, context_of, base, concentration: float, num_contexts: int, size: int,
                characters: str = ""):
    """The top order as a NumPyro program, given the lower orders (empirical Bayes): symbols
    (T,) the targets, context_of (T,) each target's context index, base (num_contexts, size)
    the lower-order predictive m_c of each context (zero at PAD). `--method exact` computes this
    posterior in closed form; the program states what it is the posterior of."""
    with numpyro.plate("contexts", num_contexts):
        p = numpyro.sample("p", dist.Dirichlet(concentration * base + 1e-30))
    with numpyro.plate("tokens", context_of.shape[0]):
        numpyro.sample("x", dist.Categorical(probs=p[context_of]), obs=symbols)


def _inputs(documents, vocabulary: Vocabulary, options):
    from probgen.spec import ModelInputs

    order = int(options["order"])
    symbols, owner = streams(documents, vocabulary, order - 1)
    return ModelInputs(kwargs={"order": order, "size": vocabulary.size, "characters": vocabulary.to_json(),
                               "num_documents": len(documents)},
                       observed={"symbols": symbols}, coords={}, dims={"symbols": ["position"], "document": ["position"]},
                       labels={"document": owner})


def prepare(frame, options):
    """Training documents -> their vocabulary and padded stream (`observed["symbols"]`)."""
    documents = documents_of(frame)
    longest = max(len(document) for document in documents)
    if int(options["order"]) - 1 > longest:
        raise DataError(f"--order {options['order']} is larger than the training text allows: its longest document "
                        f"has {longest} character(s), so no context of {int(options['order']) - 1} exists")
    vocabulary = Vocabulary.from_documents(documents, int(options["min_count"]))
    counting._powers(vocabulary.size, int(options["order"]))  # an order too large for the vocabulary is named now
    return _inputs(documents, vocabulary, options)


def held_out_inputs(training, held_out, options):
    """Held-out documents encoded with the training vocabulary (unseen characters are UNK)."""
    vocabulary = Vocabulary.from_documents(documents_of(training), int(options["min_count"]))
    return _inputs(documents_of(held_out), vocabulary, options)


def conjugate_fit(inputs, options, settings) -> dict:
    """The counts of every order, each order's concentration (maximum marginal likelihood) and
    Kneser-Ney's discounts."""
    counts = counting.stream_counts(inputs.observed["symbols"], inputs.kwargs["order"], inputs.kwargs["size"], PAD)
    concentration, evidence = counting.fit_concentrations(counts)
    return {"counts": counts, "concentration": concentration, "log_evidence": evidence,
            "discount": counting.kneser_ney_discounts(counts)}


def _part_scores(posterior, part_inputs):
    """bits (document, order) under the Dirichlet ladder and Kneser-Ney, symbols (document,),
    and the top order's per-target query codes."""
    counts = posterior["counts"]
    symbols, owner = part_inputs.observed["symbols"], part_inputs.labels["document"]
    targets = np.flatnonzero(symbols != PAD)
    codes = counting.gram_codes(symbols, targets, counts.order, counts.size)
    documents = int(part_inputs.kwargs["num_documents"])
    dirichlet = -np.log2(counting.dirichlet_probabilities(counts, posterior["concentration"], codes))
    kneser_ney = np.stack([-np.log2(counting.kneser_ney_probabilities(counts, codes[:, :k + 1], posterior["discount"]))
                           for k in range(counts.order)], axis=1)
    bits = np.stack([per_document(dirichlet[:, k], owner[targets], documents)[0] for k in range(counts.order)], 1)
    kn_bits = np.stack([per_document(kneser_ney[:, k], owner[targets], documents)[0] for k in range(counts.order)], 1)
    _, symbols_per_document = per_document(dirichlet[:, 0], owner[targets], documents)
    return bits, kn_bits, symbols_per_document, codes, owner[targets]


def conjugate_evaluate(posterior, inputs, options, settings, rng_key, progress=None) -> dict:
    """Groups: each part's scores; the posterior predictive's held-out bits per character (the
    `posterior`: one exact value); the held-out score of each exact posterior draw
    (`held_out_score_draws`) and per-character intervals (`held_out_tokens`); and the model
    itself (counts, concentrations, discounts, vocabulary). `progress(part)` is called before
    each part is scored (the progress bar)."""
    import xarray as xr

    counts = posterior["counts"]
    groups = {}
    for part, part_inputs in inputs.items():
        if progress is not None:
            progress(part)
        bits, kn_bits, symbols, codes, owner = _part_scores(posterior, part_inputs)
        groups[f"{part}_scores"] = xr.Dataset(
            {"bits": (("document", "order"), bits), "kneser_ney_bits": (("document", "order"), kn_bits),
             "symbols": ("document", symbols)}, coords={"order": np.arange(1, counts.order + 1)})
        if part == "held_out":
            rng = np.random.default_rng(np.asarray(rng_key).ravel().tolist())
            draws = counting.dirichlet_posterior_draws(counts, posterior["concentration"], codes, rng,
                                                       int(settings["draws"]))
            total_bits = -draws.sum(axis=1) / np.log(2.0)
            top = counting.dirichlet_probabilities(counts, posterior["concentration"], codes)[:, -1]
            groups["held_out_tokens"] = token_predictive(part_inputs.observed["symbols"][part_inputs.observed["symbols"] != PAD],
                                                         np.log(top), draws)
            # the score to judge the model by is its posterior predictive's (the probabilities averaged
            # over the exact posterior before the log): the ladder's top Dirichlet rung, one value.
            # Single exact draws score far worse, and are kept apart (`held_out_score_draws`): a draw
            # from a Dirichlet gives a continuation never seen in its context a probability near 0
            # (its expected log-loss is about 1 / (alpha * base)), so their mean says how sparse the
            # counts are, not how well the model predicts.
            predictive, _ = bits_per_character(bits[:, -1], symbols)
            groups["posterior"] = xr.Dataset({"held_out_bits_per_char": (("chain", "draw"), [[predictive]])},
                                             coords={"chain": [0], "draw": [0]})
            groups["held_out_score_draws"] = xr.Dataset({"held_out_bits_per_char": ("draw", total_bits / symbols.sum())})
    model = {"concentration": ("order", posterior["concentration"]), "log_evidence": ("order", posterior["log_evidence"]),
             "discount": ("order", posterior["discount"])}
    for k in range(counts.order):
        model[f"grams_{k + 1}"] = (f"gram_{k + 1}", counts.grams[k])
        model[f"count_{k + 1}"] = (f"gram_{k + 1}", counts.count[k].astype(np.int32))
        model[f"context_{k + 1}"] = (f"context_{k + 1}", counts.context[k])
        model[f"context_total_{k + 1}"] = (f"context_{k + 1}", counts.context_total[k].astype(np.int32))
    groups["ngram_model"] = xr.Dataset(model, coords={"order": np.arange(1, counts.order + 1)},
                                       attrs={"characters": inputs["training"].kwargs["characters"]})
    return groups


def stored_model(idata) -> tuple[Vocabulary, counting.Counts, np.ndarray]:
    """(vocabulary, counts, concentrations) from a run's `ngram_model` group."""
    group = idata.ngram_model
    order = int(group.sizes["order"])
    vocabulary = Vocabulary(tuple(json.loads(group.attrs["characters"])))
    column = lambda name: [np.asarray(group[f"{name}_{k + 1}"].values, np.int64) for k in range(order)]  # noqa: E731
    counts = counting.Counts(order, vocabulary.size, column("grams"), column("count"), column("context"),
                             column("context_total"), [], [], [])
    return vocabulary, counts, np.asarray(group["concentration"].values)


def next_probabilities(idata):
    """(vocabulary, context length, next(histories (B, n-1)) -> (B, V)) of a fitted run."""
    vocabulary, counts, concentration = stored_model(idata)
    size, order = counts.size, counts.order
    powers = size ** np.arange(order, dtype=np.int64)

    def next_symbol(histories):
        histories = np.asarray(histories, np.int64)
        # context digits: the newest history symbol is digit 1 of the gram code
        reversed_history = histories[:, ::-1]
        context = np.zeros((len(histories), order), np.int64)
        for k in range(1, order):
            context[:, k] = context[:, k - 1] + reversed_history[:, k - 1] * powers[k]
        candidates = np.arange(size, dtype=np.int64)
        codes = (candidates[None, :, None] + context[:, None, :]).reshape(-1, order)
        probabilities = counting.dirichlet_probabilities(counts, concentration, codes)[:, -1]
        return probabilities.reshape(len(histories), size)

    return vocabulary, order - 1, next_symbol


def generate_text(idata, config, rng_key, num_symbols: int, *, prompt: str = "", temperature: float = 1.0) -> str:
    """`prompt` continued by `num_symbols` characters drawn from the fitted model (a `Generate`)."""
    from probgen.models._common.lm.sampling import continue_text

    vocabulary, context, next_symbol = next_probabilities(idata)
    rng = np.random.default_rng(np.asarray(rng_key).ravel().tolist())
    return continue_text(next_symbol, vocabulary, prompt, num_symbols, temperature, rng, max(context, 1))


def report(idata, config):
    from probgen.models._common.lm.report import language_model_report

    return language_model_report(idata, config, next_probabilities(idata), ladder=True)


def _spec():
    from probgen.infer.exact import ConjugateUpdate
    from probgen.spec import Bound, Headline, HeldOut, ModelSpec, Option, TextGenerator

    return ModelSpec(
        name="ngram",
        model=ngram_model,
        prepare=prepare,
        options=(
            Option("order", int, 6, "n: the model predicts each character from the n - 1 before it (orders 1..n are "
                                    "all fitted: the ladder)", minimum=1),
            *text_options(),
        ),
        held_out=HeldOut(inputs=held_out_inputs),
        parts=(ConjugateUpdate(fit=conjugate_fit, evaluate=conjugate_evaluate), TextGenerator(generate_text),
               Headline(Bound("language_model/bits_per_char/*/value", 0, "language_model/bits_ceiling", stated=True))),
        report=report,
        data_kind="text",
        description="character n-gram language model, hierarchical Dirichlet prior, exact posterior (--method exact), "
                    "with interpolated Kneser-Ney as the reference; text corpora or .txt files",
    )


SPEC = _spec()
