"""Diabetes progression: is a Bayesian neural network worth it over Bayesian linear regression?

scikit-learn's diabetes set (442 patients, 10 baseline measurements, progression one year on).
On each of several random 80/20 splits, a BNN (one hidden layer of 20 tanh units, Normal priors
scaled by fan-in, Gaussian noise) is fitted by NUTS, by SVI with a mean-field and a low-rank
Gaussian guide, and by MAP; scikit-learn's BayesianRidge is the linear baseline on the same
rows. Each is scored on the test rows: RMSE, log predictive density, and the coverage of the
50% and 90% predictive intervals; the distance between NUTS's and SVI's predictive
distributions says what the approximation loses. The run folder is the first split's NUTS fit
with the cross-split table as a section.

    python analyses/diabetes_bnn.py --out runs/diabetes_bnn [--splits 5] [--overwrite] [--quiet]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bnn_study import expose_devices, run_study, study_arguments  # noqa: E402


def parse_args(argv=None):
    return study_arguments(__doc__.split("\n\n")[0], "runs/diabetes_bnn").parse_args(argv)


def run(args) -> int:
    readings = [("rmse", False, "held-out RMSE"),
                ("log_predictive_density_per_row", True, "held-out log predictive density")]
    return run_study("diabetes_bnn", "diabetes", "gaussian", readings,
                     "Means over the splits with their standard errors; RMSE in the target's units, log predictive density per test "
                     "row in nats, coverage of the central 50% and 90% predictive intervals (nominal 0.5 and 0.9), and "
                     "KL(NUTS || SVI) per test row between Gaussians matched to the two predictive distributions.", args)


if __name__ == "__main__":
    arguments = parse_args()
    expose_devices(arguments.chains)
    sys.exit(run(arguments))
