"""Speed of the Gaussian mixture against its references, one JSON line per comparison.

1. probgen's overhead over a hand-written NumPyro NUTS run of the same model on the same data
   (Old Faithful, K = 2, full covariance, 4 chains x 1000 draws after 1000 warm-up, same chain
   method and starting points). After a first, compiling run of each (reported apart), the
   runs alternate and the medians of the repeats are compared. probgen's figure covers what `probgen.fit` does after compiling: sampling plus
   building the InferenceData (log-likelihood, posterior predictive, relabelling).
2. The mixture log-likelihood (jitted, float32) against scikit-learn's
   `GaussianMixture.score_samples` (float64) on N = 100,000, D = 10, K = 5: median of repeats.

    python benchmarks/gmm.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

from probgen.devices import expose_cpu_devices

expose_cpu_devices(4)

import jax  # noqa: E402
import numpy as np  # noqa: E402
from _timing import device, timed  # noqa: E402

# the per-draw fields probgen records, asked of NumPyro's MCMC by their names there
EXTRA_FIELDS = ("diverging", "energy", "num_steps", "accept_prob", "adapt_state.step_size", "potential_energy")


def overhead(warmup: int, draws: int, repeats: int) -> dict:
    from numpyro.infer import MCMC, NUTS

    from probgen import data
    from probgen.infer import mcmc, results
    from probgen.infer.chains import choose_chain_method
    from probgen.spec import load_spec

    spec = load_spec("gmm")
    dataset = data.load("faithful")
    inputs = spec.prepare(dataset.frame, spec.resolve_options({"num_components": 2}))
    settings = {**mcmc.DEFAULTS, "warmup": warmup, "draws": draws}
    chain_method = choose_chain_method(settings["chains"])

    # Hand-written: the same model and kernel settings, straight NumPyro.
    model = inputs.bound_model(spec.model)
    hand = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4, chain_method=chain_method, progress_bar=False)
    structure = results.model_structure(model, inputs.observed)
    starts = mcmc.unconstrained_starts(spec, inputs, jax.random.PRNGKey(2), 4, structure)

    def hand_run(seed, extra_fields=()):
        hand.run(jax.random.PRNGKey(seed), init_params=starts, extra_fields=extra_fields, **inputs.observed)
        jax.block_until_ready(hand.get_samples())

    # A second hand-written MCMC records the sample statistics probgen's diagnostics need
    # (energy for E-BFMI, step counts for tree depth, ...): this separates NumPyro's cost of
    # recording them from probgen's own overhead.
    hand_fields = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4, chain_method=chain_method,
                       progress_bar=False)

    def hand_fields_run(seed):
        hand_fields.run(jax.random.PRNGKey(seed), init_params=starts, extra_fields=EXTRA_FIELDS, **inputs.observed)
        jax.block_until_ready(hand_fields.get_samples())

    # probgen: the sampler and the results builder that `probgen.fit` uses.
    sampler = mcmc.make_program(spec, inputs, "nuts", dict(settings))
    phases = {"sampling_s": [], "results_s": []}

    def probgen_run(seed):
        key, results_key = jax.random.split(jax.random.PRNGKey(seed))
        start = time.perf_counter()
        samples, stats = mcmc.run_program(sampler, inputs, key, settings["max_tree_depth"], starts)
        phases["sampling_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        results.build_inference_data(spec, inputs, samples, results_key, sample_stats=stats, structure=structure)
        phases["results_s"].append(time.perf_counter() - start)

    # First runs compile; then the three alternate, so that drift in the machine's load falls
    # on all of them alike, and the medians are compared.
    hand_first = timed(lambda: hand_run(0))
    ours_first = timed(lambda: probgen_run(0))
    timed(lambda: hand_fields_run(0))
    times = {"hand": [], "ours": [], "hand_fields": []}
    for seed in range(1, repeats + 1):
        times["hand"].append(timed(lambda: hand_run(seed)))
        times["ours"].append(timed(lambda: probgen_run(seed)))
        times["hand_fields"].append(timed(lambda: hand_fields_run(seed)))
    hand_second, ours_second, hand_fields_second = (float(np.median(times[k])) for k in ("hand", "ours", "hand_fields"))
    phases = {k: round(float(np.median(v[1:])), 3) for k, v in phases.items()}
    return {
        "benchmark": "gmm_nuts_overhead",
        "data": "faithful N=272 D=2 K=2 full",
        "chains": 4, "warmup": warmup, "draws": draws, "chain_method": chain_method, "repeats": repeats,
        "device": device(),
        "handwritten_numpyro_s": round(hand_second, 3),
        "probgen_s": round(ours_second, 3),
        "ratio_probgen_over_handwritten": round(ours_second / hand_second, 3),
        "probgen_phases": phases,
        "handwritten_with_same_sample_stats_s": round(hand_fields_second, 3),
        "ratio_probgen_over_handwritten_with_same_sample_stats": round(ours_second / hand_fields_second, 3),
        "target_ratio_at_most": 1.10,
        "compile_and_first_run_s": {"handwritten": round(hand_first, 3), "probgen": round(ours_first, 3)},
    }


def log_likelihood_speed(num_points: int, repeats: int) -> dict:
    import jax.numpy as jnp
    from sklearn.mixture import GaussianMixture

    from probgen.models.gmm import mixture_log_likelihood

    rng = np.random.default_rng(0)
    D, K = 10, 5
    centres = rng.normal(size=(K, D)) * 3
    x = (centres[rng.integers(K, size=num_points)] + rng.normal(size=(num_points, D))).astype(np.float32)
    reference = GaussianMixture(K, covariance_type="full", random_state=0).fit(x[:5000])
    weights = jnp.asarray(reference.weights_, jnp.float32)
    means = jnp.asarray(reference.means_, jnp.float32)
    scale_tril = jnp.asarray(np.linalg.cholesky(reference.covariances_), jnp.float32)
    x_device = jnp.asarray(x)
    evaluate = jax.jit(mixture_log_likelihood)
    start = time.perf_counter()
    ours = evaluate(x_device, weights, means, scale_tril).block_until_ready()
    compile_s = time.perf_counter() - start
    ours_s = timed(lambda: evaluate(x_device, weights, means, scale_tril).block_until_ready(), repeats)
    theirs_s = timed(lambda: reference.score_samples(x), repeats)
    difference = float(np.max(np.abs(np.asarray(ours) - reference.score_samples(x))))
    return {
        "benchmark": "gmm_log_likelihood",
        "data": f"N={num_points} D={D} K={K} full covariance",
        "device": device(),
        "probgen_jit_s": round(ours_s, 5),
        "sklearn_score_samples_s": round(theirs_s, 5),
        "ratio_probgen_over_sklearn": round(ours_s / theirs_s, 3),
        "target": "ratio < 1 (faster than scikit-learn)",
        "probgen_compile_s": round(compile_s, 3),
        "max_abs_difference": difference,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws and repeats (a smoke run)")
    args = parser.parse_args()
    print(json.dumps(overhead(200 if args.quick else 1000, 200 if args.quick else 1000, 2 if args.quick else 3)), flush=True)
    print(json.dumps(log_likelihood_speed(100_000, 5 if args.quick else 20)), flush=True)


if __name__ == "__main__":
    main()
