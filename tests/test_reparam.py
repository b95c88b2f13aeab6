"""Non-centring (`--reparam noncentred|auto`, `probgen.infer.reparam`) through the CLI, on
centred eight schools and on a user's varying-intercepts model: the sites it non-centres, their
names kept in the posterior, the posterior against plain NumPyro's on the model written
non-centred by hand, and the automatic rerun that the funnel's own divergences trigger."""

import json
import shlex

import arviz as az
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import MCMC, NUTS

from _seeds import seeded
from probgen.checks import diagnostics
from probgen.cli import main
from probgen.infer import reparam
from test_user_models import CENTRED_EIGHT_SCHOOLS as CENTRED, EIGHT_DATA, fit_cli, write

VARYING = '''
    import numpyro
    import numpyro.distributions as dist


    def model(group, G, y=None):
        """Varying intercepts, centred, with an integer group index."""
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        sigma_group = numpyro.sample("sigma_group", dist.HalfNormal(2.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
        with numpyro.plate("groups", G):
            alpha = numpyro.sample("alpha", dist.Normal(mu, sigma_group))
        with numpyro.plate("rows", group.shape[0]):
            numpyro.sample("y", dist.Normal(alpha[group], sigma), obs=y)
    '''


def varying_data(folder):
    # 12 groups of 3 rows, group sd 0.3 against noise sd 2: the group scale is barely identified,
    # the funnel a centred sampler diverges in (fixed data, not a test seed)
    rng = np.random.default_rng(7)
    group = np.repeat(np.arange(12), 3)
    y = 1.0 + 0.3 * rng.normal(size=12)[group] + 2.0 * rng.normal(size=group.size)
    return write(folder, "varying.json", json.dumps({"group": group.tolist(), "G": 12, "y": y.tolist()}))


def numpyro_noncentred_varying(data: dict, seed: int):
    """Plain NumPyro NUTS on the varying-intercepts model written non-centred by hand."""
    def model(group, G, y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        sigma_group = numpyro.sample("sigma_group", dist.HalfNormal(2.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5.0))
        with numpyro.plate("groups", G):
            z = numpyro.sample("z", dist.Normal(0.0, 1.0))
        numpyro.sample("y", dist.Normal((mu + sigma_group * z)[group], sigma), obs=y)

    mcmc = MCMC(NUTS(model), num_warmup=1000, num_samples=2000, num_chains=2, chain_method="sequential",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), np.asarray(data["group"]), data["G"], np.asarray(data["y"]))
    return {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}


def agree(ours, theirs, name):
    # posteriordb's criterion, |mean difference| <= 0.15 reference sd: with >= 800 effective draws
    # on each side the difference's SE is under sd * sqrt(2 / 800) = 0.05 sd, so 0.15 sd is 3 SE
    a, b = np.asarray(ours).ravel(), np.asarray(theirs).ravel()
    assert abs(a.mean() - b.mean()) <= 0.15 * b.std(), (name, a.mean(), b.mean(), b.std())
    assert 0.85 <= a.std() / b.std() <= 1.15, (name, a.std(), b.std())


def test_hierarchical_sites_and_the_wrapped_model_keeps_its_signature():
    import inspect

    namespace = {}
    exec(CENTRED.replace("\n    ", "\n"), namespace)
    centred = namespace["model"]
    observed = {"J": 8, "sigma": np.asarray(EIGHT_DATA["sigma"], float), "y": np.asarray(EIGHT_DATA["y"], float)}
    assert reparam.hierarchical_sites(centred, observed) == {"theta": ["mu", "tau"]}
    wrapped = reparam.noncentred(centred, {"theta": "Normal"})
    assert inspect.signature(wrapped) == inspect.signature(centred) and wrapped.__name__ == "model"
    trace = numpyro.handlers.trace(numpyro.handlers.seed(wrapped, 0)).get_trace(**observed)
    assert trace["theta_decentered"]["type"] == "sample" and trace["theta"]["type"] == "deterministic"


