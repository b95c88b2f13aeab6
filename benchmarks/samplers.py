"""Effective draws per second of probgen's default sampler against NumPyro's NUTS as a user runs
it, nutpie and PyMC's NUTS, on the same posteriors in one run.

    python benchmarks/samplers.py [--only NAME,...] [--samplers NAME,...] [--no-command]
    python benchmarks/samplers.py --command-only [--only NAME,...]    (whole command against a cold nutpie)

Posteriors: eight schools (non-centred), the posteriordb ports (analyses/posteriordb/; the
Lotka-Volterra ODE is left out, see benchmarks/pymc_ports.py), the Gaussian mixture on Old
Faithful (K = 2, full covariance) and the HMM on the Nile (K = 2). Every sampler: 4 chains x
1000 draws after 1000 warm-up, the port's own settings (target acceptance) where it has them.

Samplers:
- probgen: what `probgen fit` runs (`probgen.infer.mcmc`, chain layout "auto");
- numpyro-sequential / -parallel / -vectorized: `numpyro.infer.MCMC(NUTS(model))` with that
  chain_method, progress bar off, as a user would write it;
- nutpie: the same posterior as a PyMC model (benchmarks/pymc_ports.py), compiled by nutpie
  (numba backend), its own mass-matrix adaptation;
- pymc: PyMC's own NUTS on that model, 4 chains on 2 processes.

Per posterior and sampler: the smallest bulk ESS over the compared parameters, the first call
(compilation included) and the sampling time apart (a second call with another seed; where a
first call took over SECOND_CALL_LIMIT s, the first call's time stands for both and
`compile_apart` is false), ESS per second of sampling, gradient evaluations (leapfrog steps of
the kept draws) per effective draw, and agreement with the reference: posteriordb's reference
draws by the Stan team, or for the three posteriors posteriordb lacks, a long nutpie run (10
chains x 2000 draws) of the PyMC port. posteriordb's criterion: |mean difference| <= 0.15
reference sd and sd ratio within 0.85-1.15 for every parameter. PyMC's time includes its
compilation (pm.sample compiles inside). With the command column on, also the wall time of the
whole `probgen fit` command (start to report, compilation included) against nutpie's compile
plus sampling.

One JSON line per (posterior, sampler), then a Markdown table with each sampler's ESS/s over
probgen's.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analyses"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from probgen.devices import expose_cpu_devices  # noqa: E402

expose_cpu_devices(4)  # as the CLI does: probgen's "auto" and NumPyro's "parallel" get 4 devices

import jax  # noqa: E402
import numpy as np  # noqa: E402

CHAINS, WARMUP, DRAWS = 4, 1000, 1000
SECOND_CALL_LIMIT = 60.0
SAMPLERS = ("probgen", "numpyro-sequential", "numpyro-parallel", "numpyro-vectorized", "nutpie", "pymc")
# probgen with a named warm-up adaptation (--adapt), run when asked for by --samplers
ADAPTED = tuple(f"probgen-{name}" for name in ("fisher", "stan", "low-rank"))
PORTS = {  # posteriordb port -> its PyMC builder in pymc_ports
    "arma-arma11": "arma11", "bball_drive_event_1-hmm_drive_1": "bball_hmm", "diamonds-diamonds": "diamonds",
    "earnings-logearn_interaction_z": "earnings", "gp_pois_regr-gp_pois_regr": "gp_pois_regr",
    "kidiq-kidscore_momhsiq": "kidiq", "kidiq_with_mom_work-kidscore_mom_work": "kidiq_with_mom_work",
    "kilpisjarvi_mod-kilpisjarvi": "kilpisjarvi", "mesquite-logmesquite_logvash": "mesquite",
    "nes1980-nes": "nes", "sblri-blr": "sblri",
}
# gp_pois_regr last: its model file turns on JAX's float64 for the rest of the process
POSTERIORS = ("eight_schools", *(p for p in PORTS if p != "gp_pois_regr-gp_pois_regr"), "gmm-faithful", "hmm-nile",
              "gp_pois_regr-gp_pois_regr")


class Posterior:
    """One posterior: probgen's spec and inputs, how `probgen fit` is called on it, its PyMC
    model, the compared parameters ('name[i,j]', 1-based) and their reference draws."""

    def __init__(self, name: str):
        import posteriordb
        import pymc_ports

        from probgen.infer import driver

        self.name, self.settings, self.reference, self.pymc_call = name, {}, None, None
        if name == "eight_schools":
            folder = ROOT / "benchmarks" / "eight_schools"
            self.model, self.data, self.options, self.cli = str(folder / "model.py"), str(folder / "data.json"), {}, []
            raw = json.loads((folder / "data.json").read_text())
            self.pymc = lambda: pymc_ports.eight_schools(raw)
            self.pymc_call = ("eight_schools", (raw,))
            self.keys = ["mu", "tau"] + [f"theta_tilde[{j + 1}]" for j in range(raw["J"])]
        elif name in PORTS:
            folder = posteriordb.HERE / name
            self.model, self.data, self.options, self.cli = str(folder / "model.py"), str(folder / "data.json.gz"), {}, []
            raw = {k: np.asarray(v) for k, v in json.loads(gzip.decompress((folder / "data.json.gz").read_bytes())).items()}
            builder = getattr(pymc_ports, PORTS[name], None)
            self.pymc = None if builder is None else (lambda: builder(raw))
            self.pymc_call = None if builder is None else (PORTS[name], (raw,))
            self.reference = posteriordb.reference_draws(name)
            self.keys = list(self.reference)
            self.settings = dict(posteriordb.SETTINGS.get(name, {}))
        elif name == "gmm-faithful":
            self.model, self.data, self.options = "gmm", "faithful", {"num_components": 2}
            self.cli = ["--num-components", "2"]
        elif name == "hmm-nile":
            self.model, self.data, self.options = "hmm", "nile", {"num_states": 2, "emission": "gaussian"}
            self.cli = ["--num-states", "2", "--emission", "gaussian"]
        self.spec = driver.as_spec(self.model)
        _, self.inputs, _ = driver.prepare(self.spec, self.data, self.spec.resolve_options(self.options))
        if name == "gmm-faithful":
            K, D = self.inputs.kwargs["num_components"], self.inputs.observed["x"].shape[1]
            self.pymc = lambda: pymc_ports.gmm(self.inputs.kwargs, self.inputs.observed)
            self.pymc_call = ("gmm", (_plain(self.inputs.kwargs), _plain(self.inputs.observed)))
            self.keys = ([f"weights[{k + 1}]" for k in range(K)] + [f"ordered_means[{k + 1}]" for k in range(K)]
                         + [f"other_means[{k + 1},{d + 1}]" for k in range(K) for d in range(D - 1)]
                         + [f"scales[{k + 1},{d + 1}]" for k in range(K) for d in range(D)])
        elif name == "hmm-nile":
            K = self.inputs.kwargs["num_states"]
            self.pymc = lambda: pymc_ports.hmm(self.inputs.kwargs, self.inputs.observed)
            self.pymc_call = ("hmm", (_plain(self.inputs.kwargs), _plain(self.inputs.observed)))
            self.keys = ([f"init_probs[{k + 1}]" for k in range(K)] + [f"ordered_means[{k + 1}]" for k in range(K)]
                         + [f"transition[{i + 1},{j + 1}]" for i in range(K) for j in range(K)]
                         + [f"scales[{k + 1},1]" for k in range(K)])

    def starts(self, seed: int):
        """The family's own per-chain starts (probgen's `ModelSpec.init`), given to NumPyro's
        MCMC too; None where the family has none."""
        from probgen.infer import mcmc, results

        if self.spec.init is None:
            return None
        structure = results.model_structure(self.inputs.bound_model(self.spec.model), self.inputs.observed)
        return mcmc.unconstrained_starts(self.spec, self.inputs, jax.random.PRNGKey(seed), CHAINS, structure)


def extract(posterior: dict, key: str) -> np.ndarray:
    """(chain, draw) draws of 'name[i,j]' (1-based) from {name: (chain, draw, ...) array}."""
    import re

    match = re.fullmatch(r"([^\[]+)(?:\[([\d,]+)\])?", key)
    values = np.asarray(posterior[match.group(1)])
    if match.group(2):
        values = values[(slice(None), slice(None)) + tuple(int(i) - 1 for i in match.group(2).split(","))]
    return values


def summarise(posterior: dict, keys, reference: dict | None) -> dict:
    import arviz as az

    draws = {key: extract(posterior, key) for key in keys}
    ess = min(float(az.ess(d[None] if d.ndim == 1 else d, method="bulk")) for d in draws.values())
    row = {"min_bulk_ess": round(ess, 1)}
    if reference is not None:  # posteriordb's criterion, as analyses/posteriordb.py applies it
        import posteriordb

        agreed = posteriordb.agreement(az.from_dict(posterior=posterior), None, reference)
        row.update({"matching": f"{agreed['matching']}/{agreed['parameters']}", "agrees": bool(agreed["passed"]),
                    "worst_mean_diff_sd": round(float(agreed["worst_mean_difference_sd"]), 3),
                    "worst_sd_ratio": round(float(agreed["worst_sd_ratio"]), 3)})
    return row


def _twice(call):
    """(first call's seconds, sampling seconds, second call's result, compile_apart)."""
    start = time.perf_counter()
    result = call(0)
    first = time.perf_counter() - start
    if first > SECOND_CALL_LIMIT:
        return first, first, result, False
    start = time.perf_counter()
    result = call(1)
    return first, time.perf_counter() - start, result, True


def run_probgen(p: Posterior, adapt: str | None = None) -> dict:
    from probgen.infer import mcmc
    from probgen.infer.methods import get

    settings = {**get("nuts").defaults(), "chains": CHAINS, "warmup": WARMUP, "draws": DRAWS, **p.settings}
    if adapt is not None:
        settings["adapt"] = adapt
    program = mcmc.make_program(p.spec, p.inputs, "nuts", settings)

    def call(seed):
        starts = p.starts(seed)
        samples, stats = mcmc.run_program(program, p.inputs, jax.random.PRNGKey(seed), settings["max_tree_depth"], starts)
        return samples, int(stats["n_steps"].sum())

    first, sampling, (samples, grads), apart = _twice(call)
    return {"first_call_s": first, "sampling_s": sampling, "compile_apart": apart, "posterior": samples,
            "gradients": grads, "layout": program.chain_method}


def numpyro_runner(p: Posterior, chain_method: str):
    """call(seed) -> (draws, gradients): `numpyro.infer.MCMC(NUTS(model))` as a user writes it."""
    import warnings

    from numpyro.infer import MCMC, NUTS, init_to_median, init_to_uniform

    init = init_to_median if p.settings.get("init") == "median" else init_to_uniform
    kernel = NUTS(p.inputs.bound_model(p.spec.model), target_accept_prob=p.settings.get("target_accept", 0.8),
                  init_strategy=init)
    sampler = MCMC(kernel, num_warmup=WARMUP, num_samples=DRAWS, num_chains=CHAINS, chain_method=chain_method,
                   progress_bar=False)

    def call(seed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler.run(jax.random.PRNGKey(seed), init_params=p.starts(seed), extra_fields=("num_steps",),
                        **p.inputs.observed)
        samples = jax.block_until_ready(sampler.get_samples(group_by_chain=True))
        return {k: np.asarray(v) for k, v in samples.items()}, int(sampler.get_extra_fields()["num_steps"].sum())

    return call


def run_numpyro(p: Posterior, chain_method: str) -> dict:
    first, sampling, (samples, grads), apart = _twice(numpyro_runner(p, chain_method))
    return {"first_call_s": first, "sampling_s": sampling, "compile_apart": apart, "posterior": samples,
            "gradients": grads}


def _posterior_of(trace) -> dict:
    return {k: trace.posterior[k].values for k in trace.posterior.data_vars}


def run_nutpie(p: Posterior, chains: int = CHAINS, draws: int = DRAWS, seed: int = 1) -> dict:
    import nutpie

    model = p.pymc()
    start = time.perf_counter()
    compiled = nutpie.compile_pymc_model(model)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    trace = nutpie.sample(compiled, chains=chains, tune=WARMUP, draws=draws, seed=seed, progress_bar=False,
                          target_accept=p.settings.get("target_accept", 0.8))
    sampling = time.perf_counter() - start
    return {"first_call_s": compile_s + sampling, "compile_s": compile_s, "sampling_s": sampling, "compile_apart": True,
            "posterior": _posterior_of(trace), "gradients": int(trace.sample_stats["n_steps"].values.sum())}


def run_pymc(p: Posterior) -> dict:
    import logging

    import pymc as pm

    logging.getLogger("pymc").setLevel(logging.ERROR)
    model = p.pymc()
    start = time.perf_counter()
    trace = pm.sample(model=model, chains=CHAINS, cores=2, tune=WARMUP, draws=DRAWS, random_seed=1, progressbar=False,
                      target_accept=p.settings.get("target_accept", 0.8), compute_convergence_checks=False)
    seconds = time.perf_counter() - start
    return {"first_call_s": seconds, "sampling_s": seconds, "compile_apart": False, "posterior": _posterior_of(trace),
            "gradients": int(trace.sample_stats["n_steps"].values.sum())}


def whole_command(p: Posterior, variants=((), ())) -> tuple[float, ...]:
    """Wall seconds of `probgen fit` on this posterior, start to report, in a fresh process: with
    an empty compilation cache (a first fit), then again with the cache that run left; one run
    per variant (extra flags), in order."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "probgen.cli", "fit", p.model, "--data", p.data, *p.cli,
                   "--out", str(Path(folder) / "run"), "--quiet", "--overwrite"]
        command += [f"--{k.replace('_', '-')}={v}" for k, v in p.settings.items()]
        env = {**os.environ, "PROBGEN_CACHE_DIR": str(Path(folder) / "cache")}
        times = []
        for extra in variants:
            start = time.perf_counter()
            # exit 1 (a step failed) and 3 (the verdict failed) are still a whole command's time
            done = subprocess.run(command + list(extra), capture_output=True, cwd=ROOT, env=env)
            if done.returncode not in (0, 1, 3):
                raise RuntimeError(f"probgen fit exited {done.returncode}: {done.stderr.decode()[-300:]}")
            times.append(time.perf_counter() - start)
        return tuple(times)


