"""Information theory for generative models: entropy, KL, cross-entropy, Jensen-Shannon and
mutual information, each three ways where the maths allows, plus predictive scores.

- closed form: NumPyro's `entropy()` and `kl_divergence` registry, and the Gaussian closed
  forms it lacks (mutual information between blocks of a multivariate normal);
- Monte Carlo from `log_prob`, with the standard error of the mean;
- from samples alone, by k-nearest-neighbour estimators: Kozachenko-Leonenko entropy, the
  Wang-Kulkarni-Verdu KL divergence and the Kraskov-Stoegbauer-Grassberger mutual information.

Every estimate is an `Estimate`: a value in nats, its standard error (0 for closed forms)
and the method. k-NN standard errors treat the per-point terms as independent and leave out the
estimators' bias, which grows with dimension. Measured at n = 2,000, k = 3, on correlated
Gaussians over 20 replications (error = estimate - truth, mean and sd; tests/test_metrics.py):

    d    entropy             KL (truth 0.07 .. 1.44)
    1    +0.000 +- 0.020     -0.001 +- 0.023
    2    -0.013 +- 0.023     +0.018 +- 0.029
    5    -0.060 +- 0.042     +0.134 +- 0.047
    10   +0.137 +- 0.054     +0.467 +- 0.068     (KL over-estimated by a third at d = 10)

KSG mutual information of a bivariate normal: |bias| < 0.006, sd < 0.03. In low dimension the
reported standard error matches the observed sd; above d = 2 read k-NN figures as rough, and
prefer Monte Carlo from `log_prob` where a density exists. Nothing here depends on a model.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import kl_divergence as _registered_kl
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A quantity in nats with its standard error (0 for a closed form) and how it was got."""

    value: float
    standard_error: float
    method: str

    @property
    def bits(self) -> float:
        return self.value / LN2

    def __float__(self) -> float:
        return float(self.value)

    def as_dict(self) -> dict:
        return {"value": self.value, "standard_error": self.standard_error, "method": self.method}


def _closed(value) -> Estimate:
    return Estimate(float(value), 0.0, "closed form")


def _mean_with_error(terms, method: str) -> Estimate:
    terms = np.asarray(terms, dtype=np.float64).reshape(-1)
    return Estimate(float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(len(terms))), method)


def _check_samples(x, name: str = "samples") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contain {int((~np.isfinite(x)).sum())} NaN or infinite values")
    return x


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------
def entropy_closed_form(distribution) -> Estimate:
    """Differential (or discrete) entropy from the distribution's own `entropy()`."""
    return _closed(jnp.sum(distribution.entropy()))


def kl_closed_form(p, q) -> Estimate:
    """KL(p || q) from NumPyro's registry (Normal, MultivariateNormal, Dirichlet, ...)."""
    return _closed(jnp.sum(_registered_kl(p, q)))


def cross_entropy_closed_form(p, q) -> Estimate:
    """H(p, q) = H(p) + KL(p || q)."""
    return _closed(float(entropy_closed_form(p)) + float(kl_closed_form(p, q)))


