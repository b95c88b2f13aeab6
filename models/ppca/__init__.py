"""Probabilistic PCA and factor analysis: the linear-Gaussian latent model, latents summed out,
the latent dimension chosen by an ARD prior on the loading columns.

    z_n ~ Normal(0, I_q)                           q = --latent-dim, the most dimensions allowed
    x_n | z_n ~ Normal(mu + W z_n, Psi)            Psi = sigma^2 I (ppca) or diag(psi^2) (fa)
so  x_n ~ Normal(mu, W W^T + Psi)                  (what the sampler sees: z is integrated out)

    mu_d          ~ Normal(centre_d, 10 spread_d)        spread_d: column d's sd in the training rows
    tau_j         ~ HalfNormal(1)                        ARD: one scale per loading column
    W_dj          ~ Normal(0, spread_d tau_j)            each row in its column's units
    sigma         ~ HalfNormal(overall spread)           (ppca)
    psi_d^2       ~ InverseGamma(2.5, 1.5 / (S^-1)_dd)    (fa; S the sample covariance)

The unique variances' prior is Fruehwirth-Schnatter & Lopes's (2018) guard against Heywood
cases: its mean 1 / (S^-1)_dd is the variance of column d that the other columns leave
unexplained, and its density vanishes at psi_d = 0. Under a half-normal prior, factor analysis
of five mtcars columns (mpg, disp, hp, drat, wt) put drat's psi at the boundary and met about
200 divergences there, with R-hat 1.07.

Automatic relevance determination (Bishop 1999): a column the data do not need has its tau_j
pulled to 0, and the column with it, so the posterior keeps the dimensions the data support.
W's rows are scaled by their columns' sds, so a loading over its row's sd, a correlation, is at
most 1 in magnitude: tau_j ~ HalfNormal(1) says so. A half-Cauchy tau_j (heavy-tailed, in the
data's overall units) let tau_j grow while the non-centred w_dj shrank along a ridge, where
NUTS diverged (mtcars, again). The likelihood is NumPyro's `LowRankMultivariateNormal`, so each
evaluation costs O(N D q^2), not O(D^3).

W is identified only up to a rotation (W R has the same likelihood for any orthogonal R), so
chains wander over rotations. `postprocess` puts every draw in a canonical form, W = U S (the
left singular vectors scaled by the singular values, sign fixed so that each column's largest
loading is positive): W W^T is unchanged, and the columns come out ordered by the variance
they explain. R-hat and ESS are judged on rotation-free quantities (`convergence_on`): mu, the
noise, the sorted factor variances s_j^2 (the eigenvalues of W^T W) and the log density.

The closed-form maximum-likelihood PPCA (Tipping & Bishop 1999) is `maximum_likelihood`; the
tests check it against scikit-learn's `PCA.score` and the posterior against both.

Fitted by NUTS for small data (the default) and by `--method svi` (an autoguide on the global
parameters; z is summed out, so there are no per-row latents) for larger.

Layout: `model` (the model and its closed forms), `data` (table -> inputs), `parts` (the hooks on
the draws), `evaluation` (retained dimensions, the held-out check over q, the predictive density),
`report` (its section and plots); this module holds the spec.
"""

from __future__ import annotations

from probgen.models.ppca.data import ledermann_bound, prepare
from probgen.models.ppca.evaluation import (  # noqa: F401  (the family's API: ppca.retained_dimensions, ...)
    noise_variance_draws, posterior_means, predictive_log_density, retained_dimensions, retention_threshold)
from probgen.models.ppca.model import (  # noqa: F401
    NOISE, PRIORS, assemble_loadings, canonical_loadings, latent_means, log_density, lower_trapezoidal,
    maximum_likelihood, ppca)
from probgen.models.ppca.parts import convergence_on, derived, init, postprocess
from probgen.models.ppca.report import plots, report
from probgen.spec import Bound, Headline, DerivedGroups, FamilyPlots, JudgedOn, ModelSpec, Option, Relabel


SPEC = ModelSpec(
    name="ppca",
    model=ppca,
    prepare=prepare,
    options=(
        Option("latent_dim", int, 0, "most latent dimensions q (0: min(D - 1, 10)); ARD keeps those the data need",
               minimum=0),
        Option("noise", str, "isotropic", "isotropic (probabilistic PCA) or diagonal (factor analysis)", NOISE),
        Option("column_prior", str, "ard", "prior of the loading columns: ard (one HalfCauchy scale per column, "
                                           "prunes unneeded ones) or normal (fixed scale: all q are kept)", PRIORS),
        Option("label_column", str, "", "column holding each row's label (not modelled; colours the latent map)"),
    ),
    init=init,
    report=report,
    parts=(Relabel(postprocess), JudgedOn(convergence_on), DerivedGroups(derived), FamilyPlots(plots),
           Headline(Bound("retained_dimensions", 0, "latent_dim_allowed", stated=True))),
    summary_vars=("factor_variance", "sigma", "psi", "mu"),
    description="probabilistic PCA / factor analysis: x = mu + W z + noise, z summed out, ARD picks the dimensions",
)
