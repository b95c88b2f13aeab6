"""Conformance: the twelve posteriordb posteriors, each a plain NumPyro model file fitted
through `probgen.fit` (the path `probgen fit MODEL.py --data data.json.gz` takes), compared
with the Stan team's reference draws.

    python analyses/posteriordb.py [--only NAME,...] [--out DIR] [--quiet]

Prints a table: posterior, verdict, parameters matching the reference (posteriordb's
criterion: |mean difference| <= 0.15 reference sd and sd ratio within 0.85-1.15), the worst
|mean difference| / sd and sd ratio, wall time and the smallest bulk ESS per second. Ports,
data and reference draws live in analyses/posteriordb/ (CC-BY 4.0, posteriordb; see its
README.md). With --out, each fit's run folder is written there too.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "posteriordb"
MEAN_TOLERANCE = 0.15  # |mean difference| in reference sds
SD_RATIO = (0.85, 1.15)
# Posteriors whose fit takes long on 2 CPU cores (timed in the README's table): the default
# suite runs the others, `make test-slow` all of them.
SLOW = ("diamonds-diamonds", "hudson_lynx_hare-lotka_volterra", "gp_pois_regr-gp_pois_regr",
        "bball_drive_event_1-hmm_drive_1", "nes1980-nes", "earnings-logearn_interaction_z")


# Settings a user would reach for after reading the report: the GP's funnel between alpha and
# f_tilde gives divergences at the default target acceptance of 0.8 (27 in 4,000 draws).
# At 0.95 4 divergences remain (measured), so its verdict stays "failed" while every parameter
# matches the reference: a finding the README's table explains, not a pass.
# The Lotka-Volterra rate constants started at uniform(-2, 2) on the log scale (up to 7.4, where
# the prey-predator cycles turn stiff) left every chain stuck with the ODE solver at its step
# limit (0 of 8 parameters matched, 815 s); from the prior median they mix.
SETTINGS = {"gp_pois_regr-gp_pois_regr": {"target_accept": 0.95},
            "hudson_lynx_hare-lotka_volterra": {"init": "median"}}
DIVERGENT = ("gp_pois_regr-gp_pois_regr",)


def names() -> list[str]:
    return sorted(p.name for p in HERE.iterdir() if (p / "model.py").is_file())


def reference_draws(name: str) -> dict[str, np.ndarray]:
    """'param[i,j]' -> the reference's 10 x 1000 draws, pooled."""
    chains = json.loads(gzip.decompress((HERE / name / "reference_draws.json.gz").read_bytes()))
    return {key: np.concatenate([np.asarray(chain[key], float) for chain in chains]) for key in chains[0]}


def our_draws(idata, key: str) -> np.ndarray:
    """Our pooled draws of Stan's 'param[i,j]' (1-based) from the posterior group."""
    match = re.fullmatch(r"([^\[]+)(?:\[([\d,]+)\])?", key)
    site, index = match.group(1), match.group(2)
    values = idata.posterior[site].values
    values = values.reshape((-1,) + values.shape[2:])
    if index:
        values = values[(slice(None),) + tuple(int(i) - 1 for i in index.split(","))]
    return values


def agreement(idata, name: str, reference: dict | None = None) -> dict:
    """Per reference parameter: the mean difference in reference sds and the sd ratio; whether
    every parameter meets posteriordb's criterion; the worst of each. `reference`: pooled draws
    by 'param[i,j]' key, or None for posterior `name`'s reference draws."""
    rows = []
    for key, reference in (reference_draws(name) if reference is None else reference).items():
        ours = our_draws(idata, key)
        sd = reference.std()
        rows.append({"parameter": key, "mean_difference_sd": abs(ours.mean() - reference.mean()) / sd,
                     "sd_ratio": ours.std() / sd})
    matching = [r for r in rows if r["mean_difference_sd"] <= MEAN_TOLERANCE and SD_RATIO[0] <= r["sd_ratio"] <= SD_RATIO[1]]
    worst_ratio = max(rows, key=lambda r: abs(np.log(r["sd_ratio"])))["sd_ratio"]
    return {"parameters": len(rows), "matching": len(matching), "passed": len(matching) == len(rows),
            "worst_mean_difference_sd": max(r["mean_difference_sd"] for r in rows), "worst_sd_ratio": worst_ratio,
            "rows": rows}


def fit_posterior(name: str, seed: int = 0, progress: bool = False, method: str = "nuts", **settings):
    """(Fit, wall seconds) of one port, as `probgen fit` runs it (with the port's SETTINGS
    that `method` has)."""
    from probgen import fit
    from probgen.infer import methods

    known = methods.get(method).defaults()
    chosen = {k: v for k, v in SETTINGS.get(name, {}).items() if k in known}
    start = time.perf_counter()
    result = fit(str(HERE / name / "model.py"), str(HERE / name / "data.json.gz"), method, seed=seed,
                 progress=progress, **{**chosen, **settings})
    return result, time.perf_counter() - start


def run(name: str, out: Path | None, seed: int, progress: bool) -> dict:
    import arviz as az

    from probgen import report

    result, seconds = fit_posterior(name, seed, progress)
    assessment = report.assess_run(result.idata, result.config(), result.spec)
    agreed = agreement(result.idata, name)
    ess = az.ess(result.idata, var_names=[v for v in result.idata.posterior.data_vars])
    smallest_ess = min(float(np.nanmin(ess[v].values)) for v in ess.data_vars)
    if out is not None:
        report.write_run(result, out / name, overwrite=True)
    return {"posterior": name, "verdict": assessment.overall, "matching": f"{agreed['matching']}/{agreed['parameters']}",
            "passed": agreed["passed"], "worst |mean diff|/sd": round(agreed["worst_mean_difference_sd"], 3),
            "worst sd ratio": round(agreed["worst_sd_ratio"], 3), "wall s": round(seconds, 1),
            "min ESS/s": round(smallest_ess / seconds, 1)}


def main(argv=None) -> int:
    from probgen.devices import expose_cpu_devices

    expose_cpu_devices(4)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated posterior names (default: all twelve)")
    parser.add_argument("--out", type=Path, help="also write each fit's run folder here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else names()
    unknown = [n for n in chosen if n not in names()]
    if unknown:
        print(f"unknown posterior(s): {', '.join(unknown)} (known: {', '.join(names())})", file=sys.stderr)
        return 2
    import pandas as pd

    rows = []
    for name in chosen:
        rows.append(run(name, args.out, args.seed, not args.quiet))
        if not args.quiet:
            print(json.dumps(rows[-1]), flush=True)
    from probgen.report.render import markdown_table

    table = pd.DataFrame(rows)
    print(markdown_table(table, index=False))
    print(f"{int(table['passed'].sum())} of {len(table)} posteriors match their reference")
    return 0 if table["passed"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
