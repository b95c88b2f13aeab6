"""Convergence verdicts: is this fit trustworthy, and if not, why.

Each check returns a `Verdict` with its figure, threshold, status ("pass", "warn", "fail" or
"skip") and a one-line reason in plain words. `assess` runs the checks that apply to the
inference method and gives an overall verdict:

    trusted  every check passed
    suspect  no check failed, at least one warned: estimates are usable with care
    failed   at least one check failed: do not use the estimates

MCMC (Vehtari et al. 2021; Betancourt 2016): rank-normalised split R-hat <= 1.01 on every
quantity, bulk and tail ESS >= 100 per chain, no divergent transitions, E-BFMI >= 0.3 in every
chain, and NUTS trees rarely at the maximum depth. SVI: the ELBO converged, and the Pareto k
of the importance ratios p(theta, x) / q(theta) (Yao et al. 2018) says whether the
approximation can be trusted. MAP: the optimisation converged; no uncertainty is claimed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from typing import Mapping

import arviz as az
import numpy as np
import xarray as xr

THRESHOLDS = {
    "r_hat": 1.01,  # above: warn; above r_hat_fail: fail
    "r_hat_fail": 1.05,
    "ess_per_chain": 100,  # below: warn; below ess_fail_per_chain: fail
    "ess_fail_per_chain": 25,
    "divergences": 0,
    "bfmi": 0.3,
    "tree_depth_saturation": 0.01,  # fraction of draws at the maximum depth
    "pareto_k_warn": 0.5,
    "pareto_k_fail": 0.7,
}

class _OneChainShape(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Shape validation failed")


@contextlib.contextmanager
def one_chain_is_fine():
    """Silence ArviZ's "Shape validation failed ... minimum_shape: (chains=2 ..." log line: it is
    written when a summary meets one chain, which probgen handles itself (R-hat from the chain's
    halves in `check_r_hat`, no r_hat column in the summary) and says so in the report."""
    # ArviZ logs through its own Logger instance (arviz._log), not the one logging.getLogger names
    logger, quiet = getattr(az, "_log", None) or logging.getLogger("arviz"), _OneChainShape()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


STATUS_ORDER = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}


@dataclasses.dataclass(frozen=True)
class Verdict:
    check: str
    status: str  # pass | warn | fail | skip
    value: float | int | None
    threshold: str
    reason: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Assessment:
    overall: str  # trusted | suspect | failed
    summary: str  # one sentence saying why
    verdicts: tuple[Verdict, ...]

    def as_dict(self) -> dict:
        return {
            "overall": self.overall,
            "summary": self.summary,
            "thresholds": THRESHOLDS,
            "checks": [v.as_dict() for v in self.verdicts],
        }


def varying_elements(idata: az.InferenceData) -> xr.Dataset:
    """The posterior without elements that never vary (e.g. the unit diagonal of a Cholesky
    factor of a correlation matrix), whose R-hat and ESS are undefined, not bad."""
    posterior = idata.posterior
    kept = {}
    for name, values in posterior.data_vars.items():
        array = values.values
        flat = array.reshape(array.shape[0] * array.shape[1], -1)
        if np.any(np.ptp(flat, axis=0) > 0):
            kept[name] = values
    return xr.Dataset(kept)


def _worst(metric: xr.Dataset, varying: xr.Dataset, pick) -> tuple[float, str]:
    """The worst finite value of `metric` over varying elements, and where it is."""
    best_value, best_where = None, ""
    for name, values in metric.data_vars.items():
        array = np.asarray(values.values, dtype=float)
        original = varying[name].values
        flat_original = original.reshape(original.shape[0] * original.shape[1], -1)
        mask = (np.ptp(flat_original, axis=0) > 0).reshape(array.shape) & np.isfinite(array)
        if not mask.any():
            continue
        candidates = np.where(mask, array, np.nan)
        index = np.unravel_index(pick(candidates), array.shape)
        value = float(candidates[index])
        if best_value is None or pick(np.array([best_value, value])) == 1:
            labels = [str(values[dim].values[i]) for dim, i in zip(values.dims, index)]
            best_value, best_where = value, f"{name}[{', '.join(labels)}]" if labels else name
    return best_value, best_where


STUCK_SPREAD = 0.01  # a chain whose draws span under 1% of what the other chains' span barely moved


def stuck_chains(idata) -> dict[int, str]:
    """{chain: "did not move" | "barely moved"} for the chains that stayed put while others
    moved: every varying posterior element has the same value in every draw of the chain, or
    its draws span less than `STUCK_SPREAD` of what the other chains' draws span (the median
    over elements of the ratio to the other chains' median range). Such a chain is named as
    stuck, not judged by an R-hat of 10^15 or an E-BFMI that reads well. Chains that each
    explore a different mode are not stuck: R-hat judges them."""
    varying = varying_elements(idata)
    if not varying.data_vars or idata.posterior.sizes["chain"] < 2 or idata.posterior.sizes["draw"] < 2:
        return {}
    spans = np.concatenate([np.ptp(np.asarray(values.values, dtype=float).reshape(
        values.shape[0], values.shape[1], -1), axis=1) for values in varying.data_vars.values()], axis=1)  # (chain, element)
    found = {}
    for chain in range(spans.shape[0]):
        others = np.median(np.delete(spans, chain, axis=0), axis=0)
        moving = others > 0
        if not moving.any():
            continue
        if not np.any(spans[chain][moving]):
            found[chain] = "did not move"
        elif np.median(spans[chain][moving] / others[moving]) < STUCK_SPREAD:
            found[chain] = "barely moved"
    return found


def _stuck_text(stuck: dict[int, str]) -> str:
    """'chain 3 did not move' / 'chains 1 and 3 barely moved' (chains numbered from 0)."""
    by_kind = {}
    for chain, kind in sorted(stuck.items()):
        by_kind.setdefault(kind, []).append(str(chain))
    parts = []
    for kind, chains in by_kind.items():
        named = chains[0] if len(chains) == 1 else ", ".join(chains[:-1]) + " and " + chains[-1]
        parts.append(f"chain{'s' if len(chains) > 1 else ''} {named} {kind}")
    return "; ".join(parts)


def _halves(varying: xr.Dataset) -> xr.Dataset:
    """One chain as two: its first and second halves (an odd last draw left out)."""
    half = varying.sizes["draw"] // 2

    def split(values: xr.DataArray) -> xr.DataArray:
        array = np.asarray(values.values)[:, :2 * half].reshape((2, half) + values.shape[2:])
        return xr.DataArray(array, dims=values.dims, coords={d: values[d] for d in values.dims[2:] if d in values.coords})

    return xr.Dataset({name: split(values) for name, values in varying.data_vars.items()})


def check_r_hat(idata) -> Verdict:
    varying = varying_elements(idata)
    threshold = f"<= {THRESHOLDS['r_hat']}"
    if idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"] < 8 or not varying.data_vars:
        return Verdict("r_hat", "skip", None, threshold, "too few draws to compute R-hat")
    stuck = stuck_chains(idata)
    if stuck:
        return Verdict("r_hat", "fail", None, threshold,
                       f"{_stuck_text(stuck)} (its draws stay put while the others range), so the chains cannot "
                       "agree and R-hat means nothing: the sampler is stuck; reparameterise, or start the chains "
                       "elsewhere (--init)")
    chains = idata.posterior.sizes["chain"]
    # one chain: R-hat of its two halves (as Stan computes it for one chain); it sees a chain
    # that drifts, never a mode the chain did not visit
    judged = varying if chains > 1 else _halves(varying)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r_hat = az.rhat(judged)
    worst, where = _worst(r_hat, varying, np.nanargmax)
    if worst is None:
        return Verdict("r_hat", "fail", None, threshold, "R-hat could not be computed for any quantity")
    if chains == 1:
        status = "warn" if worst <= THRESHOLDS["r_hat_fail"] else "fail"
        return Verdict("r_hat", status, worst, threshold,
                       f"one chain: its two halves give R-hat {worst:.3f} ({where}), but one chain cannot show a mode "
                       "it never visited; run at least 2 chains (--chains 4)")
    if worst <= THRESHOLDS["r_hat"]:
        return Verdict("r_hat", "pass", worst, threshold, f"the {chains} chains agree: largest R-hat {worst:.3f} ({where})")
    status = "warn" if worst <= THRESHOLDS["r_hat_fail"] else "fail"
    return Verdict("r_hat", status, worst, threshold,
                   f"the chains disagree about {where}: R-hat {worst:.3f}; run longer or reparameterise")


def check_ess(idata) -> list[Verdict]:
    varying = varying_elements(idata)
    chains = idata.posterior.sizes["chain"]
    needed = THRESHOLDS["ess_per_chain"] * chains
    threshold = f">= {needed} ({THRESHOLDS['ess_per_chain']} per chain)"
    out = []
    for kind in ("bulk", "tail"):
        name = f"ess_{kind}"
        if not varying.data_vars:
            out.append(Verdict(name, "skip", None, threshold, "no quantity varies"))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ess = az.ess(varying, method=kind)
        worst, where = _worst(ess, varying, np.nanargmin)
        if worst is None:
            out.append(Verdict(name, "fail", None, threshold, f"{kind} ESS could not be computed"))
        elif worst >= needed:
            out.append(Verdict(name, "pass", worst, threshold, f"smallest {kind} ESS {worst:.0f} ({where})"))
        else:
            status = "fail" if worst < THRESHOLDS["ess_fail_per_chain"] * chains else "warn"
            what = "means and medians" if kind == "bulk" else "intervals and tail quantiles"
            out.append(Verdict(name, status, worst, threshold,
                               f"{kind} ESS of {where} is {worst:.0f}: {what} are imprecise; draw more"))
    return out


def check_divergences(idata) -> Verdict:
    diverging = idata.sample_stats["diverging"].values
    count = int(diverging.sum())
    threshold = "= 0"
    if count == 0:
        return Verdict("divergences", "pass", 0, threshold, "no divergent transitions")
    per_chain = ", ".join(str(int(c)) for c in diverging.sum(axis=1))
    posterior = idata.posterior if "posterior" in idata.groups() else {}
    funnel = funnel_sites({name: posterior[name].values for name in posterior.data_vars}, diverging) \
        if len(posterior) else []
    advice = (f"{describe_funnel(funnel)}: the neck of a funnel; non-centre the sites that depend on it "
              f"({FUNNEL_ADVICE})" if funnel else "reparameterise or raise target_accept")
    return Verdict("divergences", "fail", count, threshold,
                   f"{count} divergent transitions (per chain: {per_chain}): the sampler missed part of "
                   f"the posterior, estimates may be biased; {advice}")


FUNNEL_ADVICE = "--reparam noncentred, or --reparam auto"


def funnel_sites(samples: dict, diverging: np.ndarray, names=None, *, low_quantile: float = 0.2,
                 min_share: float = 0.5, alpha: float = 0.01) -> list[dict]:
    """The coordinates of positive latent sites whose divergent draws sit among their smallest
    values: a scale parameter at the neck of a funnel.

    samples: {site: draws with (chain, draw, ...) axes}; diverging: (chain, draw) booleans.
    A coordinate is named when at least `min_share` of the divergent draws lie below the
    `low_quantile` quantile of all its draws, and a binomial test rejects the chance share
    `low_quantile` at `alpha` (one-sided): 3 divergent draws all below the 20% quantile give
    p = 0.2^3 = 0.008 (the low-rank metric leaves centred eight schools 1-3 divergences, where
    Stan's windows left 20-50). Each finding: {"site", "coordinate" (e.g. "scales[1]"), "below" (the 90%
    quantile of the divergent draws' values: "divergences concentrate where site < below"),
    "share"}; the strongest first.
    """
    from scipy.stats import binomtest

    diverging = np.asarray(diverging, bool)
    count = int(diverging.sum())
    if count == 0:
        return []
    found = []
    for site in (names or samples):
        values = np.asarray(samples[site], dtype=float)
        if values.shape[:2] != diverging.shape or not np.all(values > 0):
            continue
        flat = values.reshape(values.shape[:2] + (-1,))
        for index in range(flat.shape[-1]):
            v = flat[..., index]
            cut = np.quantile(v, low_quantile)
            below = int((v[diverging] < cut).sum())
            share = below / count
            if share < min_share or binomtest(below, count, low_quantile, alternative="greater").pvalue > alpha:
                continue
            label = site if values.ndim == 2 else \
                f"{site}[{', '.join(str(int(i)) for i in np.unravel_index(index, values.shape[2:]))}]"
            found.append({"site": site, "coordinate": label, "below": float(np.quantile(v[diverging], 0.9)),
                          "share": share})
    return sorted(found, key=lambda f: -f["share"])


def describe_funnel(funnel: list[dict], limit: int = 3) -> str:
    """'divergences concentrate where tau < 0.93 (18 of 20 divergent draws in its lowest
    20%)' for the strongest findings."""
    return "; ".join(f"divergences concentrate where {f['coordinate']} < {f['below']:.3g} ({f['share']:.0%} of "
                     "divergent draws in its lowest 20%)" for f in funnel[:limit])



