"""The benchmark's posteriors written as PyMC models, for nutpie and PyMC's own NUTS.

Each builder takes the data as probgen binds them to the NumPyro model (`ModelInputs`: the
model's keyword arguments and observed arrays) and returns a `pm.Model` with the same joint
density, its free variables named as the NumPyro sites (and, for the posteriordb ports, as the
Stan parameters), so that one extraction serves every sampler. Constant terms (the K! of an
order-statistic prior) are left out: they change no sampler's draws.

The Lotka-Volterra port is not here: its ODE would go through `pytensor`'s scipy-backed
`DifferentialEquation` op, which nutpie's numba backend cannot compile (a Python call per
gradient), so the comparison would measure that op, not the samplers.
"""

from __future__ import annotations

import numpy as np


def _pm():
    import pymc as pm
    import pytensor.tensor as pt

    return pm, pt


def eight_schools(a):
    pm, pt = _pm()
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 5)
        tau = pm.HalfCauchy("tau", 5)
        theta_tilde = pm.Normal("theta_tilde", 0, 1, shape=int(a["J"]))
        pm.Normal("y", mu + tau * theta_tilde, np.asarray(a["sigma"], float), observed=np.asarray(a["y"], float))
    return model


def kidiq(a):
    pm, pt = _pm()
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=3)
        sigma = pm.HalfCauchy("sigma", 2.5)
        pm.Normal("kid_score", beta[0] + beta[1] * a["mom_hs"] + beta[2] * a["mom_iq"], sigma, observed=a["kid_score"])
    return model


def kidiq_with_mom_work(a):
    pm, pt = _pm()
    work = np.asarray(a["mom_work"])
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=4)
        sigma = pm.HalfFlat("sigma")
        mean = beta[0] + beta[1] * (work == 2) + beta[2] * (work == 3) + beta[3] * (work == 4)
        pm.Normal("kid_score", mean, sigma, observed=a["kid_score"])
    return model


def earnings(a):
    pm, pt = _pm()
    height = np.asarray(a["height"], float)
    z = (height - height.mean()) / height.std(ddof=1)
    male = np.asarray(a["male"], float)
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=4)
        sigma = pm.HalfFlat("sigma")
        pm.Normal("log_earn", beta[0] + beta[1] * z + beta[2] * male + beta[3] * z * male, sigma,
                  observed=np.log(np.asarray(a["earn"], float)))
    return model


def kilpisjarvi(a):
    pm, pt = _pm()
    with pm.Model() as model:
        alpha = pm.Normal("alpha", float(a["pmualpha"]), float(a["psalpha"]))
        beta = pm.Normal("beta", float(a["pmubeta"]), float(a["psbeta"]))
        sigma = pm.HalfFlat("sigma")
        pm.Normal("y", alpha + beta * np.asarray(a["x"], float), sigma, observed=a["y"])
    return model


def mesquite(a):
    pm, pt = _pm()
    d1, d2 = np.asarray(a["diam1"], float), np.asarray(a["diam2"], float)
    predictors = np.stack([np.log(d1 * d2 * np.asarray(a["canopy_height"], float)), np.log(d1 * d2), np.log(d1 / d2),
                           np.log(np.asarray(a["total_height"], float)), np.asarray(a["group"], float)], axis=1)
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=6)
        sigma = pm.HalfFlat("sigma")
        pm.Normal("log_weight", beta[0] + pt.dot(predictors, beta[1:]), sigma,
                  observed=np.log(np.asarray(a["weight"], float)))
    return model


def nes(a):
    pm, pt = _pm()
    age = np.asarray(a["age_discrete"])
    predictors = np.stack([a["real_ideo"], a["race_adj"], age == 2, age == 3, age == 4, a["educ1"], a["gender"],
                           a["income"]], axis=1).astype(float)
    with pm.Model() as model:
        beta = pm.Flat("beta", shape=9)
        sigma = pm.HalfFlat("sigma")
        pm.Normal("partyid7", beta[0] + pt.dot(predictors, beta[1:]), sigma, observed=a["partyid7"])
    return model


def sblri(a):
    pm, pt = _pm()
    with pm.Model() as model:
        beta = pm.Normal("beta", 0, 10, shape=int(a["D"]))
        sigma = pm.HalfNormal("sigma", 10)
        pm.Normal("y", pt.dot(np.asarray(a["X"], float), beta), sigma, observed=a["y"])
    return model


def diamonds(a):
    pm, pt = _pm()
    X = np.asarray(a["X"], float)
    Xc = X[:, 1:] - X[:, 1:].mean(axis=0)
    with pm.Model() as model:
        b = pm.Normal("b", 0, 1, shape=int(a["K"]) - 1)
        intercept = pm.StudentT("Intercept", nu=3, mu=8, sigma=10)
        sigma = pm.HalfStudentT("sigma", nu=3, sigma=10)
        pm.Normal("Y", intercept + pt.dot(Xc, b), sigma, observed=a["Y"])
    return model


def arma11(a):
    pm, pt = _pm()
    import pytensor

    y = np.asarray(a["y"], float)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        phi = pm.Normal("phi", 0, 2)
        theta = pm.Normal("theta", 0, 2)
        sigma = pm.HalfCauchy("sigma", 2.5)
        first = y[0] - (mu + phi * mu)

        def step(y_t, y_previous, error_previous, mu, phi, theta):
            return y_t - (mu + phi * y_previous + theta * error_previous)

        rest, _ = pytensor.scan(step, sequences=[pt.as_tensor(y[1:]), pt.as_tensor(y[:-1])], outputs_info=[first],
                                non_sequences=[mu, phi, theta])
        errors = pt.concatenate([pt.stack([first]), rest])
        pm.Potential("err", pm.logp(pm.Normal.dist(0, sigma), errors).sum())
    return model


