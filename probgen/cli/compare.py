"""`probgen compare`: rank fitted models by PSIS-LOO."""

from __future__ import annotations

from pathlib import Path

from probgen.cli.common import EXIT_FAILED_VERDICT


def compare(args) -> int:
    from probgen import report
    from probgen.checks import comparison as comparing

    if args.out:
        report.check_destination(Path(args.out), args.overwrite)
    comparison = comparing.compare_runs(args.run_dirs)
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(comparison.table.to_string())
    print()
    print(comparison.reading)
    for line in comparing.pareto_lines(comparison):
        print(line)
    if args.out:
        folder = comparing.write_comparison(comparison, args.out, overwrite=args.overwrite)
        print(f"comparison report: {folder / 'comparison.html'}")
    preferable = "convergence" not in comparison.table or (comparison.table["convergence"] != "failed").any()
    return 0 if preferable else EXIT_FAILED_VERDICT