def check_bfmi(idata) -> Verdict:
    threshold = f">= {THRESHOLDS['bfmi']} in every chain"
    if "sample_stats" not in idata.groups() or "energy" not in idata.sample_stats:
        return Verdict("bfmi", "skip", None, threshold, "no energy recorded")
    bfmi = np.asarray(az.bfmi(idata))
    worst = float(np.min(bfmi))
    stuck = stuck_chains(idata) if "posterior" in idata.groups() else {}
    if stuck:
        return Verdict("bfmi", "fail", None, threshold,
                       f"{_stuck_text(stuck)}: energy transitions say nothing about exploration where the chain "
                       "does not explore")
    if worst >= THRESHOLDS["bfmi"]:
        return Verdict("bfmi", "pass", worst, threshold, f"energy transitions explore well (smallest E-BFMI {worst:.2f})")
    chain = int(np.argmin(bfmi))
    return Verdict("bfmi", "warn", worst, threshold,
                   f"E-BFMI {worst:.2f} in chain {chain}: momentum resampling explores the tails poorly")


def check_tree_depth(idata, max_tree_depth: int | None) -> Verdict:
    limit = THRESHOLDS["tree_depth_saturation"]
    threshold = f"<= {limit:.0%} of draws at the maximum depth"
    if "sample_stats" not in idata.groups() or "reached_max_tree_depth" not in idata.sample_stats:
        return Verdict("tree_depth", "skip", None, threshold, "not a NUTS run")
    fraction = float(idata.sample_stats["reached_max_tree_depth"].values.mean())
    if fraction <= limit:
        return Verdict("tree_depth", "pass", fraction, threshold,
                       f"{fraction:.1%} of draws hit the maximum tree depth {max_tree_depth}")
    return Verdict("tree_depth", "warn", fraction, threshold,
                   f"{fraction:.1%} of draws hit the maximum tree depth {max_tree_depth}: trajectories are cut "
                   "short, sampling is slow and may be inefficient; reparameterise or raise max_tree_depth")


