"""The probabilistic PCA / factor analysis model and its closed forms: the marginal
linear-Gaussian model (latents summed out), the maximum-likelihood PPCA (Tipping & Bishop
1999), the log density, the posterior mean of z, and the canonical rotation of W."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from probgen.errors import ModelError

NOISE = ("isotropic", "diagonal")

PRIORS = ("ard", "normal")


# the unique variances' prior shape (Fruehwirth-Schnatter & Lopes 2018): large enough that the
# prior density vanishes at psi_d = 0, where factor analysis has its Heywood boundary
UNIQUE_SHAPE = 2.5


def ppca(x=None, *, num_points: int, latent_dim: int, centre, spread, noise: str = "isotropic", ard: bool = True,
         unique_variance=None):
    """The marginal linear-Gaussian model. x: (num_points, D) or None (to generate).
    unique_variance (D,): factor analysis's prior mean for each psi_d^2 (default spread^2 / 2)."""
    centre, spread = jnp.asarray(centre), jnp.asarray(spread)
    num_dims = centre.shape[0]
    overall = jnp.sqrt(jnp.mean(spread**2))
    mu = numpyro.sample("mu", dist.Normal(centre, 10.0 * spread).to_event(1))
    # each row of W is in its own column's units (W_dj = spread_d tau_j w_dj): the prior is the
    # same on standardised columns, so a table whose columns' sds differ 200-fold (mtcars) gives
    # the sampler coordinates of one scale; tau_j is then unitless
    if ard:
        tau = numpyro.sample("column_scale", dist.HalfNormal(1.0).expand([latent_dim]).to_event(1))
    else:
        tau = jnp.ones(latent_dim)
    # lower-triangular W with a positive diagonal (Geweke & Zhou 1996): one representative of
    # each rotation class, so that the sampler does not wander along the rotations
    rows, columns = np.tril_indices(num_dims, -1, latent_dim)
    # non-centred: the columns ARD prunes would otherwise form a funnel with their scale
    below = spread[rows] * tau[columns] * numpyro.sample(
        "W_below", dist.Normal(0.0, 1.0).expand([len(rows)]).to_event(1))
    diagonal = spread[:latent_dim] * tau * numpyro.sample(
        "W_diagonal", dist.HalfNormal(1.0).expand([latent_dim]).to_event(1))
    loadings = jnp.zeros((num_dims, latent_dim)).at[rows, columns].set(below)
    loadings = numpyro.deterministic("W", loadings.at[jnp.arange(latent_dim), jnp.arange(latent_dim)].set(diagonal))
    if noise == "isotropic":
        sigma = numpyro.sample("sigma", dist.HalfNormal(overall))
        noise_variance = jnp.full(num_dims, sigma**2)
    else:
        # psi_d^2 ~ InverseGamma(c0, (c0 - 1) unique_variance_d): its mean is unique_variance_d
        # (prepare: 1 / (S^-1)_dd, the variance of column d left unexplained by the others, which
        # bounds psi_d^2), and its density vanishes faster than any power at 0 (no Heywood case)
        prior_mean = 0.5 * spread**2 if unique_variance is None else jnp.asarray(unique_variance)
        psi = numpyro.sample("psi", dist.TransformedDistribution(
            dist.InverseGamma(UNIQUE_SHAPE, (UNIQUE_SHAPE - 1.0) * prior_mean),
            dist.transforms.PowerTransform(0.5)).to_event(1))
        noise_variance = psi**2
    numpyro.deterministic("factor_variance", jnp.sort(jnp.linalg.eigvalsh(loadings.T @ loadings))[::-1])
    with numpyro.plate("data", num_points):
        numpyro.sample("x", dist.LowRankMultivariateNormal(mu, loadings, noise_variance), obs=x)


