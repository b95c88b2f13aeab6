"""The second conformance set (issue 32, point 4): ordinary models written as a NumPyro user
writes them, each fitted through the command line (`probgen fit model.py --data data.json`) and
compared with plain NumPyro's NUTS on the same model file and data by posteriordb's criterion:
|mean difference| <= 0.15 reference sd and sd ratio within 0.85-1.15, for every element of
every parameter listed.

Why the tolerance holds under any seed: the reference runs 4 x 4,000 draws (an ESS of several
thousand on these posteriors), probgen its default 4 x 1,000 (an ESS of 1,000 or more, which the
test asserts before comparing: a parameter below 400 fails as "not enough draws", never as a
chance miss). The difference of the means then has an SE of at most sd * sqrt(1/1000 + 1/4000)
= 0.035 sd, so 0.15 sd is 4.2 SEs (a chance miss 3e-5 per element, under 1% over the set's
comparisons); the sd ratio's SE is about sqrt(1/2000 + 1/8000) = 0.025, against 0.15.

The quick models run in the default suite; the slow ones (a Gaussian process, varying slopes,
stochastic volatility and the three patterns of issue 32) in `make test-slow`.
"""

import importlib.util
import json
import textwrap

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC, NUTS

from _seeds import seeded
from probgen.cli import main
from test_discrete_sites import CHANGE_POINT
from test_subsampling import REGRESSION

MODELS = {
    "logistic": '''
        import numpyro
        import numpyro.distributions as dist


        def model(X, y=None):
            alpha = numpyro.sample("alpha", dist.Normal(0, 2.5))
            beta = numpyro.sample("beta", dist.Normal(0, 2.5).expand([X.shape[1]]).to_event(1))
            with numpyro.plate("obs", X.shape[0]):
                numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)
        ''',
    "poisson_offset": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def model(x, exposure, y=None):
            a = numpyro.sample("a", dist.Normal(0, 2))
            b = numpyro.sample("b", dist.Normal(0, 1))
            with numpyro.plate("obs", x.shape[0]):
                numpyro.sample("y", dist.Poisson(jnp.exp(jnp.log(exposure) + a + b * x)), obs=y)
        ''',
    "zero_inflated_poisson": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def model(x, y=None):
            gate = numpyro.sample("gate", dist.Beta(1, 1))
            a = numpyro.sample("a", dist.Normal(0, 2))
            b = numpyro.sample("b", dist.Normal(0, 1))
            with numpyro.plate("obs", x.shape[0]):
                numpyro.sample("y", dist.ZeroInflatedPoisson(gate=gate, rate=jnp.exp(a + b * x)), obs=y)
        ''',
    "ordinal": '''
        import numpyro
        import numpyro.distributions as dist
        from numpyro.distributions.transforms import OrderedTransform


        def model(x, K, y=None):
            b = numpyro.sample("b", dist.Normal(0, 2))
            cutpoints = numpyro.sample("cutpoints", dist.TransformedDistribution(
                dist.Normal(0, 5).expand([K - 1]).to_event(1), OrderedTransform()))
            with numpyro.plate("obs", x.shape[0]):
                numpyro.sample("y", dist.OrderedLogistic(b * x, cutpoints), obs=y)
        ''',
    "dirichlet_multinomial": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        # NumPyro draws multinomial counts only with a concrete bound on the totals (its own
        # Predictive fails on total_count=counts.sum(-1): "Please specify total_count_max"), so
        # the totals' maximum comes as data, an int
        def model(counts, max_total):
            groups, categories = counts.shape
            base = numpyro.sample("base", dist.Dirichlet(jnp.ones(categories)))
            concentration = numpyro.sample("concentration", dist.LogNormal(2.0, 1.0))
            with numpyro.plate("groups", groups):
                numpyro.sample("counts", dist.DirichletMultinomial(concentration * base, total_count=counts.sum(-1),
                                                                   total_count_max=max_total), obs=counts)
        ''',
    "varying_slopes": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def model(group, x, J, y=None):
            mu = numpyro.sample("mu", dist.Normal(0, 5).expand([2]).to_event(1))
            tau = numpyro.sample("tau", dist.HalfNormal(2).expand([2]).to_event(1))
            L = numpyro.sample("L", dist.LKJCholesky(2, 2.0))
            sigma = numpyro.sample("sigma", dist.HalfNormal(2))
            with numpyro.plate("groups", J):
                z = numpyro.sample("z", dist.Normal(0, 1).expand([2]).to_event(1))
            effects = mu + z @ (tau[:, None] * L).T
            with numpyro.plate("obs", x.shape[0]):
                numpyro.sample("y", dist.Normal(effects[group, 0] + effects[group, 1] * x, sigma), obs=y)
        ''',
    "gaussian_process": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def kernel(a, b, variance, length):
            return variance * jnp.exp(-0.5 * (a[:, None] - b[None, :]) ** 2 / length**2)


        def model(x, y=None, x_new=None):
            variance = numpyro.sample("variance", dist.LogNormal(0.0, 1.0))
            length = numpyro.sample("length", dist.LogNormal(0.0, 1.0))
            noise = numpyro.sample("noise", dist.HalfNormal(1.0))
            K = kernel(x, x, variance, length) + (noise**2 + 1e-6) * jnp.eye(x.shape[0])
            numpyro.sample("y", dist.MultivariateNormal(jnp.zeros(x.shape[0]), covariance_matrix=K), obs=y)
            if x_new is not None and y is not None:  # the values at new inputs, given the training data
                cross = kernel(x, x_new, variance, length)
                mean = cross.T @ jnp.linalg.solve(K, y)
                cov = kernel(x_new, x_new, variance, length) - cross.T @ jnp.linalg.solve(K, cross)
                numpyro.sample("f_new", dist.MultivariateNormal(mean, covariance_matrix=cov
                                                                + 1e-6 * jnp.eye(x_new.shape[0])))
        ''',
    "stochastic_volatility": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def model(returns):
            step_size = numpyro.sample("step_size", dist.Exponential(10.0))
            nu = numpyro.sample("nu", dist.Exponential(0.1))
            s = numpyro.sample("s", dist.GaussianRandomWalk(scale=step_size, num_steps=returns.shape[0]))
            numpyro.sample("returns", dist.StudentT(df=nu, loc=0.0, scale=jnp.exp(s)), obs=returns)
        ''',
    "missing_values": '''
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist


        def model(x, y):
            a = numpyro.sample("a", dist.Normal(0, 5))
            b = numpyro.sample("b", dist.Normal(0, 5))
            sigma = numpyro.sample("sigma", dist.HalfNormal(2))
            with numpyro.plate("rows", x.shape[0]):
                numpyro.sample("y", dist.Normal(a + b * x, sigma), obs=y, obs_mask=~jnp.isnan(y))
        ''',
    # the two patterns with tests of their own: the same model text
    "change_point": CHANGE_POINT,
    "subsampled": REGRESSION,
}


