"""Speed of the hidden Markov model against hmmlearn, one JSON line per measurement.

1. Log-likelihood of one sequence, Gaussian emissions (diagonal), K = 4 and 16, T = 10,000 and
   100,000: probgen's jitted forward algorithm (emission densities + scaled forward scan, float32,
   what the model evaluates) against hmmlearn's `score` (float64, C forward pass) on the same
   parameters and data, in the same run. Median of repeats after a first, compiling call whose
   time is reported apart.
2. Log-likelihood plus its gradient with respect to every parameter (what NUTS evaluates at
   each leapfrog step) per second, T = 10,000, K = 4.
3. A full NUTS fit through `probgen.fit` (4 chains x 1000 draws after 1000 warm-up) of a 3-state
   Gaussian HMM to T = 2,000 simulated steps: wall time, the smallest bulk ESS over the
   parameters, ESS per second.
4. T = 1,000,000: the sequential scan against the associative (parallel) scan on whatever device
   JAX uses, labelled with it (the GPU comparison the HMM issue asks for, when one is present).

    python benchmarks/hmm.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

from probgen.devices import expose_cpu_devices

expose_cpu_devices(4)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import device, timed  # noqa: E402


def problem(K: int, T: int, seed: int = 0):
    """Random HMM parameters (sticky transitions, separated means) and T simulated steps."""
    from hmmlearn.hmm import GaussianHMM

    from probgen.models import hmm

    rng = np.random.default_rng(seed)
    D = 1
    init = rng.dirichlet(np.ones(K))
    transition = rng.dirichlet(np.ones(K), size=K) * 0.1 + np.eye(K) * 0.9
    means = np.sort(rng.normal(0, 3, size=(K, D)), axis=0)
    scales = rng.uniform(0.5, 1.5, size=(K, D))
    params = {"means": jnp.asarray(means, jnp.float32), "scale_tril": jnp.asarray(np.eye(D) * scales[:, :, None],
                                                                                   jnp.float32)}
    _, x = jax.jit(hmm.simulate_sequence, static_argnums=(3, 5))(
        jax.random.PRNGKey(seed), jnp.asarray(init, jnp.float32), jnp.asarray(transition, jnp.float32), "gaussian",
        params, T)
    reference = GaussianHMM(K, covariance_type="diag")
    reference.startprob_, reference.transmat_ = init, transition
    reference.means_, reference.covars_ = means, scales**2
    return reference, np.asarray(x, np.float64), (jnp.asarray(init, jnp.float32),
                                                   jnp.asarray(transition, jnp.float32), params)


def log_likelihood_function(parallel: bool = False):
    from probgen.models import hmm

    def log_likelihood(init, transition, params, x, mask):
        log_emission = hmm.emission_log_probs(x, "gaussian", params)
        return hmm.forward(jnp.log(init), jnp.log(transition), log_emission, mask, parallel=parallel).sum()

    return log_likelihood


def log_likelihood_speed(K: int, T: int, repeats: int) -> dict:
    reference, x, (init, transition, params) = problem(K, T)
    x_device, mask = jnp.asarray(x, jnp.float32), jnp.ones(T, bool)
    evaluate = jax.jit(log_likelihood_function())
    start = time.perf_counter()
    ours = float(evaluate(init, transition, params, x_device, mask))
    compile_s = time.perf_counter() - start
    ours_s = timed(lambda: evaluate(init, transition, params, x_device, mask).block_until_ready(), repeats)
    theirs = reference.score(x)
    theirs_s = timed(lambda: reference.score(x), repeats)
    return {
        "benchmark": "hmm_log_likelihood", "K": K, "T": T, "emission": "gaussian diagonal, D=1", "device": device(),
        "probgen_jit_s": round(ours_s, 5), "hmmlearn_score_s": round(theirs_s, 5),
        "ratio_probgen_over_hmmlearn": round(ours_s / theirs_s, 3),
        "target": "ratio < 1 (faster than hmmlearn)", "probgen_compile_s": round(compile_s, 3),
        "relative_difference": abs(ours - theirs) / abs(theirs), "repeats": repeats,
    }


def gradient_speed(K: int, T: int, repeats: int) -> dict:
    _, x, (init, transition, params) = problem(K, T)
    x_device, mask = jnp.asarray(x, jnp.float32), jnp.ones(T, bool)
    value_and_grad = jax.jit(jax.value_and_grad(log_likelihood_function(), argnums=(0, 1, 2)))
    start = time.perf_counter()
    jax.block_until_ready(value_and_grad(init, transition, params, x_device, mask))
    compile_s = time.perf_counter() - start
    seconds = timed(lambda: jax.block_until_ready(value_and_grad(init, transition, params, x_device, mask)), repeats)
    return {
        "benchmark": "hmm_log_likelihood_and_gradient", "K": K, "T": T, "device": device(),
        "seconds_per_evaluation": round(seconds, 5), "evaluations_per_second": round(1 / seconds, 1),
        "compile_s": round(compile_s, 3), "repeats": repeats,
    }


def nuts_fit(T: int, chains: int, warmup: int, draws: int) -> dict:
    import arviz as az
    import pandas as pd

    from probgen.infer import fit
    from probgen.models import hmm

    rng = np.random.default_rng(1)
    init = np.array([0.4, 0.3, 0.3])
    transition = np.array([[0.95, 0.03, 0.02], [0.04, 0.92, 0.04], [0.02, 0.05, 0.93]])
    params = {"means": jnp.asarray([[-2.0], [0.0], [2.5]]), "scale_tril": jnp.asarray([[[0.7]], [[0.5]], [[0.9]]])}
    _, x = hmm.simulate_sequence(jax.random.PRNGKey(int(rng.integers(1 << 30))), jnp.asarray(init),
                                 jnp.asarray(transition), "gaussian", params, T)
    frame = pd.DataFrame({"y": np.asarray(x)[:, 0]})
    start = time.perf_counter()
    result = fit("hmm", frame, "nuts", options={"num_states": 3}, seed=0, progress=False, chains=chains,
                 warmup=warmup, draws=draws)
    wall = time.perf_counter() - start
    names = [n for n in ("init_probs", "transition", "ordered_means", "scales") if n in result.idata.posterior]
    ess = az.ess(result.idata.posterior[names], method="bulk")
    smallest = float(min(float(ess[n].min()) for n in names))
    divergences = int(result.idata.sample_stats["diverging"].sum())
    return {
        "benchmark": "hmm_nuts_fit", "T": T, "K": 3, "chains": chains, "warmup": warmup, "draws": draws,
        "device": device(), "wall_s": round(wall, 2), "inference_s": round(result.timings["inference"], 2),
        "results_s": round(result.timings["results"], 2),
        "min_bulk_ess": round(smallest, 1), "min_bulk_ess_per_s": round(smallest / wall, 2),
        "divergences": divergences, "note": "wall time includes compiling and building the InferenceData "
                                            "(decoding, predictive groups)",
    }


def long_sequence(T: int, repeats: int) -> dict:
    _, x, (init, transition, params) = problem(4, T, seed=3)
    x_device, mask = jnp.asarray(x, jnp.float32), jnp.ones(T, bool)
    out = {"benchmark": "hmm_long_sequence_scan_vs_associative_scan", "K": 4, "T": T, "device": device()}
    values = {}
    for name, parallel in (("scan", False), ("associative_scan", True)):
        evaluate = jax.jit(log_likelihood_function(parallel))
        start = time.perf_counter()
        values[name] = float(evaluate(init, transition, params, x_device, mask))
        out[f"{name}_compile_s"] = round(time.perf_counter() - start, 3)
        out[f"{name}_s"] = round(timed(lambda: evaluate(init, transition, params, x_device, mask).block_until_ready(),
                                       repeats), 5)
    out["ratio_associative_over_scan"] = round(out["associative_scan_s"] / out["scan_s"], 3)
    out["relative_difference"] = abs(values["scan"] - values["associative_scan"]) / abs(values["scan"])
    out["finite"] = bool(np.isfinite(values["scan"]) and np.isfinite(values["associative_scan"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and draws (a smoke run)")
    args = parser.parse_args()
    repeats = 3 if args.quick else 10
    for K in (4, 16):
        for T in (10_000, 100_000):
            print(json.dumps(log_likelihood_speed(K, T, repeats)), flush=True)
    print(json.dumps(gradient_speed(4, 10_000, repeats * 2)), flush=True)
    print(json.dumps(long_sequence(1_000_000, 2 if args.quick else 5)), flush=True)
    print(json.dumps(nuts_fit(2000, 4, 200 if args.quick else 1000, 200 if args.quick else 1000)), flush=True)


if __name__ == "__main__":
    main()
