"""Bayesian Gaussian mixture: K components in D >= 1 dimensions, assignments marginalised.

    weights              ~ Dirichlet(weight_concentration * 1_K)
    means[k, d]          ~ Normal(prior_loc[d], prior_scale[d])   (first column ordered, below)
    scales[k, d]**2      ~ InverseGamma(2, scale_rate[d])
    scale_rate[d]        ~ Gamma(0.2, 10 / prior_scale[d]**2)
    corr_cholesky[k]     ~ LKJCholesky(D, lkj_concentration)       (covariance="full" only)
    x[n] | params        ~ sum_k weights[k] * Normal(means[k], diag(scales[k]) corr[k] diag(scales[k]))

The assignment z[n] is summed out in the likelihood, so NUTS never samples it; per-point
posterior assignment probabilities are recovered afterwards (`assignment_probabilities`).
The hyperparameters default to the data's midpoint and range per column (Richardson & Green,
1997), which makes the prior weakly informative in the data's own units. The variances' prior
is theirs too: an inverse gamma, whose density vanishes faster than any power as a variance
goes to zero, so that a component cannot collapse onto a few points (the mixture likelihood
is unbounded there). A half-normal prior on the scales left that neck open: on the galaxies
data (82 points, small outer clusters) NUTS met 40-80 divergences in it, and none under this
prior (six seeds, both adaptations). The shared rate adapts the scales' prior to the data.

Label switching. The likelihood is invariant to permuting components, so an unconstrained
posterior has K! symmetric modes and chains started apart land in different ones: R-hat across
chains is then meaningless. By default (`identify="ordered"`) the first column of the means is
ordered, mu[0, 0] < mu[1, 0] < ..., which identifies the posterior inside the sampler itself:
every chain explores the same labelling, no post-hoc step is needed, and the prior is the
order statistic of K iid normals (an exchangeable prior restricted to one labelling, so no
information is added). It needs the components to differ in the first column; when they differ
only in another, put that column first or use `identify="relabel"`: an exchangeable prior,
with each draw relabelled afterwards to match a reference labelling by the Hungarian algorithm
(`scipy.optimize.linear_sum_assignment`) on standardised means, the reference refined until the
labelling stops changing. `identify="none"` leaves the symmetry in (for demonstrations).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from probgen.errors import ModelError
from probgen.models._common.mixtures import (
    OrderedNormal, component_log_densities, kmeans, relabel_permutations, to_original_units,
)
from probgen.spec import FamilyPlots, ModelInputs, ModelSpec, Option, OriginalUnits, Relabel, Simulator

COVARIANCES = ("full", "diagonal")
IDENTIFICATIONS = ("ordered", "relabel", "none")


# --------------------------------------------------------------------------------------------
# The mixture density
# --------------------------------------------------------------------------------------------
def mixture_log_likelihood(x, weights, means, scale_tril):
    """Pointwise log density of a Gaussian mixture, (..., N, D) -> (..., N)."""
    return jax.nn.logsumexp(component_log_densities(x, weights, means, scale_tril), axis=-1)


class GaussianMixture(dist.Distribution):
    """A finite mixture of multivariate normals with the assignment summed out.

    weights (K,), means (K, D), scale_tril (K, D, D). Event shape (D,), batch shape ().
    NumPyro's `MixtureSameFamily(Categorical, MultivariateNormal)` is the same density; this
    one evaluates it about 8x faster on CPU (benchmarks/gmm.py), which is what NUTS spends its
    time on.
    """

    arg_constraints = {
        "weights": constraints.simplex,
        "means": constraints.real_matrix,
        "scale_tril": constraints.lower_cholesky,
    }
    support = constraints.real_vector

    def __init__(self, weights, means, scale_tril, *, validate_args=None):
        self.weights, self.means, self.scale_tril = weights, means, scale_tril
        super().__init__(batch_shape=(), event_shape=jnp.shape(means)[-1:], validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        component_key, noise_key = jax.random.split(key)
        component = jax.random.categorical(component_key, jnp.log(self.weights), shape=sample_shape)
        noise = jax.random.normal(noise_key, sample_shape + self.event_shape)
        return self.means[component] + jnp.einsum(
            "...de,...e->...d", self.scale_tril[component], noise, precision=jax.lax.Precision.HIGHEST
        )

    def log_prob(self, value):
        return mixture_log_likelihood(value, self.weights, self.means, self.scale_tril)

    def component_log_probs(self, value):
        return component_log_densities(value, self.weights, self.means, self.scale_tril)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
def gmm(
    x=None,
    *,
    num_points: int,
    num_components: int,
    prior_loc,
    prior_scale,
    covariance: str = "full",
    identify: str = "ordered",
    weight_concentration: float = 1.0,
    lkj_concentration: float = 2.0,
):
    """Gaussian mixture model.

    x: (num_points, D) observations, or None to draw them. prior_loc, prior_scale: (D,).
    Sites: weights (K,), means (K, D) [from ordered_means (K,) and other_means (K, D-1) when
    identify="ordered"], scales (K, D), corr_cholesky (K, D, D) for full covariance;
    deterministic scale_tril (K, D, D); observed x (N, D).
    """
    prior_loc = jnp.asarray(prior_loc)
    prior_scale = jnp.asarray(prior_scale)
    num_dims = prior_loc.shape[0]
    K = num_components
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.full((K,), weight_concentration)))
    if identify == "ordered":
        first = numpyro.sample("ordered_means", OrderedNormal(prior_loc[0], prior_scale[0], K))
        columns = [first[:, None]]
        if num_dims > 1:
            columns.append(
                numpyro.sample(
                    "other_means", dist.Normal(prior_loc[1:], prior_scale[1:]).expand([K, num_dims - 1]).to_event(2)
                )
            )
        means = numpyro.deterministic("means", jnp.concatenate(columns, axis=1))
    else:
        means = numpyro.sample("means", dist.Normal(prior_loc, prior_scale).expand([K, num_dims]).to_event(2))
    # Richardson & Green (1997): each variance ~ InverseGamma(2, rate), rate ~ Gamma(0.2, 10 / R^2)
    rate = numpyro.sample("scale_rate", dist.Gamma(0.2, 10.0 / prior_scale**2).to_event(1))
    scales = numpyro.sample("scales", dist.TransformedDistribution(
        dist.InverseGamma(2.0, rate).expand([K, num_dims]), dist.transforms.PowerTransform(0.5)).to_event(2))
    if covariance == "full" and num_dims > 1:
        corr_cholesky = numpyro.sample(
            "corr_cholesky", dist.LKJCholesky(num_dims, lkj_concentration).expand([K]).to_event(1)
        )
        scale_tril = scales[..., :, None] * corr_cholesky
    else:
        scale_tril = jnp.eye(num_dims) * scales[..., :, None]
    scale_tril = numpyro.deterministic("scale_tril", scale_tril)
    with numpyro.plate("obs", num_points):
        numpyro.sample("x", GaussianMixture(weights, means, scale_tril), obs=x)


# --------------------------------------------------------------------------------------------
# Data -> model inputs
# --------------------------------------------------------------------------------------------
def prepare(frame, options) -> ModelInputs:
    """Model inputs from a numeric table; validates the options against the data."""
    x = frame.to_numpy(dtype=np.float32)
    num_points, num_dims = x.shape
    K = options["num_components"]  # an integer >= 1: its Option says so, and resolve_options checks it
    if K > num_points:
        raise ModelError(f"--num-components {K} is more than the number of data points ({num_points})")
    low, high = x.min(axis=0), x.max(axis=0)
    spread = high - low
    constant = [str(c) for c, s in zip(frame.columns, spread) if not s > 0]
    if constant:
        raise ModelError(f"column{'s' if len(constant) > 1 else ''} {', '.join(constant)} "
                         "has a single value; a mixture needs spread in every column")
    kwargs = {
        "num_points": num_points,
        "num_components": int(K),
        "prior_loc": (low + high) / 2,
        "prior_scale": spread,
        "covariance": options["covariance"],
        "identify": options["identify"],
        "weight_concentration": float(options["weight_concentration"]),
    }
    components = [f"c{k}" for k in range(K)]
    features = [str(c) for c in frame.columns]
    return ModelInputs(
        kwargs=kwargs,
        observed={"x": x},
        coords={"component": components, "feature": features, "feature_": features, "obs_id": np.arange(num_points)},
        dims={
            "weights": ["component"],
            "ordered_means": ["component"],
            "other_means": ["component", "other_feature"],
            "means": ["component", "feature"],
            "scales": ["component", "feature"],
            "scale_rate": ["feature"],
            "corr_cholesky": ["component", "feature", "feature_"],
            "scale_tril": ["component", "feature", "feature_"],
            "x": ["obs_id", "feature"],
        },
    )


# --------------------------------------------------------------------------------------------
# Label switching: post-hoc relabelling
# --------------------------------------------------------------------------------------------
COMPONENT_SITES = ("weights", "means", "ordered_means", "other_means", "scales", "corr_cholesky")


def postprocess(samples: dict, inputs: ModelInputs) -> dict:
    """Relabel draws when identify="relabel"; otherwise return them unchanged."""
    if inputs.kwargs["identify"] != "relabel" or inputs.kwargs["num_components"] == 1:
        return samples
    chains, draws = samples["means"].shape[:2]
    flat = {k: v.reshape((chains * draws,) + v.shape[2:]) for k, v in samples.items()}
    permutations = relabel_permutations(flat["means"])
    out = {}
    for name, value in flat.items():
        if name in COMPONENT_SITES:
            index = permutations.reshape(permutations.shape + (1,) * (value.ndim - 2))
            value = np.take_along_axis(value, index, axis=1)
        out[name] = value.reshape((chains, draws) + value.shape[1:])
    return out


# --------------------------------------------------------------------------------------------
# Starting points
# --------------------------------------------------------------------------------------------
def init(inputs: ModelInputs, rng_key, num_chains: int) -> dict:
    """A k-means++ clustering per chain, each from its own random seeding, as starting points.

    Chains start apart (different seedings find different local solutions, so R-hat can still
    expose multimodality) but each at a plausible mixture rather than at an arbitrary point
    of an unconstrained space. Components are sorted by their first-column mean when
    identify="ordered"; with identify="none" they keep k-means' random order.
    """
    x = np.asarray(inputs.observed["x"], dtype=np.float64)
    kwargs = inputs.kwargs
    K, D = kwargs["num_components"], x.shape[1]
    scale = x.std(0) + 1e-12
    floor = 0.05 * np.asarray(kwargs["prior_scale"])
    seed = int(jax.random.randint(rng_key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    starts = {name: [] for name in ("weights", "means", "scales")}
    for _ in range(num_chains):
        labels = kmeans(x / scale, K, rng)
        means = np.array([x[labels == k].mean(0) if np.any(labels == k) else x[rng.integers(len(x))] for k in range(K)])
        scales = np.array([x[labels == k].std(0) if np.sum(labels == k) > 1 else scale for k in range(K)])
        counts = np.bincount(labels, minlength=K) + 1.0
        if kwargs["identify"] == "ordered":
            order = np.argsort(means[:, 0])
            means, scales, counts = means[order], scales[order], counts[order]
            means[:, 0] += np.arange(K) * 1e-6 * scale[0]  # strictly increasing even for tied clusters
        starts["weights"].append(counts / counts.sum())
        starts["means"].append(means)
        starts["scales"].append(np.maximum(scales, floor))
    out = {name: np.array(values, dtype=np.float32) for name, values in starts.items()}
    # the rate's conditional posterior mean given the starting scales (Gamma-InverseGamma conjugacy)
    out["scale_rate"] = ((0.2 + 2.0 * K) / (10.0 / np.asarray(kwargs["prior_scale"], np.float64) ** 2
                                           + (1.0 / out["scales"].astype(np.float64) ** 2).sum(1))).astype(np.float32)
    if kwargs["identify"] == "ordered":
        means = out.pop("means")
        out["ordered_means"] = means[:, :, 0]
        if D > 1:
            out["other_means"] = means[:, :, 1:]
    if kwargs["covariance"] == "full" and D > 1:
        out["corr_cholesky"] = np.broadcast_to(np.eye(D, dtype=np.float32), (num_chains, K, D, D)).copy()
    return out


# --------------------------------------------------------------------------------------------
# After the fit: assignments, simulation, original units, plots
# --------------------------------------------------------------------------------------------
def assignment_probabilities(idata, x=None) -> np.ndarray:
    """Posterior probability that each point belongs to each component, shape (N, K).

    Averages p(z_n = k | x_n, theta) over the posterior draws in `idata`; `x` defaults to the
    observed data stored in it.
    """
    posterior = idata.posterior
    if x is None:
        x = idata.observed_data["x"].values
    weights = posterior["weights"].values.reshape(-1, posterior.sizes["component"])
    means = posterior["means"].values.reshape((-1,) + posterior["means"].shape[2:])
    scale_tril = posterior["scale_tril"].values.reshape((-1,) + posterior["scale_tril"].shape[2:])
    x = jnp.asarray(x, dtype=jnp.float32)

    @jax.jit
    def one(w, m, L):
        log_densities = component_log_densities(x, w, m, L)
        return jax.nn.softmax(log_densities, axis=-1)

    total = jnp.zeros((x.shape[0], weights.shape[1]))
    for start in range(0, weights.shape[0], 256):  # bounded memory for large N
        stop = start + 256
        total = total + jax.vmap(one)(weights[start:stop], means[start:stop], scale_tril[start:stop]).sum(0)
    return np.asarray(total / weights.shape[0])


def simulate(rng_key, params: dict, num_points: int) -> np.ndarray:
    """New data from mixture parameters.

    params: weights (S, K), means (S, K, D), scale_tril (S, K, D, D), any number S >= 1 of
    parameter draws (a single parameter set is S = 1). Point n uses draw n mod S after a
    random shuffle, so with posterior draws this samples the posterior predictive.
    Returns (num_points, D).
    """
    weights = jnp.asarray(params["weights"])
    S = weights.shape[0]
    draw_key, point_key = jax.random.split(rng_key)
    which = jax.random.randint(draw_key, (num_points,), 0, S) if S > 1 else jnp.zeros(num_points, int)
    keys = jax.random.split(point_key, num_points)

    def one(key, index):
        mixture = GaussianMixture(weights[index], jnp.asarray(params["means"])[index], jnp.asarray(params["scale_tril"])[index])
        return mixture.sample(key)

    return np.asarray(jax.vmap(one)(keys, which))


def plots(idata) -> dict:
    """The data coloured by most probable component, with each component's 2-sd ellipse
    (first two columns), or a histogram with the fitted component densities (one column)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    x = idata.observed_data["x"].values
    probabilities = assignment_probabilities(idata)
    labels = probabilities.argmax(axis=1)
    posterior = idata.posterior
    means = posterior["means"].mean(("chain", "draw")).values
    scale_tril = posterior["scale_tril"].values.reshape((-1,) + posterior["scale_tril"].shape[2:])
    covariances = np.einsum("skde,skfe->skdf", scale_tril, scale_tril).mean(axis=0)
    weights = posterior["weights"].mean(("chain", "draw")).values
    features = list(idata.observed_data["feature"].values)
    figure, axis = plt.subplots(figsize=(6, 4.5))
    colours = plt.get_cmap("tab10")
    if x.shape[1] >= 2:
        for k in range(means.shape[0]):
            chosen = labels == k
            axis.scatter(x[chosen, 0], x[chosen, 1], s=12, color=colours(k % 10), alpha=0.6,
                         label=f"component {k} (weight {weights[k]:.2f})")
            values, vectors = np.linalg.eigh(covariances[k][:2, :2])
            angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
            axis.add_patch(Ellipse(means[k, :2], *(2 * 2 * np.sqrt(values[::-1])), angle=angle,
                                   fill=False, color=colours(k % 10), lw=2))
            axis.plot(*means[k, :2], "x", color="black")
        axis.set_xlabel(features[0])
        axis.set_ylabel(features[1])
        axis.set_title("Data by most probable component, 2-sd ellipses (posterior mean)")
    else:
        axis.hist(x[:, 0], bins=40, density=True, color="0.8", label="data")
        grid = np.linspace(x.min(), x.max(), 400)
        total = np.zeros_like(grid)
        for k in range(means.shape[0]):
            density = weights[k] * np.exp(-0.5 * (grid - means[k, 0]) ** 2 / covariances[k][0, 0]) / np.sqrt(2 * np.pi * covariances[k][0, 0])
            total += density
            axis.plot(grid, density, color=colours(k % 10), label=f"component {k} (weight {weights[k]:.2f})")
        axis.plot(grid, total, color="black", lw=2, label="mixture")
        axis.set_xlabel(features[0])
        axis.set_title("Data and fitted components (posterior mean)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return {"components": figure}


SPEC = ModelSpec(
    name="gmm",
    model=gmm,
    prepare=prepare,
    options=(
        Option("num_components", int, 2, "number of mixture components K (1 <= K <= number of points)", minimum=1),
        Option("covariance", str, "full", "component covariance: full (LKJ-Cholesky prior) or diagonal", COVARIANCES),
        Option("identify", str, "ordered", "label switching: ordered first column, post-hoc relabel, or none", IDENTIFICATIONS),
        Option("weight_concentration", float, 1.0, "Dirichlet concentration of the mixture weights"),
    ),
    summary_vars=("weights", "means", "scales"),
    init=init,
    parts=(Relabel(postprocess), Simulator(simulate), OriginalUnits(to_original_units), FamilyPlots(plots)),
    description="Bayesian Gaussian mixture, K components, diagonal or full covariance, assignments marginalised",
)
