"""Missing values the NumPyro way (issue 32, point 1): JSON null and empty CSV cells bind as NaN,
a model that masks them (`obs_mask`) fits with its imputations as a posterior, one that does not
is refused with one message naming the argument, and the checks skip the missing entries."""

import json
import textwrap

import arviz as az
import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.infer import MCMC, NUTS

from _seeds import seeded
from probgen.cli import main

MASKED = '''
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist


def model(x, y):
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    sigma = numpyro.sample("sigma", dist.HalfNormal(2))
    mask = ~jnp.isnan(y)
    with numpyro.plate("rows", x.shape[0]):
        numpyro.sample("y", dist.Normal(a + b * x, sigma), obs=y, obs_mask=mask)
'''
UNMASKED = MASKED.replace(", obs_mask=mask", "")
MISSING = [3, 7, 20, 33]


def regression_data(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=40)
    y = 1.0 + 2.0 * x + 0.5 * rng.normal(size=40)
    return x, y


def complete_case_reference(x, y, seed):
    """Plain NumPyro NUTS on the rows whose y is present: with y missing at random given x, the
    parameters' posterior is exactly the complete-case one."""
    def model(x, y):
        a = numpyro.sample("a", dist.Normal(0, 5))
        b = numpyro.sample("b", dist.Normal(0, 5))
        sigma = numpyro.sample("sigma", dist.HalfNormal(2))
        with numpyro.plate("rows", x.shape[0]):
            numpyro.sample("y", dist.Normal(a + b * x, sigma), obs=y)

    keep = np.isfinite(y)
    mcmc = MCMC(NUTS(model), num_warmup=1000, num_samples=1000, num_chains=4, chain_method="sequential",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), x[keep], y[keep])
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def agree(ours, theirs, name):
    # posteriordb's criterion, |mean difference| <= 0.15 reference sd: with >= 800 effective draws
    # on each side the difference's SE is under sd * sqrt(2 / 800) = 0.05 sd, so 0.15 sd is 3 SE
    a, b = np.asarray(ours).ravel(), np.asarray(theirs).ravel()
    assert abs(a.mean() - b.mean()) <= 0.15 * b.std(), (name, a.mean(), b.mean(), b.std())
    assert 0.85 <= a.std() / b.std() <= 1.15, (name, a.std(), b.std())


