"""Discrete latents shown as distributions (issue 32, point 3): a change point's posterior over
its values, with the 90% highest-probability set, against the closed-form posterior; local
assignments as a heat-map; the full draws kept in `discrete_posterior`."""

import json
import textwrap

import arviz as az
import numpy as np
from scipy import special

from _seeds import seeded
from probgen import checks
from probgen.cli import main

CHANGE_POINT = '''
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(y):
    T = y.shape[0]
    switchpoint = numpyro.sample("switchpoint", dist.Categorical(logits=jnp.zeros(T)))
    early_rate = numpyro.sample("early_rate", dist.Exponential(1.0))
    late_rate = numpyro.sample("late_rate", dist.Exponential(1.0))
    rate = jnp.where(jnp.arange(T) < switchpoint, early_rate, late_rate)
    with numpyro.plate("years", T):
        numpyro.sample("y", dist.Poisson(rate), obs=y)
'''


def exact_switchpoint(y):
    """p(s | y) in closed form: each segment's rate has a Gamma(1, 1) prior, conjugate to the
    Poisson, so p(segment) = Gamma(1 + sum) / (1 + n)^(1 + sum) / prod(y!), and p(s | y) is
    proportional to p(y[:s]) p(y[s:]) under the uniform prior on s."""
    def log_segment(part):
        total, n = part.sum(), len(part)
        return special.gammaln(1 + total) - (1 + total) * np.log1p(n)  # prod(y!) is common to every s

    log_p = np.array([log_segment(y[:s]) + log_segment(y[s:]) for s in range(len(y))])
    return np.exp(log_p - special.logsumexp(log_p))


def test_hps_set_holds_the_level_with_the_fewest_values():
    values = np.arange(5)
    probabilities = np.array([0.05, 0.4, 0.3, 0.2, 0.05])
    chosen, total = checks.highest_probability_set(values, probabilities)
    assert chosen == [1, 2, 3] and abs(total - 0.9) < 1e-12
    assert checks.value_ranges([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"


def test_a_change_point_is_reported_as_its_posterior_distribution(tmp_path, capsys):
    rng = np.random.default_rng(seeded(11))
    y = np.concatenate([rng.poisson(3.0, 41), rng.poisson(1.0, 59)])
    (tmp_path / "model.py").write_text(textwrap.dedent(CHANGE_POINT))
    (tmp_path / "data.json").write_text(json.dumps({"y": y.tolist()}))
    out = tmp_path / "run"
    status = main(["fit", str(tmp_path / "model.py"), "--data", str(tmp_path / "data.json"), "--out", str(out),
                   "--seed", str(seeded(11)), "--quiet"])
    assert status == 0, capsys.readouterr().err
    idata = az.from_netcdf(out / "posterior.nc")
    draws = idata.discrete_posterior["switchpoint"].values
    assert draws.shape == (4, 1000)  # every draw kept, one per draw of the rates
    exact = exact_switchpoint(y)
    values, estimated = checks.discrete_probabilities(draws)
    full = np.zeros(len(y))
    full[values] = estimated[0]
    # each draw of s comes from p(s | y, rates) under its own draw of the rates: 4,000 draws,
    # correlated through the rates' chains; with an effective size of 1,000 (a quarter) a
    # probability's MC sd is sqrt(p (1 - p) / 1000), 0.015 at p = 0.3; 4 sds plus 0.005
    tolerance = 4 * np.sqrt(exact * (1 - exact) / 1000) + 0.005
    assert np.all(np.abs(full - exact) <= tolerance), np.max(np.abs(full - exact) - tolerance)
    metrics = json.loads((out / "metrics.json").read_text())
    site = metrics["discrete_sites"]["switchpoint"]
    assert site["shown"] == "distribution"
    element = site["distribution"][0]
    # the reported set holds at least 90% of the exact posterior, up to the MC error of a sum
    # of probabilities (at most sqrt(0.9 * 0.1 / 1000) = 0.0095, 3 sds)
    assert exact[element["set"]].sum() >= 0.9 - 0.03
    assert element["set_probability"] >= 0.9
    assert int(np.argmax(exact)) in element["set"]
    report = (out / "report.md").read_text()
    words = (f"switchpoint: the 90% highest-probability set is {{{checks.value_ranges(element['set'])}}} "
             f"({len(element['set'])} values, probability {element['set_probability']:.3f})")
    assert words in report  # the report says what metrics.json holds
    assert (out / "plots" / "discrete.png").stat().st_size > 0
    assert "![discrete](plots/discrete.png)" in report
    # the rates on either side of the change are in the summary, near the simulated 3 and 1
    early, late = (float(idata.posterior[name].mean()) for name in ("early_rate", "late_rate"))
    assert abs(early - 3.0) < 0.8 and abs(late - 1.0) < 0.5  # 4 posterior sds (0.27, 0.13)