def check_optimization(idata, facts: Mapping, what: str) -> Verdict:
    threshold = "no detectable improvement over the last window"
    minibatches = facts.get("whole_data_elbo") is not None  # minibatch SVI: stopped on the whole data's ELBO
    if minibatches:
        threshold = f"the whole data's ELBO no better by {facts.get('settled_nats')} nats over the last window"
    if "optimization" not in idata.groups():
        return Verdict("converged", "skip", None, threshold, "no optimisation record")
    steps = int(idata.optimization.sizes["step"])
    if facts.get("converged") and minibatches:
        return Verdict("converged", "pass", steps, threshold,
                       f"{what} of the whole data settled at {facts['whole_data_elbo']:.6g} after {steps} minibatch "
                       "steps (the guide's parameters averaged over the last window)")
    if facts.get("converged"):
        return Verdict("converged", "pass", steps, threshold, f"{what} converged after {steps} steps")
    return Verdict("converged", "fail", steps, threshold,
                   f"{what} had not converged when it stopped at {steps} steps; raise --steps or the learning rate")


def check_training(idata, settings: Mapping, facts: Mapping) -> Verdict:
    """Amortised training (VAE): stopped because the validation ELBO no longer improved
    (pass), or at the step limit while it still improved (warn: more steps may help)."""
    threshold = f"validation ELBO no better by {settings.get('min_delta')} nats for {settings.get('patience')} evaluations"
    steps, best = facts.get("steps_run"), facts.get("best_step")
    if facts.get("stopped_early"):
        return Verdict("converged", "pass", steps, threshold,
                       f"training stopped at step {steps}: the validation ELBO stopped improving (best at step {best})")
    return Verdict("converged", "warn", steps, threshold,
                   f"training reached the step limit ({steps}) with the validation ELBO still improving (best at step "
                   f"{best}); resume with more steps: probgen fit --resume RUN_DIR --steps "
                   f"{2 * int(steps) if steps else 'N'}")


