"""British coal-mining disasters, 1851-1962: did the rate of explosions change, and when?

A Poisson hidden Markov model with K = 1, 2, 3 states is fitted by NUTS (4 chains x 1000 draws) to
the number of explosions killing ten or more miners in each of the 112 years (derived from the
191 dates in `boot::coal`); K is chosen by PSIS-LOO over the one-step-ahead predictive terms
(the simplest K within two standard errors of the best). The run folder of the chosen K holds
the decoded regimes and a report that says when the rate changed and by how much.

    python analyses/coal_hmm.py --out runs/coal_hmm [--overwrite] [--quiet]
"""

from __future__ import annotations

import sys

from nile_hmm import parse_args, run_study

from probgen.devices import expose_cpu_devices

CONTEXT = ("For comparison: the classic change-point analyses of these data (Jarrett 1979; Raftery and "
           "Akman 1986; Carlin, Gelfand and Smith 1992) put a single drop in the rate, from about 3 to about 1 "
           "disaster a year, around 1890.")


def run(args) -> int:
    return run_study(args, name="coal_hmm", data_name="coal", columns=["year", "disasters"],
                     options={"emission": "poisson", "time_column": "year"}, units="disasters a year", digits=0,
                     title="When did the rate of disasters change?", context=CONTEXT)


if __name__ == "__main__":
    arguments = parse_args(default_out="runs/coal_hmm")
    expose_cpu_devices(arguments.chains)
    sys.exit(run(arguments))
