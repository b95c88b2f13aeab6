"""n-gram counting and scoring: probgen's vectorised counts (`models/_common/lm/ngram.py`) against
nltk's `lm.KneserNeyInterpolated` on the same tweets, the same order and discount; both fit the
training tweets and score every character of the test tweets. Prints one JSON line: seconds
of each (fit and score apart) and the ratio probgen / nltk (lower is better), and the largest
difference between their probabilities (they compute the same numbers).

    python benchmarks/ngram.py [--train 2000] [--test 200] [--order 4]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--order", type=int, default=4)
    args = parser.parse_args(argv)
    from nltk.lm import KneserNeyInterpolated
    from nltk.util import everygrams

    from probgen.models._common.lm import ngram
    from probgen.data.text import load_text

    tweets = load_text("trump_tweets").frame["text"].tolist()
    train, test = tweets[:args.train], tweets[args.train:args.train + args.test]
    alphabet = sorted(set("".join(train)))
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    test = ["".join(c for c in t if c in index) for t in test]
    test = [t for t in test if len(t) >= args.order]

    def encode(documents):
        symbols = np.array([index[c] for d in documents for c in d], np.int32)
        return symbols, np.concatenate([np.arange(len(d)) for d in documents])

    started = time.perf_counter()
    symbols, offsets = encode(train)
    counts = ngram.count(symbols, np.arange(len(symbols)), args.order, len(alphabet) + 1, offsets=offsets)
    ours_fit = time.perf_counter() - started
    started = time.perf_counter()
    test_symbols, test_offsets = encode(test)
    positions = np.flatnonzero(test_offsets >= args.order - 1)
    codes = ngram.gram_codes(test_symbols, positions, args.order, len(alphabet) + 1)
    ours = ngram.kneser_ney_probabilities(counts, codes, 0.1, uniform_floor=False)
    ours_score = time.perf_counter() - started

    started = time.perf_counter()
    reference = KneserNeyInterpolated(args.order, discount=0.1)
    reference.fit([list(everygrams(list(t), max_len=args.order)) for t in train], [c for t in train for c in t])
    nltk_fit = time.perf_counter() - started
    started = time.perf_counter()
    inverse = {i: c for c, i in index.items()}
    theirs = [reference.score(inverse[int(test_symbols[p])],
                              tuple(inverse[int(test_symbols[p - j])] for j in range(args.order - 1, 0, -1)))
              for p in positions]
    nltk_score = time.perf_counter() - started
    print(json.dumps({
        "benchmark": "ngram_kneser_ney", "order": args.order, "train_characters": int(len(symbols)),
        "test_characters": int(len(positions)), "probgen_fit_s": ours_fit, "probgen_score_s": ours_score,
        "nltk_fit_s": nltk_fit, "nltk_score_s": nltk_score,
        "ratio_fit": ours_fit / nltk_fit, "ratio_score": ours_score / nltk_score,
        "max_probability_difference": float(np.max(np.abs(ours - np.asarray(theirs)))),
    }))


if __name__ == "__main__":
    main()