def check_pareto_k(idata) -> Verdict:
    warn, fail = THRESHOLDS["pareto_k_warn"], THRESHOLDS["pareto_k_fail"]
    threshold = f"<= {warn} (warn up to {fail})"
    if "sample_stats" not in idata.groups() or "log_importance_weight" not in idata.sample_stats:
        return Verdict("pareto_k", "skip", None, threshold,
                       "importance weights not computed for this guide; the VI fit is not checked against the exact posterior")
    log_weights = idata.sample_stats["log_importance_weight"].values.reshape(-1)
    with warnings.catch_warnings():
        # ArviZ warns when k is large; the verdict below states k and what it means
        warnings.simplefilter("ignore")
        _, khat = az.psislw(log_weights)
    return pareto_k_verdict(float(khat))


def pareto_k_verdict(khat: float | None) -> Verdict:
    """The verdict on an approximation from the Pareto k of its importance weights
    (Yao et al. 2018): <= 0.5 close to the posterior, up to 0.7 rough, above unusable."""
    warn, fail = THRESHOLDS["pareto_k_warn"], THRESHOLDS["pareto_k_fail"]
    threshold = f"<= {warn} (warn up to {fail})"
    if khat is None or not np.isfinite(khat):
        return Verdict("pareto_k", "fail", None, threshold,
                       "the importance weights are degenerate (no finite Pareto k): the approximation misses the posterior")
    khat = float(khat)
    if khat <= warn:
        return Verdict("pareto_k", "pass", khat, threshold, f"the approximation is close to the posterior (k = {khat:.2f})")
    if khat <= fail:
        return Verdict("pareto_k", "warn", khat, threshold,
                       f"k = {khat:.2f}: the approximation is rough; means are usable, spreads and tails less so")
    return Verdict("pareto_k", "fail", khat, threshold,
                   f"k = {khat:.2f}: the approximation is far from the posterior; use NUTS for inference")


