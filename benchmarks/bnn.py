"""Speed of the BNN against hand-written NumPyro, one JSON line per comparison.

Data: scikit-learn's diabetes (442 rows, 10 features), standardised as `probgen fit bnn` does;
the model: one hidden layer of 20 tanh units, fixed Normal priors, Gaussian noise.

1. NUTS, 4 chains x 1000 draws after 1000 warm-up: probgen's sampler plus its InferenceData
   (what `probgen.fit` does after compiling) against `numpyro.infer.MCMC(NUTS(model))` with the
   same model, chain method and starting points. Reported: wall times, their ratio (target
   <= 1.10), and the smallest bulk ESS of the predictions and log density (what the report
   judges) per second of each.
2. SVI with the mean-field guide: steps per second of probgen's chunked optimiser (convergence
   check switched off) against a hand-written `lax.fori_loop` of the same `SVI.update`.

After a first, compiling run of each (reported apart) the runs alternate and medians are kept.

    python benchmarks/bnn.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time

from probgen.devices import expose_cpu_devices

expose_cpu_devices(4)

import arviz as az  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from _timing import device, timed  # noqa: E402

OPTIONS = {"hidden": "20"}


def _setup():
    from probgen import data
    from probgen.spec import load_spec

    spec = load_spec("bnn")
    inputs = spec.prepare(data.load("diabetes").frame, spec.resolve_options(OPTIONS))
    return spec, inputs


def _min_ess(samples: dict, lp: np.ndarray) -> float:
    """Smallest bulk ESS over the predictions at every row and the log density."""
    prediction = az.ess(az.convert_to_dataset({"prediction": samples["prediction"]}))["prediction"].values.min()
    log_density = float(az.ess(az.convert_to_dataset({"lp": lp}))["lp"].values)
    return float(min(prediction, log_density))


def nuts_comparison(warmup: int, draws: int, repeats: int) -> dict:
    from numpyro.infer import MCMC, NUTS

    from probgen.infer import mcmc, results
    from probgen.infer.chains import choose_chain_method

    spec, inputs = _setup()
    settings = {**mcmc.DEFAULTS, "warmup": warmup, "draws": draws}
    chain_method = choose_chain_method(settings["chains"])
    model = inputs.bound_model(spec.model)
    structure = results.model_structure(model, inputs.observed)
    starts = mcmc.unconstrained_starts(spec, inputs, jax.random.PRNGKey(2), 4, structure)
    hand = MCMC(NUTS(model), num_warmup=warmup, num_samples=draws, num_chains=4, chain_method=chain_method,
                progress_bar=False)
    found = {}

    def hand_run(seed):
        hand.run(jax.random.PRNGKey(seed), init_params=starts, extra_fields=("potential_energy",), **inputs.observed)
        samples = hand.get_samples(group_by_chain=True)
        jax.block_until_ready(samples)
        found["hand"] = ({k: np.asarray(v) for k, v in samples.items()},
                         -np.asarray(hand.get_extra_fields(group_by_chain=True)["potential_energy"]))

    sampler = mcmc.make_program(spec, inputs, "nuts", dict(settings))

    def probgen_run(seed):
        key, results_key = jax.random.split(jax.random.PRNGKey(seed))
        samples, stats = mcmc.run_program(sampler, inputs, key, settings["max_tree_depth"], starts)
        idata = results.build_inference_data(spec, inputs, samples, results_key, sample_stats=stats, structure=structure)
        found["ours"] = ({"prediction": idata.posterior["prediction"].values}, idata.sample_stats["lp"].values)

    hand_first = timed(lambda: hand_run(0))
    ours_first = timed(lambda: probgen_run(0))
    times = {"hand": [], "ours": []}
    for seed in range(1, repeats + 1):
        times["hand"].append(timed(lambda: hand_run(seed)))
        times["ours"].append(timed(lambda: probgen_run(seed)))
    hand_s, ours_s = float(np.median(times["hand"])), float(np.median(times["ours"]))
    hand_samples, hand_lp = found["hand"]
    # the hand-written run's predictions: f at every row per draw, as probgen's deterministic site
    hand_ess = _min_ess({"prediction": hand_samples["prediction"]}, hand_lp) if "prediction" in hand_samples else None
    ours_ess = _min_ess(*found["ours"])
    return {
        "benchmark": "bnn_nuts", "data": "diabetes N=442 D=10, hidden 20 tanh", "chains": 4, "warmup": warmup,
        "draws": draws, "chain_method": chain_method, "repeats": repeats, "device": device(),
        "handwritten_numpyro_s": round(hand_s, 3), "probgen_s": round(ours_s, 3),
        "ratio_probgen_over_handwritten": round(ours_s / hand_s, 3), "target_ratio_at_most": 1.10,
        "min_bulk_ess_per_s": {"probgen": round(ours_ess / ours_s, 1),
                               "handwritten": None if hand_ess is None else round(hand_ess / hand_s, 1)},
        "probgen_includes": "building the InferenceData (posterior predictive, log-likelihood, prior predictive)",
        "compile_and_first_run_s": {"handwritten": round(hand_first, 3), "probgen": round(ours_first, 3)},
    }


def svi_comparison(steps: int, repeats: int) -> dict:
    from numpyro import optim
    from numpyro.infer import SVI, Trace_ELBO

    from probgen.infer import svi as svi_module

    spec, inputs = _setup()
    model = inputs.bound_model(spec.model)
    guide = svi_module.make_guide(spec, model, "normal")
    runner = SVI(model, guide, optim.Adam(0.01), Trace_ELBO())
    settings = {**svi_module.DEFAULTS, "steps": steps, "rtol": 0.0}  # rtol 0: never stops early

    def ours():
        state, _, _ = svi_module.optimize(runner, jax.random.PRNGKey(0), inputs.observed, settings, False, "SVI")
        jax.block_until_ready(state)

    initial = runner.init(jax.random.PRNGKey(0), **inputs.observed)

    @jax.jit
    def all_steps(state):
        return jax.lax.fori_loop(0, steps, lambda _, s: runner.update(s, **inputs.observed)[0], state)

    def hand():
        jax.block_until_ready(all_steps(initial))

    first = {"probgen": timed(ours), "handwritten": timed(hand)}
    ours_s, hand_s = [], []
    for _ in range(repeats):
        ours_s.append(timed(ours))
        hand_s.append(timed(hand))
    ours_median, hand_median = float(np.median(ours_s)), float(np.median(hand_s))
    return {
        "benchmark": "bnn_svi_steps_per_second", "guide": "AutoNormal", "steps": steps, "device": device(),
        "probgen_steps_per_s": round(steps / ours_median, 1), "handwritten_steps_per_s": round(steps / hand_median, 1),
        "ratio_probgen_over_handwritten_speed": round(hand_median / ours_median, 3), "target_ratio_at_least": 0.91,
        "probgen_includes": "SVI.init and a convergence check every 250 steps",
        "compile_and_first_run_s": {k: round(v, 3) for k, v in first.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer draws, steps and repeats (a smoke run)")
    args = parser.parse_args()
    print(json.dumps(nuts_comparison(200 if args.quick else 1000, 200 if args.quick else 1000, 1 if args.quick else 3)),
          flush=True)
    print(json.dumps(svi_comparison(1000 if args.quick else 10000, 2 if args.quick else 5)), flush=True)


if __name__ == "__main__":
    main()
