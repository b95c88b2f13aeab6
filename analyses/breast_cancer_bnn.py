"""Breast cancer: is a Bayesian neural network classifier worth it over logistic regression?

scikit-learn's Wisconsin breast cancer set (569 tumours, 30 features, benign or malignant). On
each of several random 80/20 splits, a BNN (one hidden layer of 20 tanh units, Normal priors
scaled by fan-in, Bernoulli likelihood) is fitted by NUTS, by SVI with a mean-field and a
low-rank Gaussian guide, and by MAP; scikit-learn's logistic regression (L2, C = 1) is the
linear baseline on the same rows. Each is scored on the test rows: accuracy, log predictive
density and expected calibration error (the report has the reliability diagram); KL between
NUTS's and SVI's predictive class probabilities says what the approximation loses. The run
folder is the first split's NUTS fit with the cross-split table as a section.

    python analyses/breast_cancer_bnn.py --out runs/breast_cancer_bnn [--splits 5] [--overwrite] [--quiet]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bnn_study import expose_devices, run_study, study_arguments  # noqa: E402


def parse_args(argv=None):
    return study_arguments(__doc__.split("\n\n")[0], "runs/breast_cancer_bnn").parse_args(argv)


def run(args) -> int:
    readings = [("accuracy", True, "held-out accuracy"),
                ("log_predictive_density_per_row", True, "held-out log predictive density"),
                ("expected_calibration_error", False, "calibration (ECE)")]
    return run_study("breast_cancer_bnn", "breast_cancer", "bernoulli", readings,
                     "Means over the splits with their standard errors; log predictive density per test row in nats; expected "
                     "calibration error over 10 confidence bins; KL(NUTS || SVI) per test row between the two predictive "
                     "class distributions (exact).", args)


if __name__ == "__main__":
    arguments = parse_args()
    expose_devices(arguments.chains)
    sys.exit(run(arguments))
