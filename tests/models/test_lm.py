"""The language models: n-gram smoothing against nltk and against the Dirichlet algebra, exact
posterior draws against their closed-form moments, text data and bad input through the CLI."""


import re
import shlex

import numpy as np
import pytest

from conftest import REPO, cli_in_process
from _seeds import seeded
from probgen.models._common.lm import ngram
from probgen.models._common.lm.information import mutual_information_by_lag
from probgen.models._common.lm.scoring import bits_per_character
from probgen.models._common.lm.text import PAD, Vocabulary, rows, streams


def _random_sequences(rng, count=40, alphabet="abcde"):
    weights = np.linspace(2.0, 1.0, len(alphabet)) ** 2
    return ["".join(rng.choice(list(alphabet), size=rng.integers(3, 14), p=weights / weights.sum()))
            for _ in range(count)]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_matches_nltk_on_the_same_counts(order):
    """Our vectorised interpolated Kneser-Ney gives nltk's KneserNeyInterpolated probabilities
    (same discount, same everygrams: no padding, contexts cut at each sequence's start)."""
    lm_module = pytest.importorskip("nltk.lm")
    from nltk.util import everygrams

    rng = np.random.default_rng(seeded(3))
    sequences = _random_sequences(rng)
    reference = lm_module.KneserNeyInterpolated(order, discount=0.1)
    reference.fit([list(everygrams(list(s), max_len=order)) for s in sequences], [c for s in sequences for c in s])
    alphabet = sorted(set("".join(sequences)))
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    symbols = np.array([index[c] for s in sequences for c in s], np.int32)
    offsets = np.concatenate([np.arange(len(s)) for s in sequences])
    counts = ngram.count(symbols, np.arange(len(symbols)), order, len(alphabet) + 1, offsets=offsets)
    ours, theirs = [], []
    for position in np.flatnonzero(offsets >= order - 1)[:25]:
        context = tuple(alphabet[symbols[position - j] - 1] for j in range(order - 1, 0, -1))
        for word in alphabet:
            query = symbols.copy()
            query[position] = index[word]
            codes = ngram.gram_codes(query, np.array([position]), order, len(alphabet) + 1)
            ours.append(ngram.kneser_ney_probabilities(counts, codes, 0.1, uniform_floor=False)[0])
            theirs.append(reference.score(word, context))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def _fitted_counts(order=3, seed=0):
    rng = np.random.default_rng(seeded(seed))
    documents = _random_sequences(rng, 60, "abcdef")
    vocabulary = Vocabulary.from_documents(documents)
    symbols, _ = streams(documents, vocabulary, order - 1)
    counts = ngram.stream_counts(symbols, order, vocabulary.size)
    return vocabulary, symbols, counts


def test_dirichlet_predictive_is_a_distribution_and_concentrations_maximise_the_evidence():
    vocabulary, symbols, counts = _fitted_counts()
    alpha, evidence = ngram.fit_concentrations(counts)
    size = vocabulary.size
    # every context (seen or not) gives probabilities over the symbols but PAD that sum to 1
    for history in ([PAD, PAD], [3, 4], [size - 1, size - 1]):
        codes = np.stack([np.arange(1, size) + sum(h * size ** (j + 1) for j, h in enumerate(history[::-1][:k]))
                          for k in range(3)], axis=1)
        p = ngram.dirichlet_probabilities(counts, alpha, codes)
        np.testing.assert_allclose(p.sum(axis=0), 1.0, rtol=1e-12)
    # each order's concentration is the maximum of its marginal likelihood (checked on a grid)
    for k in range(counts.order):
        grams = counts.grams[k]
        codes = np.stack([grams % size ** (j + 1) for j in range(k + 1)], axis=1)
        base = ngram.dirichlet_probabilities(counts, alpha, codes[:, :k])[:, -1] if k else np.full(len(grams), 1 / (size - 1))
        grid = alpha[k] * np.array([0.5, 0.8, 1.25, 2.0])
        grid = grid[grid <= 1e5]  # the search's upper bound (where a useless order's evidence keeps rising)
        values = [ngram._log_evidence(a, base, counts.count[k], counts.context_total[k]) for a in grid]
        assert evidence[k] >= max(values) - 1e-9


