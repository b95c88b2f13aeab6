"""n-gram counts and the two smoothings built on them, as pure NumPy on integer codes.

A k-gram ending at position i is coded as the integer sum_j s[i - j] V^j (j = 0..k-1: the
newest symbol is the lowest digit), so its context is `code // V` and the (k-1)-gram that
drops its oldest symbol is `code % V^(k-1)`. Counting is one `np.unique` per order; looking up
a count is a binary search (`np.searchsorted`) into the sorted codes. V^order must stay below
2^63.

Only k-grams that end at a *target* (a position that is predicted: not PAD) are counted, so
each context's counts are a distribution over what can follow, and both smoothings sum to one
over the symbols other than PAD.

**Hierarchical Dirichlet** (MacKay & Peto 1995, "A hierarchical Dirichlet language model"):
for order n, each context c has its own next-symbol distribution

    p_c ~ Dirichlet(alpha_n * m_c),   m_c = the order n-1 posterior predictive at c's suffix,

and the order-0 base m is uniform over the V - 1 symbols that can be predicted. Given the
lower orders (empirical Bayes: their posterior means are plugged in), the posterior of p_c is
Dirichlet(alpha_n m_c + counts_c), conjugate and exact; its predictive is

    p_n(w | c) = (n_cw + alpha_n m_c(w)) / (N_c + alpha_n),

an interpolation whose weight on the lower order falls as the context is seen more often.
Each alpha_n maximises the order's Dirichlet-multinomial marginal likelihood (`fit_concentrations`).

**Interpolated Kneser-Ney** (Chen & Goodman 1999), with the recursion and continuation counts
of `nltk.lm.KneserNeyInterpolated` (the tests check ours against it on the same counts): the
top order discounts raw counts, lower orders discount continuation counts N1+(. c w), and an
unseen context passes all its mass to the next order down.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, special

from probgen.errors import DataError


def _powers(size: int, order: int) -> np.ndarray:
    if order * np.log2(size) >= 62:
        raise DataError(f"order {order} is too large for a vocabulary of {size} symbols (the n-gram codes overflow "
                        "64 bits); lower --order or raise --min-count")
    return size ** np.arange(order + 1, dtype=np.int64)


def gram_codes(symbols: np.ndarray, positions: np.ndarray, order: int, size: int) -> np.ndarray:
    """(len(positions), order) int64: column k-1 holds the code of the k-gram ending at each
    position (symbols before the start of the array count as PAD, code 0)."""
    powers = _powers(size, order)
    codes = np.zeros((len(positions), order), np.int64)
    running = np.zeros(len(positions), np.int64)
    for j in range(order):
        back = positions - j
        digit = np.where(back >= 0, symbols[np.maximum(back, 0)], 0).astype(np.int64)
        running = running + digit * powers[j]
        codes[:, j] = running
    return codes


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == query] for each query, 0 where the key is absent (keys sorted)."""
    if len(keys) == 0:
        return np.zeros(len(query), values.dtype)
    where = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[where] == query, values[where], 0)


@dataclasses.dataclass
class Counts:
    """Counts of every order 1..order. Per order k (index k - 1):
    grams (sorted codes), count, context (sorted codes of the contexts), context_total (N_c),
    context_types (distinct symbols seen after the context); for Kneser-Ney, continuation
    (N1+(. gram): distinct (k+1)-grams that end in the gram; order < top only) and
    continuation_total (per context, the sum of its grams' continuations)."""

    order: int
    size: int
    grams: list
    count: list
    context: list
    context_total: list
    context_types: list
    continuation: list
    continuation_total: list

    @property
    def tokens(self) -> int:
        return int(self.count[0].sum())


