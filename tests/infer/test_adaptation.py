"""The warm-up adaptations (`probgen.infer.adaptation`): each learns the metric of a posterior
whose answer is known, and none is held back by a fixed regulariser at small scales (issue 31:
sblri's coefficients, sd ~1e-3, got an inverse mass ~10x too large from Stan's 1e-3 term)."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import init_to_uniform

from probgen.infer import adaptation
from probgen.infer.chains import ChainProgram
from _seeds import seeded

# independent normal coordinates with standard deviations over five orders of magnitude
SCALES = np.array([1e-3, 3e-3, 0.1, 1.0, 30.0], np.float32)


def scaled_normal():
    numpyro.sample("x", dist.Normal(0.0, SCALES))


def correlated_normal(rho=0.995):
    # two coordinates with correlation rho and very different scales
    cov = np.array([[1.0, rho * 1e-2], [rho * 1e-2, 1e-4]], np.float32)
    numpyro.sample("x", dist.MultivariateNormal(np.zeros(2, np.float32), covariance_matrix=cov))


def final_metric(model, adapt, seed, warmup=1000):
    """The inverse mass matrix each of 2 chains ends its warm-up with, and the kept draws."""
    program = ChainProgram(model, {}, "NUTS", {"target_accept_prob": 0.8}, chains=2, warmup=warmup, draws=500,
                           init_strategy=init_to_uniform, chain_method="sequential", adapt=adapt)
    states = {}

    def on_chunk(done, values, fields, state):
        states["last"] = dict(state())

    out = program.run(jax.random.PRNGKey(seed), {}, on_chunk=on_chunk)
    metric = next(v for k, v in states["last"].items() if k.endswith("inverse_mass_matrix"))
    return np.asarray(metric), out


@pytest.mark.parametrize("adapt", ["fisher", "stan"])
def test_the_diagonal_metric_matches_each_scale(adapt):
    # the metric that suits a normal posterior is its variance. Both estimates come from some
    # 80-550 autocorrelated warm-up draws: a variance from n effective draws is off by a factor
    # exp(+-2 sqrt(2/n)) at 2 SE, under 1.5 for n >= 50; the Fisher estimate (a ratio of sds) is
    # tighter. A factor of 2 is beyond 3.4 SE at n = 50. The old fixed 1e-3 regulariser gave the
    # 1e-3 scale an inverse mass of ~1.7e-4 after its first window: 170 times too large.
    for offset in range(2):
        metric, out = final_metric(scaled_normal, adapt, seeded(40 + offset))
        ratio = metric / SCALES ** 2
        assert np.all((ratio > 0.5) & (ratio < 2.0)), (adapt, ratio)
        # and the draws have the right spread (4 chains x 500 draws; 10% is > 3 SE of an sd)
        sd = out.samples["x"].reshape(-1, SCALES.size).std(0)
        np.testing.assert_allclose(sd, SCALES, rtol=0.1)


def test_low_rank_learns_a_strong_correlation():
    # correlation 0.995: the best diagonal leaves a condition number of ~400, the dense metric
    # ~1. The low-rank metric must carry the correlation (its correlation within 0.05 of
    # 0.995: the posterior's own correlation estimated from ~80 draws has SE (1 - rho^2)/sqrt(n)
    # < 0.002) and the sampler must need few leapfrog steps where the diagonal needs many.
    for offset in range(2):
        metric, out = final_metric(correlated_normal, "low-rank", seeded(50 + offset))
        corr = metric[..., 0, 1] / np.sqrt(metric[..., 0, 0] * metric[..., 1, 1])
        assert np.all(corr > 0.945), corr
        x = out.samples["x"].reshape(-1, 2)
        assert abs(np.corrcoef(x.T)[0, 1] - 0.995) < 0.003
        _, diagonal = final_metric(correlated_normal, "fisher", seeded(50 + offset))
        assert out.fields["num_steps"].mean() * 4 < diagonal.fields["num_steps"].mean()


def test_fisher_variance_is_the_ratio_of_spreads():
    # for a normal with sd s: draws spread s, scores x / s^2 spread 1 / s, ratio s^2; a zero
    # spread (a coordinate that never moved) keeps the fallback
    rng = np.random.default_rng(seeded(60))
    x = rng.normal(size=(4000, 3)) * np.array([1e-3, 1.0, 0.0])
    g = x / np.array([1e-3, 1.0, 1.0]) ** 2
    m2x, m2g = ((x - x.mean(0)) ** 2).sum(0), ((g - g.mean(0)) ** 2).sum(0)
    got = np.asarray(adaptation.fisher_variance(m2x, m2g, np.full(3, 7.0)))
    np.testing.assert_allclose(got[:2], [1e-6, 1.0], rtol=1e-6)  # exact: g is x scaled
    assert got[2] == 7.0


def test_low_rank_metric_of_exact_scores_is_the_covariance():
    # the draws of a correlated normal with their exact scores: the geometric mean of the draws'
    # covariance and the scores' inverse covariance is the covariance itself, up to the
    # sampling error of 400 draws (a covariance entry: SE ~ sqrt(2/400) = 7% relative) and the
    # eigenvalues within [1/2, 2] of the diagonal that the correction leaves out
    rng = np.random.default_rng(seeded(61))
    scales = np.diag([1e-3, 1.0, 10.0])
    cov = scales @ (np.full((3, 3), 0.99) + 0.01 * np.eye(3)) @ scales
    x = rng.multivariate_normal(np.zeros(3), cov, size=400)
    metric = adaptation.low_rank_metric(x, x @ np.linalg.inv(cov), None)
    np.testing.assert_allclose(metric / cov, np.ones((3, 3)), atol=0.25)
    assert adaptation.low_rank_metric(x[:2], x[:2], None) is None  # too few draws: no estimate


def test_an_unknown_adaptation_is_named():
    with pytest.raises(ValueError, match="adaptation must be one of fisher, stan, low-rank, got 'dense'"):
        with adaptation.adapting("dense"):
            pass


def test_a_short_warmup_gets_the_diagonal_under_low_rank():
    # below LOW_RANK_MIN_WARMUP there are too few draws for a low-rank estimate and too few
    # iterations after it to tune a step size for it: the metric is the Fisher diagonal
    short, _ = final_metric(scaled_normal, "low-rank", seeded(70), warmup=adaptation.LOW_RANK_MIN_WARMUP - 1)
    assert short.shape == (2, SCALES.size)
    full, _ = final_metric(scaled_normal, "low-rank", seeded(70), warmup=adaptation.LOW_RANK_MIN_WARMUP)
    assert full.shape == (2, SCALES.size, SCALES.size)
