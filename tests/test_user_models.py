"""A user's own NumPyro model, bound to its data by argument name, through fit, checks and
report: the six failures of issue 12, each run as a user runs it (the CLI's `main`, in process
to save a JAX start per case; `test_cli.py` covers the subprocess entry point), and the Python
API against a conjugate posterior."""

import json
import textwrap

import numpy as np
import pytest

from _seeds import seeded
from probgen.cli import main

QUICK = ["--chains", "2", "--warmup", "200", "--draws", "200", "--quiet"]

EIGHT_SCHOOLS = '''
import numpyro
import numpyro.distributions as dist


def model(J, sigma, y=None):
    """Eight schools, non-centred."""
    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        theta_tilde = numpyro.sample("theta_tilde", dist.Normal(0, 1))
        theta = numpyro.deterministic("theta", mu + tau * theta_tilde)
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)
'''
EIGHT_DATA = {"J": 8, "y": [28, 8, -3, 7, -1, 1, 18, 12], "sigma": [15, 10, 16, 11, 9, 11, 10, 18],
              "note": "posteriordb files carry keys like this"}


CENTRED_EIGHT_SCHOOLS = '''
    import numpyro
    import numpyro.distributions as dist


    def model(J, sigma, y):
        """Eight schools, centred: the funnel that diverges."""
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        tau = numpyro.sample("tau", dist.HalfCauchy(5))
        with numpyro.plate("J", J):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
            numpyro.sample("y", dist.Normal(theta, sigma), obs=y)
    '''


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text) if name.endswith(".py") else text)
    return path


LINE_MODEL = '''
    import numpyro
    import numpyro.distributions as dist


    def model(x, y=None):
        alpha = numpyro.sample("alpha", dist.Normal(0, 10))
        beta = numpyro.sample("beta", dist.Normal(0, 10))
        sigma = numpyro.sample("sigma", dist.HalfNormal(5))
        with numpyro.plate("rows", x.shape[0]):
            numpyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)
    '''


def eight_schools(folder):
    """(model file, JSON data file) of eight schools in `folder`."""
    return write(folder, "eight.py", EIGHT_SCHOOLS), write(folder, "eight.json", json.dumps(EIGHT_DATA))