def test_funnel_sites_name_a_scale_whose_divergences_sit_at_its_small_values():
    rng = np.random.default_rng(seeded(0))
    tau = np.exp(rng.normal(size=(4, 500)))
    mu = rng.normal(size=(4, 500))
    # 20 divergent draws at tau's smallest values, and 20 others at random places
    funnel = np.zeros((4, 500), bool)
    funnel.ravel()[np.argsort(tau.ravel())[:20]] = True
    found = diagnostics.funnel_sites({"tau": tau, "mu": mu}, funnel)
    assert [f["coordinate"] for f in found] == ["tau"] and found[0]["share"] == 1.0
    assert found[0]["below"] <= np.quantile(tau, 0.2)
    scattered = np.zeros((4, 500), bool)
    scattered.ravel()[rng.choice(2000, 40, replace=False)] = True
    # a random scatter: 40 draws at chance share 0.2 reach share 0.5 with probability 1e-5
    assert diagnostics.funnel_sites({"tau": tau, "mu": mu}, scattered) == []


def test_noncentred_eight_schools_through_the_cli(tmp_path, capsys):
    model = write(tmp_path, "centred.py", CENTRED)
    data = write(tmp_path, "eight.json", json.dumps(EIGHT_DATA))
    status, out, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", "--reparam", "noncentred",
                               "--seed", seeded(1), "--quiet")
    assert status in (0, 3), err
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["facts"]["reparam"] == {"requested": "noncentred", "sites": ["theta"]}
    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    assert {"theta", "theta_decentered", "mu", "tau"} <= set(idata.posterior.data_vars)
    # the same posterior as eight schools written non-centred by hand, under plain NumPyro
    def by_hand(J, sigma, y):
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        tau = numpyro.sample("tau", dist.HalfCauchy(5))
        with numpyro.plate("J", J):
            z = numpyro.sample("z", dist.Normal(0, 1))
            numpyro.sample("y", dist.Normal(mu + tau * z, sigma), obs=y)

    mcmc = MCMC(NUTS(by_hand), num_warmup=1000, num_samples=2000, num_chains=2, chain_method="sequential",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seeded(2)), 8, np.asarray(EIGHT_DATA["sigma"], float), np.asarray(EIGHT_DATA["y"], float))
    reference = mcmc.get_samples()
    agree(idata.posterior["mu"].values, reference["mu"], "mu")
    agree(idata.posterior["tau"].values, reference["tau"], "tau")
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Non-centred (--reparam noncentred): theta" in report


