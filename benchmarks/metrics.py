"""Speed of probgen's k-NN estimators and MMD test, one JSON line per comparison.

1. Kozachenko-Leonenko entropy and Wang-Kulkarni-Verdu KL at n = 10,000, d = 5: probgen's
   estimators against the same formulas written plainly with SciPy's cKDTree (one thread,
   as in textbook code), on the same samples; both values are printed to show they agree.
2. The MMD permutation test at n = 2,000 per sample, 500 permutations: wall time.

    python benchmarks/metrics.py
"""

from __future__ import annotations

import json
import time

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

from probgen.checks import metrics
from probgen.checks import two_sample


def plain_entropy(x, k=3):
    n, d = x.shape
    distances, _ = cKDTree(x).query(x, k=k + 1)
    log_volume = 0.5 * d * np.log(np.pi) - gammaln(0.5 * d + 1)
    return digamma(n) - digamma(k) + log_volume + d * np.mean(np.log(distances[:, -1]))


def plain_kl(x, y, k=3):
    n, d = x.shape
    rho = cKDTree(x).query(x, k=k + 1)[0][:, -1]
    nu = cKDTree(y).query(x, k=k)[0][:, -1]
    return d * np.mean(np.log(nu / rho)) + np.log(len(y) / (n - 1))


def median_time(function, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), value


def main() -> None:
    rng = np.random.default_rng(0)
    n, d = 10_000, 5
    x, y = rng.normal(size=(n, d)), rng.normal(0.3, 1.2, size=(n, d))
    for name, ours, plain in (
        ("knn_entropy", lambda: metrics.entropy_knn(x).value, lambda: plain_entropy(x)),
        ("knn_kl", lambda: metrics.kl_knn(x, y).value, lambda: plain_kl(x, y)),
    ):
        ours_s, ours_value = median_time(ours)
        plain_s, plain_value = median_time(plain)
        print(json.dumps({"benchmark": name, "data": f"n={n} d={d}", "probgen_s": round(ours_s, 4),
                          "plain_ckdtree_s": round(plain_s, 4), "ratio_probgen_over_plain": round(ours_s / plain_s, 3),
                          "probgen_value": ours_value, "plain_value": float(plain_value)}), flush=True)
    a, b = rng.normal(size=(2000, d)), rng.normal(size=(2000, d))
    mmd_s, result = median_time(lambda: two_sample.mmd_test(a, b, num_permutations=500), repeats=3)
    print(json.dumps({"benchmark": "mmd_permutation_test", "data": f"n=2000+2000 d={d}", "permutations": 500,
                      "probgen_s": round(mmd_s, 3), "p_value": result.p_value}), flush=True)


if __name__ == "__main__":
    main()
