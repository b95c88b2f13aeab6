"""Pathfinder against NUTS on the twelve posteriordb ports: wall time of each (compilation
included, as a user waits for it) and the agreement of each with the Stan team's reference
draws by posteriordb's criterion (|mean difference| <= 0.15 reference sd, sd ratio within
0.85-1.15), plus Pathfinder's own verdict (Pareto k of its importance weights).

    python benchmarks/pathfinder.py [--only NAME,...]

One JSON line per posterior, then a Markdown table. Pathfinder is a first look: where its
Pareto k is above 0.7 its verdict says so, and the agreement columns show what that means.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "analyses"))


def compare(name: str, seed: int) -> dict:
    import posteriordb

    from probgen import report

    row = {"posterior": name}
    for method in ("pathfinder", "nuts"):
        result, seconds = posteriordb.fit_posterior(name, seed, method=method)
        agreed = posteriordb.agreement(result.idata, name)
        verdict = report.assess_run(result.idata, result.config(), result.spec)
        row.update({f"{method} s": round(seconds, 1), f"{method} verdict": verdict.overall,
                    f"{method} matching": f"{agreed['matching']}/{agreed['parameters']}",
                    f"{method} worst |mean diff|/sd": round(agreed["worst_mean_difference_sd"], 2),
                    f"{method} worst sd ratio": round(agreed["worst_sd_ratio"], 2)})
        if method == "pathfinder":
            row["pareto k"] = round(result.facts["pareto_k"], 2)
    row["time ratio nuts/pathfinder"] = round(row["nuts s"] / row["pathfinder s"], 1)
    return row


def main(argv=None) -> int:
    from probgen.devices import expose_cpu_devices

    expose_cpu_devices(4)
    import posteriordb

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated posterior names (default: all twelve)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import pandas as pd

    from _timing import device
    from probgen.report.render import markdown_table

    rows = []
    for name in (args.only.split(",") if args.only else posteriordb.names()):
        rows.append({**compare(name, args.seed), "device": device()})
        print(json.dumps(rows[-1]), flush=True)
    print(markdown_table(pd.DataFrame(rows), index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
