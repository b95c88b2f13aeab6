"""Pathfinder (`probgen.infer.pathfinder`) against the conjugate posterior: its draws, its
verdict, SBC through it, and NUTS started from it."""

from probgen.checks import diagnostics
from probgen.infer import fit
from probgen.checks.sbc import run_sbc
from _seeds import seeded
from infer.conjugate import SPEC, exact_posterior


def test_pathfinder_matches_the_conjugate_posterior_and_passes_its_pareto_k(frame):
    # The posterior is Gaussian, so each path's normal approximation is (nearly) exact and the
    # importance weights nearly equal: Pareto k well under 0.7. 1000 resampled draws from a
    # pool of 4000 with nearly equal weights have an ESS above ~600; 4 standard errors of the
    # mean are then under 0.17 sd and of the sd under 0.12 sd: bounds of 0.25 and 0.2 sit
    # outside Monte Carlo noise on any seed.
    result = fit(SPEC, frame, "pathfinder", seed=seeded(0), progress=False)
    mean, sd = exact_posterior(frame)
    draws = result.idata.posterior["mu"].values.ravel()
    assert draws.size == 1000
    assert abs(draws.mean() - mean) < 0.25 * sd
    assert 0.8 < draws.std() / sd < 1.2
    assessment = diagnostics.assess(result.idata, result.method, result.settings, facts=result.facts)
    assert result.facts["pareto_k"] < 0.7
    assert {v.check for v in assessment.verdicts} == {"paths", "pareto_k"}
    assert assessment.overall in ("trusted", "suspect")
    assert "log_likelihood" in result.idata.groups() and "posterior_predictive" in result.idata.groups()


def test_sbc_runs_through_pathfinder_on_its_compiled_refit(frame):
    # 60 simulations of a Gaussian posterior: Pathfinder is close to exact, so the ranks are
    # uniform; the bound is far below the test's alpha (a false alarm has chance < 1e-4)
    result = run_sbc(SPEC, frame, "pathfinder", simulations=60, num_draws=19, seed=seeded(3), progress=False)
    assert not result.failures
    assert result.ranks.shape == (60, 1)
    assert float(result.uniformity["p_value"].min()) > 1e-4


def test_nuts_starts_from_pathfinder_draws(frame):
    # --init pathfinder: each chain starts at a Pathfinder draw, inside the posterior's bulk.
    # With 2 x 300 draws the MCSE of the mean is about sd / sqrt(300): 5 MCSE < 0.3 sd.
    result = fit(SPEC, frame, "nuts", seed=seeded(1), progress=False, chains=2, warmup=200, draws=300,
                 init="pathfinder")
    mean, sd = exact_posterior(frame)
    assert abs(float(result.idata.posterior["mu"].mean()) - mean) < 0.3 * sd
    assert result.settings["init"] == "pathfinder"
