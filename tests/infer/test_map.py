"""MAP (`probgen.infer.map`) against the conjugate posterior mode."""

from probgen.infer import fit
from _seeds import seeded
from infer.conjugate import SPEC, exact_posterior


def test_map_finds_the_posterior_mode(frame):
    result = fit(SPEC, frame, "map", seed=seeded(1), progress=False)
    mean, sd = exact_posterior(frame)
    assert result.idata.posterior["mu"].shape == (1, 1)
    assert abs(float(result.idata.posterior["mu"].values.item()) - mean) < 0.01 * sd
    assert result.facts["converged"]