def test_exact_posterior_draws_have_the_dirichlet_moments():
    """Draws of p(w | c) from `dirichlet_posterior_draws` have the Beta marginal's mean
    (n + alpha m) / (N + alpha); tolerance: 5 Monte Carlo standard errors of the mean (the
    Beta's sd / sqrt(draws)), so it fails only by chance about once in 1.7 million runs."""
    vocabulary, symbols, counts = _fitted_counts(order=2, seed=1)
    alpha, _ = ngram.fit_concentrations(counts)
    targets = np.flatnonzero(symbols != PAD)[:40]
    codes = ngram.gram_codes(symbols, targets, 2, vocabulary.size)
    draws = np.exp(ngram.dirichlet_posterior_draws(counts, alpha, codes, np.random.default_rng(seeded(2)), 4000))
    mean = ngram.dirichlet_probabilities(counts, alpha, codes)[:, -1]
    total = ngram._lookup(counts.context[1], counts.context_total[1], codes[:, 1] // vocabulary.size) + alpha[1]
    sd = np.sqrt(mean * (1 - mean) / (total + 1))
    assert np.all(np.abs(draws.mean(axis=0) - mean) <= 5 * sd / np.sqrt(len(draws)))
    # queries that share a (context, symbol) pair are one and the same parameter
    same = np.flatnonzero(codes[:, 1] == codes[0, 1])
    assert np.all(draws[:, same] == draws[:, [same[0]]])


def test_rows_predict_every_character_once_with_its_own_history():
    documents = ["abc", "de", "fghij"]
    vocabulary = Vocabulary.from_documents(documents)
    x, owner = rows(documents, vocabulary, context=4, block=3)
    predicted = x[:, 4:][owner >= 0]
    symbols, document = streams(documents, vocabulary, 1)
    np.testing.assert_array_equal(predicted, symbols[document >= 0])  # every target once, in order
    assert np.array_equal(np.bincount(owner[owner >= 0]), [4, 3, 6])  # characters + END


def test_bits_per_character_standard_error_and_memory_by_lag():
    rng = np.random.default_rng(seeded(4))
    symbols = rng.integers(5, 50, size=400).astype(float)
    bits = 2.0 * symbols + rng.normal(0, 3, size=400)
    value, se = bits_per_character(bits, symbols)
    assert abs(value - 2.0) < 5 * se and 0 < se < 0.05
    # i.i.d. symbols share no information at any lag; a copy of the symbol k back shares all of it
    independent = [rng.integers(3, 8, size=300) for _ in range(20)]
    assert np.all(np.abs(mutual_information_by_lag(independent, [1, 2], 8)) < 0.02)
    repeated = [np.tile(rng.integers(3, 8, size=4), 40) for _ in range(20)]
    assert mutual_information_by_lag(repeated, [4], 8)[0] > 1.5


def _cli(*arguments):
    """`probgen ARGUMENTS` through the command's main, in this process (`cli_in_process`)."""
    return cli_in_process(*arguments, cwd=REPO)


def test_ngram_from_a_text_file_through_the_cli_and_bad_input(tmp_path):
    """A .txt file (one document per line) fits, reports and continues a prompt; an empty
    file, a binary file, an order beyond the text and a prompt with unseen characters are each
    exit 2 with one line naming the problem."""
    rng = np.random.default_rng(seeded(5))
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(80)) + "\n")
    run = tmp_path / "run"
    fitted = _cli("fit", "ngram", "--data", str(corpus), "--order", "4", "--min-count", "1", "--out", str(run), "--quiet")
    assert fitted.returncode == 0, fitted.stderr
    assert "TRUSTED" in fitted.stdout and (run / "report.html").is_file()
    report = (run / "report.md").read_text()
    assert "## Cross-entropy" in report and "bits_per_char" in report and "n-gram ladder" in report and "Samples" in report
    # exact, independent draws: no R-hat or ESS, which judge Markov chains (issue 30)
    import pandas as pd

    assert not {"r_hat", "ess_bulk", "ess_tail"} & set(pd.read_csv(run / "summary.csv", index_col=0).columns)
    assert "r_hat" not in report.split("## Posterior summary")[1].split("##")[0]
    # nor a "LOO, WAIC not computed" bullet it can never have, nor "Units: data units." above bits per character
    assert "## Predictive fit" not in report and "LOO" not in report and "Units: data units" not in report
    from probgen.report.consistency import check_run_folder

    assert check_run_folder(run) == [], check_run_folder(run)  # the report says what its files hold (issue 30)
    sample = _cli("sample", str(run), "-n", "40", "--prompt", "the ", "--temperature", "0.8")
    assert sample.returncode == 0 and sample.stdout.startswith("the ") and len(sample.stdout.rstrip("\n")) == 44
    unseen = _cli("sample", str(run), "-n", "5", "--prompt", "zebra")
    assert unseen.returncode == 2 and "'z'" in unseen.stderr and "never saw" in unseen.stderr

    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x7fELF\x00\x01\x02" * 20)
    result = _cli("fit", "ngram", "--data", str(binary), "--out", str(tmp_path / "bad"), "--quiet")
    assert result.returncode == 2 and "is not text" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_bad_text_is_named(tmp_path):
    """The same errors the CLI prints as one line (exit 2), raised by the library."""
    from probgen.errors import DataError, ProbgenError
    from probgen.infer import fit
    from probgen.data.text import load_text

    empty, latin = tmp_path / "empty.txt", tmp_path / "latin.txt"
    empty.write_text("\n\n")
    latin.write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match="is empty"):
        load_text(str(empty))
    with pytest.raises(DataError, match="byte 0xe9 at offset 3"):
        load_text(str(latin))
    with pytest.raises(ProbgenError, match="--order 12 is larger than the training text"):
        fit("ngram", ["a short one", "another", "and a third", "fourth", "fifth", "sixth"], "exact", options={"order": 12},
            holdout=0.5, progress=False)