def _per_context(grams, values, size):
    contexts, inverse = np.unique(grams // size, return_inverse=True)
    return contexts, np.bincount(inverse, weights=values).astype(np.int64), np.bincount(inverse).astype(np.int64)


def count(symbols: np.ndarray, targets: np.ndarray, order: int, size: int, offsets: np.ndarray | None = None) -> Counts:
    """Counts of the k-grams (k = 1..order) ending at the positions `targets` of `symbols`.
    offsets: each target's position in its own sequence, when k-grams must not reach back
    past the start of a sequence (nltk's everygrams); None: contexts run back into PAD."""
    codes = gram_codes(symbols, targets, order, size)
    grams, counts, contexts, totals, types, continuation, continuation_total = [], [], [], [], [], [], []
    for k in range(order):
        column = codes[:, k] if offsets is None else codes[offsets >= k, k]
        unique, number = np.unique(column, return_counts=True)
        grams.append(unique)
        counts.append(number.astype(np.int64))
        context, total, kinds = _per_context(unique, number, size)
        contexts.append(context)
        totals.append(total)
        types.append(kinds)
    for k in range(order - 1):
        # N1+(. gram): the distinct (k+2)-grams whose last k+1 symbols are the gram
        suffixes, number = np.unique(grams[k + 1] % size ** (k + 1), return_counts=True)
        continuation.append(_lookup(suffixes, number, grams[k]).astype(np.int64))
        _, total, _ = _per_context(grams[k], continuation[k], size)
        continuation_total.append(total)
    return Counts(order, size, grams, counts, contexts, totals, types, continuation, continuation_total)


def stream_counts(symbols: np.ndarray, order: int, size: int, pad: int = 0) -> Counts:
    """Counts of the targets (the symbols other than PAD = 0) of a stream of padded documents."""
    return count(symbols, np.flatnonzero(symbols != pad), order, size)


# ---------------------------------------------------------------------------------------------
# hierarchical Dirichlet
# ---------------------------------------------------------------------------------------------
def dirichlet_probabilities(counts: Counts, concentrations, codes: np.ndarray) -> np.ndarray:
    """(N, order) predictive probabilities p_k(w | context) of each query (`codes` as from
    `gram_codes`, one row per query), column k-1 for order k."""
    size = counts.size
    base = np.full(len(codes), 1.0 / (size - 1))  # uniform over every symbol but PAD
    out = np.empty((len(codes), codes.shape[1]))
    for k in range(codes.shape[1]):
        alpha = float(concentrations[k])
        seen = _lookup(counts.grams[k], counts.count[k], codes[:, k])
        total = _lookup(counts.context[k], counts.context_total[k], codes[:, k] // size)
        base = (seen + alpha * base) / (total + alpha)
        out[:, k] = base
    return out


def _log_evidence(alpha: float, base: np.ndarray, seen: np.ndarray, totals: np.ndarray) -> float:
    """log p(counts of one order | alpha, base): the Dirichlet-multinomial marginal likelihood
    summed over contexts (the multinomial coefficients do not depend on alpha and are left out)."""
    return float(np.sum(special.gammaln(alpha) - special.gammaln(alpha + totals))
                 + np.sum(special.gammaln(alpha * base + seen) - special.gammaln(alpha * base)))


def fit_concentrations(counts: Counts, bounds=(1e-3, 1e5)) -> tuple[np.ndarray, np.ndarray]:
    """(alpha (order,), log evidence at alpha (order,)): each order's concentration maximises
    its marginal likelihood given the orders below (type-II maximum likelihood, order by order,
    a one-dimensional bounded search in log alpha)."""
    alphas, evidences = [], []
    for k in range(counts.order):
        grams = counts.grams[k]
        codes = np.stack([grams % counts.size ** (j + 1) for j in range(k + 1)], axis=1)
        base = (dirichlet_probabilities(counts, alphas, codes[:, :k])[:, -1] if k else
                np.full(len(grams), 1.0 / (counts.size - 1)))
        seen, totals = counts.count[k].astype(float), counts.context_total[k].astype(float)
        result = optimize.minimize_scalar(lambda log_alpha: -_log_evidence(np.exp(log_alpha), base, seen, totals),
                                          bounds=np.log(bounds), method="bounded", options={"xatol": 1e-4})
        alphas.append(float(np.exp(result.x)))
        evidences.append(-float(result.fun))
    return np.asarray(alphas), np.asarray(evidences)


def dirichlet_posterior_draws(counts: Counts, concentrations, codes: np.ndarray, rng: np.random.Generator,
                              num_draws: int) -> np.ndarray:
    """(num_draws, N) exact posterior draws of log p_order(w | c) at each query (w, c): for every
    context, the Dirichlet posterior's components at the symbols queried in it and the rest of
    its mass drawn jointly (Gamma variates normalised per context), so queries that share a
    context are correlated as the posterior says. The lower orders enter through their
    posterior means (the empirical-Bayes base)."""
    size, top = counts.size, codes.shape[1]
    alpha = float(concentrations[top - 1])
    base = dirichlet_probabilities(counts, concentrations, codes[:, :top - 1])[:, -1] if top > 1 else \
        np.full(len(codes), 1.0 / (size - 1))
    pairs, first, pair_of = np.unique(codes[:, -1], return_index=True, return_inverse=True)
    seen = _lookup(counts.grams[top - 1], counts.count[top - 1], pairs)
    shape = seen + alpha * base[first]
    contexts, context_of = np.unique(pairs // size, return_inverse=True)
    total = _lookup(counts.context[top - 1], counts.context_total[top - 1], contexts) + alpha
    rest = np.maximum(total - np.bincount(context_of, weights=shape, minlength=len(contexts)), 1e-12)
    log_draws = np.empty((num_draws, len(codes)))
    for s in range(num_draws):
        log_gamma, log_rest = _log_gamma(rng, shape), _log_gamma(rng, rest)
        top_value = np.maximum(np.full(len(contexts), -np.inf), log_rest)
        np.maximum.at(top_value, context_of, log_gamma)
        normaliser = np.bincount(context_of, weights=np.exp(log_gamma - top_value[context_of]), minlength=len(contexts))
        log_normaliser = top_value + np.log(normaliser + np.exp(log_rest - top_value))
        log_draws[s] = (log_gamma - log_normaliser[context_of])[pair_of]
    return log_draws


def _log_gamma(rng: np.random.Generator, shape: np.ndarray) -> np.ndarray:
    """log of Gamma(shape, 1) variates, accurate for tiny shapes (where the variate itself
    underflows): G(a) = G(a + 1) U^(1/a) (Marsaglia & Tsang)."""
    small = shape < 1
    boosted = np.where(small, shape + 1.0, shape)
    log_value = np.log(rng.gamma(boosted))
    return np.where(small, log_value + np.log(rng.random(len(shape))) / np.where(small, shape, 1.0), log_value)


# ---------------------------------------------------------------------------------------------
# interpolated Kneser-Ney
# ---------------------------------------------------------------------------------------------
def kneser_ney_discounts(counts: Counts) -> np.ndarray:
    """Ney's estimate D = n1 / (n1 + 2 n2) per order, from the numbers of grams seen once and
    twice (continuation counts below the top order)."""
    discounts = []
    for k in range(counts.order):
        values = counts.count[k] if k == counts.order - 1 else counts.continuation[k]
        once, twice = np.sum(values == 1), np.sum(values == 2)
        discounts.append(float(once / (once + 2 * twice)) if once + twice else 0.5)
    return np.clip(np.asarray(discounts), 0.05, 0.95)


def kneser_ney_probabilities(counts: Counts, codes: np.ndarray, discount=0.1, exists: np.ndarray | None = None,
                             uniform_floor: bool = True) -> np.ndarray:
    """(N,) interpolated Kneser-Ney probability of each query at the top order codes.shape[1].

    discount: one D or one per order. exists: (N, order) bool, whether each query's k-gram is
    inside its sequence (None: all are; False falls back to the order below, as for a context
    cut by the start of a sequence in nltk). uniform_floor: interpolate the unigram level
    with the uniform distribution (nltk does not, so a symbol that never ends a bigram gets
    probability 0 there)."""
    size, top = counts.size, codes.shape[1]
    discounts = np.broadcast_to(np.asarray(discount, float), (counts.order,))
    exists = np.ones(codes.shape, bool) if exists is None else exists
    # order 1: continuation counts over bigrams (raw counts when the model is a unigram)
    if top == 1:
        value, total = counts.count[0], counts.count[0].sum()
    else:
        value, total = counts.continuation[0], counts.continuation[0].sum()
    number = _lookup(counts.grams[0], value, codes[:, 0]).astype(float)
    if uniform_floor:
        d = discounts[0]
        probability = (np.maximum(number - d, 0) + d * np.sum(value > 0) / (size - 1)) / total
    else:
        probability = number / total
    for k in range(1, top):
        context = codes[:, k] // size
        if k == top - 1:
            number = _lookup(counts.grams[k], counts.count[k], codes[:, k]).astype(float)
            total = _lookup(counts.context[k], counts.context_total[k], context).astype(float)
        else:
            number = _lookup(counts.grams[k], counts.continuation[k], codes[:, k]).astype(float)
            total = _lookup(counts.context[k], counts.continuation_total[k], context).astype(float)
        types = _lookup(counts.context[k], counts.context_types[k], context).astype(float)
        usable = (types > 0) & (total > 0) & exists[:, k]
        safe = np.where(usable, total, 1.0)
        alpha = np.maximum(number - discounts[k], 0.0) / safe
        gamma = discounts[k] * types / safe
        probability = np.where(usable, alpha + gamma * probability, probability)
    return probability