def test_auto_reruns_centred_eight_schools_non_centred_and_keeps_both_runs(tmp_path, capsys):
    model = write(tmp_path, "centred.py", CENTRED)
    data = write(tmp_path, "eight.json", json.dumps(EIGHT_DATA))
    # with Stan's windowed adaptation centred eight schools diverges 20-50 times in 4,000 draws,
    # all in tau's funnel (the default low-rank metric leaves 1-3: too few to test the rerun on)
    status, out, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", "--reparam", "auto",
                               "--adapt", "stan", "--seed", seeded(3), "--quiet")
    assert status in (0, 3), err
    record = json.loads((tmp_path / "run" / "config.json").read_text())["facts"]["reparam"]
    assert record["divergences"] > 0 and record["funnel"][0]["site"] == "tau", record
    assert record["rerun"] and record["sites"] == ["theta"]
    assert record["chosen"] == "noncentred" and record["rerun_divergences"] < record["divergences"]
    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    assert "theta_decentered" in idata.posterior and "unchosen_posterior" in idata.groups()
    assert "theta_decentered" not in idata["unchosen_posterior"]
    assert int(idata["unchosen_sample_stats"]["diverging"].sum()) == record["divergences"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"the run as written had {record['divergences']} divergent transition(s)" in report
    assert "Kept: the non-centred run" in report
    # the final sampler state is the kept run's (its positions are the non-centred sites')
    assert (tmp_path / "run" / "sampler_state.nc").is_file() and not (tmp_path / "run" / "first_run").exists()


def test_the_varying_intercepts_model_non_centred_by_request_and_by_diagnosis(tmp_path, capsys):
    model, data = write(tmp_path, "varying.py", VARYING), varying_data(tmp_path)
    # as written: the divergence hint names the funnel and prints the --reparam command
    status, out, _ = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "centred", "--seed", seeded(4),
                             "--quiet")
    verdicts = json.loads((tmp_path / "centred" / "diagnostics.json").read_text())["checks"]
    divergences = next(c for c in verdicts if c["check"] == "divergences")
    if divergences["status"] == "fail" and "concentrate where sigma_group" in divergences["reason"]:
        command = next(line for line in out.splitlines() if line.strip().startswith("probgen fit") and "--reparam noncentred" in line)
        assert shlex.split(command)[:2] == ["probgen", "fit"]
    status, out, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "noncentred", "--reparam",
                               "noncentred", "--seed", seeded(5), "--quiet")
    assert status in (0, 3), err
    config = json.loads((tmp_path / "noncentred" / "config.json").read_text())
    assert config["facts"]["reparam"]["sites"] == ["alpha"]
    idata = az.from_netcdf(tmp_path / "noncentred" / "posterior.nc")
    reference = numpyro_noncentred_varying(json.loads(data.read_text()), seeded(6))
    for name in ("mu", "sigma_group", "sigma"):
        agree(idata.posterior[name].values, reference[name], name)
    # auto: a rerun when the first run's divergences sit in sigma_group's funnel, never otherwise
    status, out, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "auto", "--reparam", "auto",
                               "--seed", seeded(4), "--quiet")
    record = json.loads((tmp_path / "auto" / "config.json").read_text())["facts"]["reparam"]
    if record["divergences"] and any(f["site"] == "sigma_group" for f in record["funnel"]):
        assert record["rerun"] and record["sites"] == ["alpha"] and record["chosen"] == "noncentred", record
    else:
        assert not record["rerun"]


def test_the_divergence_hint_offers_reparam_only_where_there_is_a_site_to_non_centre(tmp_path):
    # a mixture's funnel (a component's scale) has no hierarchical location-scale site under it:
    # printing `--reparam noncentred` there offered a command that changes nothing
    import argparse

    from probgen.cli.fit import can_noncentre, divergence_rerun
    from probgen.infer import driver

    reason = ("12 divergent transitions (per chain: 12, 0, 0, 0): the sampler missed part of the posterior, estimates "
              "may be biased; divergences concentrate where scales[2, 0] < 0.5 (95% of divergent draws in its lowest "
              f"20%): the neck of a funnel; non-centre the sites that depend on it ({diagnostics.FUNNEL_ADVICE})")
    assessment = diagnostics.Assessment("failed", "", (diagnostics.Verdict("divergences", "fail", 12, "0", reason),))
    args = argparse.Namespace(argv=["fit", "gmm", "--data", "galaxies"], setting_reparam=None,
                              setting_target_accept=None, resume=None)
    offered = divergence_rerun(assessment, args, lambda: True)
    assert "--reparam noncentred" in offered and "--target-accept 0.95" in offered
    refused = divergence_rerun(assessment, args, lambda: False)
    assert "--reparam" not in refused.replace("for --reparam to non-centre", "")
    assert "scales[2, 0] < 0.5" in refused and "--target-accept 0.95" in refused

    class Result:  # what `probgen fit` hands the hint: the spec and the bound inputs
        def __init__(self, model, data):
            self.spec = driver.as_spec(model)
            _, self.inputs, _ = driver.prepare(self.spec, data, self.spec.resolve_options({}))

    data = write(tmp_path, "eight.json", json.dumps(EIGHT_DATA))
    assert can_noncentre(Result(str(write(tmp_path, "centred.py", CENTRED)), str(data)))
    mixture = Result("gmm", "galaxies")
    assert not can_noncentre(mixture)