@pytest.mark.parametrize("family, network", [("neural_lm", ["--context", "6"]),
                                             ("attention_lm", ["--context", "8", "--layers", "1", "--heads", "2"])])
def test_a_network_lm_trains_from_a_text_file_resumes_and_continues_a_prompt(family, network, tmp_path):
    """The minibatch trainer's checkpoints serve a text model too: --resume carries on from the
    saved step with the saved options (the text is read as documents on both calls); the
    finished run's report and `probgen sample` continue a prompt."""
    rng = np.random.default_rng(seeded(6))
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(120)) + "\n")
    run = tmp_path / "run"
    first = _cli("fit", family, "--data", str(corpus), *network, "--block", "16", "--hidden", "16",
                 "--steps", "40", "--eval-every", "20", "--checkpoint-every", "20", "--out", str(run), "--quiet")
    assert first.returncode == 0, first.stderr
    # the verdict's hint (still improving at the step limit) is a command that runs as printed
    hint = re.search(r"probgen fit --resume \S+ --steps \d+", first.stdout)
    assert hint and f"--resume {run} --steps 80" in hint.group(0), first.stdout
    resumed = _cli(*shlex.split(hint.group(0))[1:])
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from the checkpoint at step 40" in resumed.stdout + resumed.stderr
    report = (run / "report.md").read_text()
    assert "Bits per character" in report and "## Predictive fit" not in report  # a trainer never has LOO or WAIC
    # the report's own hint names the folder too, so that it runs as printed (not "RUN_DIR")
    assert "RUN_DIR" not in report and ("--steps" not in report or f"--resume {run} --steps" in report), report[:2000]
    from probgen.report.consistency import check_run_folder

    assert check_run_folder(run) == [], check_run_folder(run)  # the report says what its files hold (issue 30)
    continued = _cli("sample", str(run), "--prompt", "the ", "-n", "20", "--seed", str(seeded(7)))
    assert continued.returncode == 0, continued.stderr
    assert continued.stdout.startswith("the ") and len(continued.stdout.rstrip("\n")) == 24, continued.stdout