def simulate(name: str, rng) -> dict:
    """The data of each model, simulated from it (as JSON values)."""
    if name == "logistic":
        X = rng.normal(size=(300, 3))
        y = rng.random(300) < 1 / (1 + np.exp(-(0.3 + X @ [1.0, -0.5, 0.0])))
        return {"X": X.tolist(), "y": y.astype(int).tolist()}
    if name == "poisson_offset":
        x, exposure = rng.normal(size=200), rng.uniform(0.5, 5.0, size=200)
        return {"x": x.tolist(), "exposure": exposure.tolist(),
                "y": rng.poisson(exposure * np.exp(0.2 + 0.5 * x)).tolist()}
    if name == "zero_inflated_poisson":
        x = rng.normal(size=300)
        y = np.where(rng.random(300) < 0.3, 0, rng.poisson(np.exp(1.0 + 0.4 * x)))
        return {"x": x.tolist(), "y": y.tolist()}
    if name == "ordinal":
        x = rng.normal(size=300)
        latent = 1.2 * x + rng.logistic(size=300)
        return {"x": x.tolist(), "K": 4, "y": np.searchsorted([-1.0, 0.5, 2.0], latent).tolist()}
    if name == "dirichlet_multinomial":
        base, concentration = np.array([0.5, 0.3, 0.2]), 20.0
        counts = [rng.multinomial(int(n), rng.dirichlet(concentration * base)) for n in rng.integers(20, 80, 30)]
        return {"counts": np.asarray(counts).tolist(), "max_total": int(np.asarray(counts).sum(-1).max())}
    if name == "varying_slopes":
        J, per = 8, 15
        group = np.repeat(np.arange(J), per)
        effects = np.array([1.0, 0.5]) + rng.normal(size=(J, 2)) * [0.8, 0.4]
        x = rng.normal(size=J * per)
        y = effects[group, 0] + effects[group, 1] * x + 0.5 * rng.normal(size=J * per)
        return {"group": group.tolist(), "x": x.tolist(), "J": J, "y": y.tolist()}
    if name == "gaussian_process":
        x = np.sort(rng.uniform(-3, 3, 25))
        return {"x": x.tolist(), "y": (np.sin(x) + 0.2 * rng.normal(size=25)).tolist()}
    if name == "stochastic_volatility":
        s = np.cumsum(0.1 * rng.normal(size=100)) - 1.0
        return {"returns": (np.exp(s) * rng.standard_t(8, size=100)).tolist()}
    if name == "missing_values":
        x = rng.normal(size=40)
        y = 1.0 + 2.0 * x + 0.5 * rng.normal(size=40)
        return {"x": x.tolist(), "y": [None if i in (3, 7, 20, 33) else v for i, v in enumerate(y.tolist())]}
    if name == "change_point":
        return {"y": np.concatenate([rng.poisson(3.0, 41), rng.poisson(1.0, 59)]).tolist()}
    if name == "subsampled":
        x = rng.normal(size=2000)
        return {"x": x.tolist(), "y": (1.0 + 2.0 * x + 0.5 * rng.normal(size=2000)).tolist()}
    raise KeyError(name)