def line_data(folder, seed: int, rows: int):
    """line.json: x ~ N(0, 1) and y = 1 + 2 x + N(0, 1) noise, `rows` of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    return write(folder, "line.json", json.dumps({"x": x.tolist(), "y": (1 + 2 * x + rng.normal(size=rows)).tolist()}))


def fit_cli(capsys, *argv):
    """(exit status, stdout, stderr) of `probgen fit ARGV`."""
    status = main(["fit", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_eight_schools_json_is_plain_model_ignores_extra_keys_and_skips_small_sample_tests(tmp_path, capsys):
    model, data = eight_schools(tmp_path)
    status, out, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", "--seed", seeded(0), *QUICK)
    assert status == 0, err
    assert "takes no argument named note; ignored" in err and err.count("\n") == 1  # named once
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    # 8 rows: no two-sample p-values and no KL (5.7 nats of plug-in bias before), with the reason
    assert "generated_vs_observed" not in metrics["fit_quality"]
    assert "8 row(s)" in metrics["skipped"]["two_sample"]
    assert "note" in metrics["skipped"]["unused"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["unused"] == ["note"] and config["data"]["keys"]["J"] == []
    summary = (tmp_path / "run" / "summary.csv").read_text()
    assert "theta[7]" in summary and "tau" in summary  # deterministic sites are summarised
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Checks that do not apply" in report


def test_a_csv_lacking_an_argument_names_it_and_set_supplies_it(tmp_path, capsys):
    model = write(tmp_path, "eight.py", EIGHT_SCHOOLS)
    rows = "y,sigma\n" + "\n".join(f"{y},{s}" for y, s in zip(EIGHT_DATA["y"], EIGHT_DATA["sigma"])) + "\n"
    data = write(tmp_path, "eight.csv", rows)
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 2 and err.count("\n") == 1
    assert "needs argument 'J'" in err and "it holds: sigma, y" in err and "--set" in err
    assert not (tmp_path / "run").exists()
    status, _, err = fit_cli(capsys, model, "--data", data, "--set", "J=8", "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    status, _, err = fit_cli(capsys, model, "--data", data, "--set", "J", "--out", tmp_path / "r2", *QUICK)
    assert status == 2 and "--set 'J'" in err


def test_improper_flat_prior_fits_and_the_prior_predictive_is_skipped_with_the_reason(tmp_path, capsys):
    model = write(tmp_path, "flat.py", '''
        import numpyro
        import numpyro.distributions as dist
        from numpyro.distributions import constraints


        def model(x, y):
            alpha = numpyro.sample("alpha", dist.ImproperUniform(constraints.real, (), ()))
            beta = numpyro.sample("beta", dist.ImproperUniform(constraints.real, (), ()))
            sigma = numpyro.sample("sigma", dist.HalfNormal(10))
            with numpyro.plate("rows", x.shape[0]):
                numpyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)
        ''')
    data = line_data(tmp_path, seeded(0), 60)
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "improper" in metrics["skipped"]["prior_predictive"] and "alpha" in metrics["skipped"]["prior_predictive"]
    assert "prior_predictive_check" not in metrics.get("fit_quality", {})
    assert "elpd_loo" in metrics["predictive"]["loo"]  # the rest of the report stands


FACTOR_MODELS = {
    # a Jacobian-style factor beside an observed site: LOO on the observed site only
    "jacobian": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def model(y):
            log_sigma = numpyro.sample("log_sigma", dist.Normal(0, 2))
            numpyro.factor("jac", 0.0 * log_sigma)
            mu = numpyro.sample("mu", dist.Normal(0, 10))
            numpyro.sample("y", dist.Normal(mu, jnp.exp(log_sigma)), obs=y)
        ''',
    # the whole likelihood in a factor (a hand-written forward algorithm, say): no LOO, a reason
    "all_factor": '''
        import numpyro
        import numpyro.distributions as dist


        def model(y):
            mu = numpyro.sample("mu", dist.Normal(0, 10))
            numpyro.factor("likelihood", dist.Normal(mu, 1).log_prob(y).sum())
        ''',
}


@pytest.mark.parametrize("kind", sorted(FACTOR_MODELS))
def test_factor_terms_are_not_observations(tmp_path, capsys, kind):
    model = write(tmp_path, f"{kind}.py", FACTOR_MODELS[kind])
    y = np.random.default_rng(seeded(1)).normal(1.0, 1.0, size=40)
    data = write(tmp_path, "y.json", json.dumps({"y": y.tolist()}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    if kind == "jacobian":
        assert metrics["predictive"]["num_points"] == 40  # y's 40 points, no "jac" term
        assert "jac" in metrics["skipped"]["factors"]
    else:
        assert metrics["predictive"]["available"] is False
        assert "factor terms (likelihood)" in metrics["predictive"]["reason"]
    assert (tmp_path / "run" / "report.html").is_file()


def test_single_sequence_hmm_skips_row_tests_instead_of_crashing(tmp_path, capsys):
    model = write(tmp_path, "hmm1.py", '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist

        from probgen.models.hmm import HiddenMarkov


        def model(y):
            T = y.shape[0]
            init = numpyro.sample("init", dist.Dirichlet(jnp.ones(2)))
            transition = numpyro.sample("transition", dist.Dirichlet(jnp.ones((2, 2)) + 4 * jnp.eye(2)).to_event(1))
            locs = numpyro.sample("locs", dist.TransformedDistribution(
                dist.Normal(0, 5).expand([2]).to_event(1), dist.transforms.OrderedTransform()))
            scale = numpyro.sample("scale", dist.HalfNormal(2))
            params = {"means": locs[:, None], "scale_tril": jnp.broadcast_to(scale, (2, 1, 1))}
            numpyro.sample("x", HiddenMarkov(init, transition, "gaussian", params, jnp.ones((1, T), bool)),
                           obs=y.reshape(1, T, 1))
        ''')
    rng = np.random.default_rng(seeded(2))
    states = np.cumsum(rng.random(60) < 0.1) % 2
    data = write(tmp_path, "seq.json", json.dumps({"y": (np.where(states, 2.0, -1.0) + 0.5 * rng.normal(size=60)).tolist()}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "1 row(s)" in metrics["skipped"]["two_sample"]
    assert metrics["fit_quality"]["predictive_check"]  # the statistics of the sequence are still checked


def test_an_exception_in_the_users_model_names_file_and_line(tmp_path, capsys):
    model = write(tmp_path, "broken.py", '''
        import numpyro
        import numpyro.distributions as dist


        def model(y):
            mu = numpyro.sample("mu", dist.Normal(0, 5))
            numpyro.sample("y", dist.Normal(mu + undefined_name, 1), obs=y)
        ''')
    data = write(tmp_path, "y.json", json.dumps({"y": [1.0, 2.0]}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 2 and err.count("\n") == 1
    assert "model file 'broken.py', line 8, in model: NameError" in err
    assert not (tmp_path / "run").exists()


def test_observations_computed_in_the_model_and_several_observed_sites(tmp_path, capsys):
    """obs=y[K:] (an AR model) draws y-shaped predictions without y=None; a second observed
    site gets its own predictive and log-likelihood, and LOO scores all observations."""
    model = write(tmp_path, "ar.py", '''
        import numpyro
        import numpyro.distributions as dist


        def model(y, z, K=1):
            alpha = numpyro.sample("alpha", dist.Normal(0, 10))
            beta = numpyro.sample("beta", dist.Normal(0, 1))
            sigma = numpyro.sample("sigma", dist.HalfNormal(5))
            numpyro.sample("y_next", dist.Normal(alpha + beta * y[:-K], sigma), obs=y[K:])
            rate = numpyro.sample("rate", dist.Gamma(2, 1))
            with numpyro.plate("counts", z.shape[0]):
                numpyro.sample("z", dist.Poisson(rate), obs=z)
        ''')
    rng = np.random.default_rng(seeded(3))
    y = np.zeros(80)
    for t in range(1, 80):
        y[t] = 0.5 + 0.6 * y[t - 1] + rng.normal()
    data = write(tmp_path, "ar.json", json.dumps({"y": y.tolist(), "z": rng.poisson(3.0, size=30).tolist()}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    import arviz as az

    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    assert idata.posterior_predictive["y_next"].shape == (2, 200, 79)
    assert idata.posterior_predictive["z"].shape == (2, 200, 30)
    assert set(idata.log_likelihood.data_vars) == {"y_next", "z"}
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["predictive"]["num_points"] == 79 + 30
    # the AR coefficient is recovered: 0.6 within the posterior's 4 sd
    beta = idata.posterior["beta"].values
    assert abs(beta.mean() - 0.6) < 4 * beta.std() + 0.05


def test_an_observation_computed_from_the_parameters_skips_the_predictive_checks(tmp_path, capsys):
    """posteriordb's ARMA(1, 1) observes its one-step errors, obs = f(y, mu, phi, theta): the
    'observed' value changes with the parameters, so there are no fixed data for the predictive
    checks (they compared draws with the errors at the trace's initial values, which grow
    without bound when |theta| > 1, and the two-sample step failed on their infinities). LOO
    stays: the errors' density is y's (a unit-triangular Jacobian)."""
    import jax.numpy as jnp

    from probgen.infer.results import structure_notes
    from probgen.tracing import model_structure

    source = '''
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def model(T, y):
            mu = numpyro.sample("mu", dist.Normal(0, 10))
            theta = numpyro.sample("theta", dist.Normal(0, 2))
            sigma = numpyro.sample("sigma", dist.HalfNormal(2.5))

            def step(previous, t):
                error = y[t] - (mu + theta * previous)
                return error, error

            _, rest = jax.lax.scan(step, y[0] - mu, jnp.arange(1, T))
            numpyro.sample("err", dist.Normal(0, sigma), obs=jnp.concatenate([(y[0] - mu)[None], rest]))
        '''
    namespace = {}
    exec(textwrap.dedent(source), namespace)
    rng = np.random.default_rng(seeded(9))
    e = rng.normal(size=61)
    y = 1.0 + e[1:] + 0.4 * e[:-1]  # an MA(1) series around 1
    structure = model_structure(lambda: namespace["model"](60, jnp.asarray(y)), {})
    assert structure.computed == ("err",) and "predictive" in structure_notes(structure)
    plain = model_structure(lambda: numpyro_plain(y), {})
    assert plain.computed == () and "predictive" not in structure_notes(plain)

    model = write(tmp_path, "ma.py", source)
    data = write(tmp_path, "ma.json", json.dumps({"T": 60, "y": y.tolist()}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status in (0, 3) and "step failed" not in err, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "computed from the parameters" in metrics["skipped"]["predictive"]
    assert "predictive_check" not in metrics.get("fit_quality", {}) and "loo" in metrics["predictive"]
    assert "predictive checks: the observed value of 'err'" in (tmp_path / "run" / "report.md").read_text()


def numpyro_plain(y):
    import numpyro
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0, 10))
    numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def test_a_failure_after_sampling_keeps_the_draws_and_names_the_step(tmp_path, capsys, monkeypatch):
    from probgen import checks

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure in a check")

    model, data = eight_schools(tmp_path)
    monkeypatch.setattr(checks, "predictive_check", broken)
    status, out, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 1
    assert "step failed: posterior predictive check: RuntimeError: simulated failure" in err
    assert "posterior.nc" in err
    import arviz as az

    assert az.from_netcdf(tmp_path / "run" / "posterior.nc").posterior["tau"].shape == (2, 200)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Failed steps" in report and "simulated failure" in report
    failed = json.loads((tmp_path / "run" / "metrics.json").read_text())["failed_steps"]
    assert [f["step"] for f in failed] == ["posterior predictive check", "prior predictive check"]


def test_a_failure_building_the_results_still_saves_every_draw(tmp_path, capsys, monkeypatch):
    import probgen.infer.results as results  # the one InferenceData builder every method's results go through

    def broken(*args, **kwargs):
        raise TypeError("simulated failure while building the results")

    model, data = eight_schools(tmp_path)
    monkeypatch.setattr(results, "build_inference_data", broken)
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 1 and "simulated failure while building the results" in err
    import arviz as az

    posterior = az.from_netcdf(tmp_path / "run" / "posterior.nc").posterior
    assert posterior["theta_tilde"].shape == (2, 200, 8)


def test_divergences_print_the_command_that_reruns_with_a_higher_target_accept(tmp_path, capsys):
    model = write(tmp_path, "centred.py", CENTRED_EIGHT_SCHOOLS)
    data = write(tmp_path, "eight.json", json.dumps(EIGHT_DATA))
    status, out, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", "--target-accept", "0.6",
                               "--seed", seeded(0), "--chains", "2", "--warmup", "300", "--draws", "600", "--quiet")
    assert status in (0, 3), err  # 3 when the divergences fail the verdict (exit statuses: README)
    verdicts = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    divergences = next(c for c in verdicts["checks"] if c["check"] == "divergences")
    if divergences["status"] == "fail":  # the centred funnel at target 0.6 diverges under almost every seed
        # the command with smaller steps (a funnel also gets a --reparam noncentred command first)
        smaller = [line for line in out.splitlines() if line.strip().startswith("probgen fit") and "0.95" in line]
        assert len(smaller) == 1 and "--target-accept 0.6" not in smaller[0] and "--overwrite" in smaller[0], out
        # the hint is a command that runs as printed (issue 30): the same fit at the higher target
        import shlex

        command = shlex.split(next(line for line in out.splitlines()
                                   if line.strip().startswith("probgen fit") and "--target-accept 0.95" in line))
        assert command[:2] == ["probgen", "fit"], command
        status = main(command[1:])
        capsys.readouterr()
        assert status in (0, 3)
        assert json.loads((tmp_path / "run" / "config.json").read_text())["settings"]["target_accept"] == 0.95


def test_the_python_api_takes_a_plain_function_and_a_dict_and_matches_the_conjugate_posterior():
    """y_i ~ N(mu, 2), mu ~ N(0, 10): posterior N(m, s) in closed form."""
    import numpyro
    import numpyro.distributions as dist

    import probgen

    def model(N, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("rows", N):
            numpyro.sample("y", dist.Normal(mu, 2.0), obs=y)

    y = np.random.default_rng(seeded(5)).normal(3.0, 2.0, size=25)
    result = probgen.fit(model, {"N": 25, "y": y}, seed=seeded(5), progress=False, chains=2, warmup=500, draws=1000)
    precision = 1 / 10.0**2 + 25 / 2.0**2
    mean, sd = (y.sum() / 2.0**2) / precision, precision**-0.5
    draws = result.idata.posterior["mu"].values.ravel()
    import arviz as az

    ess = float(az.ess(result.idata, var_names=["mu"])["mu"])
    # the posterior mean is off by N(0, sd / sqrt(ESS)); 4 such errors bound a false alarm at 6e-5
    assert abs(draws.mean() - mean) < 4 * sd / np.sqrt(ess)
    # the sd's relative error is about 1 / sqrt(2 ESS)
    assert abs(draws.std() / sd - 1) < 4 / np.sqrt(2 * ess)
    assert result.idata.posterior_predictive["y"].shape == (2, 1000, 25)


def test_predict_gives_the_posterior_predictive_at_new_inputs_for_any_model(tmp_path, capsys):
    model = write(tmp_path, "line.py", LINE_MODEL)
    data = line_data(tmp_path, seeded(6), 50)
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    new = write(tmp_path, "new.json", json.dumps({"x": [0.0, 2.0]}))
    assert main(["predict", str(tmp_path / "run"), "--data", str(new), "--out", str(tmp_path / "pred.csv")]) == 0
    import arviz as az
    import pandas as pd

    table = pd.read_csv(tmp_path / "pred.csv")
    posterior = az.from_netcdf(tmp_path / "run" / "posterior.nc").posterior
    alpha, beta, sigma = (posterior[v].values.ravel() for v in ("alpha", "beta", "sigma"))
    for row, at in zip(table.itertuples(), (0.0, 2.0)):
        expected = alpha + beta * at
        spread = np.sqrt(expected.var() + (sigma**2).mean())  # predictive sd: parameters plus noise
        # the mean of 400 predictive draws is off by spread / 20; 4 such errors bound a false alarm
        assert abs(row.mean - expected.mean()) < 4 * spread / np.sqrt(len(alpha))
        assert abs(row.sd / spread - 1) < 4 / np.sqrt(2 * len(alpha))
        assert row.q5 < row.q50 < row.q95
    assert (tmp_path / "pred.nc").is_file()
    # new data that give the observed y as well leave nothing to draw: one line, exit 2
    given = write(tmp_path, "given.json", json.dumps({"x": [0.0, 2.0], "y": [1.0, 2.0]}))
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), "--data", str(given), "--out", str(tmp_path / "p2.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "give every observed site" in err, err
    assert not (tmp_path / "p2.csv").exists()


MIXTURE = '''
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist


    def model(y):
        weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(2)))
        locs = numpyro.sample("locs", dist.TransformedDistribution(dist.Normal(0, 10).expand([2]).to_event(1),
                                                                   dist.transforms.OrderedTransform()))
        # an informative scale: with HalfNormal(5) the likelihood has a second mode, both
        # components merged into one broad one (scale 2.4), where one of two chains from
        # uniform(-2, 2) starts stayed under some seeds with every warm-up adaptation (NumPyro's
        # own included), which this test of enumeration is not about
        scale = numpyro.sample("scale", dist.LogNormal(jnp.log(0.7), 0.1))
        with numpyro.plate("points", y.shape[0]):
            z = numpyro.sample("z", dist.Categorical(weights))
            numpyro.sample("y", dist.Normal(locs[z], scale), obs=y)
    '''


def test_a_categorical_assignment_is_enumerated_and_recovered_afterwards(tmp_path, capsys):
    """No enumeration markup in the model: NUTS sums z out, infer_discrete draws it back. The
    means are -2 and 3 with sd 0.7: a point lands past the midpoint, where its assignment could
    go wrong, with probability P(|N(0, 1)| > 2.5 / 0.7 = 3.6) = 3e-4, so 97 of 100 correct
    leaves a wide margin; the locations are recovered within 4 posterior sds."""
    model = write(tmp_path, "mixture.py", MIXTURE)
    rng = np.random.default_rng(seeded(7))
    truth = rng.random(100) < 0.3
    y = np.where(truth, 3.0, -2.0) + 0.7 * rng.normal(size=100)
    data = write(tmp_path, "mix.json", json.dumps({"y": y.tolist()}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    assert "FutureWarning" not in err
    import arviz as az

    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    locs = idata.posterior["locs"].values.reshape(-1, 2)
    assert np.all(np.abs(locs.mean(0) - [-2.0, 3.0]) < 4 * locs.std(0) + 0.1)
    z = idata.discrete_posterior["z"].values.reshape(-1, 100)
    assert np.mean((z.mean(0) > 0.5) == truth) >= 0.97  # overlapping tails may fool a point or two
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["discrete_sites"]["z"]["elements"] == 100
    assert metrics["discrete_sites"]["z"]["shown"] == "assignments"  # a heat-map of 100 rows' probabilities
    assert (tmp_path / "run" / "plots" / "discrete.png").stat().st_size > 0
    # LOO's pointwise log p(y_i | theta), z summed out by enumeration, is the mixture density
    from scipy import stats

    weights = idata.posterior["weights"].values.reshape(-1, 1, 2)
    scale = idata.posterior["scale"].values.reshape(-1, 1, 1)
    exact = np.log((weights * stats.norm.pdf(y[None, :, None], locs[:, None, :], scale)).sum(-1))
    np.testing.assert_allclose(idata.log_likelihood["y"].values.reshape(-1, 100), exact, rtol=1e-4, atol=1e-4)
    assert "elpd_loo" in metrics["predictive"]["loo"]
    assert "## Discrete sites" in (tmp_path / "run" / "report.md").read_text()


def test_a_discrete_site_that_cannot_be_enumerated_is_named(tmp_path, capsys):
    model = write(tmp_path, "count.py", '''
        import numpyro
        import numpyro.distributions as dist


        def model(y):
            n = numpyro.sample("n", dist.Poisson(5.0))
            numpyro.sample("y", dist.Normal(n, 1.0), obs=y)
        ''')
    data = write(tmp_path, "y.json", json.dumps({"y": [4.2, 5.1]}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 2 and "site n (Poisson) cannot be enumerated" in err and err.count("\n") == 1
    mixture = write(tmp_path, "mixture.py", MIXTURE)
    status, _, err = fit_cli(capsys, mixture, "--data", data, "--method", "svi", "--out", tmp_path / "run", "--quiet")
    assert status == 2 and "site z is summed out by enumeration" in err


def test_the_installed_command_binds_json_and_names_a_missing_argument(tmp_path):
    """The real entry point, as a user runs it (a subprocess): one line, exit 2, no folder."""
    from conftest import run_cli

    model = write(tmp_path, "eight.py", EIGHT_SCHOOLS)
    data = write(tmp_path, "eight.json", json.dumps({"y": EIGHT_DATA["y"], "sigma": EIGHT_DATA["sigma"]}))
    result = run_cli("fit", model, "--data", data, "--out", tmp_path / "run", "--quiet")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "needs argument 'J'" in result.stderr and "it holds: sigma, y" in result.stderr
    assert not (tmp_path / "run").exists()


def test_observed_sites_of_every_shape_go_through_the_checks(tmp_path, capsys):
    """A scalar, an (N, D) matrix and an (S, T, D) array observed in one model: the predictive
    check covers each (a scalar is one row), the two-sample tests take the site with the most
    rows, and nothing fails."""
    model = write(tmp_path, "shapes.py", '''
        import numpyro
        import numpyro.distributions as dist


        def model(s, m, cube):
            mu = numpyro.sample("mu", dist.Normal(0, 10))
            numpyro.sample("s", dist.Normal(mu, 1), obs=s)
            with numpyro.plate("columns", m.shape[1], dim=-1):
                with numpyro.plate("rows", m.shape[0], dim=-2):
                    numpyro.sample("m", dist.Normal(mu, 1), obs=m)
            numpyro.sample("cube", dist.Normal(mu, 1).expand(list(cube.shape)).to_event(3), obs=cube)
        ''')
    rng = np.random.default_rng(seeded(8))
    data = write(tmp_path, "shapes.json", json.dumps({"s": 1.5, "m": rng.normal(1, 1, (30, 3)).tolist(),
                                                      "cube": rng.normal(1, 1, (2, 10, 3)).tolist()}))
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "failed_steps" not in metrics
    checked = {row["variable"] for row in metrics["fit_quality"]["predictive_check"]}
    assert checked == {"s", "m", "cube"}
    assert metrics["fit_quality"]["generated_vs_observed"]["variable"] == "m"
    # the cube is one event (to_event(3)): one log-likelihood, one point of LOO
    assert metrics["predictive"]["num_points"] == 1 + 90 + 1


def test_sbc_of_a_model_bound_by_name(tmp_path, capsys):
    """SBC draws each observed site from the prior predictive and refits conditioned on it,
    whatever the model's arguments are called (here `y` feeds the site `obs`). A correct NUTS
    gives uniform ranks: at --alpha 0.001 (Holm over 2 parameters) a false alarm has
    probability 0.001 under any seed."""
    import pandas as pd

    model = write(tmp_path, "normal.py", '''
        import numpyro
        import numpyro.distributions as dist


        def model(N, y=None):
            mu = numpyro.sample("mu", dist.Normal(0, 1))
            sigma = numpyro.sample("sigma", dist.HalfNormal(1))
            with numpyro.plate("rows", N):
                numpyro.sample("obs", dist.Normal(mu, sigma), obs=y)
        ''')
    data = write(tmp_path, "design.json", json.dumps({"N": 20, "y": [0.0] * 20}))
    status = main(["sbc", str(model), "--data", str(data), "--simulations", "100", "--num-draws", "49", "--chains", "1",
                   "--warmup", "200", "--draws", "400", "--alpha", "0.001", "--seed", str(seeded(9)), "--quiet",
                   "--out", str(tmp_path / "sbc")])
    out = capsys.readouterr().out
    assert status == 0 and out.startswith("CALIBRATED"), out
    ranks = pd.read_csv(tmp_path / "sbc" / "ranks.csv")
    assert len(ranks) == 100 and ranks["mu"].between(0, 49).all() and ranks["sigma"].between(0, 49).all()


def test_the_readme_tour_model_and_json_fit_as_shown(tmp_path, capsys):
    """The README opens with eight schools as a plain function and a JSON file: they fit."""
    import re

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    source = re.search(r"```python\n(# eight_schools.py.*?)```", readme, re.S).group(1)
    data = re.search(r"```json\n(.*?)```", readme, re.S).group(1)
    model = write(tmp_path, "eight_schools.py", source)
    data_file = write(tmp_path, "eight_schools.json", data)
    status, out, err = fit_cli(capsys, model, "--data", data_file, "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    summary = (tmp_path / "run" / "summary.csv").read_text()
    assert "theta[7]" in summary


def test_holdout_on_a_table_bound_by_name_scores_the_held_out_rows_exactly(tmp_path, capsys):
    """--holdout splits a CSV's rows (as for table models, same seed); each held-out row's
    log-likelihood under each draw is log N(y; alpha + beta x, sigma), exactly."""
    import arviz as az
    import pandas as pd
    from scipy import stats

    from probgen.data import Dataset

    model = write(tmp_path, "line.py", LINE_MODEL)
    rng = np.random.default_rng(seeded(10))
    x = rng.normal(size=80)
    frame = pd.DataFrame({"x": x, "y": 1 + 2 * x + rng.normal(size=80)})
    frame.to_csv(tmp_path / "line.csv", index=False)
    status, _, err = fit_cli(capsys, model, "--data", tmp_path / "line.csv", "--holdout", "0.25", "--seed", seeded(10),
                             "--out", tmp_path / "run", *QUICK)
    assert status == 0, err
    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    _, held = Dataset(frame, "line.csv", "").split(0.25, seeded(10))
    np.testing.assert_allclose(idata.held_out_data["y"].values, held.frame["y"], rtol=1e-6)
    draws = {v: idata.posterior[v].values.reshape(-1, 1) for v in ("alpha", "beta", "sigma")}
    expected = stats.norm.logpdf(held.frame["y"].to_numpy()[None], draws["alpha"] + draws["beta"] * held.frame["x"].to_numpy()[None],
                                 draws["sigma"])
    np.testing.assert_allclose(idata.held_out_log_likelihood["y"].values.reshape(-1, 20), expected, rtol=1e-4, atol=1e-4)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["held_out"]["num_points"] == 20
    # the report's data tests compare generated rows with the held-out rows, not the training ones
    compared = metrics["fit_quality"]["generated_vs_observed"]
    assert compared["compared_with"] == "held_out_data" and compared["rows"] == 20, compared
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "on 20 held-out rows" in markdown and "KL(held-out || generated)" in markdown
    # the held-out groups survive the NetCDF round trip: the report is rebuilt from the folder
    (tmp_path / "run" / "report.md").unlink()
    from probgen import cli

    assert cli.main(["report", str(tmp_path / "run")]) == 0
    assert "on 20 held-out rows" in (tmp_path / "run" / "report.md").read_text()


@pytest.mark.parametrize("content, expected", [
    ('{"J": 8, "y": [1, 2', "is not valid JSON"),
    ('[1, 2, 3]', "must hold a JSON object of named values"),
    ('{"J": 8, "y": [[1, 2], [3]], "sigma": [1, 2]}', "'y' in data file"),
    ('{"J": 8, "y": ["a", "b"], "sigma": [1, 2]}', "'y' in data file"),
    # NaN is a missing value: a model that does not mask it gets one line and obs_mask's two-line example
    ('{"J": 8, "y": [1, NaN, 3, 4, 5, 6, 7, 8], "sigma": [1, 2, 3, 4, 5, 6, 7, 8]}',
     "has 1 missing value(s) (first at index [1])"),
])
def test_bad_json_data_is_one_line_naming_the_problem(tmp_path, capsys, content, expected):
    model = write(tmp_path, "eight.py", EIGHT_SCHOOLS)
    data = write(tmp_path, "bad.json", content)
    status, _, err = fit_cli(capsys, model, "--data", data, "--out", tmp_path / "run", *QUICK)
    assert status == 2 and err.count("\n") == (3 if "missing value" in expected else 1) and expected in err, err
    assert not (tmp_path / "run").exists()
