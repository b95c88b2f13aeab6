"""Variational autoencoder: a decoder network as a NumPyro model, an encoder network as its guide.

    z_n ~ Normal(0, I_L)                                       (L = latent_dim)
    x_n | z_n ~ likelihood(decoder(z_n))                       (D = number of pixels or values)
      bernoulli             x in {0, 1}:   Bernoulli(logits = decoder(z))
      continuous_bernoulli  x in [0, 1]:   ContinuousBernoulli(logits = decoder(z))
      beta                  x in (0, 1):   Beta(softplus(a(z)), softplus(b(z)))
      gaussian              x real:        Normal(decoder(z), exp(log_scale)), log_scale (D,) learned
    q(z_n | x_n) = Normal(encoder_loc(x_n), exp(encoder_log_scale(x_n)))   (amortised guide)

The networks are multilayer perceptrons written with Flax (linen) and registered in the model
and guide by `numpyro.contrib.module.flax_module`, so their weights are NumPyro params that SVI
optimises. With `hidden=()` both networks are affine: the linear-Gaussian VAE, whose marginal
likelihood and ELBO have closed forms (the tests check ours against them).

Both model and guide take the same arguments; `batch_size` makes the data plate subsample
(`numpyro.plate(..., subsample_size=...)`), which scales each minibatch's log-density by
N / batch_size, so the ELBO estimate stays unbiased for the whole data set. `kl_weight` scales
the latent site in model and guide alike, i.e. multiplies the KL term of the ELBO (annealing
from 0 to 1 over the first steps; 1 is the true ELBO).

Flax is the network library (NumPyro supports it first-class, it is maintained by Google and
used across the JAX ecosystem); the linen API is used because `flax_module` wraps it directly.

Layout, as every family package: `model` (networks, model, guide, bounds), `data` (table ->
inputs), `parts` (what the minibatch trainer and `probgen sample` call), `report` (the report
and its plots). Only the report imports matplotlib.
"""

from __future__ import annotations


from probgen.models.vae.data import (  # noqa: F401
    TRANSFORMS, _value_columns, data_options, architecture_from, check_values, parse_hidden, parse_image_shape, prepare,
    preprocess,
)
from probgen.models.vae.model import (  # noqa: F401
    Architecture, LIKELIHOODS, MLP, _per_example_log_weights, decode_mean, decoder_outputs, elbo_per_example,
    encode, iwae_per_example, kl_per_dimension, observation_distribution, sample_images, vae_guide, vae_model,
)
from probgen.models.vae.report import ACTIVE_UNIT_NATS, _mean_se, _report_figures, report  # noqa: F401
from probgen.models.vae.parts import _elbo, evaluate, generate  # noqa: F401


def _spec():
    from probgen.infer.amortized import Objective
    from probgen.spec import Bound, Headline, ModelSpec, Option

    return ModelSpec(
        name="vae",
        model=vae_model,
        guide=vae_guide,
        prepare=prepare,
        options=(
            Option("latent_dim", int, 8, "size of the latent z"),
            Option("hidden", str, "128,64", "hidden layer sizes of the encoder MLP, reversed for the decoder "
                                            "(empty: affine networks, the linear-Gaussian VAE)"),
            Option("likelihood", str, "gaussian", "p(x | z): bernoulli (0/1 values), continuous_bernoulli ([0, 1]), "
                                                  "beta ((0, 1)) or gaussian (real, learned scale)", LIKELIHOODS),
            *data_options("column holding each row's label (not modelled; colours the latent map)"),
            Option("iwae_samples", int, 1000, "importance samples K of the held-out log-likelihood bound"),
        ),
        report=report,
        parts=(Objective(elbo=_elbo, evaluate=evaluate, preprocess=preprocess, generate=generate),
               Headline(Bound("vae/latent/active_units", 0, "vae/latent/latent_dim", stated=True),
                        Bound("vae/latent/mutual_information_nats", 0, "vae/latent/mutual_information_upper_limit_log_n"))),
        description="variational autoencoder: MLP decoder p(x | z), amortised encoder q(z | x), minibatch SVI "
                    "(--method svi) with early stopping, checkpoints and --resume",
    )


SPEC = _spec()
