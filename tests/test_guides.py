"""The README's guides "Adding a model family", "Adding an inference method" and "Adding a data
kind" are worked examples that run: their Python blocks are executed here as printed, one after
the other, and what they build is checked against a known answer (the family's conjugate Gamma
posterior), so a guide cannot drift from the interfaces it describes."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from _seeds import seeded
from conftest import REPO

GUIDES = ("Adding a model family", "Adding an inference method", "Adding a data kind")


def _python_blocks(heading: str) -> str:
    """The ```python blocks of the README section `heading` (up to the next `## ` heading)."""
    text = (REPO / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, f"README section '{heading}' has no python block"
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def guides():
    """The three guides' code run in one namespace, as a user pastes them into one file; the
    method and the data kind they register are removed afterwards."""
    from probgen.data.kinds import KINDS
    from probgen.infer import methods

    namespace = {"__name__": "readme_guides"}
    for heading in GUIDES:
        exec(compile(_python_blocks(heading), f"README.md: {heading}", "exec"), namespace)
    yield namespace
    methods._REGISTRY.pop("prior_importance", None)
    KINDS.pop("json_lines", None)


def _counts(seed: int) -> pd.DataFrame:
    return pd.DataFrame({"counts": np.random.default_rng(seed).poisson(3.0, 50)})


def _exact(counts: np.ndarray) -> tuple[float, float]:
    """The conjugate posterior of the family's rate: Exponential(1 / prior_mean) = Gamma(1,
    1 / prior_mean), times Poisson counts: Gamma(1 + sum, 1 / prior_mean + n); prior_mean 1."""
    shape, rate = 1 + counts.sum(), 1.0 + counts.size
    return shape / rate, np.sqrt(shape) / rate


def test_the_family_guide_fits_with_nuts_to_the_conjugate_posterior(guides):
    from probgen.infer import fit

    frame = _counts(seeded(0))
    result = fit(guides["SPEC"], frame, "nuts", seed=seeded(0), progress=False, chains=2, warmup=300, draws=500)
    mean, sd = _exact(frame["counts"].to_numpy())
    draws = result.idata.posterior["rate"].values.ravel()
    # 1000 NUTS draws of a one-parameter Gaussian-like posterior: an ESS of several hundred; 4
    # standard errors of the mean are under 0.3 sd, and of the sd well under 15%
    assert abs(draws.mean() - mean) < 0.3 * sd
    assert 0.8 < draws.std() / sd < 1.2


def test_the_method_guide_samples_the_family_and_the_data_kind_guide_reads_it(guides, tmp_path):
    from probgen import report
    from probgen.infer import fit, methods

    frame = _counts(seeded(1))
    result = fit(guides["SPEC"], frame, "prior_importance", seed=seeded(1), progress=False)
    mean, sd = _exact(frame["counts"].to_numpy())
    draws = result.idata.posterior["rate"].values.ravel()
    # 1000 draws resampled from 20,000 prior draws whose effective number is in the hundreds
    # (the verdict asks for >= 200): duplicates make the draws' ESS about the effective number,
    # so 4 standard errors of the mean are under 0.3 sd
    assert result.facts["effective_proposals"] >= 200
    assert abs(draws.mean() - mean) < 0.3 * sd
    built = report.build_report(result.idata, report.run_config(result), result.spec)
    assert built.assessment.overall == "trusted" and not built.failures
    assert "prior_importance" in methods.names()

    path = tmp_path / "counts.jsonl"
    frame.to_json(path, orient="records", lines=True)
    from_lines = fit(guides["JSON_LINES_SPEC"], str(path), "prior_importance", seed=seeded(1), progress=False)
    np.testing.assert_array_equal(from_lines.idata.posterior["rate"].values, result.idata.posterior["rate"].values)
    assert from_lines.config()["data"]["source"] == str(path)