def _forward(pm, pt, log_init, log_transition, log_emission):
    """log p(x) of an HMM by the forward algorithm (pytensor scan). log_emission: (T, K)."""
    import pytensor

    def step(emission, gamma, log_transition):
        return pt.logsumexp(gamma[:, None] + log_transition, axis=0) + emission

    gammas, _ = pytensor.scan(step, sequences=[log_emission[1:]], outputs_info=[log_init + log_emission[0]],
                              non_sequences=[log_transition])
    return pt.logsumexp(gammas[-1])


def bball_hmm(a):
    pm, pt = _pm()
    u, v = np.asarray(a["u"], float), np.asarray(a["v"], float)
    alpha = np.asarray(a["alpha"], float)
    K = int(a["K"])
    with pm.Model() as model:
        theta1 = pm.Dirichlet("theta1", alpha[0])
        theta2 = pm.Dirichlet("theta2", alpha[1])
        phi = pm.Flat("phi", shape=K, transform=pm.distributions.transforms.ordered, initval=np.arange(K, dtype=float))
        lam = pm.Flat("lambda", shape=K, transform=pm.distributions.transforms.ordered, initval=np.arange(K, dtype=float))
        prior = pm.logp(pm.Normal.dist([0.0, 3.0], 1), phi).sum() + pm.logp(pm.Normal.dist([0.0, 3.0], 1), lam).sum()
        log_transition = pt.log(pt.stack([theta1, theta2]))
        log_emission = (pm.logp(pm.Normal.dist(phi, float(a["tau"])), u[:, None])
                        + pm.logp(pm.Normal.dist(lam, float(a["rho"])), v[:, None]))
        # Stan's hmm_drive_1 starts from the uniform state distribution, as the NumPyro port
        pm.Potential("forward", prior + _forward(pm, pt, pt.zeros(K), log_transition, log_emission))
    return model


def gmm(kwargs, observed):
    """probgen's Gaussian mixture (`models/gmm.py`), full covariance, ordered first column."""
    pm, pt = _pm()
    x = np.asarray(observed["x"], float)
    K, D = kwargs["num_components"], x.shape[1]
    loc, scale = np.asarray(kwargs["prior_loc"], float), np.asarray(kwargs["prior_scale"], float)
    with pm.Model() as model:
        weights = pm.Dirichlet("weights", np.full(K, kwargs["weight_concentration"]))
        ordered = pm.Normal("ordered_means", loc[0], scale[0], shape=K, transform=pm.distributions.transforms.ordered,
                            initval=np.linspace(loc[0] - scale[0] / 4, loc[0] + scale[0] / 4, K))
        other = pm.Normal("other_means", loc[1:], scale[1:], shape=(K, D - 1))
        means = pt.concatenate([ordered[:, None], other], axis=1)
        components, stds = [], []
        for k in range(K):
            # scales[k] ~ HalfNormal(prior_scale / 2), correlation ~ LKJ(2): L = diag(scales) L_corr
            chol, _, sd = pm.LKJCholeskyCov(f"cov_{k}", n=D, eta=2.0, sd_dist=pm.HalfNormal.dist(scale / 2, shape=D),
                                           compute_corr=True)
            components.append(pm.logp(pm.MvNormal.dist(means[k], chol=chol), x))
            stds.append(sd)
        log_components = pt.stack(components, axis=1) + pt.log(weights)
        pm.Potential("x", pt.logsumexp(log_components, axis=1).sum())
        pm.Deterministic("scales", pt.stack(stds))
    return model


def hmm(kwargs, observed):
    """probgen's HMM (`models/hmm`), one sequence, Gaussian 1-D emissions, ordered means."""
    pm, pt = _pm()
    x = np.asarray(observed["x"], float)[0, :, 0]
    K = kwargs["num_states"]
    loc, scale = float(np.asarray(kwargs["prior_loc"])[0]), float(np.asarray(kwargs["prior_scale"])[0])
    with pm.Model() as model:
        init = pm.Dirichlet("init_probs", np.ones(K))
        transition = pm.Dirichlet("transition", np.ones((K, K)))
        means = pm.Normal("ordered_means", loc, scale, shape=K, transform=pm.distributions.transforms.ordered,
                          initval=np.linspace(loc - scale / 4, loc + scale / 4, K))
        scales = pm.HalfNormal("scales", scale / 2, shape=(K, 1))
        log_emission = pm.logp(pm.Normal.dist(means, scales[:, 0]), x[:, None])
        pm.Potential("x", _forward(pm, pt, pt.log(init), pt.log(transition), log_emission))
    return model


def gp_pois_regr(a):
    pm, pt = _pm()
    x = np.asarray(a["x"], float)
    N = int(a["N"])
    with pm.Model() as model:
        rho = pm.Gamma("rho", 25, 4)
        alpha = pm.HalfNormal("alpha", 2)
        f_tilde = pm.Normal("f_tilde", 0, 1, shape=N)
        distance = x[:, None] - x[None, :]
        cov = alpha**2 * pt.exp(-0.5 * distance**2 / rho**2) + 1e-10 * np.eye(N)  # Stan's jitter
        f = pm.Deterministic("f", pt.dot(pt.linalg.cholesky(cov), f_tilde))
        pm.Poisson("k", pt.exp(f), observed=a["k"])
    return model