def gaussian_mutual_information(covariance, first_block) -> Estimate:
    """I(X; Y) for jointly Gaussian (X, Y): 0.5 log(det S_xx det S_yy / det S).

    covariance: (d, d) joint covariance; first_block: indices of X (Y is the rest).
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    x = np.asarray(first_block)
    y = np.setdiff1d(np.arange(covariance.shape[0]), x)
    logdet = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    return _closed(0.5 * (logdet(covariance[np.ix_(x, x)]) + logdet(covariance[np.ix_(y, y)]) - logdet(covariance)))


# --------------------------------------------------------------------------------------------
# Monte Carlo from log densities
# --------------------------------------------------------------------------------------------
def _draw(distribution, rng_key, num_samples):
    return distribution.sample(rng_key, (num_samples,))


def entropy_monte_carlo(distribution, rng_key, num_samples: int = 10_000) -> Estimate:
    """H(p) = -E_p[log p(x)], from `num_samples` draws of p."""
    x = _draw(distribution, rng_key, num_samples)
    return _mean_with_error(-distribution.log_prob(x), "monte carlo")


def kl_monte_carlo(p, q, rng_key, num_samples: int = 10_000) -> Estimate:
    """KL(p || q) = E_p[log p(x) - log q(x)]: works for any pair with `log_prob` (mixtures too)."""
    x = _draw(p, rng_key, num_samples)
    return _mean_with_error(p.log_prob(x) - q.log_prob(x), "monte carlo")


def cross_entropy_monte_carlo(p, q, rng_key, num_samples: int = 10_000) -> Estimate:
    """H(p, q) = -E_p[log q(x)]."""
    x = _draw(p, rng_key, num_samples)
    return _mean_with_error(-q.log_prob(x), "monte carlo")


def js_monte_carlo(p, q, rng_key, num_samples: int = 10_000) -> Estimate:
    """Jensen-Shannon divergence 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2; at most log 2."""
    key_p, key_q = jax.random.split(rng_key)
    xp, xq = _draw(p, key_p, num_samples), _draw(q, key_q, num_samples)

    def log_m(x):
        return jnp.logaddexp(p.log_prob(x), q.log_prob(x)) - LN2

    # Pair the two halves so that each term has one draw from p and one from q.
    terms = 0.5 * (p.log_prob(xp) - log_m(xp)) + 0.5 * (q.log_prob(xq) - log_m(xq))
    return _mean_with_error(terms, "monte carlo")


def mutual_information_monte_carlo(joint, marginal_x, marginal_y, split: int, rng_key, num_samples: int = 10_000) -> Estimate:
    """I(X; Y) = E[log p(x, y) - log p(x) - log p(y)]; draws of `joint` are split at column `split`."""
    z = _draw(joint, rng_key, num_samples)
    x, y = z[..., :split], z[..., split:]
    return _mean_with_error(joint.log_prob(z) - marginal_x.log_prob(x) - marginal_y.log_prob(y), "monte carlo")


# --------------------------------------------------------------------------------------------
# k-nearest-neighbour estimators (samples only)
# --------------------------------------------------------------------------------------------
def _log_unit_ball_volume(d: int) -> float:
    return 0.5 * d * math.log(math.pi) - gammaln(0.5 * d + 1)


def _kth_neighbour_distance(tree: cKDTree, points: np.ndarray, k: int, exclude_self: bool, p=2) -> np.ndarray:
    distances, _ = tree.query(points, k=k + 1 if exclude_self else k, p=p, workers=-1)
    distances = distances.reshape(len(points), -1)
    return distances[:, -1]


def entropy_knn(samples, k: int = 3) -> Estimate:
    """Kozachenko-Leonenko entropy of the distribution behind `samples` (n, d), in nats.

    H = psi(n) - psi(k) + log V_d + (d / n) sum_i log eps_i, with eps_i the distance from point
    i to its k-th nearest neighbour and V_d the volume of the unit ball.
    """
    x = _check_samples(samples)
    n, d = x.shape
    eps = _kth_neighbour_distance(cKDTree(x), x, k, exclude_self=True)
    if np.any(eps <= 0):
        raise ValueError(f"{int((eps <= 0).sum())} points have {k} or more exact duplicates; "
                         "k-NN estimators need continuous data (add jitter or raise k)")
    terms = digamma(n) - digamma(k) + _log_unit_ball_volume(d) + d * np.log(eps)
    return _mean_with_error(terms, "k-NN (Kozachenko-Leonenko)")


def kl_knn(samples_p, samples_q, k: int = 3) -> Estimate:
    """Wang-Kulkarni-Verdu estimate of KL(p || q) from samples of p (n, d) and of q (m, d).

    KL = (d / n) sum_i log(nu_i / rho_i) + log(m / (n - 1)), rho_i the distance from x_i to its
    k-th neighbour among the other x, nu_i to its k-th neighbour among the y.
    """
    x, y = _check_samples(samples_p, "samples_p"), _check_samples(samples_q, "samples_q")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"samples_p have {x.shape[1]} dimensions but samples_q have {y.shape[1]}")
    n, d = x.shape
    m = len(y)
    rho = _kth_neighbour_distance(cKDTree(x), x, k, exclude_self=True)
    nu = _kth_neighbour_distance(cKDTree(y), x, k, exclude_self=False)
    terms = d * np.log(nu / rho) + np.log(m / (n - 1))
    return _mean_with_error(terms, "k-NN (Wang-Kulkarni-Verdu)")


def js_knn(samples_p, samples_q, k: int = 3) -> Estimate:
    """JS(p, q) = H(m) - (H(p) + H(q)) / 2 with Kozachenko-Leonenko entropies; equal sample sizes
    make the pooled sample a sample of m = (p + q) / 2."""
    x, y = _check_samples(samples_p, "samples_p"), _check_samples(samples_q, "samples_q")
    size = min(len(x), len(y))
    x, y = x[:size], y[:size]
    pooled, hp, hq = entropy_knn(np.concatenate([x, y]), k), entropy_knn(x, k), entropy_knn(y, k)
    value = pooled.value - 0.5 * (hp.value + hq.value)
    error = math.sqrt(pooled.standard_error**2 + 0.25 * (hp.standard_error**2 + hq.standard_error**2))
    return Estimate(value, error, "k-NN (Kozachenko-Leonenko entropies)")


def mutual_information_knn(samples_x, samples_y, k: int = 3) -> Estimate:
    """Kraskov-Stoegbauer-Grassberger estimate (their algorithm 1) of I(X; Y), in nats.

    I = psi(k) + psi(n) - mean(psi(n_x + 1) + psi(n_y + 1)), with eps_i the max-norm distance to
    the k-th neighbour in the joint space and n_x, n_y the points strictly within eps_i in each
    marginal space.
    """
    x, y = _check_samples(samples_x, "samples_x"), _check_samples(samples_y, "samples_y")
    if len(x) != len(y):
        raise ValueError(f"samples_x has {len(x)} rows but samples_y has {len(y)}")
    n = len(x)
    joint = np.concatenate([x, y], axis=1)
    eps = _kth_neighbour_distance(cKDTree(joint), joint, k, exclude_self=True, p=np.inf)
    radius = np.nextafter(eps, 0)  # strictly within
    n_x = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True, workers=-1) - 1
    n_y = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True, workers=-1) - 1
    terms = digamma(k) + digamma(n) - digamma(n_x + 1) - digamma(n_y + 1)
    return _mean_with_error(terms, "k-NN (Kraskov-Stoegbauer-Grassberger)")


# --------------------------------------------------------------------------------------------
# Discrete distributions (probability vectors, counts, contingency tables)
# --------------------------------------------------------------------------------------------
def _probabilities(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite and non-negative")
    total = values.sum()
    if total <= 0:
        raise ValueError(f"{name} sum to zero")
    return values / total


def entropy_discrete(probabilities_or_counts) -> Estimate:
    """Shannon entropy -sum p log p of a probability vector (or counts, normalised), in nats."""
    p = _probabilities(probabilities_or_counts, "probabilities")
    nonzero = p[p > 0]
    return _closed(-np.sum(nonzero * np.log(nonzero)))


def kl_discrete(p, q) -> Estimate:
    """KL(p || q) = sum p log(p / q); infinite where q = 0 < p."""
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    support = p > 0
    if np.any(q[support] == 0):
        return _closed(np.inf)
    return _closed(np.sum(p[support] * np.log(p[support] / q[support])))


def cross_entropy_discrete(p, q) -> Estimate:
    return _closed(float(entropy_discrete(p)) + float(kl_discrete(p, q)))


def js_discrete(p, q) -> Estimate:
    p, q = _probabilities(p, "p"), _probabilities(q, "q")
    m = 0.5 * (p + q)
    return _closed(0.5 * float(kl_discrete(p, m)) + 0.5 * float(kl_discrete(q, m)))


def mutual_information_discrete(table) -> Estimate:
    """I(X; Y) of a joint probability (or count) table, rows X and columns Y."""
    joint = _probabilities(table, "table")
    product = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    return kl_discrete(joint.ravel(), product.ravel())


# --------------------------------------------------------------------------------------------
# Predictive scores
# --------------------------------------------------------------------------------------------
def aggregate_posterior_mutual_information(loc, scale, rng_key, num_samples: int = 2000) -> Estimate:
    """I(x; z) under an amortised Gaussian encoder's aggregate posterior, in nats.

    loc, scale: (N, L) the encoder's q(z | x_n) = Normal(loc_n, diag(scale_n^2)) for N data rows.
    With q(z) = (1/N) sum_m q(z | x_m), I = E_n E_{z ~ q(z|x_n)} [log q(z | x_n) - log q(z)]
    (Hoffman and Johnson's "ELBO surgery"); estimated from `num_samples` (n, z) pairs, with the
    standard error of their mean. It is at most log N, which it approaches when every row's
    code is told apart from every other's.
    """
    terms = _aggregate_posterior_terms(jnp.asarray(loc), jnp.asarray(scale), rng_key, int(num_samples))
    return _mean_with_error(np.asarray(terms), "Monte Carlo (aggregate posterior)")


@functools.partial(jax.jit, static_argnums=3)  # one program: eagerly, each operation compiles on its own
def _aggregate_posterior_terms(loc, scale, rng_key, num_samples: int):
    n = loc.shape[0]
    row_key, noise_key = jax.random.split(rng_key)
    rows = jax.random.randint(row_key, (num_samples,), 0, n)

    def term(row, key):
        z = loc[row] + scale[row] * jax.random.normal(key, loc.shape[1:])
        log_each = jnp.sum(-0.5 * ((z - loc) / scale) ** 2 - jnp.log(scale) - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
        return log_each[row] - (jax.nn.logsumexp(log_each) - jnp.log(n))

    return jax.lax.map(lambda a: term(*a), (rows, jax.random.split(noise_key, num_samples)), batch_size=256)


def predictive_scores(log_likelihood_draws, num_dims: int = 1) -> dict:
    """Held-out predictive scores from pointwise log-likelihoods of posterior draws.

    log_likelihood_draws: (draws, points) array of log p(y_i | theta_s) for held-out y_i.
    Returns the log predictive density (sum over points of log mean_s p(y_i | theta_s)), the
    cross-entropy per point in nats and bits, the perplexity exp(cross-entropy) and bits per
    dimension (cross-entropy / (num_dims ln 2)), each per-point quantity with its standard error.
    """
    values = np.asarray(log_likelihood_draws, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"log_likelihood_draws must have shape (draws, points), got {values.shape}")
    draws, points = values.shape
    pointwise = np.logaddexp.reduce(values, axis=0) - np.log(draws)
    per_point = _mean_with_error(-pointwise, "held-out")
    return {
        "num_points": int(points),
        "log_predictive_density": float(pointwise.sum()),
        "log_predictive_density_se": float(pointwise.std(ddof=1) * np.sqrt(points)) if points > 1 else 0.0,
        "cross_entropy_nats": per_point.value,
        "cross_entropy_bits": per_point.value / LN2,
        "cross_entropy_se_nats": per_point.standard_error,
        "perplexity": float(np.exp(per_point.value)),
        "bits_per_dimension": per_point.value / (num_dims * LN2),
    }
