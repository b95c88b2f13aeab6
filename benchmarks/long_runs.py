"""What durability costs: probgen's NUTS streaming its draws and sampler state to disk chunk by
chunk (`probgen.infer.durable`) against the same sampler in memory and NumPyro's `MCMC.run`.

    python benchmarks/long_runs.py [--only overhead,memory,resume] [--json FILE]

- overhead: wall time of a 4 x (1000 + 1000) NUTS run with checkpoints (the default: a save
  every 5% of the run or 60 s) against the same compiled program without them, and against
  NumPyro's `MCMC.run` (chain_method "parallel" on the 4 CPU devices the CLI exposes, its best
  layout here), on the Old Faithful mixture and a posteriordb regression
  (kidiq-kidscore_momhsiq). The sampling time (a second call, compilation apart) is the median
  of REPEATS calls; the first call (compilation included) is what a user waits for once.
- memory: peak resident memory of 4 chains x 20,000 draws (1,000 warm-up) of a model with 1,000
  parameters (a hierarchical normal, 998 group means), each sampler in its own process: probgen
  with checkpoints (peak while sampling, and after reading every draw back for the report)
  against NumPyro's single `MCMC.run`, which holds every draw until the end.
- resume: seconds from `probgen fit --resume RUN_DIR` (a run killed with SIGKILL while sampling)
  to its first new chunk on disk, with XLA's compilation cache warm and off; the runs save every
  5% (`--checkpoint-overhead 0`), so the new chunk is 5% of the run and this bounds the time to
  the first new draw from above.

One JSON line per measurement (appended to --json), then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
REPEATS = 3
MEMORY_DRAWS, MEMORY_WARMUP, MEMORY_GROUPS = 20000, 1000, 998


# --------------------------------------------------------------------------------------------
# overhead
# --------------------------------------------------------------------------------------------
def overhead(name: str) -> list[dict]:
    sys.path.insert(0, str(HERE))
    import samplers  # exposes 4 CPU devices before JAX starts, as the CLI does

    import jax

    from probgen.infer import durable, mcmc
    from probgen.infer.methods import get

    posterior = samplers.Posterior(name)
    nuts = get("nuts")
    settings = {**nuts.defaults(), "chains": samplers.CHAINS, "warmup": samplers.WARMUP, "draws": samplers.DRAWS,
                **posterior.settings}

    def timed(call):
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    rows = []
    # probgen, without and with checkpoints: one compiled program, first call apart
    program = mcmc.make_program(posterior.spec, posterior.inputs, nuts, dict(settings))
    depth = settings["max_tree_depth"]

    def in_memory(program, seed):
        program.run(jax.random.PRNGKey(seed), posterior.inputs.observed, posterior.starts(seed))

    def checkpointed(program, seed):
        with tempfile.TemporaryDirectory() as folder:
            request = durable.run_request(name, _Named(name), {}, settings, seed, 0.0)
            checkpoint = durable.open_checkpoint(Path(folder) / "run", request, resume=False, method=nuts)
            mcmc.run_durable(program, posterior.inputs, jax.random.PRNGKey(seed), depth, posterior.starts(seed), None,
                             checkpoint, False, "", settings)

    first = timed(lambda: in_memory(program, 0))
    memory_times = [timed(lambda: in_memory(program, 1)) for _ in range(REPEATS)]
    durable_times = [timed(lambda: checkpointed(program, 1)) for _ in range(REPEATS)]
    fresh = mcmc.make_program(posterior.spec, posterior.inputs, nuts, dict(settings))  # its first call compiles
    durable_first = timed(lambda: checkpointed(fresh, 0))
    numpyro = samplers.numpyro_runner(posterior, "parallel")
    numpyro_first = timed(lambda: numpyro(0))
    numpyro_times = [timed(lambda: numpyro(1)) for _ in range(REPEATS)]
    for sampler, first_s, times in (("probgen in memory", first, memory_times),
                                    ("probgen with checkpoints", durable_first, durable_times),
                                    ("numpyro MCMC.run (parallel)", numpyro_first, numpyro_times)):
        rows.append({"measure": "overhead", "posterior": name, "sampler": sampler, "first_call_s": round(first_s, 3),
                     "sampling_s": round(statistics.median(times), 3), "sampling_runs_s": [round(t, 3) for t in times]})
    base = rows[1]
    for row in rows:
        row["over_checkpointed"] = round(row["sampling_s"] / base["sampling_s"], 3)
    return rows


class _Named:
    """The data's identity for a checkpoint request (the benchmark's data are the port's)."""

    def __init__(self, name):
        self.source, self.sha256 = name, name


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as file:
        return int(file.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _Watch:
    """Resident memory every 20 ms in a thread: (seconds, MB) pairs."""

    def __init__(self):
        self.samples, self.running = [], True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            self.samples.append((time.monotonic(), _rss_mb()))
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()
        self.samples.append((time.monotonic(), _rss_mb()))

    def peak(self, until=None) -> float:
        return max(mb for t, mb in self.samples if until is None or t <= until)


def _memory_model():
    import numpy as np
    import numpyro
    import numpyro.distributions as dist

    def model(y):
        mu = numpyro.sample("mu", dist.Normal(0, 5))
        tau = numpyro.sample("tau", dist.HalfNormal(5))
        with numpyro.plate("group", y.shape[0]):
            theta = numpyro.sample("theta", dist.Normal(mu, tau))
            numpyro.sample("y", dist.Normal(theta, 1.0), obs=y)

    rng = np.random.default_rng(0)
    return model, {"y": rng.normal(1.0 + 3.0 * rng.normal(size=MEMORY_GROUPS), 1.0).astype("float32")}


def memory_child(sampler: str) -> dict:
    """One sampler's peak memory, in this (fresh) process."""
    from probgen.devices import expose_cpu_devices

    expose_cpu_devices(4)
    import jax
    import jax.numpy as jnp
    from numpyro.infer import init_to_uniform

    from probgen.infer import durable, mcmc
    from probgen.infer.chains import ChainProgram
    from probgen.infer.methods import get

    model, observed = _memory_model()
    observed = {k: jnp.asarray(v) for k, v in observed.items()}
    baseline = _rss_mb()
    watch = _Watch()
    start = time.perf_counter()
    row = {"measure": "memory", "sampler": sampler, "parameters": MEMORY_GROUPS + 2,
           "draws": f"4 x {MEMORY_DRAWS}", "baseline_mb": round(baseline, 1)}
    if sampler == "numpyro":
        from numpyro.infer import MCMC, NUTS

        run = MCMC(NUTS(model), num_warmup=MEMORY_WARMUP, num_samples=MEMORY_DRAWS, num_chains=4,
                   chain_method="parallel", progress_bar=False)
        run.run(jax.random.PRNGKey(0), **observed)
        draws = jax.block_until_ready(run.get_samples(group_by_chain=True))
        watch.stop()
        row.update(peak_mb=round(watch.peak(), 1), seconds=round(time.perf_counter() - start, 1),
                   draws_mb=round(sum(v.nbytes for v in draws.values()) / 2**20, 1))
    elif sampler == "probgen-in-memory":
        program = ChainProgram(model, observed, "NUTS", {"max_tree_depth": 10, "target_accept_prob": 0.8}, chains=4,
                               warmup=MEMORY_WARMUP, draws=MEMORY_DRAWS, init_strategy=init_to_uniform)
        output = program.run(jax.random.PRNGKey(0), observed)
        watch.stop()
        row.update(peak_mb=round(watch.peak(), 1), seconds=round(time.perf_counter() - start, 1),
                   draws_mb=round(sum(v.nbytes for v in output.samples.values()) / 2**20, 1))
    else:
        settings = {**get("nuts").defaults(), "chains": 4, "warmup": MEMORY_WARMUP, "draws": MEMORY_DRAWS}
        program = ChainProgram(model, observed, "NUTS", {"max_tree_depth": 10, "target_accept_prob": 0.8}, chains=4,
                               warmup=MEMORY_WARMUP, draws=MEMORY_DRAWS, init_strategy=init_to_uniform)
        writes = []
        with tempfile.TemporaryDirectory() as folder:
            request = durable.run_request("memory", _Named("memory"), {}, settings, 0, 0.0)
            checkpoint = durable.open_checkpoint(Path(folder) / "run", request, resume=False, method=get("nuts"))
            store_write = checkpoint.store.write

            def write(*args):
                path = store_write(*args)
                writes.append(time.monotonic())
                return path

            checkpoint.store.write = write
            result = mcmc.run_durable(program, type("Inputs", (), {"observed": observed})(), jax.random.PRNGKey(0), 10,
                                      None, None, checkpoint, False, "", settings)
            watch.stop()
            disk = sum(p.stat().st_size for p in (Path(folder) / "run").rglob("*") if p.is_file())
        # resident memory when each chunk was saved: flat if memory does not grow with the draws
        at_writes = [round(max(mb for t, mb in watch.samples if t <= w), 1) for w in writes]
        row.update(peak_sampling_mb=round(watch.peak(writes[-1]), 1), peak_mb=round(watch.peak(), 1),
                   peak_by_save_mb=[at_writes[i] for i in (0, len(writes) // 4, len(writes) // 2, -1)],
                   sampling_s=round(writes[-1] - watch.samples[0][0], 1),
                   seconds=round(time.perf_counter() - start, 1), chunks=len(writes),
                   draws_mb=round(sum(v.nbytes for v in result.samples.values()) / 2**20, 1),
                   disk_mb=round(disk / 2**20, 1))
    return row


def memory() -> list[dict]:
    rows = []
    for sampler in ("probgen", "probgen-in-memory", "numpyro"):
        done = subprocess.run([sys.executable, __file__, "--memory-child", sampler], capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"measure": "memory", "sampler": sampler, "error": done.stderr[-500:]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


# --------------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------------
def _chunks(out: Path) -> int:
    return len(list((out / "chains").glob("chunk-*.nc"))) if (out / "chains").is_dir() else 0


def _wait_for(out: Path, count: int, process, limit: float = 600) -> float:
    start = time.monotonic()
    while _chunks(out) < count:
        if process.poll() is not None:
            raise RuntimeError(f"probgen exited ({process.returncode}) before chunk {count}: {process.stderr.read()[-800:]}")
        if time.monotonic() - start > limit:
            raise RuntimeError(f"no chunk {count} after {limit} s")
        time.sleep(0.01)
    return time.monotonic() - start


def resume(name: str, fit_args: list[str]) -> list[dict]:
    rows = []
    for cache in ("warm", "off"):
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "run"
            env = {**os.environ, "MPLBACKEND": "Agg", **({"PROBGEN_CACHE_DIR": ""} if cache == "off" else {})}
            command = [sys.executable, "-m", "probgen.cli", "fit", *fit_args, "--quiet"]
            first = subprocess.Popen(command + ["--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env, cwd=ROOT)
            _wait_for(out, 13, first)  # into sampling (the first 10 chunks are warm-up)
            first.send_signal(signal.SIGKILL)
            first.wait()
            saved = _chunks(out)
            start = time.monotonic()
            second = subprocess.Popen(command + ["--resume", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env, cwd=ROOT)
            _wait_for(out, saved + 1, second)
            seconds = time.monotonic() - start
            second.kill()
            second.wait()
            rows.append({"measure": "resume", "posterior": name, "cache": cache, "to_first_new_chunk_s": round(seconds, 2),
                         "chunks_saved": saved})
    return rows


RESUMES = {
    "eight_schools": [str(ROOT / "benchmarks/eight_schools/model.py"), "--data",
                      str(ROOT / "benchmarks/eight_schools/data.json"), "--chains", "4", "--warmup", "30000",
                      "--draws", "30000", "--checkpoint-overhead", "0"],
    "gmm-faithful": ["gmm", "--data", "faithful", "--num-components", "2", "--chains", "4", "--warmup", "2000",
                     "--draws", "2000", "--checkpoint-overhead", "0"],
}


def table(rows: list[dict]) -> str:
    lines = []
    over = [r for r in rows if r["measure"] == "overhead"]
    if over:
        lines += ["| posterior | sampler | first call s | sampling s (median) | over probgen with checkpoints |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['posterior']} | {r['sampler']} | {r['first_call_s']} | {r['sampling_s']} | "
                  f"{r['over_checkpointed']} |" for r in over]
        lines.append("")
    mem = [r for r in rows if r["measure"] == "memory" and "error" not in r]
    if mem:
        lines += ["| sampler | parameters | draws | baseline MB | peak while sampling MB | peak MB | draws MB | s |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['sampler']} | {r['parameters']} | {r['draws']} | {r['baseline_mb']} | "
                  f"{r.get('peak_sampling_mb', r['peak_mb'])} | {r['peak_mb']} | {r['draws_mb']} | {r['seconds']} |"
                  for r in mem]
        lines.append("")
    res = [r for r in rows if r["measure"] == "resume"]
    if res:
        lines += ["| posterior | compilation cache | --resume to first new chunk s |", "|---|---|---|"]
        lines += [f"| {r['posterior']} | {r['cache']} | {r['to_first_new_chunk_s']} |" for r in res]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="overhead,memory,resume", help="comma-separated: overhead, memory, resume")
    parser.add_argument("--json", help="also append the rows here, one JSON line each")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child)))
        return 0
    rows = []

    def emit(new):
        for row in new:
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as file:
                    file.write(json.dumps(row) + "\n")
        rows.extend(new)

    parts = args.only.split(",")
    if "memory" in parts:
        emit(memory())
    if "resume" in parts:
        for name, fit_args in RESUMES.items():
            emit(resume(name, fit_args))
    if "overhead" in parts:  # last: it starts JAX in this process
        for name in ("gmm-faithful", "kidiq-kidscore_momhsiq"):
            emit(overhead(name))
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
