"""Shared by the studies: fit one model family at several sizes and choose among them by PSIS-LOO.

Not part of the library (the library's pieces are `probgen.infer.fit`, `probgen.checks.diagnostics.assess`,
`probgen.checks.loo.compare` and `probgen.checks.loo.choose_simplest`); this only strings them together
the same way for every study.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


def study_arguments(description: str, default_out: str, sizes: str, default_max: int) -> argparse.ArgumentParser:
    """The options every study takes: where to write, seed, the NUTS run, and how many sizes
    (`--max-<sizes>`: components, states) to compare."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=default_out, help="run folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace the run folder if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument(f"--max-{sizes}", type=int, default=default_max, help="compare K = 1..this by LOO")
    return parser


@dataclass
class Choice:
    fits: dict  # name -> probgen Fit
    verdicts: dict  # name -> diagnostics Assessment
    table: object  # the comparison table (pandas)
    reading: str  # the comparison in words
    chosen: str  # the model the stated rule picks
    reason: str  # why

    def section(self, title: str, note: str = ""):
        """The report section: the table, the reading and the choice."""
        from probgen import report

        text = f"{self.reading} Rule: the simplest model within two standard errors of the best. Chosen: " \
               f"{self.chosen}, because {self.reason}." + (f" {note}" if note else "")
        return report.Section(title, text, self.table)

    def metrics(self) -> dict:
        return {"reading": self.reading, "chosen": self.chosen, "reason": self.reason,
                "table": self.table.reset_index(names="model").to_dict("records")}


def fit_and_choose(model: str, dataset, candidates: dict, *, method: str = "nuts", seed: int = 0,
                   progress: bool = True, **settings) -> Choice:
    """candidates: name -> model options, from the simplest to the most complex."""
    from probgen.checks import diagnostics
    from probgen.checks import loo
    from probgen.infer import fit

    fits, verdicts = {}, {}
    for name, options in candidates.items():
        if progress:
            print(f"--- {name} ---", flush=True)
        result = fit(model, dataset, method, options=options, seed=seed, progress=progress, **settings)
        result.model_reference = model
        fits[name], verdicts[name] = result, diagnostics.assess(result.idata, method, result.settings, facts=result.facts)
    convergence = {name: verdict.overall for name, verdict in verdicts.items()}
    table, reading = loo.compare({name: f.idata for name, f in fits.items()}, convergence=convergence)
    table = table[["rank", "elpd_loo", "p_loo", "elpd_diff", "se", "dse", "warning", "convergence"]]
    chosen, reason = loo.choose_simplest({name: f.idata for name, f in fits.items()}, list(candidates), convergence)
    return Choice(fits, verdicts, table, reading, chosen, reason)
