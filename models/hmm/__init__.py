"""Bayesian hidden Markov model: K hidden states, the state paths marginalised exactly.

    init_probs           ~ Dirichlet(1_K)
    transition[k]        ~ Dirichlet(1_K + sticky * e_k)          (row k: from state k)
    emissions, per state k:
      gaussian     x_t | z_t = k ~ Normal(means[k], diag(scales[k]) corr[k] diag(scales[k]))
                   means[k, d] ~ Normal(prior_loc[d], prior_scale[d]), scales ~ HalfNormal(prior_scale / 2),
                   corr_cholesky[k] ~ LKJCholesky(D, 2) (covariance="full", D > 1)
      poisson      x_t | z_t = k ~ Poisson(rates[k]),  log rates ~ Normal(log mean(x), 2)
      categorical  x_t | z_t = k ~ Categorical(emission_probs[k]),  emission_probs[k] ~ Dirichlet(1_C)

The hidden states are summed out by the forward algorithm (`hmm_forward`: a
`lax.scan`, or with `--algorithm parallel` a `lax.associative_scan` of O(log T) depth for
accelerators; both give the same log-likelihood), so NUTS and SVI see a smooth log density.
Several sequences of different lengths are fitted together: padded to the longest, with a
mask, and the forward algorithm vmapped over them (no Python loop).

The observed site `x` has shape (sequence, time, feature). Its pointwise log-likelihood is the
one-step-ahead term log p(x_t | x_1..x_{t-1}) (summing to the sequence's log-likelihood), so
PSIS-LOO over these terms measures how well the model predicts each step from the steps
before; it is the criterion the analyses use to choose K.

Label switching: by default the first column of the Gaussian means (or the Poisson log rates)
is ordered, as in the mixture family, so every chain samples one labelling; for categorical
emissions, which have no natural order, each draw is relabelled to a common reference by the
Hungarian algorithm on its emission probabilities (`identify="relabel"`).

Decoding after the fit (the `decoding` group of the InferenceData, `decode`): smoothed state
marginals averaged over posterior draws, the Viterbi path at the posterior mean and per draw,
and whole state paths drawn by forward-filtering backward-sampling, one per draw.

Layout, as every family package: `model` (pure message passing over a T x K log-likelihood
table, the NumPyro model, priors, simulation), `data` (table -> inputs, held-out steps),
`parts` (the decoding group), `evaluation` (the regimes a decoded run describes), `report`
(plots). Only the report imports matplotlib.
"""

from __future__ import annotations

from probgen.spec import (Bound, Headline, DerivedGroups, FamilyPlots, HeldOut, ModelSpec, Option,
                          OriginalUnits, Relabel, Simulator)

from probgen.models.hmm.data import _rows, held_out, prepare, split_sequences, time_order  # noqa: F401
from probgen.models.hmm.evaluation import describe_regimes  # noqa: F401
from probgen.models.hmm.parts import MAX_MARGINAL_DRAWS, MAX_PATH_DRAWS, _decode, decode  # noqa: F401
from probgen.models.hmm.model import (  # noqa: F401
    HIGHEST, TINY, _conditionals, _scaled, forward, forward_filter, forward_filter_parallel, sample_path,
    simulate_states, smooth, viterbi,
    ALGORITHMS, COVARIANCES, EMISSIONS, HiddenMarkov, IDENTIFICATIONS, LOG_RATE_PRIOR_SD, STATE_SITES,
    emission_log_probs, emission_params, hmm, init, postprocess, simulate, simulate_sequence, to_original_units,
)
from probgen.models.hmm.report import plots, report  # noqa: F401


SPEC = ModelSpec(
    name="hmm",
    model=hmm,
    prepare=prepare,
    options=(
        Option("num_states", int, 2, "number of hidden states K (>= 1)", minimum=1),
        Option("emission", str, "gaussian", "emission distribution", EMISSIONS),
        Option("covariance", str, "diagonal", "Gaussian emissions in several columns: diagonal or full covariance",
               COVARIANCES),
        Option("sticky", float, 0.0, "extra Dirichlet mass on staying in the same state (>= 0)", minimum=0),
        Option("algorithm", str, "scan", "forward algorithm: sequential scan, or parallel (associative scan, "
                                         "O(log T) depth, for accelerators)", ALGORITHMS),
        Option("sequence_column", str, "", "column holding a sequence id (rows of one id are one sequence, in "
                                           "order); default: all rows are one sequence"),
        Option("time_column", str, "", "column holding each row's time (e.g. the year): labels the decoded "
                                       "regimes and plots, must increase within a sequence; not modelled"),
        Option("num_categories", int, 0, "categorical emissions: number of categories (default: largest code + 1)"),
        Option("identify", str, "auto", "label switching: auto (ordered for gaussian/poisson, relabel for "
                                         "categorical), ordered, relabel or none", IDENTIFICATIONS),
    ),
    summary_vars=("init_probs", "transition", "means", "scales", "rates", "emission_probs"),
    init=init,
    held_out=HeldOut(inputs=held_out, sequence=time_order),
    report=report,
    parts=(Relabel(postprocess), Simulator(simulate), OriginalUnits(to_original_units), FamilyPlots(plots),
           DerivedGroups(decode),
           Headline(Bound("states/*/share_of_time", 0, 1), Bound("regimes/switches/*/probability", 0, 1))),
    description="Bayesian hidden Markov model, K states (forward algorithm), Gaussian/Poisson/categorical emissions, "
                "several sequences, decoding",
)
