"""After the fit: the noise, which loading columns carry signal (`retained_dimensions`), the
held-out likelihood of the maximum-likelihood model over the number of dimensions
(`held_out_by_dimension`) against which that choice is checked, and the posterior predictive
density of rows (`predictive_log_density`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from probgen.models.ppca.model import log_density, maximum_likelihood

SINGLET_SHARE = 0.9  # factor analysis: a factor with this share of its loadings on one variable is not retained


def noise_variance_draws(posterior) -> np.ndarray:
    """(chain * draw, D) noise variances."""
    if "psi" in posterior:
        return (posterior["psi"].values ** 2).reshape(-1, posterior.sizes["feature"])
    sigma2 = posterior["sigma"].values.reshape(-1, 1) ** 2
    return np.repeat(sigma2, posterior.sizes["feature"], axis=1)


def retention_threshold(noise_variance: float, num_points: int, num_dims: int) -> float:
    """The smallest factor variance the data can reveal: sigma^2 sqrt(D / N), the spike above
    which a direction separates from the noise eigenvalues of a sample covariance (Baik, Ben
    Arous & Peche 2005). Below it, a column fits noise."""
    return float(noise_variance) * math.sqrt(num_dims / num_points)


def retained_dimensions(posterior, num_points: int) -> pd.DataFrame:
    """Per loading column: the factor variance s_j^2 (median, 5% and 95%), its share of the total
    variance, and whether it is retained: its 5% quantile above `retention_threshold` (an ARD-pruned
    column's posterior reaches down to 0; a real one stays clear of the noise level). Factor
    analysis judges the eigenvalues of W^T Psi^-1 W instead (signal over each variable's own
    noise, threshold sqrt(D / N)), so a noisy variable does not pass for a factor. In factor
    analysis a factor with SINGLET_SHARE of its squared loadings on one variable is not retained:
    the likelihood cannot tell it from that variable's own noise (a factor is identified only when
    it loads on several variables)."""
    variance = posterior["factor_variance"].values.reshape(-1, posterior.sizes["factor"])
    noise = noise_variance_draws(posterior).mean(axis=1, keepdims=True)
    total = variance.sum(1, keepdims=True) + noise * posterior.sizes["feature"]
    judged, level = variance, noise.mean()
    if "psi" in posterior:  # factor analysis: judged in noise-whitened units, where the noise is isotropic
        loadings = posterior["W"].values.reshape((-1,) + posterior["W"].shape[2:])
        whitened = loadings / np.sqrt(noise_variance_draws(posterior))[:, :, None]
        judged = np.sort(np.linalg.eigvalsh(np.einsum("sdj,sdk->sjk", whitened, whitened)), axis=-1)[:, ::-1]
        level = 1.0
    threshold = retention_threshold(level, num_points, posterior.sizes["feature"])
    low = np.quantile(judged, 0.05, 0)
    loadings = posterior["W"].mean(("chain", "draw")).values
    largest = (loadings**2).max(0) / np.maximum((loadings**2).sum(0), 1e-300)
    retained = low > threshold
    if "psi" in posterior:  # factor analysis: a factor on one variable is that variable's unique variance
        retained &= largest < SINGLET_SHARE
    return pd.DataFrame({
        "factor_variance": np.median(variance, 0), "q05": np.quantile(variance, 0.05, 0),
        "q95": np.quantile(variance, 0.95, 0), "share_of_variance": np.median(variance / total, 0),
        "largest_loading_share": largest,
        # what retention judges, in its own units (the factor variance; in factor analysis the
        # noise-whitened eigenvalue), against the threshold in the same units
        "judged_q05": low, "threshold": threshold, "retained": retained,
    }, index=pd.Index(np.arange(posterior.sizes["factor"]), name="factor"))


PREDICTIVE_DRAWS = 200  # posterior draws averaged in the predictive density of a row


def predictive_log_density(posterior, x, max_draws: int = PREDICTIVE_DRAWS) -> np.ndarray:
    """log p(x_n | data) = log mean_s N(x_n | mu_s, W_s W_s^T + Psi_s) per row (N,), over up to
    `max_draws` posterior draws evenly thinned: the posterior predictive, not a plug-in of
    averaged parameters (which in a rotation-invariant model scores below the maximum
    likelihood)."""
    mu = posterior["mu"].values.reshape((-1,) + posterior["mu"].shape[2:])
    loadings = posterior["W"].values.reshape((-1,) + posterior["W"].shape[2:])
    noise = noise_variance_draws(posterior)
    chosen = np.unique(np.linspace(0, len(mu) - 1, min(max_draws, len(mu))).round().astype(int))
    per_draw = np.stack([log_density(x, mu[s], loadings[s], noise[s]) for s in chosen])
    top = per_draw.max(0)
    return top + np.log(np.exp(per_draw - top).mean(0))


def posterior_means(posterior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, canonical W, noise variance) averaged over the draws."""
    return (posterior["mu"].mean(("chain", "draw")).values, posterior["W"].mean(("chain", "draw")).values,
            noise_variance_draws(posterior).mean(0))