# the parameters compared (every element), and what differs from the plain comparison
COMPARED = {
    "logistic": ("alpha", "beta"), "poisson_offset": ("a", "b"), "zero_inflated_poisson": ("gate", "a", "b"),
    "ordinal": ("b", "cutpoints"), "dirichlet_multinomial": ("base", "concentration"),
    "varying_slopes": ("mu", "tau", "sigma", "z"), "gaussian_process": ("variance", "length", "noise"),
    "stochastic_volatility": ("step_size", "nu", "s"), "missing_values": ("a", "b", "sigma"),
    "change_point": ("early_rate", "late_rate"), "subsampled": ("alpha", "beta"),
}
# Positive parameters (scales, a GP's variance and length) are compared by their logs. The SE of
# the sd ratio above holds for near-normal marginals; a scale's right tail (a LogNormal-like
# posterior: variance's kurtosis is about 10 with 25 points) makes the sd itself noisy, so the
# ratio missed by chance (1.29 at 2,400 effective draws), while log(scale) is close to normal.
POSITIVE = {"variance", "length", "noise", "tau", "sigma", "step_size", "nu", "concentration"}
SLOW = {"varying_slopes", "gaussian_process", "stochastic_volatility", "missing_values", "change_point", "subsampled"}
CASES = [pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name for name in MODELS]


def as_numpyro_value(value):
    """A JSON value as a NumPyro user passes it: ints stay ints, arrays become JAX arrays."""
    array = np.asarray(value, dtype=float if isinstance(value, list) and None in value else None)
    if array.ndim == 0:
        return value
    return jnp.asarray(array, jnp.int32 if array.dtype.kind in "iu" else jnp.float32)


def plain_numpyro(model_file, data: dict, name: str, seed: int) -> dict:
    """Plain NumPyro's NUTS on the model file: 4 chains of 1,000 warm-up and 4,000 draws.
    Missing values: the complete cases, the same posterior of the parameters when y is missing
    at random given x (NumPyro's obs_mask sites leave the observed entries' imputations flat).
    A subsampled plate: the same model over all its rows (NUTS cannot subsample)."""
    source = model_file.read_text()
    if name == "subsampled":
        source = source.replace(", subsample_size=100", "")
    plain = model_file.with_name("plain_model.py")
    plain.write_text(source)
    spec = importlib.util.spec_from_file_location(f"plain_{name}", plain)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    values = {key: as_numpyro_value(value) for key, value in data.items()}
    if name == "missing_values":
        keep = ~np.isnan(np.asarray(values["y"]))
        values = {"x": values["x"][keep], "y": values["y"][keep]}
    mcmc = MCMC(NUTS(module.model), num_warmup=1000, num_samples=4000, num_chains=4, chain_method="sequential",
                progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), **values)
    return {key: np.asarray(value) for key, value in mcmc.get_samples(group_by_chain=True).items()}