def _plain(mapping) -> dict:
    """A dict with JAX arrays as NumPy arrays: unpickling it needs neither JAX nor probgen."""
    return {k: np.asarray(v) if hasattr(v, "shape") else v for k, v in mapping.items()}


def cold_nutpie(p: Posterior) -> float | None:
    """Wall seconds of nutpie as a user starts it (benchmarks/cold_nutpie.py): a fresh process
    that imports PyMC and nutpie, builds and compiles the model and samples; None without a port."""
    import pickle

    if p.pymc_call is None:
        return None
    builder, arguments = p.pymc_call
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "arguments.pickle"
        path.write_bytes(pickle.dumps(arguments))
        command = [sys.executable, str(ROOT / "benchmarks" / "cold_nutpie.py"), builder, str(path),
                   str(p.settings.get("target_accept", 0.8))]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, cwd=folder)
        if done.returncode != 0:
            raise RuntimeError(f"cold nutpie exited {done.returncode}: {done.stderr.decode()[-300:]}")
        return time.perf_counter() - start


def _whole(value):
    return "" if value is None or value != value else (f"{value:.1f}" if value < 10 else f"{value:.0f}")


def summary(rows: list[dict]):
    """One row per posterior: each sampler's ESS/s, nutpie's over probgen's, whether each agreed
    with the reference, and the whole-command times."""
    import pandas as pd

    table = pd.DataFrame([r for r in rows if "error" not in r])
    out = []
    for name, group in table.groupby("posterior", sort=False):
        by = group.set_index("sampler")
        def get(sampler, key):
            value = by.at[sampler, key] if sampler in by.index and key in by.columns else None
            return None if isinstance(value, float) and value != value else value

        numpyro = by[by.index.str.startswith("numpyro")]
        best = numpyro["ess_per_s"].idxmax() if len(numpyro) else None
        row = {"posterior": name, "probgen ESS/s": _whole(get("probgen", "ess_per_s")),
               "best NumPyro ESS/s": "" if best is None else f"{numpyro.at[best, 'ess_per_s']:.0f} ({best.split('-')[1]})",
               "nutpie ESS/s": _whole(get("nutpie", "ess_per_s")), "PyMC ESS/s": _whole(get("pymc", "ess_per_s"))}
        ours, theirs = get("probgen", "ess_per_s"), get("nutpie", "ess_per_s")
        row["nutpie / probgen"] = "" if ours is None or theirs is None or theirs != theirs else f"{theirs / ours:.2f}"
        # gradient evaluations per effective draw: the sampler's efficiency apart from the cost
        # of one gradient (issue 31's goal: probgen's at most 1.2 x nutpie's)
        grads, nutpie_grads = get("probgen", "gradients_per_ess"), get("nutpie", "gradients_per_ess")
        row["probgen gradients / ESS"] = "" if grads is None else f"{grads:g}"
        row["nutpie gradients / ESS"] = "" if nutpie_grads is None else f"{nutpie_grads:g}"
        row["gradients probgen / nutpie"] = ("" if grads is None or nutpie_grads is None
                                             else f"{grads / nutpie_grads:.2f}")
        row["agree with reference"] = " ".join(f"{s.split('-')[-1]}:{by.at[s, 'matching']}" for s in by.index
                                               if not by.at[s, "agrees"]) or "all"
        cold, cached = get("probgen", "probgen_fit_command_s"), get("probgen", "probgen_fit_command_cached_s")
        row["probgen fit s (cold / cached)"] = "" if cold is None or cold != cold else f"{cold:.1f} / {cached:.1f}"
        row["nutpie compile + sample s"] = get("nutpie", "nutpie_compile_and_sample_s") or get("nutpie", "first_call_s")
        out.append(row)
    return pd.DataFrame(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated posteriors (default: all): {', '.join(POSTERIORS)}")
    parser.add_argument("--samplers", help=f"comma-separated samplers (default: all): {', '.join(SAMPLERS)}")
    parser.add_argument("--no-command", action="store_true", help="skip timing the whole `probgen fit` command")
    parser.add_argument("--command-only", action="store_true",
                        help="only time the whole `probgen fit` command (cold and cached) against a cold nutpie process")
    parser.add_argument("--json", type=Path, help="also append the rows here, one JSON line each")
    parser.add_argument("--summary", type=Path, help="only print the per-posterior summary of rows written by --json")
    args = parser.parse_args(argv)
    if args.summary:
        from probgen.report.render import markdown_table

        print(markdown_table(summary([json.loads(line) for line in args.summary.read_text().splitlines()]), index=False))
        return 0
    chosen = args.only.split(",") if args.only else list(POSTERIORS)
    samplers = args.samplers.split(",") if args.samplers else list(SAMPLERS)
    unknown = [n for n in chosen if n not in POSTERIORS] + [s for s in samplers if s not in SAMPLERS + ADAPTED]
    if unknown:
        print(f"unknown posterior or sampler: {', '.join(unknown)}", file=sys.stderr)
        return 2
    import pandas as pd

    from _timing import device
    from probgen.report.render import markdown_table

    rows = []
    if args.command_only:
        for name in chosen:
            p = Posterior(name)
            cold, cached, bare = whole_command(p, ((), (), ("--no-plots",)))
            try:
                nutpie_s, failed = cold_nutpie(p), None
            except RuntimeError as exc:  # nutpie failing on a posterior is a finding, not a stop
                nutpie_s, failed = None, str(exc).splitlines()[0][:200]
            row = {"posterior": name, "probgen_fit_command_s": round(cold, 2), "probgen_fit_command_cached_s":
                   round(cached, 2), "probgen_fit_cached_no_plots_s": round(bare, 2),
                   "nutpie_cold_s": None if nutpie_s is None else round(nutpie_s, 2), "device": device()}
            row["probgen_over_nutpie"] = None if nutpie_s is None else round(cold / nutpie_s, 2)
            if failed:
                row["nutpie_error"] = failed
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                with args.json.open("a") as out:
                    out.write(json.dumps(row) + "\n")
        print(markdown_table(pd.DataFrame(rows), index=False))
        return 0
    for name in chosen:
        p = Posterior(name)
        reference, reference_source = p.reference, "posteriordb"
        if reference is None:
            long = run_nutpie(p, chains=10, draws=2000, seed=12345)
            reference = {key: extract(long["posterior"], key).ravel() for key in p.keys}
            reference_source = "nutpie 10x2000"
        command_s = None if args.no_command else whole_command(p)
        for sampler in samplers:
            if sampler in ("nutpie", "pymc") and p.pymc is None:
                continue
            runner = {"probgen": run_probgen, "nutpie": run_nutpie, "pymc": run_pymc,
                      **{name: (lambda p, a=name.split("-", 1)[1]: run_probgen(p, a)) for name in ADAPTED}}.get(sampler)
            try:
                out = runner(p) if runner else run_numpyro(p, sampler.split("-", 1)[1])
            except Exception as exc:  # a sampler that fails on a posterior is a finding, not a stop
                rows.append({"posterior": name, "sampler": sampler, "error": f"{type(exc).__name__}: {exc}"[:300]})
                print(json.dumps(rows[-1]), flush=True)
                continue
            row = {"posterior": name, "sampler": sampler, **summarise(out.pop("posterior"), p.keys, reference)}
            row.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()})
            row["ess_per_s"] = round(row["min_bulk_ess"] / out["sampling_s"], 1)
            row["gradients_per_ess"] = round(out["gradients"] / row["min_bulk_ess"], 1)
            row["reference"] = reference_source
            if sampler == "probgen" and command_s is not None:
                row["probgen_fit_command_s"], row["probgen_fit_command_cached_s"] = (round(t, 2) for t in command_s)
            if sampler == "nutpie":
                row["nutpie_compile_and_sample_s"] = round(out["compile_s"] + out["sampling_s"], 2)
            row["device"] = device()
            rows.append(row)
            print(json.dumps(rows[-1]), flush=True)
            if args.json:  # row by row, so that a long run's rows survive an interruption
                with args.json.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    table = pd.DataFrame([r for r in rows if "error" not in r])
    base = table[table["sampler"] == "probgen"].set_index("posterior")["ess_per_s"]
    table["ESS/s over probgen"] = [round(r.ess_per_s / base[r.posterior], 2) if r.posterior in base else None
                                   for r in table.itertuples()]
    columns = ["posterior", "sampler", "min_bulk_ess", "first_call_s", "sampling_s", "ess_per_s", "gradients_per_ess",
               "matching", "ESS/s over probgen"]
    print(markdown_table(table[columns], index=False))
    print()
    print(markdown_table(summary(rows), index=False))
    if "probgen_fit_command_s" in table:
        command = table[table["sampler"] == "probgen"][["posterior", "probgen_fit_command_s", "probgen_fit_command_cached_s"]]
        if "nutpie_compile_and_sample_s" in table:  # absent when every nutpie row failed
            command = command.merge(table[table["sampler"] == "nutpie"][["posterior", "nutpie_compile_and_sample_s"]],
                                    on="posterior", how="left")
        print()
        print(markdown_table(command, index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