def fit(capsys, *argv):
    status = main(["fit", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_json_null_is_imputed_by_a_masking_model_and_matches_the_complete_case_posterior(tmp_path, capsys):
    x, y = regression_data(seeded(20))
    values = [None if i in MISSING else float(v) for i, v in enumerate(y)]
    data = write(tmp_path, "data.json", json.dumps({"x": x.tolist(), "y": values}))
    model = write(tmp_path, "model.py", MASKED)
    status, out, err = fit(capsys, model, "--data", data, "--out", tmp_path / "run", "--seed", seeded(21), "--quiet")
    assert status in (0, 3) and "step failed" not in err, err
    assert "TRUSTED" in out or "SUSPECT" in out, out
    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    y_missing = np.array(y, dtype=float)
    y_missing[MISSING] = np.nan
    reference = complete_case_reference(x, y_missing, seeded(22))
    for name in ("a", "b", "sigma"):
        agree(idata.posterior[name].values, reference[name], name)
    # the posterior keeps the imputations alone (the other entries of y_unobserved are not parameters)
    imputed = idata.posterior["y_unobserved"]
    assert imputed.dims == ("chain", "draw", "y_missing") and list(imputed["y_missing"].values) == MISSING
    assert "y" not in idata.posterior  # obs_mask's deterministic: data (redrawn by the predictive) and imputations
    # each imputation is the posterior predictive at its x: a + b x + sigma * noise
    rng = np.random.default_rng(seeded(23))
    for j, i in enumerate(MISSING):
        predictive = reference["a"] + reference["b"] * x[i] + reference["sigma"] * rng.normal(size=len(reference["a"]))
        agree(imputed.values[..., j], predictive, f"y[{i}]")
    # LOO and the predictive checks skip the missing entries; the run and the report say so
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["predictive"]["num_points"] == 40 - len(MISSING)
    assert "predictive_check" in metrics["fit_quality"] and "generated_vs_observed" in metrics["fit_quality"]
    # by hand: each present row's log N(y_i | a + b x_i, sigma) under each draw, LOO over those rows
    # alone, and the predictive check's observed mean over those rows alone
    from scipy import stats

    present = np.setdiff1d(np.arange(40), MISSING)
    a, b, sigma = (idata.posterior[name].values[..., None] for name in ("a", "b", "sigma"))
    by_hand = stats.norm.logpdf(y[present], a + b * x[present], sigma)
    stored = idata.log_likelihood["y_observed"].values
    np.testing.assert_allclose(stored[..., present], by_hand, rtol=1e-4, atol=1e-4)
    hand_loo = az.loo(az.from_dict(posterior={"a": idata.posterior["a"].values},
                                   log_likelihood={"y": by_hand}))
    assert abs(metrics["predictive"]["loo"]["elpd_loo"] - hand_loo.elpd_loo) < 1e-2
    mean_row = next(row for row in metrics["fit_quality"]["predictive_check"] if row["statistic"] == "mean")
    assert abs(mean_row["observed"] - y[present].mean()) < 1e-5
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["missing"] == {"y": {"count": 4, "first": [3]}}
    report = (tmp_path / "run" / "report.md").read_text()
    assert ("'y' has 4 missing value(s) (first at index [3]). 'y' observes the rest through obs_mask and its 4 "
            "missing entries are parameters (their posterior is y_unobserved, over y_missing); the predictive checks "
            "and LOO skip its 4 row(s) with them") in report


# NumPyro's own imputation example, written as its tutorial does: the missing covariates are a
# latent site (density masked off, `.mask(False)`), set into x, and x is observed
IMPUTING = '''
import numpy as np
import numpyro
import numpyro.distributions as dist


def model(x, y):
    missing = np.isnan(np.asarray(x))
    mu_x = numpyro.sample("mu_x", dist.Normal(0, 5))
    x_impute = numpyro.sample("x_impute", dist.Normal(mu_x, 1).expand([int(missing.sum())]).mask(False))
    x = x.at[np.flatnonzero(missing)].set(x_impute)
    numpyro.sample("x_obs", dist.Normal(mu_x, 1), obs=x)
    a = numpyro.sample("a", dist.Normal(0, 5))
    b = numpyro.sample("b", dist.Normal(0, 5))
    with numpyro.plate("rows", x.shape[0]):
        numpyro.sample("y", dist.Normal(a + b * x, 0.5), obs=y)
'''


def test_a_model_that_imputes_its_own_missing_covariates_fits_and_the_checks_skip_them(tmp_path, capsys):
    import importlib.util

    rng = np.random.default_rng(seeded(25))
    x = rng.normal(1.0, 1.0, size=40)
    y = 1.0 + 2.0 * x + 0.5 * rng.normal(size=40)
    x_missing = x.copy()
    x_missing[MISSING] = np.nan
    data = write(tmp_path, "data.json", json.dumps({"x": [None if np.isnan(v) else v for v in x_missing.tolist()],
                                                    "y": y.tolist()}))
    model = write(tmp_path, "model.py", IMPUTING)
    status, _, err = fit(capsys, model, "--data", data, "--out", tmp_path / "run", "--seed", seeded(26), "--quiet")
    assert status in (0, 3) and "step failed" not in err, err
    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    # the answer: plain NumPyro's NUTS on the same model file and data
    spec = importlib.util.spec_from_file_location("imputing", model)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mcmc = MCMC(NUTS(module.model), num_warmup=1000, num_samples=1000, num_chains=4, chain_method="sequential",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seeded(27)), jax.numpy.asarray(x_missing), jax.numpy.asarray(y))
    reference = {k: np.asarray(v) for k, v in mcmc.get_samples().items()}
    for name in ("mu_x", "a", "b"):
        agree(idata.posterior[name].values, reference[name], name)
    for j in range(len(MISSING)):
        agree(idata.posterior["x_impute"].values[..., j], reference["x_impute"][:, j], f"x_impute[{j}]")
    # x_obs is data except where the model filled it: those entries are NaN in observed_data and
    # their rows are skipped (not a wholly computed observation, so the predictive checks still run)
    observed = idata.observed_data["x_obs"].values
    assert list(np.flatnonzero(np.isnan(observed))) == MISSING
    np.testing.assert_allclose(np.delete(observed, MISSING), np.delete(x, MISSING), rtol=1e-6)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["predictive"]["num_points"] == 2 * 40 - len(MISSING)
    assert "predictive_check" in metrics["fit_quality"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert ("'x' has 4 missing value(s) (first at index [3]). The model imputes 4 entries of 'x_obs' itself, from "
            "the latent site 'x_impute' (their posterior is in the summary); the predictive checks and LOO skip its "
            "4 row(s) with them") in report


def test_empty_csv_cells_reach_the_model_as_nan(tmp_path, capsys):
    x, y = regression_data(seeded(24))
    frame = pd.DataFrame({"x": x, "y": y})
    frame.loc[MISSING, "y"] = np.nan
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)  # NaN is written as an empty cell
    assert ",\n" in data.read_text()
    model = write(tmp_path, "model.py", MASKED)
    status, _, err = fit(capsys, model, "--data", data, "--out", tmp_path / "run", "--quiet",
                         "--chains", "2", "--warmup", "300", "--draws", "300")
    assert status in (0, 3) and "step failed" not in err, err
    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    assert list(idata.posterior["y_unobserved"]["y_missing"].values) == MISSING


def test_a_model_that_does_not_mask_missing_values_is_refused_in_one_message(tmp_path, capsys):
    x, y = regression_data(seeded(25))
    values = [None if i in MISSING else float(v) for i, v in enumerate(y)]
    data = write(tmp_path, "data.json", json.dumps({"x": x.tolist(), "y": values}))
    model = write(tmp_path, "model.py", UNMASKED)
    status, _, err = fit(capsys, model, "--data", data, "--out", tmp_path / "run", "--quiet")
    assert status == 2 and not (tmp_path / "run").exists()
    assert "data.json' has 4 missing value(s) (first at index [3])" in err and "'y' in data file" in err
    assert "obs_mask" in err and "mask = ~jnp.isnan(y)" in err
    # an infinite value is not a missing one
    write(tmp_path, "inf.json", json.dumps({"x": x.tolist(), "y": [1e400] + values[1:]}))
    status, _, err = fit(capsys, write(tmp_path, "masked.py", MASKED), "--data", tmp_path / "inf.json", "--out",
                         tmp_path / "run2", "--quiet")
    assert status == 2 and "infinite value" in err, err


def test_holdout_never_holds_out_a_row_with_a_missing_value(tmp_path, capsys):
    from probgen.data import load_named

    x, y = regression_data(seeded(26))
    frame = pd.DataFrame({"x": x, "y": y})
    frame.loc[MISSING, "y"] = np.nan
    data = tmp_path / "data.csv"  # --holdout splits a table's rows
    frame.to_csv(data, index=False)
    for seed in range(20):
        training, held_out = load_named(str(data), None).split(0.25, seed)
        assert not np.isnan(held_out.values["y"]).any() and np.isnan(training.values["y"]).sum() == len(MISSING)
        assert held_out.rows == 10 and training.rows == 30
    status, _, err = fit(capsys, write(tmp_path, "model.py", MASKED), "--data", data, "--holdout", "0.25",
                         "--out", tmp_path / "run", "--quiet", "--chains", "2", "--warmup", "300", "--draws", "300")
    assert status in (0, 3) and "step failed" not in err, err
    idata = az.from_netcdf(tmp_path / "run" / "posterior.nc")
    assert not np.isnan(idata.held_out_data["y_observed"].values).any()
    assert idata.posterior["y_unobserved"].sizes["y_missing"] == len(MISSING)


def test_nan_in_npz_and_parquet_binds_as_missing(tmp_path):
    # the binding alone (the fit is the JSON and CSV tests' path): NaN reaches the model and is counted
    from probgen.data import load_named
    from probgen.data.binding import bind

    x, y = regression_data(seeded(27))
    y[MISSING] = np.nan
    np.savez(tmp_path / "data.npz", x=x, y=y)
    pd.DataFrame({"x": x, "y": y}).to_parquet(tmp_path / "data.parquet")
    namespace = {}
    exec(textwrap.dedent(MASKED), namespace)
    for name in ("data.npz", "data.parquet"):
        inputs = bind(namespace["model"], load_named(str(tmp_path / name), None))
        assert inputs.missing == {"y": {"count": 4, "first": [3]}}, name
        assert np.isnan(np.asarray(inputs.kwargs["y"])[MISSING]).all()


def test_a_holdout_larger_than_the_complete_rows_is_refused_in_one_line(tmp_path, capsys):
    x, y = regression_data(seeded(28))
    frame = pd.DataFrame({"x": x, "y": y})
    frame.loc[: 29, "y"] = np.nan  # 10 complete rows of 40
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    status, _, err = fit(capsys, write(tmp_path, "model.py", MASKED), "--data", data, "--holdout", "0.5",
                         "--out", tmp_path / "run", "--quiet")
    assert status == 2 and err.count("\n") == 1 and not (tmp_path / "run").exists(), err
    assert "takes 20 rows without missing values; it has 10" in err