CV_FOLDS = 5  # without held-out rows, each training row is scored by a fit to the other 4/5


def maximum_likelihood_fit(x, latent_dim: int, noise: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, W (D, q), noise variance (D,)) of the maximum-likelihood model with q = latent_dim:
    closed form for PPCA (`maximum_likelihood`), scikit-learn's EM for factor analysis; q = 0
    is a Gaussian with independent columns (one shared variance for PPCA)."""
    x = np.asarray(x, np.float64)
    num_dims = x.shape[1]
    if latent_dim == 0:
        variance = x.var(0)
        return x.mean(0), np.zeros((num_dims, 0)), (np.full(num_dims, variance.mean()) if noise == "isotropic"
                                                    else variance)
    if noise == "isotropic":
        ml = maximum_likelihood(x, latent_dim)
        return ml["mu"], ml["W"], np.full(num_dims, ml["sigma2"])
    from sklearn.decomposition import FactorAnalysis

    fitted = FactorAnalysis(latent_dim, random_state=0).fit(x)
    return fitted.mean_, fitted.components_.T, fitted.noise_variance_


def held_out_by_dimension(train, held, noise: str, most: int, seed: int = 0) -> pd.DataFrame:
    """The log-likelihood per row of rows the fit did not see, for the maximum-likelihood model
    with q = 0 .. `most` dimensions: `held` scored by fits to `train`, or, without held-out rows
    (None or fewer than 2), `CV_FOLDS`-fold cross-validation over `train`. Per q: the mean score,
    its difference from the best q's (paired over rows) and that difference's standard error;
    `chosen` marks the smallest q within one standard error of the best (the one-standard-error
    rule: more dimensions must earn their place by more than the noise of the comparison)."""
    train = np.asarray(train, np.float64)
    dimensions = range(0, most + 1)
    if held is not None and len(held) >= 2:
        scored = np.asarray(held, np.float64)
        scores = np.stack([log_density(scored, *maximum_likelihood_fit(train, q, noise)) for q in dimensions])
        how = f"{len(scored)} held-out rows"
    else:
        order = np.random.default_rng(seed).permutation(len(train))
        scores = np.empty((len(dimensions), len(train)))
        for fold in np.array_split(order, CV_FOLDS):
            rest = np.setdiff1d(order, fold)
            for q in dimensions:
                scores[q, fold] = log_density(train[fold], *maximum_likelihood_fit(train[rest], q, noise))
        how = f"{CV_FOLDS}-fold cross-validation over the {len(train)} training rows"
    means = scores.mean(1)
    best = int(np.argmax(means))
    difference = scores - scores[best]
    se = difference.std(1, ddof=1) / math.sqrt(scores.shape[1])
    within = means - means[best] >= -se
    chosen = int(np.flatnonzero(within)[0])
    table = pd.DataFrame({"log_likelihood_per_row": means, "difference_from_best": means - means[best],
                          "se_difference": se, "chosen": np.arange(len(means)) == chosen},
                         index=pd.Index(list(dimensions), name="dimensions"))
    table.attrs["scored_on"] = how
    return table


CLEAR_GAP_SE = 2.0  # a retained count is contradicted when it scores this many standard errors below the best


def dimension_verdict(kept: int, table: pd.DataFrame):
    """Does the posterior's count of retained columns hold up on rows the fit did not see? Pass
    unless the held-out rows clearly prefer another count: the retained count scores more than
    `CLEAR_GAP_SE` standard errors (of the paired per-row difference) below the best q. (With
    the true count retained, the gap to a q that fits sampling noise in the covariance stays
    within 1.4 SE over 40 simulated data sets of tests/models/test_ppca.py's spectrum; a missed
    direction costs tens of SE.)"""
    from probgen.checks.diagnostics import Verdict

    chosen = int(table.index[table["chosen"]][0])
    best = int(table["log_likelihood_per_row"].idxmax())
    threshold = f"held-out score within {CLEAR_GAP_SE:g} SE of the best q's"
    scored_on = table.attrs.get("scored_on", "held-out rows")
    if kept not in table.index:
        return Verdict("dimensions", "skip", kept, threshold, "the retained count is outside the dimensions compared")
    row = table.loc[kept]
    gap, se = -float(row["difference_from_best"]), float(row["se_difference"])
    if kept == best or gap <= CLEAR_GAP_SE * se:
        return Verdict("dimensions", "pass", kept, threshold,
                       f"the {kept} retained dimension(s) score on {scored_on} as well as any other count, within "
                       f"{CLEAR_GAP_SE:g} standard errors of the best (q = {best}; the one-standard-error choice: {chosen})")
    return Verdict("dimensions", "warn", kept, threshold,
                   f"the posterior retains {kept} dimension(s) but {scored_on} prefer {chosen}: {kept} scores "
                   f"{gap:.3g} ± {se:.2g} nats per row below the best (q = {best}); read the retained dimensions with care")
