"""Conformance: every posteriordb port matches the Stan team's reference draws by posteriordb's
criterion (|mean difference| <= 0.15 reference sd, sd ratio within 0.85-1.15, every parameter).

Why the tolerance holds under any seed: with NUTS's default 4 x 1,000 draws these posteriors get
at least ~1,000 effective draws per parameter, so our mean is off by about sd / 32 and the
reference's (10,000 draws) by sd / 100: 0.15 sd is over 4.5 standard errors of the difference;
the sd ratio's error is about 1 / sqrt(2 ESS) = 0.02, against a 0.15 allowance. The quick
posteriors run in the default suite, the slow ones (analyses/posteriordb.py's SLOW) in
`make test-slow`.
"""

import importlib.util

import pytest

from conftest import REPO
from _seeds import seeded

_spec = importlib.util.spec_from_file_location("posteriordb_study", REPO / "analyses" / "posteriordb.py")
study = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(study)

CASES = [pytest.param(name, marks=pytest.mark.slow) if name in study.SLOW else name for name in study.names()]


def test_all_twelve_ports_are_present_with_data_and_reference():
    assert len(study.names()) == 12
    for name in study.names():
        assert (study.HERE / name / "data.json.gz").is_file() and (study.HERE / name / "reference_draws.json.gz").is_file()


@pytest.mark.parametrize("name", CASES)
def test_port_matches_the_reference_posterior(name):
    from probgen import report

    result, _ = study.fit_posterior(name, seed=seeded(0))
    agreed = study.agreement(result.idata, name)
    bad = [row for row in agreed["rows"] if not (row["mean_difference_sd"] <= study.MEAN_TOLERANCE
                                                  and study.SD_RATIO[0] <= row["sd_ratio"] <= study.SD_RATIO[1])]
    assert agreed["passed"], bad
    if name not in study.DIVERGENT:  # the GP's funnel keeps a few divergences (README's table)
        assert report.assess_run(result.idata, result.config(), result.spec).overall != "failed"