def disagreements(idata, reference: dict, names) -> list:
    """Elements that miss posteriordb's criterion (or whose ESS in probgen's run is too small
    for it to be a fair test), as readable rows."""
    bad = []
    for name in names:
        ours, theirs = idata.posterior[name].values, reference[name]
        ess = np.asarray(az.ess(az.convert_to_dataset({name: ours}))[name].values).reshape(-1)
        ours = ours.reshape(ours.shape[0] * ours.shape[1], -1)
        theirs = theirs.reshape(theirs.shape[0] * theirs.shape[1], -1)
        if name in POSITIVE:  # compared on the log scale, where the marginal is near normal
            ours, theirs = np.log(ours), np.log(theirs)
        for index in range(ours.shape[1]):
            sd = theirs[:, index].std()
            if sd == 0:  # a fixed element (a Cholesky factor's corner)
                continue
            difference = abs(ours[:, index].mean() - theirs[:, index].mean()) / sd
            ratio = ours[:, index].std() / sd
            if ess[index] < 400 or difference > 0.15 or not 0.85 <= ratio <= 1.15:
                bad.append(f"{name}[{index}]: mean difference {difference:.3f} sd, sd ratio {ratio:.3f}, "
                           f"ESS {ess[index]:.0f}")
    return bad


@pytest.mark.parametrize("name", CASES)
def test_user_model_matches_plain_numpyro(name, tmp_path, capsys):
    seed = seeded(20)
    model_file = tmp_path / "model.py"
    model_file.write_text(textwrap.dedent(MODELS[name]))
    data = simulate(name, np.random.default_rng(seed))
    (tmp_path / "data.json").write_text(json.dumps(data))
    out = tmp_path / "run"
    argv = ["fit", str(model_file), "--data", str(tmp_path / "data.json"), "--out", str(out), "--seed", str(seed),
            "--quiet"]
    if name == "subsampled":
        argv += ["--method", "svi"]
    if name == "stochastic_volatility":
        # the default layout (4 chains on 4 CPU devices) with the low-rank warm-up's host step:
        # through jax.pure_callback this hung at warm-up iteration ~300 (probgen.infer.host_call);
        # the random walk's scale mixes slowly (ESS 158 of 4 x 1,000 draws): 4 x 4,000 draws
        argv += ["--draws", "4000"]
    status = main(argv)
    err = capsys.readouterr().err
    assert status in (0, 3), err  # a FAILED verdict still writes the run; the comparison decides
    assert (out / "report.html").is_file()
    idata = az.from_netcdf(out / "posterior.nc")
    reference = plain_numpyro(model_file, data, name, seed)
    if name == "subsampled":
        # an SVI approximation against the exact posterior: test_subsampling's derived bounds
        for parameter in COMPARED[name]:
            ours, theirs = idata.posterior[parameter].values.ravel(), reference[parameter].ravel()
            assert abs(ours.mean() - theirs.mean()) <= 0.4 * theirs.std(), parameter
            assert 0.75 <= ours.std() / theirs.std() <= 1.35, parameter
        return
    bad = disagreements(idata, reference, COMPARED[name])
    assert not bad, bad
    if name == "gaussian_process":
        gaussian_process_predicts_at_new_inputs(tmp_path, out, data, reference, capsys)


def gaussian_process_predicts_at_new_inputs(tmp_path, out, data, reference, capsys):
    """`probgen predict` with the training data and new inputs draws the GP's values at the new
    inputs from their conditional; their mean at each input, averaged over the posterior, must
    match the same average over plain NumPyro's draws (0.15 predictive sd)."""
    x_new = np.linspace(-2.5, 2.5, 6)
    (tmp_path / "new.json").write_text(json.dumps({**data, "x_new": x_new.tolist()}))
    status = main(["predict", str(out), "--data", str(tmp_path / "new.json"), "--out", str(tmp_path / "p.csv")])
    assert status == 0, capsys.readouterr().err
    import pandas as pd

    table = pd.read_csv(tmp_path / "p.csv")
    ours = table[table.site == "f_new"]
    assert len(ours) == 6
    x, y = np.asarray(data["x"]), np.asarray(data["y"])
    variance, length, noise = (reference[k].reshape(-1)[::16] for k in ("variance", "length", "noise"))
    means, variances = [], []
    for v, l, n in zip(variance, length, noise):
        K = v * np.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / l**2) + (n**2 + 1e-6) * np.eye(len(x))
        cross = v * np.exp(-0.5 * (x[:, None] - x_new[None, :]) ** 2 / l**2)
        means.append(cross.T @ np.linalg.solve(K, y))
        variances.append(v - np.einsum("ij,ij->j", cross, np.linalg.solve(K, cross)))
    means, variances = np.asarray(means), np.asarray(variances)
    predictive_sd = np.sqrt(variances.mean(0) + means.var(0))
    assert np.all(np.abs(ours["mean"].values - means.mean(0)) <= 0.15 * predictive_sd), (ours["mean"].values,
                                                                                          means.mean(0))
    assert np.all(np.abs(ours["sd"].values / predictive_sd - 1) <= 0.15)