def assess(idata: az.InferenceData, method, settings: Mapping | None = None, quantities=None,
           facts: Mapping | None = None) -> Assessment:
    """Run the checks that apply to `method`: a registered `probgen.infer.methods.Method`, or
    the name a run folder's config gives it; `settings` are what was asked for, `facts` what
    happened (`Result.facts`: steps run, convergence, Pareto k).

    quantities: an xarray Dataset of (chain, draw, ...) variables that R-hat and ESS are judged
    on instead of the posterior (`ModelSpec.convergence_on`: a BNN's predictions and log
    density, as its weights are not identified across chains)."""
    from probgen.infer import methods

    settings, facts = settings or {}, facts or {}
    if isinstance(method, str):
        method = methods.for_config({"method": method, "settings": settings, "facts": facts})
    verdicts = list(method.verdicts(idata, settings, facts, quantities))
    return judge(verdicts, lambda: method.trusted_summary(verdicts, settings))


def judge(verdicts, trusted_summary) -> Assessment:
    """The overall verdict of `verdicts` and its one-sentence reason; `trusted_summary()` gives
    the sentence when every verdict passed."""
    worst = max((v.status for v in verdicts), key=STATUS_ORDER.__getitem__, default="skip")
    problems = [v for v in verdicts if v.status in ("warn", "fail")]
    if worst == "fail":
        overall = "failed"
        summary = "Do not use these estimates: " + "; ".join(v.reason for v in problems if v.status == "fail") + "."
    elif worst == "warn":
        overall = "suspect"
        summary = "Usable with care: " + "; ".join(v.reason for v in problems) + "."
    else:
        overall = "trusted"
        summary = trusted_summary()
    return Assessment(overall, summary, tuple(verdicts))


def with_verdicts(assessment: Assessment, extra) -> Assessment:
    """`assessment` with a family's own verdicts (`ReportPart.verdicts`) added and the overall
    verdict judged again; a trusted reading stays when they all pass, and names them."""
    if not extra:
        return assessment
    passed = "; ".join(v.reason for v in extra if v.status == "pass")
    return judge(list(assessment.verdicts) + list(extra),
                 lambda: assessment.summary + (f" Also: {passed}." if passed else ""))


def sampling_cost(idata, assessment: Assessment) -> dict | None:
    """What the kept draws of a Hamiltonian run cost: gradient evaluations (leapfrog steps, the
    sum of `n_steps` over the kept draws of every chain), and those per effective draw, taking
    the smallest bulk ESS the `ess_bulk` verdict found (the figure the Speed table compares with
    nutpie's); the mean tree depth and each chain's step size. None for a run without leapfrog
    steps (SVI, MAP, exact, a game) or without a bulk ESS."""
    if "sample_stats" not in idata.groups() or "n_steps" not in idata.sample_stats:
        return None
    stats = idata.sample_stats
    gradients = int(np.asarray(stats["n_steps"].values, dtype=np.int64).sum())
    ess = next((v.value for v in assessment.verdicts if v.check == "ess_bulk" and v.value), None)
    cost = {"gradient_evaluations": gradients, "draws": int(stats.sizes["chain"] * stats.sizes["draw"]),
            "smallest_bulk_ess": None if ess is None else float(ess),
            "gradients_per_effective_draw": None if ess is None else gradients / float(ess)}
    if "tree_depth" in stats:
        cost["mean_tree_depth"] = float(np.mean(stats["tree_depth"].values))
    if "step_size" in stats:
        cost["step_size_per_chain"] = [float(np.mean(chain)) for chain in np.asarray(stats["step_size"].values)]
    if "acceptance_rate" in stats:  # the realised mean acceptance statistic, against the target
        cost["mean_acceptance"] = float(np.mean(stats["acceptance_rate"].values))
    return cost
