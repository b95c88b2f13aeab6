"""Old Faithful as a two-component Gaussian mixture, and how many components the data support.

Fits a K = 2 mixture with full covariance to the eruption length and waiting time of the 272
eruptions in R's `faithful` data (NUTS, 4 chains x 1000 draws), then fits K = 1..4 the same way
and ranks them by PSIS-LOO. Writes one run folder for the K = 2 fit whose report carries the
comparison.

    python analyses/faithful_gmm.py --out runs/faithful_gmm [--overwrite] [--quiet]
"""

from __future__ import annotations

import sys

from probgen.devices import expose_cpu_devices


def parse_args(argv=None):
    from _loo_choice import study_arguments

    return study_arguments(__doc__.split("\n\n")[0], "runs/faithful_gmm", "components", 4).parse_args(argv)


def run(args) -> int:

    from _loo_choice import fit_and_choose

    from probgen import data, report
    from probgen.errors import ProbgenError

    try:
        report.check_destination(args.out, args.overwrite)
        faithful = data.load("faithful", columns=["eruptions", "waiting"])
        candidates = {f"K={K}": {"num_components": K, "covariance": "full"} for K in range(1, args.max_components + 1)}
        choice = fit_and_choose("gmm", faithful, candidates, seed=args.seed, progress=not args.quiet,
                                chains=args.chains, warmup=args.warmup, draws=args.draws)
        section = choice.section(
            "How many components? PSIS-LOO for K = 1.." + str(args.max_components),
            "Each K was fitted like the main run (full covariance, NUTS, same chains and draws).")
        main = choice.fits["K=2"]
        folder = report.write_run(main, args.out, overwrite=args.overwrite, sections=[section],
                                  extra_metrics={"loo_comparison": choice.metrics()})
    except ProbgenError as exc:
        print(f"faithful_gmm: error: {exc}", file=sys.stderr)
        return 2
    assessment = choice.verdicts["K=2"]
    print(f"{assessment.overall.upper()}: {assessment.summary}")
    print(choice.reading, f"Chosen by the rule: {choice.chosen} ({choice.reason}).")
    print(f"run folder: {folder}  (open {folder / 'report.html'})")
    return 0


if __name__ == "__main__":
    arguments = parse_args()
    expose_cpu_devices(arguments.chains)
    sys.exit(run(arguments))
