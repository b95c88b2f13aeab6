"""Speed and memory of pmf's minibatch SVI, one JSON line per measurement.

1. SVI steps per second: probgen's trainer (`probgen.infer.amortized.train` on a `Stream`:
   batches gathered on the host a chunk of 250 steps at a time while the previous chunk
   trains, one compiled `lax.scan` per chunk, a validation score after each) against a
   hand-written NumPyro loop compiled the same way (`SVI.update` in one `lax.scan` over batches
   staged on the device beforehand), same model, guide, batches, optimiser and data (MovieLens,
   100,004 ratings, latent 10, batch 1,024). Steady-state chunks; ratio ours / theirs (target
   >= 0.95).
2. Ratings per second at 1, 2 and 4 devices (forced host devices,
   XLA_FLAGS=--xla_force_host_platform_device_count=4, one process per count): the batch
   (4,096) split across the devices.
3. Scale: 10 million ratings simulated from the model fitted to MovieLens (its mu, sigma and
   scales; 67,100 new users and 9,066 items drawn from the fitted population), written to
   Parquet and fitted by the same command users run (`probgen fit pmf --data FILE --method
   svi`): throughput while training and peak resident memory of the whole command, beside the
   same at 1 million.

    python benchmarks/pmf.py [--quick] [--part steps|devices|scale]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from _timing import device

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 250
REPEATS = 5


def _movielens_rows(latent_dim: int = 10):
    from probgen.models.pmf import SPEC
    from probgen.data.ratings import load_ratings

    options = SPEC.resolve_options({"latent_dim": latent_dim})
    inputs = SPEC.prepare(load_ratings("movielens", options).frame, options)
    fixed = {k: v for k, v in inputs.kwargs.items() if k not in ("user", "item")}
    rows = {"user": inputs.kwargs["user"], "item": inputs.kwargs["item"], "rating": inputs.observed["rating"]}
    return SPEC, fixed, rows


def svi_speed(chunks: int, batch: int = 1024) -> dict:
    from numpyro import optim
    from numpyro.infer import SVI, Trace_ELBO
    import optax

    from probgen.infer.amortized import Stream, train
    from probgen.models.pmf.parts import validation_score

    spec, fixed, rows = _movielens_rows()
    steps = chunks * CHUNK
    validation = {name: value[:10_000] for name, value in rows.items()}

    def kwargs(n, b=None, w=1.0):
        return {**fixed, "num_points": n}

    settings = {"steps": steps, "batch_size": batch, "learning_rate": 0.01, "patience": 10**9, "eval_every": CHUNK}

    def ours():
        stream = Stream(rows, batch, seed=0)
        return train(spec.model, spec.guide, kwargs, stream, validation, settings, jax.random.PRNGKey(0),
                     lambda p, r, k: validation_score(p, r, {}, k), progress=False)

    stream = Stream(rows, batch, seed=0)
    staged = stream.chunk(0, steps)  # every batch on the device before the loop
    svi = SVI(spec.model, spec.guide, optim.optax_to_numpyro(optax.adam(0.01)), Trace_ELBO())
    num = len(rows["rating"])
    initial = jax.jit(lambda key, b: svi.init(key, **b, **kwargs(num)))(jax.random.PRNGKey(0), stream.first_batch())

    @jax.jit
    def all_steps(state, batches):
        return jax.lax.scan(lambda s, b: svi.update(s, **b, **kwargs(num)), state, batches)

    def handwritten():
        jax.block_until_ready(all_steps(initial, staged))

    start = time.perf_counter()
    handwritten()
    compile_s = time.perf_counter() - start
    ours_per_step, theirs_per_step = [], []
    for _ in range(REPEATS):  # alternate, so that drift in the machine's load falls on both alike
        result = ours()
        ours_per_step.append(float(np.median(result.history["seconds"][1:])) / CHUNK)
        start = time.perf_counter()
        handwritten()
        theirs_per_step.append((time.perf_counter() - start) / steps)
    ours_s, theirs_s = float(np.median(ours_per_step)), float(np.median(theirs_per_step))
    return {"benchmark": "pmf_svi_steps_per_second", "data": f"movielens {num} ratings", "latent_dim": 10,
            "batch_size": batch, "steps": steps, "device": device(),
            "probgen_steps_per_s": round(1 / ours_s, 1), "handwritten_steps_per_s": round(1 / theirs_s, 1),
            "ratio_probgen_over_handwritten": round(theirs_s / ours_s, 3), "target_ratio_at_least": 0.95,
            "ratio_per_pair": [round(t / o, 3) for o, t in zip(ours_per_step, theirs_per_step)],
            "probgen_includes": "host batching of the next chunk and a validation score on 10,000 ratings per chunk",
            "handwritten_compile_s": round(compile_s, 2)}


def _devices_child(devices: int, chunks: int, batch: int) -> dict:
    from probgen.infer.amortized import Stream, train
    from probgen.models.pmf.parts import validation_score

    spec, fixed, rows = _movielens_rows()
    settings = {"steps": chunks * CHUNK, "batch_size": batch, "learning_rate": 0.01, "patience": 10**9,
                "eval_every": CHUNK}
    result = train(spec.model, spec.guide, lambda n, b=None, w=1.0: {**fixed, "num_points": n},
                   Stream(rows, batch, seed=0, devices=devices), {k: v[:10_000] for k, v in rows.items()}, settings,
                   jax.random.PRNGKey(0), lambda p, r, k: validation_score(p, r, {}, k), progress=False)
    per_chunk = float(np.median(result.history["seconds"][1:]))
    return {"devices": devices, "ratings_per_s": round(CHUNK * batch / per_chunk), "visible": jax.device_count()}


def devices_speed(chunks: int, batch: int = 4096) -> dict:
    figures = []
    for count in (1, 2, 4):
        environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
                       "PYTHONPATH": f"{ROOT}:{ROOT / 'benchmarks'}"}
        done = subprocess.run([sys.executable, __file__, "--child-devices", str(count), "--chunks", str(chunks),
                               "--batch", str(batch)], capture_output=True, text=True, env=environment, check=True)
        figures.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {"benchmark": "pmf_ratings_per_second_by_device_count", "batch_size": batch, "device": device(),
            "forced_host_devices": 4, "cpu_cores": os.cpu_count(), "figures": figures,
            "speedup_4_over_1": round(figures[2]["ratings_per_s"] / figures[0]["ratings_per_s"], 2)}


def _simulated_file(num_ratings: int, folder: Path) -> Path:
    """Ratings from the model fitted to MovieLens (a short SVI fit gives the population's
    parameters), users scaled with the ratings."""
    from probgen.infer import fit
    from probgen.models.pmf.model import simulate_ratings

    fitted = fit("pmf", "movielens", options={"latent_dim": 10}, progress=False, holdout=0.1, steps=3000,
                 batch_size=1024, learning_rate=0.01, draws=20).idata.posterior
    truth = {name: np.asarray(fitted[name].mean(("chain", "draw")))
             for name in ("mu", "sigma", "user_scale", "item_scale", "factor_scale")}
    users = int(671 * num_ratings / 100_004)
    frame, _ = simulate_ratings(users, 9066, int(num_ratings * 1.02), truth, latent_dim=10, seed=1, popularity=0.9)
    path = folder / f"ratings_{num_ratings}.parquet"
    frame.iloc[:num_ratings].to_parquet(path)
    return path


def scale(sizes: list[int], steps: int, batch: int = 8192) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            path = _simulated_file(size, Path(folder))
            run = Path(folder) / f"run_{size}"
            command = [sys.executable, "-m", "probgen.cli", "fit", "pmf", "--data", str(path), "--method", "svi",
                       "--latent-dim", "10", "--steps", str(steps), "--batch-size", str(batch), "--learning-rate",
                       "0.01", "--eval-every", str(CHUNK), "--holdout", "0.02", "--draws", "20", "--out", str(run),
                       "--quiet"]
            code = ("import resource, subprocess, sys, time, json; t = time.perf_counter(); "
                    f"r = subprocess.run({command!r}); w = time.perf_counter() - t; "
                    "print(json.dumps({'rc': r.returncode, 'wall_s': w, "
                    "'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            config = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
            history = None
            if (run / "posterior.nc").exists():
                import arviz as az

                optimisation = az.from_netcdf(run / "posterior.nc").optimization
                history = optimisation["seconds"].values
            per_chunk = float(np.median(history[1:])) if history is not None and len(history) > 1 else float("nan")
            out.append({"benchmark": "pmf_scale", "ratings": size, "users": int(671 * size / 100_004),
                        "items": 9066, "batch_size": batch, "steps": steps, "device": device(), "rc": measured["rc"],
                        "command_wall_s": round(measured["wall_s"], 1),
                        "training_ratings_per_s": round(CHUNK * batch / per_chunk),
                        "peak_resident_mib": round(measured["peak_kib"] / 1024),
                        "peak_bytes_per_rating": round(measured["peak_kib"] * 1024 / size),
                        "steps_run": (config.get("settings") or {}).get("steps_run")})
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (a smoke run)")
    parser.add_argument("--part", choices=("steps", "devices", "scale"), action="append")
    parser.add_argument("--child-devices", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--chunks", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=4096, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_devices:
        print(json.dumps(_devices_child(args.child_devices, args.chunks, args.batch)))
        return
    parts = args.part or ["steps", "devices", "scale"]
    if "steps" in parts:
        print(json.dumps(svi_speed(2 if args.quick else 8)), flush=True)
    if "devices" in parts:
        print(json.dumps(devices_speed(3 if args.quick else 5)), flush=True)
    if "scale" in parts:
        scale([100_000] if args.quick else [1_000_000, 10_000_000], 500 if args.quick else 2000)


if __name__ == "__main__":
    main()