def maximum_likelihood(x, latent_dim: int, ddof: int = 0) -> dict:
    """The maximum-likelihood PPCA with q = latent_dim: mu = the mean, sigma^2 = the mean of the
    D - q smallest eigenvalues of the sample covariance S, W = U_q (Lambda_q - sigma^2 I)^(1/2).
    ddof=1 uses S with N - 1 (scikit-learn's convention). Returns mu (D,), W (D, q), sigma2."""
    x = np.asarray(x, np.float64)
    num_dims = x.shape[1]
    if not 1 <= latent_dim < num_dims:
        raise ModelError(f"latent dimension must be between 1 and D - 1 = {num_dims - 1}, got {latent_dim}")
    mu = x.mean(0)
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False, ddof=ddof))
    values, vectors = values[::-1], vectors[:, ::-1]
    sigma2 = float(values[latent_dim:].mean())
    loadings = vectors[:, :latent_dim] * np.sqrt(np.maximum(values[:latent_dim] - sigma2, 0.0))
    return {"mu": mu, "W": loadings, "sigma2": sigma2}


def log_density(x, mu, loadings, noise_variance) -> np.ndarray:
    """log Normal(x_n | mu, W W^T + diag(noise_variance)) per row (N,), in float64."""
    x, mu, loadings = np.asarray(x, np.float64), np.asarray(mu, np.float64), np.asarray(loadings, np.float64)
    covariance = loadings @ loadings.T + np.diag(np.broadcast_to(np.asarray(noise_variance, np.float64), mu.shape))
    cholesky = np.linalg.cholesky(covariance)
    whitened = np.linalg.solve(cholesky, (x - mu).T)
    return (-0.5 * (whitened**2).sum(0) - np.log(np.diag(cholesky)).sum() - 0.5 * len(mu) * math.log(2 * math.pi))


def latent_means(x, mu, loadings, noise_variance) -> np.ndarray:
    """E[z_n | x_n] = M^-1 W^T Psi^-1 (x_n - mu), M = I + W^T Psi^-1 W: (N, q)."""
    weighted = np.asarray(loadings) / np.asarray(noise_variance)[:, None]
    precision = np.eye(loadings.shape[1]) + np.asarray(loadings).T @ weighted
    return np.linalg.solve(precision, weighted.T @ (np.asarray(x) - np.asarray(mu)).T).T


def canonical_loadings(loadings: np.ndarray) -> np.ndarray:
    """W = U S V^T -> U S with each column's largest-magnitude entry positive: the same W W^T,
    columns ordered by the variance they explain. Works on any leading axes (..., D, q)."""
    left, singular, _ = np.linalg.svd(np.asarray(loadings, np.float64), full_matrices=False)
    canonical = left * singular[..., None, :]
    largest = np.take_along_axis(canonical, np.abs(canonical).argmax(axis=-2)[..., None, :], axis=-2)
    return canonical * np.where(largest < 0, -1.0, 1.0)


def assemble_loadings(below, diagonal, num_dims: int) -> np.ndarray:
    """W (..., D, q) from its free entries below the diagonal and its positive diagonal."""
    below, diagonal = np.asarray(below, np.float64), np.asarray(diagonal, np.float64)
    latent_dim = diagonal.shape[-1]
    rows, columns = np.tril_indices(num_dims, -1, latent_dim)
    loadings = np.zeros(diagonal.shape[:-1] + (num_dims, latent_dim))
    loadings[..., rows, columns] = below
    loadings[..., np.arange(latent_dim), np.arange(latent_dim)] = diagonal
    return loadings


def lower_trapezoidal(loadings: np.ndarray) -> np.ndarray:
    """The representative of W's rotation class that the model samples: W = L Q with L lower
    trapezoidal (zeros above the diagonal), its diagonal positive, Q orthogonal (QR of W^T)."""
    _, upper = np.linalg.qr(np.asarray(loadings, np.float64).T)
    lower = upper.T
    signs = np.where(np.diag(lower) < 0, -1.0, 1.0)
    return lower * signs
